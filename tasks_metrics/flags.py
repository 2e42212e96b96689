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
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from db import Cursor, Database

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


@dataclass(frozen=True)
class Flag:
    """One flag on an attempt, with the other attempt's candidate for a pair."""

    kind: str
    attempt_id: int
    evidence: dict[str, Any]
    other_attempt: int | None = None
    other_candidate: int | None = None
    other_name: str = ""
    other_number: int | None = None


_WORK_SQL = (
    "SELECT a.id, a.candidate_id, m.fingerprint, m.task_completed,"
    " coalesce((m.report #>> '{per_class,car,gt_count}')::int, 0)"
    " + coalesce((m.report #>> '{per_class,plate,gt_count}')::int, 0) AS objects,"
    " (SELECT coalesce(jsonb_agg(jsonb_build_array(p ->> 'image', p ->> 'given')), '[]')"
    "  FROM jsonb_array_elements(m.report -> 'plates') p"
    "  WHERE p ->> 'given' IS NOT NULL AND NOT (p ->> 'correct')::boolean) AS typos"
    " FROM attempts a JOIN metrics m ON m.attempt_id = a.id")


def _typos(row: dict[str, Any]) -> list[tuple[str, str]]:
    return [(str(image), str(text).strip()) for image, text in row["typos"] if text]


def _compare(mine: dict[str, Any], others: list[dict[str, Any]],
             rules: FlagRules) -> list[tuple[str, int | None, dict[str, Any]]]:
    """(kind, other attempt, evidence) of every flag of `mine` (blocking: run in a thread)."""
    found: list[tuple[str, int | None, dict[str, Any]]] = []
    fast = too_fast(mine["objects"], mine["task_completed"], rules)
    if fast is not None:
        found.append((TOO_FAST, None, fast))
    for other in others:
        result = similarity(mine["fingerprint"], other["fingerprint"], _typos(mine),
                            _typos(other), rules.pixels)
        kind = result.kind(rules)
        if kind is not None:
            found.append((kind, other["id"], result.evidence(rules)))
    return found


def _write(cur: Cursor, attempt_id: int,
           found: list[tuple[str, int | None, dict[str, Any]]]) -> None:

    cur.execute("DELETE FROM flags WHERE attempt_id = %s OR (other_attempt = %s AND kind IN %s)",
                (attempt_id, attempt_id, PAIR_KINDS))
    for kind, other, evidence in found:
        sides = [(attempt_id, other)] + ([(other, attempt_id)] if other is not None else [])
        for one, two in sides:
            cur.execute("INSERT INTO flags (attempt_id, kind, other_attempt, evidence)"
                        " VALUES (%s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
                        (one, kind, two, json.dumps(evidence, ensure_ascii=False)))


async def flag_attempt(db: Database, attempt_id: int, rules: FlagRules) -> int:
    """Compare a just graded attempt with the others and store its flags (a pair's on both
    attempts), replacing what an earlier grading of it found; how many flags it has."""
    mine = await db.fetchone(_WORK_SQL + " WHERE a.id = %s", (attempt_id,))
    if mine is None:
        return 0
    others = await db.fetchall(
        _WORK_SQL + " WHERE a.candidate_id <> %s AND a.status = 'graded'"
        " AND a.image_subset && (SELECT image_subset FROM attempts WHERE id = %s)"
        " ORDER BY a.id DESC LIMIT %s", (mine["candidate_id"], attempt_id, COMPARED_AT_MOST))
    found = await asyncio.to_thread(_compare, mine, others, rules)
    await db.run(lambda cur: _write(cur, attempt_id, found))
    return len(found)


async def flags_of(db: Database, attempt_ids: list[int]) -> dict[int, list[Flag]]:
    """The flags of some attempts, by attempt (the other side's candidate named)."""
    if not attempt_ids:
        return {}
    rows = await db.fetchall(
        "SELECT f.attempt_id, f.kind, f.other_attempt, f.evidence, o.candidate_id,"
        " o.number, coalesce(nullif(c.full_name, ''), '@' || c.telegram_username,"
        " c.telegram_id::text, '') AS name"
        " FROM flags f LEFT JOIN attempts o ON o.id = f.other_attempt"
        " LEFT JOIN candidates c ON c.id = o.candidate_id"
        " WHERE f.attempt_id = ANY(%s) ORDER BY f.attempt_id, f.kind, f.id", (attempt_ids,))
    out: dict[int, list[Flag]] = {}
    for row in rows:
        out.setdefault(row["attempt_id"], []).append(Flag(
            row["kind"], row["attempt_id"], row["evidence"], row["other_attempt"],
            row["candidate_id"], row["name"] or "", row["number"]))
    return out
