"""Grading a candidate's annotations against the ground truth (ARCHITECTURE.md, "Metrics").

* ``car_iou`` / ``plate_iou``: for each image, IoU of the union of the ground-truth shapes of the
  class with the union of the candidate's; images where both are empty are skipped; the mean over
  the remaining images (None when none remain).
* Object level, per image and class: one-to-one matching by maximum total IoU among pairs with
  IoU >= ``match_iou`` (``scipy.optimize.linear_sum_assignment``); precision, recall, mean IoU
  of matched pairs, missed (ground truth) and extra (candidate) objects.
* ``plate_accuracy``: ground-truth plates whose matched plate has exactly the same text
  (surrounding whitespace stripped, nothing else) / all ground-truth plates.
* ``score``: the mean of the defined values among the three, kept as an overall figure; it does
  not decide anything.
* ``verdict``: the band (pass, borderline, fail) from the gates of a pass rule over the
  object-level figures (``tasks_metrics.pass_rule``).

Shapes are put in a canonical order before matching, so the result does not depend on the
order of shapes or images in the input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from tasks_metrics.differences import Raster, iou_matrix, rasterize, shape_bbox, union_counts
from tasks_metrics.pass_rule import PASS, PassRule, Verdict
from tasks_metrics.types import (
    AREA_KINDS,
    CAR,
    CLASSES,
    PLATE,
    AnnotationFormatError,
    ImageAnnotations,
    Shape,
    TaskAnnotations,
)

MISSING = "missing"
EMPTY = "empty"
CASE = "case"
LOOKALIKE = "lookalike"
OTHER = "other"

# Cyrillic letters (and Ze, which looks like the digit 3) mapped to the Latin look-alike.
LOOKALIKES: Mapping[str, str] = MappingProxyType({
    "А": "A", "а": "a", "В": "B", "в": "b", "Е": "E", "е": "e", "К": "K", "к": "k",
    "М": "M", "м": "m", "Н": "H", "н": "h", "О": "O", "о": "o", "Р": "P", "р": "p",
    "С": "C", "с": "c", "Т": "T", "т": "t", "У": "Y", "у": "y", "Х": "X", "х": "x",
    "З": "3", "з": "3",
})


@dataclass(frozen=True)
class ObjectRef:
    """A missed (ground-truth) or extra (candidate) object."""

    image: str
    label: str
    kind: str
    box: tuple[float, float, float, float]
    ref: str = ""
    best_iou: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"image": self.image, "label": self.label, "kind": self.kind,
                "box": [round(v, 2) for v in self.box], "ref": self.ref,
                "best_iou": self.best_iou}


@dataclass(frozen=True)
class MatchedPair:
    """A ground-truth object and the candidate's box matched to it, and how well they fit
    (for the pictures: loose or cut boxes are marked with their fit)."""

    image: str
    label: str
    box: tuple[float, float, float, float]
    candidate_box: tuple[float, float, float, float]
    iou: float


@dataclass(frozen=True)
class ClassReport:
    """Object-level figures for one class."""

    label: str
    tp: int
    gt_count: int
    candidate_count: int
    matched_iou: float | None
    missed: tuple[ObjectRef, ...] = ()
    extra: tuple[ObjectRef, ...] = ()
    matched: tuple[MatchedPair, ...] = field(default=(), compare=False)

    @property
    def precision(self) -> float | None:
        """Matched candidate objects / candidate objects (None without candidate objects)."""
        return self.tp / self.candidate_count if self.candidate_count else None

    @property
    def recall(self) -> float | None:
        """Matched ground-truth objects / ground-truth objects (None without any)."""
        return self.tp / self.gt_count if self.gt_count else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "precision": self.precision, "recall": self.recall, "matched_iou": self.matched_iou,
            "missed": len(self.missed), "extra": len(self.extra), "tp": self.tp,
            "gt_count": self.gt_count, "candidate_count": self.candidate_count,
            "missed_objects": [o.to_dict() for o in self.missed],
            "extra_objects": [o.to_dict() for o in self.extra],
        }


@dataclass(frozen=True)
class PlateResult:
    """How one ground-truth plate was transcribed."""

    image: str
    expected: str
    given: str | None
    correct: bool
    reason: str | None
    cer: float | None
    box: tuple[float, float, float, float]
    candidate_box: tuple[float, float, float, float] | None = None
    # (position, given character, expected character) for look-alike substitutions.
    lookalikes: tuple[tuple[int, str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "image": self.image, "expected": self.expected, "given": self.given,
            "correct": self.correct, "reason": self.reason, "cer": self.cer,
            "box": [round(v, 2) for v in self.box],
            "lookalikes": [{"position": p, "given": g, "expected": e}
                           for p, g, e in self.lookalikes],
        }


@dataclass(frozen=True)
class ImageReport:
    """Union IoU of one image per class (None when both sides are empty)."""

    image: str
    car_iou: float | None
    plate_iou: float | None


@dataclass(frozen=True)
class GradeReport:
    """Everything the grader found."""

    car_iou: float | None
    plate_iou: float | None
    plate_accuracy: float | None
    score: float | None
    verdict: Verdict
    car: ClassReport
    plate: ClassReport
    plates: tuple[PlateResult, ...]
    per_image: tuple[ImageReport, ...]
    plate_cer: float | None
    match_iou: float = 0.5
    per_class: Mapping[str, ClassReport] = field(default_factory=dict, compare=False)
    # Box fit per image: the mean IoU of its matched pairs, both classes (None: no pair).
    image_fit: Mapping[str, float | None] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "per_class", MappingProxyType({CAR: self.car, PLATE: self.plate}))

    def __hash__(self) -> int:
        return hash((self.car_iou, self.plate_iou, self.plate_accuracy, self.score, self.band))

    @property
    def band(self) -> str:
        """pass, borderline or fail: the worst gate of the pass rule."""
        return self.verdict.band

    def metric_values(self) -> dict[str, Any]:
        """The headline and object-level figures under their `metrics` column names (what
        the pass rule judges; the band is stored beside them)."""
        values: dict[str, Any] = {
            "car_iou": self.car_iou, "plate_iou": self.plate_iou,
            "plate_accuracy": self.plate_accuracy, "score": self.score,
            "plate_cer": self.plate_cer,
        }
        for label, figures in self.per_class.items():
            values[f"{label}_precision"] = figures.precision
            values[f"{label}_recall"] = figures.recall
            values[f"{label}_matched_iou"] = figures.matched_iou
            values[f"{label}_missed"] = len(figures.missed)
            values[f"{label}_extra"] = len(figures.extra)
        return values

    def wrong_plates(self) -> tuple[PlateResult, ...]:
        """Plates whose text was not exactly right."""
        return tuple(p for p in self.plates if not p.correct)

    def images_with_errors(self) -> tuple[str, ...]:
        """Names of images with a missed or extra object or a wrong plate, sorted."""
        names = {o.image for c in (self.car, self.plate) for o in (*c.missed, *c.extra)}
        names |= {p.image for p in self.wrong_plates()}
        return tuple(sorted(names))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (numbers or None)."""
        return {
            "car_iou": self.car_iou, "plate_iou": self.plate_iou,
            "plate_accuracy": self.plate_accuracy, "score": self.score, "band": self.band,
            "gates": self.verdict.gates_dicts(), "match_iou": self.match_iou,
            "per_class": {CAR: self.car.to_dict(), PLATE: self.plate.to_dict()},
            "plates": [p.to_dict() for p in self.plates],
            "plate_cer": self.plate_cer,
            "per_image": {r.image: {CAR: r.car_iou, PLATE: r.plate_iou} for r in self.per_image},
            "image_fit": dict(self.image_fit),
            "images": len(self.per_image),
        }


