"""Box-based localization metrics for heatmaps, after Wang et al., CVPR 2017 (arXiv:1705.02315, section 5.2),
with the pointing game and mask IoU of CheXlocalize (Saporta et al. 2022, rajpurkarlab/cheXlocalize).

One *case* is one (image, label) pair with its radiologist boxes. At a threshold T and a measure:

* a ground-truth box is **hit** when some detected box has IoU > T (IoU = intersection / union), or, for the
  IoBB measure, intersection / area of the *detected* box > T; **accuracy** = hit boxes / all boxes;
* a detected box is a **false positive** when it meets no ground-truth box of its case that way;
  **AFP** = false positives / cases (Wang's "average false positive" per image, an image counted once per label);
* **pointing**: the map's peak lies inside one of the case's boxes (a flat map has no peak: a miss);
* **mask IoU**: IoU of the pixels where the map is >= ``MASK_LEVEL`` with the union of the case's boxes (pixels
  whose centres lie inside); mean over cases.

Every figure is a ratio of sums over cases, so the patient-level bootstrap resamples patients with replacement
(all their cases taken) and recomputes each ratio with the patients' multiplicities as weights; the 95 % CI is
the 2.5th and 97.5th percentile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1), right/bottom exclusive

IOBB_THRESHOLDS: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
IOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
MASK_LEVEL = 0.5  # mask IoU: the map (normalised to [0, 1]) thresholded at half its peak


def box_area(box: Box) -> float:
    """Area of (x0, y0, x1, y1); 0 for an empty or inverted box."""
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def intersection(a: Box, b: Box) -> float:
    """Area of the overlap of two boxes (0 when they only touch)."""
    return box_area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def iou(truth: Box, detected: Box) -> float:
    """Intersection over union; 0 when both are empty."""
    inter = intersection(truth, detected)
    union = box_area(truth) + box_area(detected) - inter
    return inter / union if union > 0 else 0.0


def iobb(truth: Box, detected: Box) -> float:
    """Intersection over the detected box's area (Wang et al.'s IoBB); 0 for an empty detected box."""
    area = box_area(detected)
    return intersection(truth, detected) / area if area > 0 else 0.0


MEASURES: dict[str, Callable[[Box, Box], float]] = {"iobb": iobb, "iou": iou}


def hits_and_false_positives(
    truths: Sequence[Box], detected: Sequence[Box], measure: Callable[[Box, Box], float], threshold: float
) -> tuple[int, int]:
    """(ground-truth boxes hit, detected boxes meeting none) with ``measure(truth, detected) > threshold``."""
    scores = np.array([[measure(t, d) for d in detected] for t in truths], dtype=np.float64).reshape(
        len(truths), len(detected)
    )
    correct = scores > threshold
    return int(correct.any(axis=1).sum()), int((~correct.any(axis=0)).sum())


def point_in_boxes(point: tuple[float, float] | None, boxes: Sequence[Box]) -> bool:
    """Whether (x, y) lies in some box (left/top edges inside, right/bottom outside); None is never inside."""
    if point is None:
        return False
    x, y = point
    return any(b[0] <= x < b[2] and b[1] <= y < b[3] for b in boxes)


def boxes_mask(boxes: Sequence[Box], height: int, width: int) -> npt.NDArray[np.bool_]:
    """(height, width) boolean: pixels whose centre (i + 0.5) lies inside some box."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        c0, c1 = max(0, int(np.ceil(x0 - 0.5))), min(width, int(np.ceil(x1 - 0.5)))
        r0, r1 = max(0, int(np.ceil(y0 - 0.5))), min(height, int(np.ceil(y1 - 0.5)))
        mask[r0:r1, c0:c1] = True
    return mask


def mask_iou(cam_image: npt.NDArray[np.float32], truths: Sequence[Box], level: float = MASK_LEVEL) -> float:
    """IoU of ``cam_image >= level`` ((H, W) map in [0, 1] over the image) with the union of ``truths``."""
    predicted = cam_image >= level
    truth = boxes_mask(truths, *cam_image.shape)
    union = int((predicted | truth).sum())
    return int((predicted & truth).sum()) / union if union else 0.0


@dataclass(frozen=True)
class Case:
    """One (image, label): its boxes and the map's detected boxes (image pixels), peak, mask IoU, flatness."""

    image: str
    patient: str
    label: str
    truths: tuple[Box, ...]
    detected: tuple[Box, ...]
    peak: tuple[float, float] | None
    mask_iou: float
    flat: bool = False


