"""How far a lower precision moves a model's answers: per-class AUROC change, largest |Δp|, and findings that
flip at each operating point, all against the fp32 reference on the same images.

Unknown targets (NaN) are left out class by class; a class without a known positive and a known negative has no
AUROC here (its change is ``None``, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from models.operating_points import OperatingPoints, apply_temperature


@dataclass(frozen=True)
class Fidelity:
    """One precision against fp32: per class and overall, as plain types for JSON."""

    labels: tuple[str, ...]
    max_abs_dp: float
    max_abs_dp_per_class: dict[str, float]
    auroc_reference: dict[str, float | None]
    auroc_other: dict[str, float | None]
    flips: dict[str, dict[str, int]]  # operating point -> label -> images whose finding changed side
    images: int

    @property
    def auroc_change(self) -> dict[str, float | None]:
        """other - reference per class, None where either is undefined."""
        return {
            name: None if (r := self.auroc_reference[name]) is None or (o := self.auroc_other[name]) is None else o - r
            for name in self.labels
        }

    @property
    def mean_auroc_drop(self) -> float | None:
        """Mean over classes defined in both of (reference - other); positive means the precision lost AUROC."""
        changes = [change for change in self.auroc_change.values() if change is not None]
        return None if not changes else -float(np.mean(changes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": self.images,
            "max_abs_dp": self.max_abs_dp,
            "max_abs_dp_per_class": self.max_abs_dp_per_class,
            "auroc_reference": self.auroc_reference,
            "auroc_other": self.auroc_other,
            "auroc_change": self.auroc_change,
            "mean_auroc_drop": self.mean_auroc_drop,
            "flips": self.flips,
        }


def known_auroc(targets: np.ndarray, probs: np.ndarray) -> float | None:
    """ROC AUC over the rows whose target is known (not NaN); None without a known positive and negative."""
    known = ~np.isnan(targets)
    y, p = targets[known], probs[known]
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, p))


def measure_fidelity(
    labels: tuple[str, ...],
    reference: np.ndarray,
    other: np.ndarray,
    targets: np.ndarray | None,
    points: OperatingPoints | None,
) -> Fidelity:
    """``reference`` and ``other`` (N, K) probabilities of the same N images; ``targets`` (N, K) in {0, 1, NaN}
    or None (then no AUROC); ``points`` the checkpoint's operating points or None (then no flips).

    Raises ValueError when the shapes disagree with each other or with ``labels``.
    """
    if reference.shape != other.shape or reference.ndim != 2 or reference.shape[1] != len(labels):
        raise ValueError(f"probabilities {reference.shape} and {other.shape} do not fit {len(labels)} labels")
    if targets is not None and targets.shape != reference.shape:
        raise ValueError(f"targets {targets.shape} do not fit probabilities {reference.shape}")
    difference = np.abs(other.astype(np.float64) - reference.astype(np.float64))
    per_class = {name: float(difference[:, k].max(initial=0.0)) for k, name in enumerate(labels)}
    auroc_reference: dict[str, float | None] = dict.fromkeys(labels)
    auroc_other: dict[str, float | None] = dict.fromkeys(labels)
    if targets is not None:
        for k, name in enumerate(labels):
            auroc_reference[name] = known_auroc(targets[:, k], reference[:, k])
            auroc_other[name] = known_auroc(targets[:, k], other[:, k])
    flips: dict[str, dict[str, int]] = {}
    if points is not None:
        # decisions as the service makes them: temperature first, then probability >= threshold
        calibrated_reference = apply_temperature(reference, points.temperature)
        calibrated_other = apply_temperature(other, points.temperature)
        for point_name, point in points.points.items():
            thresholds = np.array([point.thresholds[name].threshold for name in labels])
            changed = (calibrated_reference >= thresholds) != (calibrated_other >= thresholds)
            flips[point_name] = {name: int(changed[:, k].sum()) for k, name in enumerate(labels)}
    return Fidelity(
        labels=labels,
        max_abs_dp=float(difference.max(initial=0.0)),
        max_abs_dp_per_class=per_class,
        auroc_reference=auroc_reference,
        auroc_other=auroc_other,
        flips=flips,
        images=int(reference.shape[0]),
    )
