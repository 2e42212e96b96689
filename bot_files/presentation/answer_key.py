"""The answer key screen: the task set, the key in force and the probable errors in it."""

from __future__ import annotations

from collections.abc import Sequence

from bot_files.hr_keyboards import key_keyboard
from bot_files.presentation.text import Letter, when_text
from bot_files.texts import Texts
from tasks_generator.to_handlers import TaskSet
from tasks_metrics.to_handlers import KeyVersion, ObjectStats


def key_screen(t: Texts, task_set: TaskSet, key: KeyVersion,
               found: Sequence[tuple[ObjectStats, str]]) -> Letter:
    """The set and the key in force, then each probable error (`found`: its figures and the
    object in words), with a button to exclude each."""
    tags = task_set.tag_counts(task_set.image_names)
    lines = [t("key.title", set=task_set.name, images=len(task_set.image_names),
               per_task=task_set.images_per_task,
               tags=", ".join(f"{tag} {count}" for tag, count in tags.items())
               or t("key.no_tags"),
               version=key.version,
               since=t("key.since", date=when_text(t, key.created_at)) if key.created_at else "",
               change=key.change, excluded_images=len(key.excluded_images),
               excluded_objects=len(key.excluded_objects))]
    if found:
        lines.append(t("key.suspects"))
        lines += [t("key.suspect", object=what, missed=o.strong_missed,
                    misread=o.strong_misread, strong=o.strong) for o, what in found]
    else:
        lines.append(t("key.no_suspects"))
    return Letter("\n".join(lines),
                  key_keyboard(t, [(o.image, o.number, o.label) for o, _ in found]))