@dataclass
class _Tallies:
    """Per case: the numerators and denominators every figure is a ratio of."""

    boxes: list[int] = field(default_factory=list)
    hits: dict[str, list[int]] = field(default_factory=dict)
    fps: dict[str, list[int]] = field(default_factory=dict)
    pointing: list[int] = field(default_factory=list)
    mask_iou: list[float] = field(default_factory=list)


def _grid() -> list[tuple[str, str, float]]:
    return [("iobb", f"{t:g}", t) for t in IOBB_THRESHOLDS] + [("iou", f"{t:g}", t) for t in IOU_THRESHOLDS]


def _tally(cases: Sequence[Case]) -> _Tallies:
    tallies = _Tallies()
    for case in cases:
        tallies.boxes.append(len(case.truths))
        for measure, key, threshold in _grid():
            hit, fp = hits_and_false_positives(case.truths, case.detected, MEASURES[measure], threshold)
            tallies.hits.setdefault(f"{measure}@{key}", []).append(hit)
            tallies.fps.setdefault(f"{measure}@{key}", []).append(fp)
        tallies.pointing.append(int(point_in_boxes(case.peak, case.truths)))
        tallies.mask_iou.append(case.mask_iou)
    return tallies


def _ratios(tallies: _Tallies, weights: npt.NDArray[np.float64]) -> dict[str, npt.NDArray[np.float64]]:
    """Every figure under each row of ``weights`` (B, cases): {name: (B,)}; NaN where a denominator is 0."""
    cases = weights.sum(axis=1)
    boxes = weights @ np.asarray(tallies.boxes, dtype=np.float64)
    out: dict[str, npt.NDArray[np.float64]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for key in tallies.hits:
            out[f"accuracy_{key}"] = weights @ np.asarray(tallies.hits[key], dtype=np.float64) / boxes
            out[f"afp_{key}"] = weights @ np.asarray(tallies.fps[key], dtype=np.float64) / cases
        out["pointing"] = weights @ np.asarray(tallies.pointing, dtype=np.float64) / cases
        out["mean_iou"] = weights @ np.asarray(tallies.mask_iou, dtype=np.float64) / cases
    return out


def _patient_weights(patients: Sequence[str], n_boot: int, seed: int) -> npt.NDArray[np.float64]:
    """(n_boot, cases): how often each case's patient is drawn when patients are resampled with replacement."""
    names, index = np.unique(np.asarray(patients), return_inverse=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(names), np.full(len(names), 1.0 / len(names)), size=n_boot).astype(np.float64)
    return draws[:, index]


def score_cases(cases: Sequence[Case], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """All figures for ``cases`` (one label, or several pooled): value and, with ``n_boot`` > 0, a 95 % CI.

    Returns ``{"boxes", "cases", "patients", "flat_maps", "metrics": {name: {"value", "ci"}}}`` where a name is
    ``accuracy_iobb@0.1``, ``afp_iou@0.3``, ``pointing`` or ``mean_iou``; ``ci`` is None without resamples, and
    a value is None when nothing was there to score.
    """
    tallies = _tally(cases)
    point = _ratios(tallies, np.ones((1, len(cases))))
    boots = _ratios(tallies, _patient_weights([c.patient for c in cases], n_boot, seed)) if n_boot and cases else {}
    metrics: dict[str, dict[str, Any]] = {}
    for name, values in point.items():
        value = float(values[0]) if cases and np.isfinite(values[0]) else None
        ci = None
        if name in boots and np.isfinite(boots[name]).any():
            low, high = np.nanpercentile(boots[name], [2.5, 97.5])
            ci = [float(low), float(high)]
        metrics[name] = {"value": value, "ci": ci}
    return {
        "boxes": sum(tallies.boxes),
        "cases": len(cases),
        "patients": len({c.patient for c in cases}),
        "flat_maps": sum(c.flat for c in cases),
        "metrics": metrics,
    }


def score_by_label(
    cases: Sequence[Case], labels: Sequence[str], n_boot: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """:func:`score_cases` per label of ``labels`` that has cases (in that order), then ``"overall"`` (pooled)."""
    result = {
        label: score_cases([c for c in cases if c.label == label], n_boot, seed)
        for label in labels
        if any(c.label == label for c in cases)
    }
    result["overall"] = score_cases(cases, n_boot, seed)
    return result
