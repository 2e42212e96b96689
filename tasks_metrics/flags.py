"""Flags for HR: copied or implausible work. A flag is evidence for a person to weigh, never a
verdict: it changes no band.

- `similar`: two candidates' work on the images they share is near-identical (most boxes
  within a few pixels of each other, or the same wrong plate texts);
- `same_person`: the same work exactly, to a tenth of a pixel and every text alike: one
  person behind two Telegram accounts, as far as the work shows;
- `too_fast`: the work took less time than its number of objects needs (from the job's
  hand-out to the candidate's last change in CVAT).

An attempt is compared, when it is graded, with the graded attempts of other candidates that
share an image with it, on the fingerprints stored at grading (boxes and texts per image,
made by the grading process: the bot never parses a submission). The comparison runs in a
worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from db import Database
from tasks_metrics.repository import (
    Flag,
    FlagWork,
    FoundFlag,
    flag_work,
    flag_work_sharing_images,
    flags_of,
    store_flags,
)

__all__ = ["COMPARED_AT_MOST", "PAIR_KINDS", "SAME_PERSON", "SIMILAR", "TOO_FAST", "Flag",
           "FlagRules", "flag_attempt", "flags_of", "similarity", "too_fast"]

SIMILAR, SAME_PERSON, TOO_FAST = "similar", "same_person", "too_fast"
PAIR_KINDS = (SIMILAR, SAME_PERSON)
EXACT_PIXELS = 0.15  # the fingerprint keeps a tenth of a pixel
COMPARED_AT_MOST = 2000  # the newest attempts sharing an image that one attempt is compared with

Box = list[Any]  # [label, x0, y0, x1, y1, text]


@dataclass(frozen=True)
class FlagRules:
    """When work is flagged (the FLAG_* settings)."""

    pixels: float = 2.0  # boxes this close (every edge) count as the same box
    share: float = 0.9  # of the boxes on the shared images
    min_boxes: int = 6  # fewer boxes on the shared images say nothing
    same_typos: int = 2  # this many identical wrong plate texts flag the pair by themselves
    seconds_per_object: float = 3.0  # faster than this, on average, is implausible; 0 = off


@dataclass(frozen=True)
class Similarity:
    """Two attempts' work on the images they share."""

    images: int
    boxes: int  # on the shared images (the larger side's count)
    close: int  # paired within the rule's pixels
    exact: int  # paired to the tenth of a pixel with the same text
    typos: tuple[str, ...]  # wrong plate texts both typed on the same image

    def kind(self, rules: FlagRules) -> str | None:
        """same_person, similar, or None (nothing to flag)."""
        enough = self.boxes >= rules.min_boxes
        if enough and self.exact == self.boxes:
            return SAME_PERSON
        if (enough and self.close >= rules.share * self.boxes) or \
                len(self.typos) >= rules.same_typos:
            return SIMILAR
        return None

    def evidence(self, rules: FlagRules) -> dict[str, Any]:
        """What HR read."""
        return {"images": self.images, "boxes": self.boxes, "close": self.close,
                "exact": self.exact, "pixels": rules.pixels, "typos": list(self.typos)}


def _distance(a: Box, b: Box) -> float:
    return max(abs(float(x) - float(y)) for x, y in zip(a[1:5], b[1:5], strict=True))


def _pair_up(mine: list[Box], theirs: list[Box], pixels: float) -> tuple[int, int]:
    """(close, exact): boxes of one image paired greedily, nearest first, label with label."""
    pairs = sorted((_distance(a, b), i, j) for i, a in enumerate(mine)
                   for j, b in enumerate(theirs) if a[0] == b[0])
    used_a: set[int] = set()
    used_b: set[int] = set()
    close = exact = 0
    for distance, i, j in pairs:
        if distance > pixels:
            break
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        close += 1
        exact += distance <= EXACT_PIXELS and mine[i][5] == theirs[j][5]
    return close, exact


def similarity(mine: dict[str, list[Box]], theirs: dict[str, list[Box]],
               my_typos: Iterable[tuple[str, str]], their_typos: Iterable[tuple[str, str]],
               pixels: float) -> Similarity:
    """Compare two fingerprints on the images both had; typos are (image, text typed)."""
    shared = sorted(set(mine) & set(theirs))
    boxes = close = exact = 0
    for name in shared:
        pair = _pair_up(mine[name], theirs[name], pixels)
        boxes += max(len(mine[name]), len(theirs[name]))
        close += pair[0]
        exact += pair[1]
    typos = sorted({text for image, text in set(my_typos) & set(their_typos)
                    if image in shared})
    return Similarity(len(shared), boxes, close, exact, tuple(typos))


def too_fast(objects: int, spent: timedelta | None, rules: FlagRules) -> dict[str, Any] | None:
    """The evidence of implausibly fast work, or None."""
    if not rules.seconds_per_object or spent is None or objects <= 0:
        return None
    seconds = max(0.0, spent.total_seconds())
    if seconds >= objects * rules.seconds_per_object:
        return None
    return {"objects": objects, "seconds": round(seconds),
            "per_object": round(seconds / objects, 1), "needed": rules.seconds_per_object}


# --- the database ------------------------------------------------------------------------------


def _typos(work: FlagWork) -> list[tuple[str, str]]:
    return [(str(image), str(text).strip()) for image, text in work.typos if text]


def _compare(mine: FlagWork, others: list[FlagWork], rules: FlagRules) -> list[FoundFlag]:
    """(kind, other attempt, evidence) of every flag of `mine` (blocking: run in a thread)."""
    found: list[FoundFlag] = []
    fast = too_fast(mine.objects, mine.task_completed, rules)
    if fast is not None:
        found.append((TOO_FAST, None, fast))
    for other in others:
        result = similarity(mine.fingerprint, other.fingerprint, _typos(mine), _typos(other),
                            rules.pixels)
        kind = result.kind(rules)
        if kind is not None:
            found.append((kind, other.id, result.evidence(rules)))
    return found


async def flag_attempt(db: Database, attempt_id: int, rules: FlagRules) -> int:
    """Compare a just graded attempt with the others and store its flags (a pair's on both
    attempts), replacing what an earlier grading of it found; how many flags it has."""
    mine = await flag_work(db, attempt_id)
    if mine is None:
        return 0
    others = await flag_work_sharing_images(db, mine, COMPARED_AT_MOST)
    found = await asyncio.to_thread(_compare, mine, others, rules)
    await db.run(lambda cur: store_flags(cur, attempt_id, found, PAIR_KINDS))
    return len(found)
