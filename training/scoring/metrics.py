"""Per-class AUROC and PR-AUC, their means, and patient-level bootstrap confidence intervals.

Targets are 1, 0 or NaN (unknown); each class is scored on its known rows only. A class with no known positive
or no known negative has no AUROC: it is reported as ``None`` with a reason and left out of the mean (never NaN,
so results stay valid JSON). ``labels`` names the K columns (the model's or the table's labels).
Confidence intervals resample patients, not images
(a cluster bootstrap), because images of one patient are not independent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

logger = logging.getLogger(__name__)

MIN_VALID_RESAMPLES = 10
_CHUNK_ELEMENTS = 4_000_000  # bootstrap weights handled (resamples x images) at a time


@dataclass(frozen=True)
class ClassAuroc:
    """One pathology's result; ``auroc`` is None (with ``reason``) when it is undefined."""

    name: str
    auroc: float | None
    reason: str | None
    positives: int
    n: int
    ci95: tuple[float, float] | None


def _check_arrays(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(labels):
        raise ValueError(f"targets and probs must both be (N, {len(labels)}), got {y.shape} and {p.shape}")
    if not (np.isin(y, (0.0, 1.0)) | np.isnan(y)).all():
        raise ValueError("targets must hold only 0, 1 and NaN (unknown)")
    if not np.isfinite(p).all():
        raise ValueError("probs must be finite (no NaN or infinity)")
    return y, p


def known_column(y: np.ndarray, p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ``k``'s known rows: (targets in {0, 1}, probabilities)."""
    known = ~np.isnan(y[:, k])
    return y[known, k], p[known, k]


def _per_class(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str], score: Any) -> dict[str, float | None]:
    y, p = _check_arrays(targets, probs, labels)
    result: dict[str, float | None] = {}
    for k, name in enumerate(labels):
        column, scores = known_column(y, p, k)
        defined = 0 < column.sum() < len(column)
        result[name] = float(score(column, scores)) if defined else None
    return result


def per_class_auroc(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str]) -> dict[str, float | None]:
    """sklearn's ROC AUC for each label over its known rows; None where they hold only one label value."""
    return _per_class(targets, probs, labels, roc_auc_score)


def per_class_average_precision(
    targets: np.ndarray, probs: np.ndarray, labels: Sequence[str]
) -> dict[str, float | None]:
    """PR-AUC per label as average precision (scikit-learn's ``average_precision_score``: the precision at
    each threshold weighted by the gain in recall, no interpolation) over its known rows; None where they hold one
    label value.

    Unlike AUROC, its chance level is the class's prevalence, so it shows how a rare class fares."""
    return _per_class(targets, probs, labels, average_precision_score)


def mean_defined(values: Mapping[str, float | None]) -> float | None:
    """Mean over the defined classes (AUROC, PR-AUC); None if no class is defined."""
    defined = [value for value in values.values() if value is not None]
    return float(np.mean(defined)) if defined else None


def mean_auroc(aurocs: Mapping[str, float | None]) -> float | None:
    """Mean AUROC over the defined classes; None if no class is defined."""
    return mean_defined(aurocs)


