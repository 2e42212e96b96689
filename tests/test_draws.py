"""Item pools: every attempt draws its own images from the 96-image default set, stratified by
tag, never repeating an image for the same candidate; the warm pool hands out only tasks with
no image the candidate had. Real PostgreSQL, the real `open_attempt`; no Telegram needed."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from db import Database
from sandbox.candidate import TASK_SET
from tasks_generator.attempts import open_attempt

CANDIDATES = 50


async def _attempt(db: Database, telegram_id: int, *, new: bool = False,
                   pooled: bool = False) -> tuple[str, ...]:
    """Open (and at once finish) an attempt of candidate `telegram_id`: its images."""
    opening = await open_attempt(
        db, telegram_id=telegram_id, username=None, full_name=f"Candidate {telegram_id}",
        max_attempts=3, cooldown=timedelta(0), task_set=TASK_SET.name, draw=TASK_SET.draw,
        new_attempt=new, pooled_tasks=pooled)
    assert opening.kind == "build" and opening.attempt is not None
    await db.execute("UPDATE attempts SET status = 'submitted', lease_until = NULL"
                     " WHERE id = %s", (opening.attempt.id,))
    return opening.attempt.image_subset


async def test_fifty_candidates_draw_equally_hard_new_and_different_images(
        db: Database) -> None:
    assert len(TASK_SET.image_names) >= 96 and TASK_SET.images_per_task == 12
    tags = {tag for names in TASK_SET.tags.values() for tag in names}
    assert {"night", "occluded", "plateless"} <= tags
    draws: dict[int, list[tuple[str, ...]]] = {}
    for telegram_id in range(1, CANDIDATES + 1):
        draws[telegram_id] = [await _attempt(db, telegram_id),
                              await _attempt(db, telegram_id, new=True),
                              await _attempt(db, telegram_id, new=True)]
    stored = await db.fetchall("SELECT c.telegram_id, a.number, a.image_subset FROM attempts a"
                               " JOIN candidates c ON c.id = a.candidate_id")
    assert len(stored) == 3 * CANDIDATES
    assert all(tuple(r["image_subset"]) == draws[r["telegram_id"]][r["number"] - 1]
               for r in stored)  # the draw is stored with the attempt

    expected = TASK_SET.tag_counts(TASK_SET.draw(rng=random.Random(1)))
    assert expected["night"] >= 2 and expected["plateless"] >= 2
    for attempts in draws.values():
        for images in attempts:
            assert len(images) == 12
            assert TASK_SET.tag_counts(images) == expected  # equally hard by tag
        everything = [name for images in attempts for name in images]
        assert len(set(everything)) == len(everything)  # no image twice for one candidate

    firsts = [frozenset(attempts[0]) for attempts in draws.values()]
    pairs = list(itertools.combinations(firsts, 2))
    different = sum(a != b for a, b in pairs)
    assert different == len(pairs)  # 1,225 pairs; equal draws are a 1-in-a-billion event
    mean_shared = sum(len(a & b) for a, b in pairs) / len(pairs)
    assert mean_shared < 3  # most of what a candidate saw is new to the next one
    used = {name for attempts in draws.values() for images in attempts for name in images}
    assert len(used) >= 0.9 * len(TASK_SET.image_names)


async def _pool_task(db: Database, row_id: int, images: tuple[str, ...]) -> None:
    await db.execute(
        "INSERT INTO pool_tasks (id, status, task_set, image_subset, cvat_task_name,"
        " cvat_task_id, cvat_job_id) VALUES (%s, 'ready', %s, %s, %s, %s, %s)",
        (row_id, TASK_SET.name, list(images), f"pooled #{row_id}", 100 + row_id, 200 + row_id))


async def test_the_warm_pool_hands_out_only_tasks_without_repeats(db: Database) -> None:
    rng = random.Random(7)
    first = await _attempt(db, 1)
    overlapping = TASK_SET.draw(seen=(), rng=rng)
    while not set(overlapping) & set(first):
        overlapping = TASK_SET.draw(rng=rng)
    fresh = TASK_SET.draw(seen=first + overlapping, rng=rng)
    await _pool_task(db, 1, overlapping)  # older, so first in line
    await _pool_task(db, 2, fresh)
    second = await _attempt(db, 1, new=True, pooled=True)
    assert second == fresh  # the pooled task with nothing seen, its images the attempt's
    taken = await db.fetchall("SELECT id, status FROM pool_tasks ORDER BY id")
    assert [(r["id"], r["status"]) for r in taken] == [(1, "ready"), (2, "handed_out")]
    # Only a task with a seen image is left: the attempt is built on demand on a fresh draw.
    third = await _attempt(db, 1, new=True, pooled=True)
    assert not set(third) & set(first + second)
    assert (await db.fetchval("SELECT status FROM pool_tasks WHERE id = 1")) == "ready"
    # Another candidate, who saw none of it, gets that task.
    assert await _attempt(db, 2, pooled=True) == overlapping
