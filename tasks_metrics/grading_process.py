"""Checking, grading and drawing in separate processes, each job under a time and memory limit.

A candidate's submission is untrusted input. The bot process only moves its bytes: it never
parses, expands or rasterises them. A grading process (``tasks_metrics.grading_worker``) does,
with its address space capped and a CPU budget per job; a job over its budget ends that
process, which is replaced, and the caller gets `GradingFailed` with the reason. Processes are
started when first needed and then kept (up to `processes`, a job each at a time), so a
submission pays for a pipe round trip, not for a Python start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks_metrics.checker import Problem
from tasks_metrics.flags import FlagRules
from tasks_metrics.framing import FramingError, encode_message, read_message_async
from tasks_metrics.limits import MEMORY, TIME, Limits, OverLimit
from tasks_metrics.types import AnnotationFormatError

if TYPE_CHECKING:
    from config.env import Settings

logger = logging.getLogger(__name__)

PROJECT_DIR = Path(__file__).resolve().parent.parent
READY = b"ready\n"
START_TIMEOUT = 120.0  # a Python start with numpy and scipy, on a machine that may be busy


class GradingFailed(Exception):
    """A job did not finish: `reason` is "time" (over its CPU or wall-clock budget), "memory",
    "crashed" (the process died otherwise) or "failed" (an error inside the job)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.reason = reason


@dataclass(frozen=True)
class GradingKey:
    """The answer key a job grades by: its version, the images and (image, object number)
    pairs it leaves out, and its annotations file when it replaced the set's own."""

    version: int = 1
    images: tuple[str, ...] = ()
    objects: tuple[tuple[str, int], ...] = ()
    annotations: bytes | None = None

    def header(self) -> dict[str, Any]:
        """As the grading process reads it (the annotations go as a blob of their own)."""
        return {"version": self.version, "images": list(self.images),
                "objects": [list(o) for o in self.objects],
                "custom": self.annotations is not None}

    def blobs(self) -> list[bytes]:
        """What goes after the work."""
        return [] if self.annotations is None else [self.annotations]


@dataclass(frozen=True)
class Graded:
    """What grading a stored submission gives: the figures under their `metrics` column names,
    the JSON report (matches, plates, per image), the key's version and the work's
    fingerprint (boxes and texts per image)."""

    values: dict[str, Any]
    report: dict[str, Any]
    key_version: int = 1
    fingerprint: dict[str, Any] | None = None


class _Process:
    """One running grading process."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.killed = False

    async def request(self, message: bytes, seconds: float,
                      ) -> tuple[dict[str, Any], list[bytes]]:
        """Send one job and wait at most `seconds` for its answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(message)
            await self.proc.stdin.drain()
            return await asyncio.wait_for(read_message_async(self.proc.stdout), seconds)
        except TimeoutError:
            await self.kill()
            raise GradingFailed(TIME, "the job ran past its time limit") from None
        except (asyncio.IncompleteReadError, ConnectionError, FramingError) as exc:
            code = await self._exit_code()
            if code == -signal.SIGXCPU:
                raise GradingFailed(TIME, "the job used up its CPU time") from None
            if code == -signal.SIGKILL:
                raise GradingFailed(MEMORY, "the process was killed (out of memory?)") from None
            raise GradingFailed("crashed", f"the grading process ended ({code}): {exc}") from None

    async def _exit_code(self) -> int | None:
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.proc.wait(), 10)
        await self.kill()
        return self.proc.returncode

    async def kill(self) -> None:
        """End the process now (a job past its budget, or shutting down)."""
        self.killed = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)

    async def close(self) -> None:
        """Let the process finish on end of input; kill it if it does not."""
        if self.proc.returncode is None and self.proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                self.proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 5)
        await self.kill()