def _weighted_auroc(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC (ties count half) of one class under each row of ``weights`` (B, N); NaN where undefined.

    A weight is how many times an image occurs in a resample, so this equals sklearn's AUROC on the
    resampled data without materialising it.
    """
    order = np.argsort(scores, kind="stable")
    s, y = scores[order], labels[order].astype(bool)
    w = weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first index of each group of tied scores
    group = np.cumsum(np.r_[False, s[1:] != s[:-1]])  # group of each sorted image
    neg_w = np.where(y, 0.0, w)
    neg_per_group = np.add.reduceat(neg_w, starts, axis=1)  # (B, G)
    neg_below = np.cumsum(neg_per_group, axis=1) - neg_per_group  # negatives with a strictly lower score
    credit = neg_below + 0.5 * neg_per_group  # per group: what one positive there wins
    pos_w = w[:, y]
    wins = (pos_w * credit[:, group[y]]).sum(axis=1)
    total = pos_w.sum(axis=1) * neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, wins / np.where(total > 0, total, 1.0), np.nan)


def bootstrap_ci(
    targets: np.ndarray,
    probs: np.ndarray,
    patient_ids: Sequence[str],
    n_boot: int,
    seed: int,
    labels: Sequence[str],
) -> dict[str, tuple[float, float] | None]:
    """Percentile 95% CI per class from ``n_boot`` patient-level resamples (patients drawn with replacement,

    all their images taken). Resamples where a class holds one label value are skipped for that class; a class
    with fewer than ``MIN_VALID_RESAMPLES`` valid resamples gets None.
    """
    y, p = _check_arrays(targets, probs, labels)
    if len(patient_ids) != len(y):
        raise ValueError(f"{len(patient_ids)} patient ids for {len(y)} images")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    result: dict[str, tuple[float, float] | None] = dict.fromkeys(labels)
    if n_boot == 0 or len(y) == 0:
        return result
    _, patient_of_image = np.unique(np.asarray(patient_ids, dtype=object).astype(str), return_inverse=True)
    patient_of_image = patient_of_image.reshape(-1)
    n_patients = int(patient_of_image.max()) + 1
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(len(y), n_patients))
    samples: list[np.ndarray] = []  # each (b, K)
    known = ~np.isnan(y)
    y_filled = np.where(known, y, 0.0)
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        drawn = rng.integers(0, n_patients, size=(b, n_patients))
        flat = (np.arange(b)[:, None] * n_patients + drawn).reshape(-1)
        counts = np.bincount(flat, minlength=b * n_patients).reshape(b, n_patients).astype(np.float64)
        weights = counts[:, patient_of_image]  # (b, N): how often each image is in each resample
        samples.append(
            np.stack(
                [_weighted_auroc(p[:, k], y_filled[:, k], weights * known[:, k]) for k in range(y.shape[1])], axis=1
            )
        )
        done += b
    boot = np.concatenate(samples, axis=0)
    for k, name in enumerate(labels):
        valid = boot[:, k][np.isfinite(boot[:, k])]
        if len(valid) < MIN_VALID_RESAMPLES:
            column = y[known[:, k], k]
            if 0 < column.sum() < len(column):
                logger.info("%s: only %d of %d resamples hold both label values; no CI", name, len(valid), n_boot)
            continue
        low, high = np.percentile(valid, [2.5, 97.5])
        result[name] = (float(low), float(high))
    return result


def undefined_reason(positives: int, n: int) -> str:
    """Why a class has no AUROC on ``n`` known rows holding ``positives`` positives."""
    if n == 0:
        return "no known label (every entry unknown)"
    return f"only one label value among the known rows ({positives} positives of {n})"


def auroc_report(
    targets: np.ndarray,
    probs: np.ndarray,
    patient_ids: Sequence[str],
    n_boot: int,
    seed: int,
    labels: Sequence[str],
) -> list[ClassAuroc]:
    """Per-label AUROC, known positives and rows and (if ``n_boot`` > 0) patient-bootstrap 95% CI, in ``labels``
    order; ``n`` is the label's known rows."""
    aurocs = per_class_auroc(targets, probs, labels)
    cis = bootstrap_ci(targets, probs, patient_ids, n_boot, seed, labels)
    y = np.asarray(targets, dtype=np.float64)
    report = []
    for k, name in enumerate(labels):
        known = y[~np.isnan(y[:, k]), k]
        positives, n = int(known.sum()), len(known)
        value = aurocs[name]
        report.append(
            ClassAuroc(
                name=name,
                auroc=value,
                reason=None if value is not None else undefined_reason(positives, n),
                positives=positives,
                n=n,
                ci95=cis[name] if value is not None else None,
            )
        )
    return report
