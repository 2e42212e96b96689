"""Answer keys that can be corrected: the ground truth of a task set, version by version.

Version 1 is the set's own `annotations.xml` with nothing excluded. HR (in the bot) or the
maintainer (``python -m tasks_metrics.answer_key``) make the next version by excluding one
image or one object from grading, or (the command line) by replacing the annotations file.
Each version records which images it changed; every attempt graded on one of them under an
older version is then re-graded from its stored submission (CVAT is not called), and the
figures it had are kept in `metrics_history`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from db import Cursor, Database
from tasks_generator.set_check import check_ground_truth
from tasks_generator.task_set import TaskSet
from tasks_metrics.grading_process import GradingKey
from tasks_metrics.repository import (
    StoredKey,
    lock_key,
    newest_stored_key,
    stale_attempts,
    store_key,
    stored_keys,
)
from tasks_metrics.types import TaskAnnotations

logger = logging.getLogger(__name__)

__all__ = ["KeyChangeError", "KeyVersion", "current_key", "describe_object", "exclude",
           "include", "key_history", "newest_key", "replace_annotations", "stale_attempts"]


class KeyChangeError(ValueError):
    """The change cannot be made (an unknown image or object, already excluded, a replacement
    that fails the set's checks); the message says why."""


@dataclass(frozen=True)
class KeyVersion:
    """One version of a set's answer key."""

    task_set: str
    version: int = 1
    annotations: str | None = None
    excluded_images: tuple[str, ...] = ()
    excluded_objects: tuple[tuple[str, int], ...] = ()
    affected_images: tuple[str, ...] = ()
    change: str = "the set's own annotations"
    created_by: int | None = None
    created_at: datetime | None = None

    @classmethod
    def from_stored(cls, row: StoredKey) -> KeyVersion:
        """From an `answer_keys` row."""
        return cls(row.task_set, row.version, row.annotations, tuple(row.excluded_images),
                   tuple((str(n), int(i)) for n, i in row.excluded_objects),
                   tuple(row.affected_images), row.change, row.created_by, row.created_at)

    def stored(self) -> StoredKey:
        """As an `answer_keys` row."""
        return StoredKey(self.task_set, self.version, self.annotations,
                         list(self.excluded_images), [list(o) for o in self.excluded_objects],
                         list(self.affected_images), self.change, self.created_by)

    def grading_key(self) -> GradingKey:
        """What a grading process grades by."""
        return GradingKey(self.version, self.excluded_images, self.excluded_objects,
                          self.annotations.encode("utf-8") if self.annotations else None)

    def truth(self, task_set: TaskSet) -> TaskAnnotations:
        """The annotations of this version (trusted: checked when they were stored)."""
        if self.annotations is None:
            return task_set.ground_truth
        from tasks_metrics.cvat_xml import parse_cvat_xml

        return parse_cvat_xml(self.annotations.encode("utf-8"))


def newest_key(cur: Cursor, task_set: str) -> KeyVersion:
    """The key in force (version 1 while nobody changed it)."""
    row = newest_stored_key(cur, task_set)
    return KeyVersion.from_stored(row) if row else KeyVersion(task_set)


async def current_key(db: Database, task_set: str) -> KeyVersion:
    """The key in force for a set."""
    return await db.run(lambda cur: newest_key(cur, task_set))


async def key_history(db: Database, task_set: str) -> list[KeyVersion]:
    """Every stored version, newest first (version 1, the set's file, is not stored)."""
    return [KeyVersion.from_stored(row) for row in await stored_keys(db, task_set)]


async def _change(db: Database, task_set: TaskSet, make: Any) -> KeyVersion:
    """Make the next version from the newest, under the set's lock: `make(cur, newest)` gives
    it (without its number) or raises KeyChangeError."""

    def work(cur: Cursor) -> KeyVersion:
        lock_key(cur, task_set.name)
        newest = newest_key(cur, task_set.name)
        changed: KeyVersion = make(newest)
        stored = KeyVersion.from_stored(store_key(cur, KeyVersion(
            task_set.name, newest.version + 1, changed.annotations, changed.excluded_images,
            changed.excluded_objects, changed.affected_images, changed.change,
            changed.created_by).stored()))
        logger.info("answer key of %s is version %s now: %s", task_set.name, stored.version,
                    stored.change)
        return stored

    return await db.run(work)


def describe_object(truth: TaskAnnotations, image: str, number: int) -> str:
    """"scene_031.jpg #3 (plate A123BC77)"; KeyChangeError when there is no such object."""
    if image not in truth.images:
        raise KeyChangeError(f"the set has no image {image!r}")
    shapes = truth.images[image].shapes
    if not 1 <= number <= len(shapes):
        raise KeyChangeError(f"{image} has objects #1..#{len(shapes)}, not #{number}")
    shape = shapes[number - 1]
    text = f" {shape.text}" if shape.text else ""
    return f"{image} #{number} ({shape.label}{text})"


async def exclude(db: Database, task_set: TaskSet, image: str, number: int | None = None, *,
                  actor: int | None = None) -> KeyVersion:
    """Leave one image (`number` None) or one object out of grading from the next version on."""

    def make(newest: KeyVersion) -> KeyVersion:
        truth = newest.truth(task_set)
        if image not in truth.images:
            raise KeyChangeError(f"the set has no image {image!r}")
        if image in newest.excluded_images:
            raise KeyChangeError(f"{image} is excluded already")
        if number is None:
            return KeyVersion(task_set.name, annotations=newest.annotations,
                              excluded_images=(*newest.excluded_images, image),
                              excluded_objects=newest.excluded_objects, affected_images=(image,),
                              change=f"{image} excluded", created_by=actor)
        what = describe_object(truth, image, number)
        if (image, number) in newest.excluded_objects:
            raise KeyChangeError(f"{what} is excluded already")
        return KeyVersion(task_set.name, annotations=newest.annotations,
                          excluded_images=newest.excluded_images,
                          excluded_objects=(*newest.excluded_objects, (image, number)),
                          affected_images=(image,), change=f"{what} excluded",
                          created_by=actor)

    return await _change(db, task_set, make)


async def include(db: Database, task_set: TaskSet, image: str, number: int | None = None, *,
                  actor: int | None = None) -> KeyVersion:
    """Undo an exclusion."""

    def make(newest: KeyVersion) -> KeyVersion:
        if number is None:
            if image not in newest.excluded_images:
                raise KeyChangeError(f"{image} is not excluded")
            images = tuple(i for i in newest.excluded_images if i != image)
            objects = newest.excluded_objects
            change = f"{image} graded again"
        else:
            if (image, number) not in newest.excluded_objects:
                raise KeyChangeError(f"{image} #{number} is not excluded")
            images = newest.excluded_images
            objects = tuple(o for o in newest.excluded_objects if o != (image, number))
            change = f"{describe_object(newest.truth(task_set), image, number)} graded again"
        return KeyVersion(task_set.name, annotations=newest.annotations, excluded_images=images,
                          excluded_objects=objects, affected_images=(image,), change=change,
                          created_by=actor)

    return await _change(db, task_set, make)


async def replace_annotations(db: Database, task_set: TaskSet, xml: bytes, *,
                              actor: int | None = None) -> KeyVersion:
    """A new annotations file for the set's images (the same images, checked as an import
    is). Object exclusions are dropped (they named objects of the old file); image exclusions
    stay. The images whose objects differ are the ones re-graded."""
    report = check_ground_truth(xml, task_set.plate_regex, task_set.image_names)
    if report.problems or report.truth is None:
        raise KeyChangeError("\n".join(report.problems))
    new_truth = report.truth

    def make(newest: KeyVersion) -> KeyVersion:
        old = newest.truth(task_set)
        changed = tuple(sorted(
            name for name in task_set.image_names
            if sorted(new_truth.images[name].shapes, key=lambda s: s.sort_key())
            != sorted(old.images[name].shapes, key=lambda s: s.sort_key())
            or any(o[0] == name for o in newest.excluded_objects)))
        return KeyVersion(task_set.name, annotations=xml.decode("utf-8"),
                          excluded_images=newest.excluded_images, affected_images=changed,
                          change=f"annotations replaced ({len(changed)} images changed)",
                          created_by=actor)

    return await _change(db, task_set, make)


# --- the command line ----------------------------------------------------------------------------


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tasks_metrics.answer_key",
        description="The answer key of the task set in use: show it, exclude or include an"
                    " image or an object, replace the annotations file (affected attempts are"
                    " re-graded), print or save the calibration.")
    parser.add_argument("--database-url", help="overrides DATABASE_URL")
    parser.add_argument("--task-set", help="a folder; overrides TASK_SET")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("show", help="the key in force and its history")
    for name in ("exclude", "include"):
        sub = commands.add_parser(name, help=f"{name} an image, or one object of it")
        sub.add_argument("image")
        sub.add_argument("object", nargs="?", type=int, help="the object's number (#N)")
    replace = commands.add_parser("replace", help="a new annotations file (CVAT XML)")
    replace.add_argument("file")
    calibration = commands.add_parser("calibration", help="per image and object figures")
    calibration.add_argument("--xlsx", help="also save them as this XLSX file")
    return parser


