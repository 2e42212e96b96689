"""Offline grader: ``python -m tasks_metrics GROUND_TRUTH.xml CANDIDATE.xml [options]``.

Both files are held to the submission limits (`tasks_metrics.limits`), and the process caps
its own memory and CPU time, so any input ends in a report or in one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.limits import Limits
from tasks_metrics.metrics import GradeReport, grade
from tasks_metrics.pass_rule import MEASURES, PassRule, RuleError, measure_named, parse_thresholds
from tasks_metrics.types import CAR, PLATE, AnnotationFormatError

EXIT_BAD_INPUT = 2
MEMORY_LIMIT = 2 * 1024 ** 3    # bytes of address space for the whole grader
CPU_LIMIT = 120                 # seconds
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
    """A readable text report: the band and every gate, then the figures."""
    failing = ", ".join(f"{g.measure} {_fmt(g.value, True)} < {g.pass_at * 100:g}%"
                        for g in report.verdict.failing)
    lines = [f"band {report.band.upper()}" + (f": {failing}" if failing else ""), "",
             f"{'gate':<16} {'value':>7} {'pass':>6} {'border':>7}  verdict"]
    for gate in report.verdict.gates:
        lines.append(f"{gate.measure:<16} {_fmt(gate.value, True):>7} "
                     f"{gate.pass_at * 100:>5g}% {gate.borderline_at * 100:>6g}%  {gate.band}")
    lines += [
        "",
        f"car IoU {_fmt(report.car_iou)}   plate IoU {_fmt(report.plate_iou)}   "
        f"plate accuracy {_fmt(report.plate_accuracy, True)}   "
        f"plate CER {_fmt(report.plate_cer)}   score {_fmt(report.score)}",
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
    parser.add_argument("--rule", type=Path,
                        help="pass rule file (JSON or TOML): {measure: [pass, borderline] or "
                             "\"95/85\" or \"off\"}; default: the shipped rule")
    parser.add_argument("--gate", action="append", default=[], metavar="MEASURE=PASS/BORDER",
                        help="set one gate, e.g. car_recall=95/85 or plate_fit=off "
                             f"(measures: {', '.join(MEASURES)}); repeatable")
    parser.add_argument("--match-iou", type=float, default=0.5)
    args = parser.parse_args(argv)

    try:
        rule = _rule(args.rule, args.gate)
        limits = Limits()
        gt = parse_cvat_xml(_existing(args.ground_truth, "ground truth"), limits)
        cand = parse_cvat_xml(_existing(args.candidate, "candidate"), limits)
        report = grade(gt, cand, rule=rule, match_iou=args.match_iou)
    except (AnnotationFormatError, RuleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(f"error: grading needs more than {MEMORY_LIMIT // 1024 ** 3} GB of memory",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ArithmeticError, ValueError) as exc:
        print(f"error: the annotations cannot be graded ({type(exc).__name__}: {exc})",
              file=sys.stderr)
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


def _rule(path: Path | None, gates: Sequence[str]) -> PassRule:
    """The shipped rule, changed by a rule file and then by --gate flags."""
    rule = PassRule.default()
    if path is not None:
        try:
            text = _existing(path, "rule").read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RuleError(f"cannot read the rule file {path}: {exc}") from exc
        rule = PassRule.from_dict(data)
    for item in gates:
        name, sep, value = item.partition("=")
        if not sep:
            raise RuleError(f"--gate {item!r}: expected MEASURE=PASS/BORDERLINE or MEASURE=off")
        thresholds = None if value.strip().lower() == "off" else parse_thresholds(value)
        rule = rule.with_gate(measure_named(name), thresholds)
    return rule


def _bound_this_process() -> None:
    """Cap memory and CPU time: a file built to be expensive ends in one line and exit 2."""

    def out_of_time(signum: int, frame: FrameType | None) -> None:
        sys.stderr.write(f"error: grading took more than {CPU_LIMIT} s of CPU time\n")
        os._exit(EXIT_BAD_INPUT)

    signal.signal(signal.SIGXCPU, out_of_time)
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT, CPU_LIMIT + 10))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or hard > MEMORY_LIMIT:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, hard))


if __name__ == "__main__":
    _bound_this_process()
    sys.exit(main())
