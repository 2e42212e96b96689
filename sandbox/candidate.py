"""The scripted candidate: what a person does in CVAT with the login the bot sent them (finds
their single job, reads its frames and labels, saves boxes), for the tests, the demo and the
benchmark. It acts through the CVAT client with the candidate's own account, so CVAT's rules
for a job-only assignee apply to it as to a person."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import aiohttp

from config.env import PROJECT_DIR
from connection import CvatClient
from sandbox.cvat_client import AsyncSandboxCvatClient
from sandbox.telegram import BotMessage
from tasks_generator.task_set import load_task_set

# The task set the stand-ins and the demo run with; its ground truth is the perfect answer.
TASK_SET = load_task_set(PROJECT_DIR / "media" / "task_sets" / "default")

# The labels of a job as the CVAT stand-in lists them (its ids).
LABELS = [{"id": 1, "name": "car", "attributes": []},
          {"id": 2, "name": "plate", "attributes": [{"id": 3, "name": "plate"}]}]


@dataclass(frozen=True)
class Login:
    """The credentials as the candidate read them in the chat."""

    url: str
    username: str
    password: str


def candidate_client(login: Login) -> AsyncSandboxCvatClient:
    """A CVAT client logged in as the candidate."""
    return AsyncSandboxCvatClient(CvatClient(login.url, login.username, login.password),
                                  max_workers=2)


def perfect_shapes(frames: list[str], labels: list[dict[str, Any]],
                   only: set[str] | None = None, plate_texts: dict[str, str] | None = None,
                   ) -> list[dict[str, Any]]:
    """The ground truth itself, as the candidate would save it (optionally on some images only,
    optionally with some plate texts replaced: {right text: typed text})."""
    label_id = {lb["name"]: lb["id"] for lb in labels}
    spec_id = next(a["id"] for lb in labels if lb["name"] == "plate" for a in lb["attributes"])
    shapes = []
    for frame, name in enumerate(frames):
        if only is not None and name not in only:
            continue
        for shape in TASK_SET.ground_truth.images[name].shapes:
            attributes = []
            if shape.label == "plate":
                text = (plate_texts or {}).get(shape.text, shape.text)
                attributes = [{"spec_id": spec_id, "value": text}]
            shapes.append({
                "type": "rectangle", "frame": frame, "label_id": label_id[shape.label],
                "points": list(shape.points), "rotation": 0.0, "occluded": False,
                "outside": False, "z_order": 0, "group": 0, "source": "manual",
                "attributes": attributes,
            })
    return shapes


def stored_work(images: list[str], shapes: list[dict[str, Any]]) -> str:
    """A submission as the bot stores it at Submit (attempts.submitted_annotations)."""
    from tasks_metrics.submission import stored_copy

    meta = {"start_frame": 0, "frames": [{"name": n, "width": 800, "height": 600}
                                         for n in images]}
    return stored_copy(json.dumps({"version": 0, "tags": [], "shapes": shapes, "tracks": []})
                       .encode(), LABELS, meta).decode()


async def candidate_job(
        client: AsyncSandboxCvatClient) -> tuple[int, list[str], list[dict[str, Any]]]:
    """The candidate's single job as they see it: its id, frame names and labels."""
    jobs = await client.visible_jobs()
    assert len(jobs) == 1, f"the candidate sees {len(jobs)} jobs"
    job = jobs[0]
    frames = frame_names(await client.get_job_meta(job.id))
    return job.id, frames, await client.get_labels(job_id=job.id)


def frame_names(meta: dict[str, Any]) -> list[str]:
    """The images of a job's frames, by its data/meta: frames from CVAT's share are named by
    their path there; the set names them by file."""
    return [f["name"].rsplit("/", 1)[-1] for f in meta["frames"]]


async def save_shapes(client: AsyncSandboxCvatClient, job_id: int,
                      shapes: list[dict[str, Any]]) -> None:
    """Replace the job's annotations with `shapes`, as the candidate's CVAT UI saves them."""
    await client.put_job_annotations(job_id, {"version": 0, "tags": [], "shapes": shapes,
                                              "tracks": []})


async def annotate(login: Login, **options: Any) -> tuple[int, list[str]]:
    """Log in as the candidate, find their single job, save annotations (the perfect ones, or
    as `perfect_shapes` options say); (job id, frames)."""
    client = candidate_client(login)
    try:
        job_id, frames, labels = await candidate_job(client)
        await save_shapes(client, job_id, perfect_shapes(frames, labels, **options))
        return job_id, frames
    finally:
        await client.close()


async def annotate_lightly(login: Login) -> None:
    """`annotate` with the perfect shapes, on plain aiohttp and HTTP Basic (no client, no
    threads): the benchmark's many candidates share the process they drive the bot from, and
    its figures must not pay for them."""
    headers = {"Authorization": aiohttp.encode_basic_auth(login.username, login.password)}
    async with aiohttp.ClientSession(login.url, headers=headers) as http:
        async with http.get("/api/jobs") as resp:
            resp.raise_for_status()
            job = (await resp.json(content_type=None))["results"][0]
        async with http.get(f"/api/jobs/{job['id']}/data/meta") as resp:
            resp.raise_for_status()
            frames = frame_names(await resp.json(content_type=None))
        async with http.get("/api/labels", params={"job_id": str(job["id"])}) as resp:
            resp.raise_for_status()
            labels = (await resp.json(content_type=None))["results"]
        body = {"version": 0, "tags": [], "shapes": perfect_shapes(frames, labels), "tracks": []}
        async with http.put(f"/api/jobs/{job['id']}/annotations", json=body) as resp:
            resp.raise_for_status()


def read_login(message: BotMessage) -> Login:
    """Login, password and link from the credentials message."""
    text = message.text
    url = re.search(r"(?:Link|Ссылка): (\S+)", text)
    username = re.search(r"(?:Login|Логин): (\S+)", text)
    password = re.search(r"(?:Password|Пароль): (\S+)", text)
    assert url and username and password, f"no credentials in: {text!r}"
    return Login(url.group(1), username.group(1), password.group(1))
