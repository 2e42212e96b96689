"""`./run.sh demo`: the whole product working offline, printed as a chat transcript.

The real bot (the production factories) runs on an embedded PostgreSQL against the Telegram and
CVAT stand-ins. A scripted candidate takes the test twice (an incomplete submission first, then
realistic mistakes, then a better second attempt); a second candidate draws other images and
hurries, and is flagged; an HR user gets the notifications, opens the cards, downloads the
calibration and the export. The files land in demo-output/.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import shutil
import sys
import time
from typing import Any

from aiogram import Bot, Dispatcher

from bot_files.worker import Worker
from config.env import PROJECT_DIR, load_settings
from connection import AsyncCvatClient
from db import Database, EmbeddedPostgres, migrate, reachable_temp_dir
from main import create_bot, create_dispatcher
from sandbox.candidate import (
    TASK_SET,
    Login,
    candidate_client,
    candidate_job,
    perfect_shapes,
    read_login,
    save_shapes,
)
from sandbox.cvat import CvatServer
from sandbox.telegram import BotMessage, TelegramServer, TelegramUser
from tasks_generator.pool import PoolCounts, pool_counts

TOKEN = "7000000001:AAF-demo-token-for-the-sandbox-0123456789"
HR_ID = 500
OUTPUT = PROJECT_DIR / "demo-output"
CYRILLIC = dict(zip("ABCEHKMOPTXY", "АВСЕНКМОРТХУ", strict=True))


class Narrator:
    """Prints each chat as it happens: who said what, buttons in brackets."""

    def __init__(self, who: dict[int, str]) -> None:
        self.who = who
        self.seen: dict[int, int] = {}

    def say(self, user: TelegramUser, text: str) -> None:
        """A line the user sends or presses."""
        print(f"{self.who[user.id]:>7} ▸ {text}")

    def flush(self, user: TelegramUser) -> None:
        """Print what the bot did in this chat since last time."""
        events = user.chat_history[self.seen.get(user.id, 0):]
        self.seen[user.id] = len(user.chat_history)
        for event in events:
            if event.kind not in ("message", "edit") or event.message is None:
                continue
            print(self._bot_line(event.message, edited=event.kind == "edit"))

    @staticmethod
    def _bot_line(message: BotMessage, *, edited: bool) -> str:
        lines = [line for line in message.text.splitlines() if line.strip()]
        body = "\n          ".join(lines[:8] + (["…"] if len(lines) > 8 else []))
        if message.document is not None:
            body = f"📎 {message.document.file_name} ({len(message.document.data):,} bytes)"
        elif message.kind in ("photo", "media_group_item"):
            body = f"🖼 picture{': ' + body if body else ''}"
        buttons = " ".join(f"[{b}]" for row in message.buttons for b in row)
        mark = "(edits) " if edited else ""
        return f"    Bot ◂ {mark}{body}" + (f"\n          {buttons}" if buttons else "")


async def _annotate(login: Login, *, only: set[str] | None = None,
                    mistakes: bool = False, jitter: float = 0.0) -> list[str]:
    """Save the candidate's work in CVAT with their own login, as the CVAT UI would (boxes a
    little off, by up to `jitter` px, as a person draws them); the job's images."""
    client = candidate_client(login)
    try:
        job_id, frames, labels = await candidate_job(client)
        plates = [s.text for n in frames for s in TASK_SET.ground_truth.images[n].shapes
                  if s.label == "plate"]
        typo = {plates[1]: CYRILLIC[plates[1][0]] + plates[1][1:],
                plates[2]: plates[2].lower()} if mistakes else {}
        shapes = perfect_shapes(frames, labels, only=only, plate_texts=typo)
        if mistakes:
            plate_id = next(lb["id"] for lb in labels if lb["name"] == "plate")
            missed = next(i for i, s in enumerate(shapes) if s["label_id"] == plate_id)
            del shapes[missed]  # a missed plate
            car = next(s for s in shapes if s["label_id"] != plate_id)
            x0, y0, x1, y1 = car["points"]
            car["points"] = [x0 - 25, y0 - 20, x1 + 25, y1 + 15]  # a loose box
        # Each person's hand shakes their own way: two candidates on a shared image must not
        # draw the same boxes to the pixel (that is what the copy flag looks for).
        rng = random.Random(login.username)
        for shape in shapes:
            shape["points"] = [v + rng.uniform(-jitter, jitter) for v in shape["points"]]
        await save_shapes(client, job_id, shapes)
        return frames
    finally:
        await client.close()


