"""Offline grader: ``python -m tasks_metrics GROUND_TRUTH.xml CANDIDATE.xml [options]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.metrics import GradeReport, grade
from tasks_metrics.types import CAR, PLATE, AnnotationFormatError

EXIT_BAD_INPUT = 2
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """Report a usage error on one line and exit with code 2."""
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{value * 100:.1f}%" if percent else f"{value:.3f}"


def format_report(report: GradeReport) -> str:
    """A readable text report."""
    lines = [
        f"score {_fmt(report.score)}  band {report.band.upper()} "
        f"(pass >= {report.pass_score}, borderline >= {report.borderline_score})",
        f"car IoU {_fmt(report.car_iou)}   plate IoU {_fmt(report.plate_iou)}   "
        f"plate accuracy {_fmt(report.plate_accuracy, True)}   "
        f"plate CER {_fmt(report.plate_cer)}",
        "",
        f"{'class':<6} {'GT':>4} {'cand':>5} {'TP':>4} {'precision':>9} {'recall':>7} "
        f"{'match IoU':>9} {'missed':>6} {'extra':>6}",
    ]
    for label in (CAR, PLATE):
        c = report.per_class[label]
        lines.append(
            f"{label:<6} {c.gt_count:>4} {c.candidate_count:>5} {c.tp:>4} "
            f"{_fmt(c.precision):>9} {_fmt(c.recall):>7} {_fmt(c.matched_iou):>9} "
            f"{len(c.missed):>6} {len(c.extra):>6}")
    wrong = report.wrong_plates()
    if wrong:
        lines += ["", "wrong plates:"]
        for p in wrong:
            detail = ""
            if p.lookalikes:
                detail = " (" + ", ".join(
                    f"{g!r} U+{ord(g):04X} for {e!r}" for _, g, e in p.lookalikes) + ")"
            given = "—" if p.given is None else repr(p.given)
            lines.append(f"  {p.image}: expected {p.expected!r}, given {given}: "
                         f"{p.reason}{detail}")
    objects = [(o.image, "missed", o) for c in report.per_class.values() for o in c.missed]
    objects += [(o.image, "extra", o) for c in report.per_class.values() for o in c.extra]
    if objects:
        lines += ["", "missed / extra objects:"]
        for image, what, o in sorted(objects, key=lambda t: (t[0], t[1], t[2].label, t[2].box)):
            box = ", ".join(f"{v:.0f}" for v in o.box)
            lines.append(f"  {image}: {what} {o.label} at [{box}] (best IoU {o.best_iou:.2f})")
    return "\n".join(lines)


def _image_reader(directory: Path | None) -> Callable[[str], bytes | None]:
    def read(name: str) -> bytes | None:
        if directory is None:
            return None
        for candidate in (directory / name, directory / Path(name).name):
            if candidate.is_file():
                return candidate.read_bytes()
        stem = Path(name).stem
        for suffix in _IMAGE_SUFFIXES:
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                return path.read_bytes()
        return None
    return read


def main(argv: Sequence[str] | None = None) -> int:
    """Run the offline grader; returns the exit code."""
    parser = _ArgumentParser(prog="python -m tasks_metrics",
                             description="Grade a candidate's CVAT XML against the ground truth.")
    parser.add_argument("ground_truth", type=Path, help="ground truth, CVAT for images 1.1 XML")
    parser.add_argument("candidate", type=Path, help="candidate's export, same format")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--overlays", type=Path, help="write error pictures (JPEG) here")
    parser.add_argument("--images", type=Path,
                        help="photos for the overlays (default: images/ beside the ground truth)")
    parser.add_argument("--pass-score", type=float, default=0.8)
    parser.add_argument("--borderline-score", type=float, default=0.65)
    parser.add_argument("--match-iou", type=float, default=0.5)
    args = parser.parse_args(argv)

    try:
        gt = parse_cvat_xml(_existing(args.ground_truth, "ground truth"))
        cand = parse_cvat_xml(_existing(args.candidate, "candidate"))
        report = grade(gt, cand, pass_score=args.pass_score,
                       borderline_score=args.borderline_score, match_iou=args.match_iou)
    except AnnotationFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.overlays is not None:
        from tasks_metrics.generation import render_overlays

        images_dir = args.images
        if images_dir is None and (args.ground_truth.parent / "images").is_dir():
            images_dir = args.ground_truth.parent / "images"
        try:
            args.overlays.mkdir(parents=True, exist_ok=True)
            pictures = render_overlays(gt, cand, report, _image_reader(images_dir))
            for name, data in pictures.items():
                (args.overlays / f"{Path(name).stem}.overlay.jpg").write_bytes(data)
        except OSError as exc:
            print(f"error: cannot write overlays to {args.overlays}: {exc.strerror or exc}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT

    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
    else:
        print(format_report(report))
    return 0


def _existing(path: Path, what: str) -> Path:
    if not path.is_file():
        raise AnnotationFormatError(f"{what} file not found: {path}")
    return path


if __name__ == "__main__":
    sys.exit(main())