class GradingProcesses:
    """The bot's grading processes for one task set."""

    def __init__(self, task_set_folder: Path, images_per_task: int = 0, *,
                 limits: Limits | None = None, processes: int = 2, cpu_seconds: int = 30,
                 memory_mb: int = 1024, max_jobs: int = 200,
                 flag_rules: FlagRules | None = None) -> None:
        self.task_set_folder = task_set_folder
        # When graded work is flagged to HR (copied, implausibly fast): judged after grading.
        self.flag_rules = flag_rules or FlagRules()
        self.images_per_task = images_per_task
        self.limits = limits or Limits()
        self.cpu_seconds = cpu_seconds
        self.memory_mb = memory_mb
        self.max_jobs = max_jobs
        # Wall-clock bound: the CPU budget, with room for a machine busy with other work.
        self.timeout = cpu_seconds * 3 + 30
        self._slots = asyncio.Semaphore(processes)
        # Submissions being read from CVAT and checked: as many as there are processes, so
        # that however many candidates press Submit at once, the bot holds only this many
        # submissions' bytes (each up to SUBMISSION_MAX_MB) at a time.
        self.intake = asyncio.Semaphore(processes)
        self._idle: list[_Process] = []
        self._running: set[_Process] = set()
        self._closed = False
        self.started = 0  # processes started so far (for the benchmark and the tests)

    @classmethod
    def from_settings(cls, settings: Settings) -> GradingProcesses:
        """The processes as the settings describe them."""
        return cls(settings.task_set, settings.images_per_task,
                   limits=Limits(max_bytes=settings.submission_max_mb * 1024 * 1024,
                                 max_shapes_per_image=settings.submission_max_shapes_per_image,
                                 max_points_per_shape=settings.submission_max_points_per_shape),
                   processes=settings.grading_processes,
                   cpu_seconds=settings.grading_cpu_seconds,
                   memory_mb=settings.grading_memory_mb,
                   flag_rules=FlagRules(pixels=settings.flag_similar_pixels,
                                        seconds_per_object=settings.flag_seconds_per_object))

    async def _start(self) -> _Process:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
               # numpy's BLAS must not start a thread (and reserve memory) per core.
               "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-E", "-s", "-m", "tasks_metrics.grading_worker",
            str(self.task_set_folder), "--images-per-task", str(self.images_per_task),
            "--limits", json.dumps(asdict(self.limits)), "--memory-mb", str(self.memory_mb),
            "--cpu-seconds", str(self.cpu_seconds), "--max-jobs", str(self.max_jobs),
            cwd=PROJECT_DIR, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        process = _Process(proc)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != READY:
            await process.kill()
            raise GradingFailed("crashed", "a grading process did not start (see the log)")
        self.started += 1
        return process

    async def _job(self, header: dict[str, Any], blobs: Sequence[bytes],
                   ) -> tuple[dict[str, Any], list[bytes]]:
        """Run one job in an idle process (starting one if none is idle)."""
        if self._closed:
            raise GradingFailed("crashed", "the grading processes are shut down")
        message = encode_message(header, blobs)
        async with self._slots:
            process = self._idle.pop() if self._idle else await self._start()
            self._running.add(process)
            keep = False
            try:
                result, out = await process.request(message, self.timeout)
                keep = not result.get("retire") and not self._closed
            finally:
                self._running.discard(process)
                if keep:
                    self._idle.append(process)
                else:
                    await process.close()
        if not result.get("ok"):
            error = result.get("error")
            if error == "over_limit":
                raise OverLimit.from_dict(result.get("limit") or {})
            if error == "malformed":
                raise AnnotationFormatError(str(result.get("message") or "malformed work"))
            raise GradingFailed(str(error or "failed"), str(result.get("message") or ""))
        return result, out

    async def check(self, annotations: bytes, labels: list[dict[str, Any]],
                    meta: dict[str, Any], subset: Sequence[str]) -> list[Problem]:
        """Completeness problems of work just read from CVAT (raw JSON bytes); raises
        OverLimit, AnnotationFormatError or GradingFailed."""
        result, _ = await self._job({"op": "check", "subset": list(subset), "labels": labels,
                                     "meta": meta}, [annotations])
        return [Problem(p["image"], p["code"], p.get("params") or {})
                for p in result["problems"]]

    async def grade(self, stored: bytes, subset: Sequence[str],
                    key: GradingKey | None = None) -> Graded:
        """Figures and report of a stored submission (JSON bytes of attempts'
        submitted_annotations) by the answer key `key` (the set's own when None)."""
        key = key or GradingKey()
        result, _ = await self._job({"op": "grade", "subset": list(subset),
                                     "key": key.header()}, [stored, *key.blobs()])
        return Graded(result["values"], result["report"], int(result.get("key_version") or 1),
                      result.get("fingerprint"))

    async def pictures(self, stored: bytes, subset: Sequence[str], limit: int = 30,
                       labels: dict[str, str] | None = None,
                       key: GradingKey | None = None) -> list[tuple[str, bytes]]:
        """JPEG pictures of a stored submission's errors, (image name, bytes), with `labels`
        (tasks_metrics.generation.PictureLabels) in the reader's language, graded against
        `key` (the answer key in force)."""
        key = key or GradingKey()
        result, blobs = await self._job({"op": "pictures", "subset": list(subset),
                                         "max": limit, "labels": labels or {},
                                         "key": key.header()}, [stored, *key.blobs()])
        return list(zip(result["names"], blobs, strict=True))

    async def scorecard(self, card: dict[str, Any], labels: dict[str, str] | None = None,
                        ) -> bytes:
        """The PNG of a scorecard (tasks_metrics.scorecard.Scorecard as a dict)."""
        _, blobs = await self._job({"op": "scorecard", "card": card, "labels": labels or {}},
                                   [])
        return blobs[0]

    async def close(self) -> None:
        """End every process (idle ones at once, busy ones after killing their job)."""
        self._closed = True
        processes = [*self._idle, *self._running]
        self._idle.clear()
        await asyncio.gather(*(p.close() for p in processes), return_exceptions=True)