def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def to_latin(text: str) -> str:
    """Replace Cyrillic look-alike letters with their Latin twins."""
    return "".join(LOOKALIKES.get(ch, ch) for ch in text)


LookalikeChars = tuple[tuple[int, str, str], ...]


def classify_plate(expected: str, given: str | None) -> tuple[str | None, LookalikeChars]:
    """Why ``given`` is not ``expected``: (reason or None when correct, look-alike positions)."""
    if given is None:
        return MISSING, ()
    if given == expected:
        return None, ()
    if given == "":
        return EMPTY, ()
    if given.casefold() == expected.casefold():
        return CASE, ()
    lat_g, lat_e = to_latin(given), to_latin(expected)
    if len(given) == len(expected) and (lat_g == lat_e or lat_g.casefold() == lat_e.casefold()):
        chars = tuple(
            (i, g, e) for i, (g, e) in enumerate(zip(given, expected, strict=True))
            if g != e and (g in LOOKALIKES or e in LOOKALIKES)
        )
        return LOOKALIKE, chars
    return OTHER, ()


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _match(matrix: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    if matrix.size == 0:
        return []
    eligible = np.where(matrix >= threshold, matrix, 0.0)
    if not eligible.any():
        return []
    # scipy (about 60 MB) is loaded at the first grading, not when the bot starts.
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(eligible, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True)
            if matrix[r, c] >= threshold]


def _box(shape: Shape) -> tuple[float, float, float, float]:
    return shape_bbox(shape)


def _object_key(obj: ObjectRef) -> tuple[Any, ...]:
    return (obj.image, obj.box, obj.kind, obj.best_iou)


@dataclass
class _ClassAcc:
    tp: int = 0
    gt: int = 0
    cand: int = 0
    ious: list[float] = field(default_factory=list)
    missed: list[ObjectRef] = field(default_factory=list)
    extra: list[ObjectRef] = field(default_factory=list)
    union_ious: list[float] = field(default_factory=list)
    matched: list[MatchedPair] = field(default_factory=list)

    def report(self, label: str) -> ClassReport:
        return ClassReport(label, self.tp, self.gt, self.cand, _mean(self.ious),
                           tuple(sorted(self.missed, key=_object_key)),
                           tuple(sorted(self.extra, key=_object_key)), tuple(self.matched))


