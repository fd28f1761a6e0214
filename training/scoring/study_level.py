"""Scores on labels the model and the table share, per image or per study, and the CheXpert competition mean.

A model is scored on the labels it shares with the table (matched by ``models.labels.label_key``); the others are
listed, not scored. ``--per study:max|mean`` combines each study's views: its probability is the max or mean over
its images, its target the max over their known targets (positive when any view's label is), as CheXpert's test
labels and MIMIC-CXR's labels are given per study.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from models.labels import CHEXPERT_COMPETITION, align_labels, label_key

STUDY_REDUCTIONS = ("max", "mean")


class ScoringError(ValueError):
    """The model and the table share no label, or studies are asked for where the table has none."""


@dataclass(frozen=True)
class SharedLabels:
    """The model's labels the table also has (model order), their column in each, and the rest of each side."""

    labels: tuple[str, ...]
    model_columns: tuple[int, ...]
    table_columns: tuple[int, ...]
    model_only: tuple[str, ...]
    table_only: tuple[str, ...]


def shared_labels(model_labels: Sequence[str], table_labels: Sequence[str]) -> SharedLabels:
    """Which of the model's outputs the table can score; raises ScoringError when none."""
    mapping = align_labels(table_labels, model_labels)  # {model index: table index}
    if not mapping:
        raise ScoringError(
            f"the model's labels ({', '.join(model_labels)}) and the table's ({', '.join(table_labels)}) share none"
        )
    model_columns = tuple(sorted(mapping))
    return SharedLabels(
        labels=tuple(model_labels[k] for k in model_columns),
        model_columns=model_columns,
        table_columns=tuple(mapping[k] for k in model_columns),
        model_only=tuple(name for k, name in enumerate(model_labels) if k not in mapping),
        table_only=tuple(name for k, name in enumerate(table_labels) if k not in set(mapping.values())),
    )


def parse_per(text: str | None) -> str | None:
    """``--per``: None or ``image`` -> None; ``study:max`` / ``study:mean`` -> ``max`` / ``mean``."""
    if text is None or text == "image":
        return None
    unit, _, how = text.partition(":")
    if unit != "study" or how not in STUDY_REDUCTIONS:
        raise ScoringError(f"--per must be image, study:max or study:mean, got {text!r}")
    return how


def per_study(
    study_ids: Sequence[str], patient_ids: Sequence[str], targets: np.ndarray, probs: np.ndarray, how: str
) -> tuple[tuple[str, ...], tuple[str, ...], np.ndarray, np.ndarray]:
    """(N images) -> (S studies): their ids (first-seen order), patients, (S, K) targets and (S, K) probabilities."""
    studies, first, inverse = np.unique(np.asarray(study_ids, dtype=object).astype(str), True, True)
    order = np.argsort(first)  # first-seen order
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    group = rank[inverse.reshape(-1)]
    k = targets.shape[1]
    out_p = np.zeros((len(studies), k), dtype=np.float64)
    out_y = np.full((len(studies), k), np.nan, dtype=np.float64)
    for s in range(len(studies)):
        rows = group == s
        out_p[s] = probs[rows].max(axis=0) if how == "max" else probs[rows].mean(axis=0)
        block = targets[rows]
        known = ~np.isnan(block).all(axis=0)
        out_y[s, known] = np.nanmax(block[:, known], axis=0)
    ids = tuple(str(studies[i]) for i in order)
    patients = tuple(str(patient_ids[int(first[i])]) for i in order)
    return ids, patients, out_y, out_p


def competition_mean(aurocs: Mapping[str, float | None]) -> float | None:
    """Mean AUROC over the five CheXpert competition labels when all five are scored and defined, else None."""
    by_key = {label_key(name): value for name, value in aurocs.items()}
    values = [by_key.get(label_key(name)) for name in CHEXPERT_COMPETITION]
    return float(np.mean(values)) if all(v is not None for v in values) else None  # type: ignore[arg-type]