async def _took(db: Database, telegram_id: int, minutes: int) -> None:
    """The demo's clock: the candidate's open attempt was handed out `minutes` ago (a person
    annotates for most of an hour; the script takes a second)."""
    await db.execute(
        "UPDATE attempts SET task_started = task_started - make_interval(mins => %s)"
        " WHERE status = 'ready' AND candidate_id = (SELECT id FROM candidates"
        " WHERE telegram_id = %s)", (minutes, telegram_id))


async def run_demo() -> int:
    """Everything, start to finish; 0 when the whole story went as expected."""
    started = time.monotonic()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    workdir = reachable_temp_dir("candidate-bot-demo-")
    if OUTPUT.exists():
        shutil.rmtree(OUTPUT)
    OUTPUT.mkdir()
    print("Starting an embedded PostgreSQL, the Telegram and CVAT stand-ins and the bot…\n")
    postgres = EmbeddedPostgres(workdir)
    url = await asyncio.to_thread(postgres.start)
    await asyncio.to_thread(migrate, url)
    telegram = TelegramServer()
    telegram.add_bot(TOKEN, username="candidate_test_bot", first_name="Candidate Test")
    await telegram.start(host="127.0.0.1", port=0)
    cvat = CvatServer(admin=("bot-admin", "Demo-Adm1n-Passw0rd"), processing_time=0.5)
    await cvat.start(host="127.0.0.1", port=0)
    settings = load_settings(environ={
        "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.base_url, "CVAT_URL": cvat.base_url,
        "CVAT_ADMIN_USERNAME": "bot-admin", "CVAT_ADMIN_PASSWORD": "Demo-Adm1n-Passw0rd",
        "DATABASE_URL": url, "HR_ADMIN_IDS": str(HR_ID), "LOG_DIR": str(workdir / "logs"),
        "LOG_TO_CONSOLE": "false", "SHOW_SCORE_TO_CANDIDATE": "true", "THROTTLE_BURST": "100",
    }, env_file=None)
    db = Database(url)
    bot: Bot = create_bot(settings)
    cvat_client = AsyncCvatClient.from_settings(settings)
    dp: Dispatcher = create_dispatcher(settings, db, cvat_client)
    worker = await Worker(settings, db).start()  # the worker, on the same loop in the demo
    polling = asyncio.create_task(dp.start_polling(bot, handle_signals=False,
                                                   close_bot_session=False, polling_timeout=5))
    try:
        await telegram.wait_polling(timeout=15)
        await _story(telegram, db)
    finally:
        with contextlib.suppress(RuntimeError):
            await dp.stop_polling()
        await asyncio.wait_for(polling, 15)
        await worker.stop(grace=0)
        await bot.session.close()
        await cvat_client.close()
        await db.close()
        await telegram.stop()
        await cvat.stop()
        await asyncio.to_thread(postgres.remove)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nDone in {time.monotonic() - started:.1f} s.")
    return 0


async def _warm_pool(db: Database) -> PoolCounts:
    """Wait (up to 30 s) until the bot's warm pool is full."""
    for _ in range(300):
        counts = await pool_counts(db)
        if counts.accounts_ready >= 3 and counts.tasks_ready >= 3:
            break
        await asyncio.sleep(0.1)
    return counts