def _graded_shapes(image: ImageAnnotations, label: str) -> list[Shape]:
    return sorted((s for s in image.shapes if s.label == label and s.kind in AREA_KINDS),
                  key=Shape.sort_key)


def grade(
    ground_truth: TaskAnnotations,
    candidate: TaskAnnotations,
    *,
    rule: PassRule | None = None,
    match_iou: float = 0.5,
) -> GradeReport:
    """Grade ``candidate`` against ``ground_truth``; the band comes from ``rule`` (the
    shipped defaults when None)."""
    unknown = sorted(set(candidate.images) - set(ground_truth.images))
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise AnnotationFormatError(
            f"candidate images not in the ground truth: {shown}{more}")

    acc = {CAR: _ClassAcc(), PLATE: _ClassAcc()}
    plates: list[PlateResult] = []
    plate_edits: list[int] = []
    per_image: list[ImageReport] = []
    image_fit: dict[str, float | None] = {}
    for name in sorted(ground_truth.images):
        gt_image = ground_truth.images[name]
        cand_image = candidate.images.get(name) or ImageAnnotations(
            name, gt_image.width, gt_image.height)
        width, height = gt_image.width, gt_image.height
        image_iou: dict[str, float | None] = {}
        fits: list[float] = []
        for label in CLASSES:
            gts = _graded_shapes(gt_image, label)
            cands = _graded_shapes(cand_image, label)
            g_r: list[Raster] = [rasterize(s, width, height) for s in gts]
            c_r: list[Raster] = [rasterize(s, width, height) for s in cands]
            _, _, inter, union = union_counts(g_r, c_r)
            image_iou[label] = inter / union if union else None
            a = acc[label]
            if union:
                a.union_ious.append(inter / union)
            matrix = iou_matrix(g_r, c_r)
            pairs = _match(matrix, match_iou)
            a.gt += len(gts)
            a.cand += len(cands)
            a.tp += len(pairs)
            a.ious.extend(float(matrix[i, j]) for i, j in pairs)
            a.matched.extend(MatchedPair(name, label, _box(gts[i]), _box(cands[j]),
                                         float(matrix[i, j])) for i, j in pairs)
            fits.extend(float(matrix[i, j]) for i, j in pairs)
            gt_to_cand = dict(pairs)
            matched_cands = set(gt_to_cand.values())
            for i, shape in enumerate(gts):
                if i not in gt_to_cand:
                    best = float(matrix[i].max()) if matrix.shape[1] else 0.0
                    a.missed.append(ObjectRef(name, label, shape.kind, _box(shape), shape.ref,
                                              best))
            for j, shape in enumerate(cands):
                if j not in matched_cands:
                    best = float(matrix[:, j].max()) if matrix.shape[0] else 0.0
                    a.extra.append(ObjectRef(name, label, shape.kind, _box(shape), shape.ref,
                                             best))
            if label == PLATE:
                for i, shape in enumerate(gts):
                    expected = shape.text.strip()
                    j = gt_to_cand.get(i)
                    given = cands[j].text.strip() if j is not None else None
                    reason, chars = classify_plate(expected, given)
                    dist = 0 if reason is None else levenshtein(given or "", expected)
                    plate_edits.append(dist)
                    if expected:
                        cer: float | None = dist / len(expected)
                    else:
                        cer = 0.0 if not given else 1.0
                    plates.append(PlateResult(
                        name, expected, given, reason is None, reason, cer, _box(shape),
                        _box(cands[j]) if j is not None else None, chars))
        per_image.append(ImageReport(name, image_iou[CAR], image_iou[PLATE]))
        image_fit[name] = _mean(fits)

    car_iou = _mean(acc[CAR].union_ious)
    plate_iou = _mean(acc[PLATE].union_ious)
    plate_accuracy = sum(p.correct for p in plates) / len(plates) if plates else None
    total_chars = sum(len(p.expected) for p in plates)
    plate_cer = sum(plate_edits) / total_chars if total_chars else None
    defined = [v for v in (car_iou, plate_iou, plate_accuracy) if v is not None]
    report = GradeReport(
        car_iou=car_iou, plate_iou=plate_iou, plate_accuracy=plate_accuracy,
        score=_mean(defined), verdict=Verdict(PASS, ()), car=acc[CAR].report(CAR),
        plate=acc[PLATE].report(PLATE), plates=tuple(plates), per_image=tuple(per_image),
        plate_cer=plate_cer, match_iou=match_iou, image_fit=image_fit,
    )
    verdict = (rule or PassRule.default()).evaluate(report.metric_values())
    return dataclasses.replace(report, verdict=verdict)