async def _run(args: Any, db: Database, task_set: TaskSet, settings: Any) -> str:
    import asyncio
    from pathlib import Path

    from tasks_metrics import calibration as calib
    from tasks_metrics.grading_process import GradingProcesses
    from tasks_metrics.submission import regrade_for_key

    if args.command == "show":
        key = await current_key(db, task_set.name)
        lines = [f"task set {task_set.name}: {len(task_set.image_names)} images,"
                 f" {task_set.images_per_task} a test; answer key version {key.version}",
                 f"excluded images: {', '.join(key.excluded_images) or 'none'}",
                 "excluded objects: " + (", ".join(f"{n} #{i}" for n, i in key.excluded_objects)
                                         or "none")]
        lines += [f"  v{k.version} {k.created_at:%Y-%m-%d %H:%M} {k.change}"
                  for k in await key_history(db, task_set.name)]
        return "\n".join(lines)
    if args.command == "calibration":
        key, stats = await calib.calibration(db, task_set)
        if args.xlsx:
            data = await asyncio.to_thread(calib.xlsx, stats, task_set.name)
            await asyncio.to_thread(Path(args.xlsx).write_bytes, data)
        return calib.text_report(key, stats)
    if args.command == "replace":
        xml = await asyncio.to_thread(Path(args.file).read_bytes)
        key = await replace_annotations(db, task_set, xml)
    elif args.command == "exclude":
        key = await exclude(db, task_set, args.image, args.object)
    else:
        key = await include(db, task_set, args.image, args.object)
    grader = (GradingProcesses.from_settings(settings) if settings is not None
              else GradingProcesses(task_set.folder, task_set.images_per_task))
    try:
        regraded = await regrade_for_key(db, grader, task_set.name)
    finally:
        await grader.close()
    return f"answer key version {key.version}: {key.change}; {regraded} attempts re-graded"


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 done, 1 the change was refused, 2 the configuration is wrong."""
    import asyncio
    import sys
    from pathlib import Path

    from config.env import SettingsError, load_settings
    from db import database_url_for, migrate
    from tasks_generator.task_set import TaskSetError, load_task_set

    args = _parser().parse_args(argv)
    settings = None
    try:
        if not (args.database_url and args.task_set):
            settings = load_settings()
        url = args.database_url or database_url_for(settings)[0]
        task_set = load_task_set(Path(args.task_set) if args.task_set else settings.task_set,
                                 0 if settings is None else settings.images_per_task)
    except (SettingsError, TaskSetError) as exc:
        print(exc.render() if isinstance(exc, SettingsError) else exc, file=sys.stderr)
        return 2
    migrate(url)

    async def run() -> str:
        db = Database(url)
        try:
            return await _run(args, db, task_set, settings)
        finally:
            await db.close()

    try:
        print(asyncio.run(run()))
    except (KeyChangeError, OSError) as exc:
        print(f"not changed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
