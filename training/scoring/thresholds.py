"""Per-class operating points chosen on labelled data: Youden's J, and the threshold for a chosen specificity.

Convention, the one every entry point applies (``models.operating_points``): a class is called positive when its
probability is >= the threshold, as in scikit-learn's ``roc_curve``, whose candidate thresholds are used here.
Every candidate is a score seen in the data, so images with equal scores always fall on the same side of a cut.

- ``youden``: the threshold that maximises Youden's J = sensitivity + specificity - 1 (W. J. Youden, "Index for
  rating diagnostic tests", Cancer 3(1):32-35, 1950). Ties in J go to the highest threshold (the fewest images
  called positive). J is compared in whole counts (TP * negatives - FP * positives), so ties are exact.
- ``specNN``: the smallest threshold whose specificity on the data is >= NN/100, i.e. the most sensitive cut that
  keeps the specificity. When no seen score keeps it (the highest-scored images hold too many negatives), the
  threshold lies just above the highest score: nothing on this data is called positive.

Each class is chosen on its known rows only (targets 1, 0 or NaN = unknown). A class whose known labels hold a
single value has no ROC curve: with no positives both points cut above the highest
score (specificity 1); with no negatives, at the lowest score (sensitivity 1). Such a class, and every class with
fewer than ``MIN_POSITIVES`` positives, is listed as unreliable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_curve

from models.operating_points import (
    DEFAULT_POINT,
    MIN_POSITIVES,
    ClassThreshold,
    OperatingPoint,
    OperatingPoints,
    apply_temperature,
    specificity_point_name,
)

YOUDEN_DESCRIPTION = "maximises Youden's J = sensitivity + specificity - 1 on the data it was chosen on"
_SPEC_TOLERANCE = 1e-9  # specificity compared in counts: FP <= negatives * (1 - s) + this


def _checked(targets: npt.ArrayLike, probs: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1 or y.shape != p.shape:
        raise ValueError(f"targets and probs must both be (N,), got {y.shape} and {p.shape}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("targets must hold only 0 and 1")
    if not (np.isfinite(p).all() and ((p >= 0.0) & (p <= 1.0)).all()):
        raise ValueError("probs must be probabilities in [0, 1]")
    return y, p


def _above_all(p: np.ndarray) -> float:
    """A threshold just above the highest score (no image called positive), at most 1."""
    return float(min(np.nextafter(p.max(), np.inf), 1.0)) if len(p) else 1.0


def _counts(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """roc_curve's candidate thresholds (descending; the leading +inf dropped) with TP and FP at each, as counts."""
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    tp, fp = np.rint(tpr * positives).astype(np.int64), np.rint(fpr * negatives).astype(np.int64)
    return thresholds[1:], tp[1:], fp[1:]


def youden_threshold(targets: npt.ArrayLike, probs: npt.ArrayLike) -> float:
    """(N,) labels in {0, 1} and (N,) probabilities -> the threshold maximising Youden's J (see the module doc)."""
    y, p = _checked(targets, probs)
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives == 0:
        return _above_all(p)
    if negatives == 0:
        return float(p.min())
    thresholds, tp, fp = _counts(y, p)
    j_scaled = tp * negatives - fp * positives  # J * positives * negatives, in whole numbers
    return float(thresholds[int(np.argmax(j_scaled))])  # argmax takes the first: the highest threshold


def specificity_threshold(targets: npt.ArrayLike, probs: npt.ArrayLike, specificity: float) -> float:
    """(N,) labels and (N,) probabilities -> the smallest threshold with specificity >= ``specificity`` here."""
    y, p = _checked(targets, probs)
    negatives = int(len(y) - y.sum())
    if negatives == 0:
        return float(p.min()) if len(p) else 1.0
    if negatives == len(y):  # no positives: no ROC curve, but specificity is still defined at every cut
        thresholds = np.unique(p)[::-1]
        fp = len(p) - np.searchsorted(np.sort(p), thresholds, side="left")  # images with a score >= each cut
    else:
        thresholds, _, fp = _counts(y, p)
    keeps = np.flatnonzero(fp <= negatives * (1.0 - specificity) + _SPEC_TOLERANCE)  # fp grows down the list
    return float(thresholds[keeps[-1]]) if len(keeps) else _above_all(p)


