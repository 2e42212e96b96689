"""HR tune the pass rule in the bot, in process, from a graded attempt stored in the database:
bad thresholds, the preview in Russian, apply, a colleague's stale draft, a forged button and
the history. Moved from tests/test_verdict_flow.py with its assertions, the attempt stored
instead of graded on CVAT (the HR notice of such a grading is asserted in tests/test_hr.py)."""

from __future__ import annotations

from db import Database
from tasks_metrics.pass_rule import PassRule
from tests.fast.chat import FastChat, FastTelegram
from tests.steps import whitelist
from tests.test_hr_export import add_candidate, add_graded_attempt, metrics

# Everything right but 6 plates of 7 read: borderline under the shipped rule (plate texts
# right 85.7% < 90%), a pass with plate-text thresholds of 80/70.
FIGURES = {"car_recall": 1.0, "plate_recall": 1.0, "car_precision": 1.0,
           "plate_precision": 1.0, "car_matched_iou": 0.95, "plate_matched_iou": 0.9,
           "plate_accuracy": 6 / 7}


async def test_hr_tune_the_pass_rule_with_a_preview(hr_user: FastChat, telegram: FastTelegram,
                                                    db: Database) -> None:
    assert PassRule.default().evaluate(FIGURES).band == "borderline"
    candidate = await add_candidate(db, 5101, username="six_of_seven", name="Sergei")
    await add_graded_attempt(db, candidate, 1, metrics(0.9, "borderline", **FIGURES))
    ira = telegram.user(900_005, first_name="Ира", language_code="ru")
    await whitelist(db, ira)

    await ira.send("/hr")
    await ira.expect_message("Меню HR")
    await ira.press("⚖️ Правило оценки")
    rule = await ira.expect_message("Правило оценки")
    assert "№1" in rule.text and "из настроек" in rule.text
    assert "• верно прочитанные номера: проход ≥ 90%, пограничный ≥ 75%" in rule.text
    await ira.press("верно прочитанные номера")
    await ira.expect_message("пришлите два процента")
    await ira.send_sticker()
    await ira.expect_message("Пришлите пороги текстом")
    await ira.send("восемьдесят")
    await ira.expect_message("Не получилось прочитать")
    await ira.send("80 70")
    preview = await ira.expect_message("Черновик правила оценки")
    assert "• верно прочитанные номера: проход ≥ 80%, пограничный ≥ 70% ✏️" in preview.text
    assert "Кандидатов, у которых изменится результат: 1 из 1" in preview.text
    assert "• 🟡 на грани → ✅ тест пройден: 1" in preview.text
    assert await db.fetchval("SELECT band FROM metrics") == "borderline"  # nothing applied yet

    # Helen starts a draft from rule #1 too; Ира applies first.
    await hr_user.send("/hr")
    await hr_user.expect_message("HR menu")
    await hr_user.press("⚖️ Pass rule")
    await hr_user.expect_message("Pass rule")
    await hr_user.press("↩️ Shipped defaults")
    await hr_user.expect_message("Draft pass rule")

    await ira.press("✅ Применить")
    applied = await ira.expect_edit("Действует правило оценки №2")
    assert "Попыток с изменившимся результатом: 1" in applied.text
    assert await db.fetchval("SELECT band FROM metrics") == "pass"
    assert await db.fetchval("SELECT rule_id FROM metrics") == 2
    logged = await db.fetchone("SELECT details FROM action_log WHERE action = 'hr.pass_rule'")
    assert logged["details"]["rule"] == 2 and logged["details"]["attempts_changed"] == 1
    assert logged["details"]["to"]["plate_text"] == [0.8, 0.7]

    await hr_user.press("✅ Apply")
    await hr_user.expect_edit("changed by someone else")
    assert await db.fetchval("SELECT count(*) FROM pass_rules") == 2

    await hr_user.press_data("h1r:e:no_such_measure")  # a forged button
    await hr_user.expect_message("out of date")
    await hr_user.press_data("h1r:h:")
    history = await hr_user.expect_message("Pass rule history")
    assert "#2" in history.text and "set by Ира" in history.text and "from the settings" \
        in history.text
