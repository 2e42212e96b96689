"""The grading process: checks, grades and draws one submission at a time, under limits.

Started by ``tasks_metrics.grading_process`` as ``python -m tasks_metrics.grading_worker
TASK_SET_FOLDER [options]``. It loads the task set, caps its own address space, says it is
ready, then answers requests on stdin/stdout (framed by ``tasks_metrics.framing``). Before
each request its CPU limit is set anew, so a submission built to be expensive ends in SIGXCPU
(or, for memory, a MemoryError it reports) and costs nothing but this process, which the bot
replaces. Nothing here touches the database, Telegram or CVAT.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from tasks_generator.task_set import TaskSet, load_task_set
from tasks_metrics.checker import check_completeness
from tasks_metrics.cvat_xml import parse_cvat_xml
from tasks_metrics.differences import shape_bbox
from tasks_metrics.exclusions import Exclusions, apply_exclusions
from tasks_metrics.framing import read_message, write_message
from tasks_metrics.limits import Limits, OverLimit
from tasks_metrics.metrics import grade
from tasks_metrics.rest import from_cvat_rest
from tasks_metrics.types import AREA_KINDS, AnnotationFormatError, TaskAnnotations

READY = b"ready\n"


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def load_json(blob: bytes) -> Any:
    """Strict JSON: NaN and Infinity are refused, as CVAT never sends them."""
    try:
        return json.loads(blob, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise AnnotationFormatError(f"the annotations are not valid JSON: {exc}"[:200]) from exc


def candidate_task(annotations: Any, labels: Any, meta: Any, subset: list[str],
                   limits: Limits) -> TaskAnnotations:
    """The candidate's work on the attempt's images, read under the limits."""
    if not isinstance(annotations, dict) or not isinstance(meta, dict):
        raise AnnotationFormatError("the annotations are not a JSON object")
    task = from_cvat_rest(annotations, labels, meta.get("frames") or (),
                          meta.get("deleted_frames") or (), meta.get("start_frame") or 0,
                          limits=limits)
    return task.named_as(subset)


def fingerprint(task: TaskAnnotations) -> dict[str, list[list[Any]]]:
    """What the work looks like, per image: [label, x0, y0, x1, y1, text] of every shape with
    an area, its box to a tenth of a pixel (what two candidates' work is compared on)."""
    return {image.name: sorted(
        [s.label, *(round(v, 1) for v in shape_bbox(s)), s.text.strip()]
        for s in image.shapes if s.kind in AREA_KINDS) for image in task}


class Worker:
    """Answers the requests of one bot process."""

    def __init__(self, task_set: TaskSet, limits: Limits) -> None:
        self.task_set = task_set
        self.limits = limits
        self._keys: dict[int, TaskAnnotations] = {}  # replaced annotations by key version
        self.ops: dict[str, Callable[[dict[str, Any], list[bytes]],
                                     tuple[dict[str, Any], list[bytes]]]] = {
            "check": self.check, "grade": self.grade, "pictures": self.pictures,
            "scorecard": self.scorecard}

    def check(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                          list[bytes]]:
        """Completeness problems of freshly read work (never the answer key)."""
        subset = list(header["subset"])
        task = candidate_task(load_json(blobs[0]), header["labels"], header["meta"], subset,
                              self.limits)
        problems = check_completeness(task, subset)
        return {"problems": [p.to_dict() for p in problems]}, []

    def _stored(self, header: dict[str, Any], blob: bytes) -> tuple[list[str], TaskAnnotations]:
        stored = load_json(blob)
        if not isinstance(stored, dict):
            raise AnnotationFormatError("the stored submission is not a JSON object")
        subset = list(header["subset"])
        return subset, candidate_task(stored.get("annotations"), stored.get("labels"),
                                      stored.get("meta"), subset, self.limits)

    def _key(self, header: dict[str, Any], blobs: list[bytes],
             ) -> tuple[TaskAnnotations, Exclusions, int]:
        """The answer key the job names: the set's annotations or a replacement (sent with
        the job, parsed once per version), what it excludes, and its version."""
        key = header.get("key") or {}
        version = int(key.get("version") or 1)
        truth = self.task_set.ground_truth
        if key.get("custom"):
            if version not in self._keys:
                self._keys[version] = parse_cvat_xml(blobs[1])
            truth = self._keys[version]
        return truth, Exclusions.from_lists(key.get("images") or (),
                                            key.get("objects") or ()), version

    def _graded(self, header: dict[str, Any], blobs: list[bytes],
                ) -> tuple[TaskAnnotations, TaskAnnotations, TaskAnnotations, int]:
        """(ground truth, work) on the attempt's images under the job's key, the work as it
        was stored, and the key's version."""
        subset, task = self._stored(header, blobs[0])
        truth, exclusions, version = self._key(header, blobs)
        missing = [n for n in subset if n not in truth.images]
        if missing:
            raise AnnotationFormatError(
                f"the task set {self.task_set.name!r} has no image {missing[0]!r} any more")
        kept_truth, kept_work = apply_exclusions(
            TaskAnnotations({n: truth.images[n] for n in subset}), task, exclusions)
        return kept_truth, kept_work, task, version

    def grade(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                          list[bytes]]:
        """The figures and report of a stored submission (the band is the bot's business),
        and the work's fingerprint."""
        truth, work, stored, version = self._graded(header, blobs)
        report = grade(truth, work)
        return {"values": report.metric_values(), "report": report.to_dict(),
                "key_version": version, "fingerprint": fingerprint(stored)}, []

    def pictures(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                             list[bytes]]:
        """JPEG pictures of the errors, images with errors only, at most `max`."""
        from tasks_metrics.generation import PictureLabels, render_overlays

        truth, work, _, _ = self._graded(header, blobs)
        report = grade(truth, work)
        pictures = render_overlays(truth, work, report,
                                   lambda name: self.task_set.image_path(name).read_bytes(),
                                   labels=PictureLabels.from_dict(header.get("labels")))
        items = list(pictures.items())[:int(header.get("max", 30))]
        return {"names": [name for name, _ in items]}, [data for _, data in items]

    def scorecard(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                              list[bytes]]:
        """The one-page scorecard (a PNG) of the words and figures the bot sent."""
        from tasks_metrics.generation import PictureLabels
        from tasks_metrics.scorecard import Scorecard, render_scorecard

        card = header.get("card")
        if not isinstance(card, dict):
            raise AnnotationFormatError("no scorecard to draw")
        return {}, [render_scorecard(Scorecard.from_dict(card),
                                     PictureLabels.from_dict(header.get("labels")))]

    def answer(self, header: dict[str, Any], blobs: list[bytes]) -> tuple[dict[str, Any],
                                                                           list[bytes]]:
        """One request: its result, or what is wrong with it."""
        op = self.ops.get(str(header.get("op")))
        if op is None:
            return {"ok": False, "error": "bad_request"}, []
        try:
            result, out = op(header, blobs)
        except OverLimit as exc:
            return {"ok": False, "error": "over_limit", "limit": exc.to_dict()}, []
        except AnnotationFormatError as exc:
            return {"ok": False, "error": "malformed", "message": str(exc)[:300]}, []
        except MemoryError:
            return {"ok": False, "error": "memory"}, []
        except Exception as exc:  # noqa: BLE001 - a bug must cost one request, not the process
            traceback.print_exc(file=sys.stderr)
            return {"ok": False, "error": "failed",
                    "message": f"{type(exc).__name__}: {exc}"[:300]}, []
        return {"ok": True, **result}, out


def _cap_memory(megabytes: int) -> None:
    """Cap the address space at what is mapped now plus `megabytes`."""
    with open("/proc/self/status", encoding="ascii") as status:
        size_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = (size_kb * 1024) + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _cap_cpu(seconds: int) -> None:
    """SIGXCPU (which ends this process) after `seconds` more of CPU time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (used + seconds, hard))


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def serve(stdin: BinaryIO, stdout: BinaryIO, worker: Worker, *, cpu_seconds: int,
          max_jobs: int, retire_rss_mb: float) -> None:
    """Answer requests until stdin closes, `max_jobs` were served or memory grew too much."""
    stdout.write(READY)
    stdout.flush()
    for served in range(1, max_jobs + 1):
        message = read_message(stdin)
        if message is None:
            return
        header, blobs = message
        _cap_cpu(cpu_seconds)
        result, out = worker.answer(header, blobs)
        retire = served >= max_jobs or result.get("error") == "memory" or \
            _rss_mb() > retire_rss_mb
        write_message(stdout, {**result, "retire": retire}, out)
        if retire:
            return


def main(argv: list[str] | None = None) -> int:
    """Entry point of the grading process."""
    parser = argparse.ArgumentParser(prog="python -m tasks_metrics.grading_worker")
    parser.add_argument("task_set", type=Path)
    parser.add_argument("--images-per-task", type=int, default=0)
    parser.add_argument("--limits", default="{}", help="Limits fields as JSON")
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--cpu-seconds", type=int, default=30)
    parser.add_argument("--max-jobs", type=int, default=200)
    args = parser.parse_args(argv)
    task_set = load_task_set(args.task_set, args.images_per_task)
    worker = Worker(task_set, Limits(**json.loads(args.limits)))
    # scipy's matching is loaded before the cap, with everything else a grading needs.
    import scipy.optimize  # noqa: F401

    retire_rss = _rss_mb() + args.memory_mb / 2
    _cap_memory(args.memory_mb)
    os.nice(5)  # a long grading yields the CPU to the bot's own process
    serve(sys.stdin.buffer, sys.stdout.buffer, worker, cpu_seconds=args.cpu_seconds,
          max_jobs=args.max_jobs, retire_rss_mb=retire_rss)
    return 0


if __name__ == "__main__":
    sys.exit(main())
