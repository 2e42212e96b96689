"""Task creation in the background, as CVAT's import worker does it: the files read, sorted
and decoded, the task's frames and jobs made, the request's status kept up to date."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from .models import Frame, Job, now_iso

if TYPE_CHECKING:
    from .models import RqRequest, Task
    from .state import CvatState

__all__ = ["DataRequest", "create_task_data"]

log = logging.getLogger("sandbox.cvat.server")


@dataclass
class DataRequest:
    """What a finished data upload asks for."""

    uploads: list[tuple[str, bytes]]
    server_files: list[str]
    sorting: str
    order: list[str]
    quality: int | None


async def create_task_data(st: CvatState, task: Task, rq: RqRequest, data: DataRequest) -> None:
    """Process a task's data in the import worker (one task at a time when the costs say so,
    the rest stay queued; its time counted as the worker's CPU)."""
    async with st.import_slots or contextlib.nullcontext():
        started = time.monotonic()
        try:
            await _process(st, task, rq, data)
        finally:
            st.cpu.count(time.monotonic() - started, "import")


async def _process(st: CvatState, task: Task, rq: RqRequest, data: DataRequest) -> None:
    try:
        await st.injected_sleep(min(0.02, st.processing_time / 10))
        rq.status = "started"
        rq.started_date = now_iso()
        files = list(data.uploads)
        for rel in data.server_files:
            content = _read_share(st, rel)
            if content is None:
                raise ValueError(f"The file '{rel}' does not exist in the share")
            files.append((rel, content))
        if not files:
            raise ValueError("No media data found")
        if data.quality is None:
            raise ValueError("The 'image_quality' parameter is required for tasks with image data")
        frames = await _decode(st, rq, _sort_files(st, files, data.sorting, data.order))
        if task.id not in st.tasks:
            # Deleted while processing: CVAT's worker fails the job, nothing is created.
            raise ValueError(f"The task {task.id} was deleted")
        if st.empty_task_failure:
            log.info("task %s: empty_task_failure knob, no media stored", task.id)
        else:
            _initialize_task(st, task, frames, data.quality)
        rq.status = "finished"
        rq.progress = 0.0
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - surfaced through the request API
        log.info("task %s creation failed: %s", task.id, exc)
        rq.fail(str(exc))
    rq.close(st.request_ttl if rq.status == "finished" else 7 * 24 * 3600)


async def _decode(st: CvatState, rq: RqRequest, files: list[tuple[str, bytes]]) -> list[Frame]:
    frames: list[Frame] = []
    step = st.processing_time / max(len(files), 1)
    for idx, (name, content) in enumerate(files):
        await st.injected_sleep(step)
        try:
            width, height = await asyncio.to_thread(_image_size, content)
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types
            raise ValueError(f"cannot identify image file '{name}': {exc}") from None
        frames.append(Frame(name=name, width=width, height=height, content=content))
        if st.costs.progress:
            rq.progress = (idx + 1) / len(files)
    return frames


def _read_share(st: CvatState, rel: str) -> bytes | None:
    if st.share_dir is None:
        return None
    base = st.share_dir.resolve()
    path = (base / rel.lstrip("/")).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return path.read_bytes()


def _sort_files(
    st: CvatState, files: list[tuple[str, bytes]], sorting: str, order: list[str]
) -> list[tuple[str, bytes]]:
    if sorting == "lexicographical":
        return sorted(files, key=lambda f: f[0])
    if sorting == "natural":
        return sorted(files, key=lambda f: _natural_key(f[0]))
    if sorting == "random":
        shuffled = list(files)
        st.rng.shuffle(shuffled)
        return shuffled
    if order:
        by_name = {name: (name, content) for name, content in files}
        missing = [n for n in order if n not in by_name]
        if missing or len(order) != len(files):
            raise ValueError(
                "Some files were not found in the upload_file_order list or in the "
                f"uploaded files: {missing or sorted(set(by_name) - set(order))}"
            )
        return [by_name[n] for n in order]
    return list(files)


def _initialize_task(st: CvatState, task: Task, frames: list[Frame], quality: int) -> None:
    now = now_iso()
    task.frames = frames
    task.media_type = "image"
    task.image_quality = quality
    task.data_id = st.next_id("data")
    task.chunks_updated_date = now
    size = len(frames)
    seg = task.segment_size if 0 < task.segment_size < size else size
    task.segment_size = seg
    task.overlap = task.overlap or 0
    start = 0
    while start < size:
        stop = min(start + seg, size) - 1
        job = Job(id=st.next_id("job"), task_id=task.id, start_frame=start, stop_frame=stop)
        st.jobs[job.id] = job
        start = stop + 1
    task.updated_date = now_iso()


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _image_size(content: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(content)) as img:
        img.load()
        return img.size
