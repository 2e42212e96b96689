"""The guide a candidate follows, made from the task set (its labels, what to box for each, its
text rule in plain words) and the texts in media/texts/guide.*.toml: sent in the bot with the
login (Telegram HTML, one language) and put in the CVAT task's guide (Markdown, both languages,
since a pooled task is made before anyone knows who gets it)."""

from __future__ import annotations

import html
import re

from bot_files.texts import LANGUAGES, Raw, Texts
from tasks_generator.task_set import TaskSet

TELEGRAM_TEXT_LIMIT = 4096  # characters of one message


def _lines(t: Texts, task_set: TaskSet) -> list[str]:
    """The steps shared by both places, in one language."""
    language = t.language
    lines = [t("guide.open_job", images=task_set.images_per_task), t("guide.draw")]
    for label in task_set.labels:
        hint = task_set.label_hints.get(label, {}).get(language, "")
        lines.append(t("guide.label", label=label, hint=Raw(hint)) if hint
                     else f"• <b>{html.escape(label, quote=False)}</b>")
    lines.append(t("guide.how_to_draw"))
    if task_set.text_attribute is not None:
        label, attribute = task_set.text_attribute
        rule = task_set.plate_rule.get(language) or t("guide.text_default_rule")
        lines.append(t("guide.text", label=label, attribute=attribute, rule=Raw(rule)))
    lines += [t("guide.hard_cases"), t("guide.save")]
    return lines


def guide_text(language: str, task_set: TaskSet) -> str:
    """The guide as the bot sends it with the login (Telegram HTML)."""
    t = Texts(language)
    return "\n".join([t("guide.title"), *_lines(t, task_set), t("guide.finish_bot")])


def guide_markdown(task_set: TaskSet) -> str:
    """The guide for the CVAT task (Markdown), every language one after the other."""
    sections = []
    for language in LANGUAGES:
        t = Texts(language)
        body = [*_lines(t, task_set), t("guide.finish_cvat")]
        sections.append("\n\n".join([f"## {t('guide.cvat_title')}",
                                     *(_markdown(line) for line in body)]))
    return "\n\n---\n\n".join(sections)


_TAGS = ((re.compile(r"</?b>"), "**"), (re.compile(r"</?code>"), "`"))


def _markdown(line: str) -> str:
    """One guide line from Telegram HTML (<b>, <code>) to Markdown; "•" items become list
    items."""
    for tag, mark in _TAGS:
        line = tag.sub(mark, line)
    line = html.unescape(line)
    return "- " + line[2:] if line.startswith("• ") else line
