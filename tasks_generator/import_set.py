"""Add a task set from a CVAT export: ``python -m tasks_generator.import_set ZIP NAME``.

The zip is CVAT's "CVAT for images 1.1" export with images (`annotations.xml` and
`images/...`). It is checked before anything is written: every image has an annotation entry
and every entry an image, the labels are `car` and `plate`, every plate's text follows the
set's rule (`--plate-regex`, the Russian-plate rule by default). Image-level tags drawn in CVAT
(`<tag label="night">`) become the set's tags, by which draws are stratified. A failing check
lists the offending entries and exits with code 1; nothing is written then.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from tasks_generator.set_check import SetReport, check_ground_truth
from tasks_generator.task_set import DEFAULT_PLATE_REGEX, IMAGE_SUFFIXES, load_task_set

SETS_DIR = Path(__file__).resolve().parent.parent / "media" / "task_sets"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
IMAGES_PREFIX = "images/"
DEFAULT_IMAGES_PER_TASK = 12


class SetImportError(Exception):
    """The export cannot become a task set; the message lists why."""


def _image_members(archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The images of the export by their name in the annotations (the path under images/)."""
    found = {}
    for info in archive.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or path.is_absolute() or ".." in path.parts:
            continue
        if info.filename.startswith(IMAGES_PREFIX) and path.suffix.lower() in IMAGE_SUFFIXES:
            found[info.filename[len(IMAGES_PREFIX):]] = info
    return found


def check_export(archive: zipfile.ZipFile, plate_regex: str) -> SetReport:
    """Check the export without writing anything."""
    try:
        xml = archive.read("annotations.xml")
    except KeyError:
        report = SetReport()
        report.problems.append("the zip has no annotations.xml (export as \"CVAT for images "
                               "1.1\" with images)")
        return report
    return check_ground_truth(xml, plate_regex, _image_members(archive))


def import_set(zip_path: Path, name: str, *, plate_regex: str = DEFAULT_PLATE_REGEX,
               images_per_task: int = DEFAULT_IMAGES_PER_TASK, sets_dir: Path = SETS_DIR,
               replace: bool = False) -> Path:
    """Check the export and write it as media/task_sets/NAME; the folder written. Raises
    SetImportError listing every problem found."""
    if not NAME_RE.fullmatch(name):
        raise SetImportError(f"the name {name!r} must be letters, digits, '-' or '_'")
    target = sets_dir / name
    if target.exists() and not replace:
        raise SetImportError(f"{target} exists already (--replace to overwrite it)")
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SetImportError(f"{zip_path} is not a zip file: {exc}") from exc
    with archive:
        report = check_export(archive, plate_regex)
        if report.problems or report.truth is None:
            raise SetImportError("\n".join(report.problems))
        if len(report.truth) < images_per_task:
            raise SetImportError(f"{len(report.truth)} images: fewer than the {images_per_task}"
                               " a test takes")
        with tempfile.TemporaryDirectory(dir=sets_dir) as work:
            folder = Path(work) / name
            for image, info in _image_members(archive).items():
                out = folder / "images" / image
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(archive.read(info))
            (folder / "annotations.xml").write_bytes(archive.read("annotations.xml"))
            meta = {"name": name, "description": f"Imported from {zip_path.name}",
                    "images_per_task": images_per_task, "plate_regex": plate_regex,
                    "tags": report.tags}
            (folder / "set.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2)
                                             + "\n", encoding="utf-8")
            load_task_set(folder)  # what the bot will read must load
            if target.exists():
                shutil.rmtree(target)
            folder.rename(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 when the set was added, 1 when the export was refused."""
    parser = argparse.ArgumentParser(prog="python -m tasks_generator.import_set",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("zip", type=Path, help="CVAT for images 1.1 export with images")
    parser.add_argument("name", help="the set's folder name under media/task_sets")
    parser.add_argument("--plate-regex", default=DEFAULT_PLATE_REGEX)
    parser.add_argument("--images-per-task", type=int, default=DEFAULT_IMAGES_PER_TASK)
    parser.add_argument("--sets-dir", type=Path, default=SETS_DIR)
    parser.add_argument("--replace", action="store_true", help="overwrite a set of that name")
    args = parser.parse_args(argv)
    try:
        folder = import_set(args.zip, args.name, plate_regex=args.plate_regex,
                            images_per_task=args.images_per_task, sets_dir=args.sets_dir,
                            replace=args.replace)
    except SetImportError as exc:
        print(f"{args.zip} is not imported:\n{exc}", file=sys.stderr)
        return 1
    task_set = load_task_set(folder)
    print(f"task set {task_set.name!r} added in {folder}: {len(task_set.image_names)} images,"
          f" {task_set.images_per_task} a test, tags {task_set.tag_counts(task_set.image_names)}"
          f"; use it with TASK_SET={task_set.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