async def _story(telegram: TelegramServer, db: Database) -> None:
    maria = telegram.user(1001, first_name="Maria", language_code="en")
    helen = telegram.user(HR_ID, first_name="Helen", language_code="en")
    oleg = telegram.user(1002, first_name="Oleg", language_code="en")
    chat = Narrator({maria.id: "Maria", helen.id: "Helen (HR)", oleg.id: "Oleg"})

    async def send(user: TelegramUser, text: str, expect: str, **kw: Any) -> BotMessage:
        chat.say(user, text)
        await user.send(text)
        reply = await user.expect_message(expect, **kw)
        await asyncio.sleep(0.1)
        chat.flush(user)
        return reply

    async def submit(user: TelegramUser) -> BotMessage:
        """The candidate submits complete work; HR's notification of it."""
        await send(user, "✅ Submit", "for grading?")
        await press(user, "✅ Yes, submit it", "Checking")
        await user.expect_edit("Thank you!", timeout=20)
        chat.flush(user)
        notice = await helen.expect_message(f"New result: {user.first_name}", timeout=20)
        chat.flush(helen)
        return notice

    async def press(user: TelegramUser, button: str, expect: str, *, edit: bool = False,
                    **kw: Any) -> BotMessage:
        chat.say(user, f"[{button}]")
        await user.press(button, **{k: v for k, v in kw.items() if k == "message_id"})
        timeout = kw.get("timeout", 20)
        reply = await (user.expect_edit(expect, timeout=timeout) if edit
                       else user.expect_message(expect, timeout=timeout))
        await asyncio.sleep(0.2)
        chat.flush(user)
        return reply

    print("— HR opens the bot —")
    await send(helen, "/start", "Hello, Helen")
    counts = await _warm_pool(db)
    print(f"\n  (meanwhile the bot made {counts.accounts_ready} CVAT accounts and "
          f"{counts.tasks_ready} tasks with their images ready: its warm pool)")
    print("\n— A candidate takes the test —")
    await send(maria, "/start", "Hello, Maria")
    await send(maria, "📝 Get a test task", "Ready to start?")
    started = time.perf_counter()
    await press(maria, "✅ Yes, create my task", "Your CVAT login")
    waited = time.perf_counter() - started - 0.2  # press() lingers 0.2 s for late messages
    await maria.expect_message("What to do")
    chat.flush(maria)
    print(f"\n  (the login came {waited:.2f} s after the press: an account and a task from the "
          "warm pool, which refills behind her)")
    login = read_login(next(m for m in maria.messages if "Your CVAT login" in m.text))
    subset = await _annotate(login, only=set())
    print(f"\n  (Maria logs into CVAT as {login.username} and annotates 8 of {len(subset)} "
          "images, then checks her work)")
    await _annotate(login, only=set(subset[:8]))
    await send(maria, "🔎 Check my work", "Checking")
    await maria.expect_edit("Not finished yet", timeout=20)
    chat.flush(maria)
    print("\n  (40 minutes later she finishes every image, with realistic mistakes: a loose box,"
          " a missed plate, a Cyrillic letter in a plate, a plate typed in lower case)")
    await _annotate(login, mistakes=True, jitter=1.5)
    await _took(db, maria.id, 40)
    await send(maria, "✅ Submit", "for grading?")
    await press(maria, "✅ Yes, submit it", "Checking")
    await maria.expect_edit("Thank you!", timeout=20)
    await maria.expect_message("You have submitted")
    chat.flush(maria)
    await helen.expect_message("New result", timeout=20)
    chat.flush(helen)
    print("\n— Maria asks a question; HR answer in the bot —")
    await send(maria, "How soon will I hear back about my result?", "question for HR")
    await press(maria, "✉️ Yes, send it to HR", "sent to HR", edit=True)
    question = await helen.expect_message("Message from a candidate", timeout=20)
    chat.flush(helen)
    await press(helen, "↩️ Reply", "Type your reply", message_id=question.message_id)
    await send(helen, "Within two days. A second attempt is welcome!", "was sent")
    await maria.expect_message("Message from HR", timeout=20)
    chat.flush(maria)
    print("\n— A second attempt, done carefully —")
    await send(maria, "🔁 New attempt", "Start attempt 2")
    await press(maria, "✅ Yes, start a new attempt", "Your CVAT login")
    await maria.expect_message("What to do")
    chat.flush(maria)
    await _annotate(login, jitter=1.5)
    await _took(db, maria.id, 35)
    notice = await submit(maria)
    print("\n— HR reads the result —")
    await press(helen, "📇 Open card", "Maria", message_id=notice.message_id)
    card = next(m for m in reversed(helen.messages) if m.buttons)
    pictures_button = next(b for row in card.buttons for b in row if b.startswith("🖼"))
    chat.say(helen, f"[{pictures_button}]")
    await helen.press(pictures_button, message_id=card.message_id)
    await helen.expect_edit("pictures", timeout=20)
    await asyncio.sleep(2)
    chat.flush(helen)
    await press(helen, "🪪 Scorecard", "Scorecard:", message_id=card.message_id)
    print("\n— HR decide: an invitation, with a line of their own —")
    await press(helen, "✅ Invite", "will receive this message", message_id=card.message_id)
    await send(helen, "Please book an interview slot for Tuesday.", "will receive this message")
    await press(helen, "📨 Send", "Sent to Maria", edit=True)
    await maria.expect_message("invite you to the next step", timeout=20)
    chat.flush(maria)
    print("\n— Another candidate draws other images, and hurries —")
    await send(oleg, "/start", "Hello, Oleg")
    await send(oleg, "📝 Get a test task", "Ready to start?")
    await press(oleg, "✅ Yes, create my task", "Your CVAT login")
    await oleg.expect_message("What to do")
    chat.flush(oleg)
    oleg_login = read_login(next(m for m in oleg.messages if "Your CVAT login" in m.text))
    olegs = await _annotate(oleg_login, jitter=2.0)
    marias = await db.fetchval("SELECT image_subset FROM attempts WHERE number = 1 AND"
                               " candidate_id = (SELECT id FROM candidates WHERE telegram_id"
                               " = %s)", (maria.id,))
    print(f"\n  (every attempt draws its own images, stratified by tag: Maria's first were "
          f"{', '.join(n[6:9] for n in marias)}; Oleg's are {', '.join(n[6:9] for n in olegs)};"
          f" {len(set(marias) & set(olegs))} in common. Oleg submits a minute later.)")
    await _took(db, oleg.id, 1)
    oleg_notice = await submit(oleg)
    await press(helen, "📇 Open card", "Oleg", message_id=oleg_notice.message_id)
    oleg_card = next(m for m in reversed(helen.messages) if "Oleg" in m.text and m.buttons)
    flagged = [line for line in oleg_card.text.splitlines()
               if line.startswith("🚩") or "answer key version" in line]
    print("\n  (Oleg's card, below his figures:)\n" + "\n".join(f"          {line}"
                                                            for line in flagged))
    await send(helen, "/hr", "HR menu")
    await press(helen, "🔑 Answer key and calibration", "Answer key")
    await press(helen, "📐 Calibration (XLSX)", "Calibration of")
    await send(helen, "/hr", "HR menu")
    await press(helen, "📊 All candidates", "candidates")
    await asyncio.sleep(2)
    chat.flush(helen)

    saved = []
    for message in helen.messages:
        if message.document is not None:
            path = OUTPUT / message.document.file_name
            path.write_bytes(message.document.data)
            saved.append(path)
        elif message.photo:
            kind = "png" if message.photo.startswith(b"\x89PNG") else "jpg"
            path = OUTPUT / f"picture_{message.message_id}.{kind}"
            path.write_bytes(message.photo)
            saved.append(path)
    rows = await db.fetchall(
        "SELECT a.number, m.car_iou, m.plate_iou, m.plate_accuracy, m.score, m.band,"
        " m.car_missed, m.plate_missed, m.task_completed FROM metrics m"
        " JOIN attempts a ON a.id = m.attempt_id JOIN candidates c ON c.id = a.candidate_id"
        " WHERE c.telegram_id = %s ORDER BY a.number", (maria.id,))
    print("\nMaria's metrics stored in PostgreSQL:")
    print(f"{'attempt':>7} {'car_iou':>8} {'plate_iou':>9} {'plate_acc':>9} {'score':>6} "
          f"{'band':>10} {'missed cars':>11} {'missed plates':>13}")
    for r in rows:
        print(f"{r['number']:>7} {r['car_iou']:>8.3f} {r['plate_iou']:>9.3f} "
              f"{r['plate_accuracy']:>9.3f} {r['score']:>6.3f} {r['band']:>10} "
              f"{r['car_missed']:>11} {r['plate_missed']:>13}")
    print("\nFiles saved:")
    for path in saved:
        print(f"  {path.relative_to(PROJECT_DIR)}")
    assert len(rows) == 2 and rows[1]["score"] > rows[0]["score"], "the second attempt is better"
    assert any(p.suffix == ".xlsx" for p in saved) and any(p.suffix == ".csv" for p in saved)


def main() -> int:
    """Run the demo; exit code 0 when the story went through."""
    return asyncio.run(run_demo())


if __name__ == "__main__":
    sys.exit(main())