def statistics_at(targets: npt.ArrayLike, probs: npt.ArrayLike, threshold: float) -> ClassThreshold:
    """Sensitivity, specificity, PPV and NPV of "probability >= threshold" on this data (None where undefined:
    no positives, no negatives, nobody called positive, nobody called negative)."""
    y, p = _checked(targets, probs)
    called = p >= threshold
    truth = y == 1.0
    tp, fp = int((called & truth).sum()), int((called & ~truth).sum())
    fn, tn = int((~called & truth).sum()), int((~called & ~truth).sum())

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return ClassThreshold(
        threshold=float(threshold),
        sensitivity=ratio(tp, tp + fn),
        specificity=ratio(tn, tn + fp),
        ppv=ratio(tp, tp + fp),
        npv=ratio(tn, tn + fn),
    )


def unreliable_classes(targets: npt.ArrayLike, labels: Sequence[str]) -> tuple[str, ...]:
    """Labels (in ``labels`` order) with fewer than MIN_POSITIVES known positives in (N, K) ``targets``."""
    counts = np.nansum(np.asarray(targets, dtype=np.float64), axis=0)
    return tuple(name for name, count in zip(labels, counts, strict=True) if count < MIN_POSITIVES)


def choose_operating_points(
    targets: npt.ArrayLike,
    probs: npt.ArrayLike,
    specificity: float,
    source: dict[str, Any],
    labels: Sequence[str],
    temperature: float | None = None,
    default: str = DEFAULT_POINT,
) -> OperatingPoints:
    """(N, K) labels (1, 0, NaN) and (N, K) probabilities (after ``temperature``, when one is given) -> the
    ``youden`` and ``specNN`` points with their statistics on each class's known rows; ``source`` describes the data
    (``images``, ``positives`` and ``known`` are filled in). Raises ValueError for bad shapes, a specificity outside
    (0, 1), or a ``default`` that is neither point.
    """
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(labels):
        raise ValueError(f"targets and probs must both be (N, {len(labels)}), got {y.shape} and {p.shape}")
    spec_name = specificity_point_name(specificity)
    youden, at_spec = {}, {}
    for k, name in enumerate(labels):
        known = ~np.isnan(y[:, k])
        yk, pk = y[known, k], p[known, k]
        youden[name] = statistics_at(yk, pk, youden_threshold(yk, pk))
        at_spec[name] = statistics_at(yk, pk, specificity_threshold(yk, pk, specificity))
    spec_description = f"the lowest threshold with specificity >= {specificity:g} on the data it was chosen on"
    positives = {name: int(count) for name, count in zip(labels, np.nansum(y, axis=0), strict=True)}
    known_rows = {name: int(count) for name, count in zip(labels, (~np.isnan(y)).sum(axis=0), strict=True)}
    return OperatingPoints(
        points={
            "youden": OperatingPoint(YOUDEN_DESCRIPTION, youden),
            spec_name: OperatingPoint(spec_description, at_spec),
        },
        default=default,
        source={**source, "images": len(y), "positives": positives, "known": known_rows},
        unreliable=unreliable_classes(y, labels),
        temperature=temperature,
    )


def stored_points_on(
    targets: npt.ArrayLike, probs: npt.ArrayLike, points: OperatingPoints, labels: Sequence[str]
) -> dict[str, Any]:
    """How a checkpoint's stored thresholds do on other data: per point and label, the stored threshold with the
    sensitivity, specificity, PPV and NPV on the label's known rows. ``probs`` (N, K) are raw, K = ``labels``; the
    points' temperature is applied."""
    y = np.asarray(targets, dtype=np.float64)
    p = apply_temperature(probs, points.temperature)
    result: dict[str, Any] = {}
    for name, point in points.points.items():
        result[name] = {}
        for k, label in enumerate(labels):
            known = ~np.isnan(y[:, k])
            threshold = point.thresholds[label].threshold
            result[name][label] = statistics_at(y[known, k], p[known, k], threshold).to_dict()
    return result
