"""What ``chexnet evaluate`` reports: the printed AUROC / PR-AUC table, metrics.json and predictions.csv."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np

from models.operating_points import MIN_POSITIVES, OperatingPoints
from training.reports.point_table import UNRELIABLE_MARK, UNRELIABLE_NOTE
from training.scoring.metrics import ClassAuroc, mean_defined


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_report(report: list[ClassAuroc], mean: float | None, average_precision: dict[str, float | None]) -> None:
    """AUROC with its CI, PR-AUC, positives and n per class; a class with fewer than MIN_POSITIVES positives is
    marked unreliable."""
    width = max(len(r.name) for r in report)
    print(f"{'pathology':<{width}}  {'AUROC':>6}  {'95% CI':<15}  {'PR-AUC':>6}  {'positives':>9}  {'n':>6}")
    for r in report:
        flag = f"  {UNRELIABLE_MARK}" if r.positives < MIN_POSITIVES else ""
        if r.auroc is None:
            print(f"{r.name:<{width}}  undefined ({r.reason}){flag}")
            continue
        ci = f"[{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]" if r.ci95 is not None else "-"
        ap = fmt(average_precision[r.name])
        print(f"{r.name:<{width}}  {r.auroc:>6.3f}  {ci:<15}  {ap:>6}  {r.positives:>9d}  {r.n:>6d}{flag}")
    defined = sum(r.auroc is not None for r in report)
    print(f"mean AUROC over {defined} of {len(report)} defined classes: {fmt(mean)}")
    print(f"mean PR-AUC over the same classes: {fmt(mean_defined(average_precision))}")
    if any(r.positives < MIN_POSITIVES for r in report):
        print(UNRELIABLE_NOTE)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def metrics_document(
    report: list[ClassAuroc],
    mean: float | None,
    average_precision: dict[str, float | None],
    chosen: OperatingPoints,
    stored: dict[str, Any] | None,
    bootstrap: int,
    tta: str,
    from_checkpoint: bool,
) -> dict[str, Any]:
    """metrics.json: AUROC (with CI), PR-AUC, the operating points chosen on this data (laid out as a checkpoint
    stores them, ``unreliable`` included), and the stored points' figures here (None without stored points)."""
    return {
        "auroc": {r.name: _finite_or_none(r.auroc) for r in report},
        "mean_auroc": _finite_or_none(mean),
        "ci95": {r.name: list(r.ci95) if r.ci95 is not None else None for r in report},
        "average_precision": {name: _finite_or_none(v) for name, v in average_precision.items()},
        "mean_average_precision": _finite_or_none(mean_defined(average_precision)),
        "positives": {r.name: r.positives for r in report},
        "n": int(chosen.source["images"]),
        "undefined": {r.name: r.reason for r in report if r.auroc is None},
        "unreliable": list(chosen.unreliable),
        "min_positives": MIN_POSITIVES,
        "operating_points": chosen.to_dict(),
        "stored_operating_points": stored,
        "bootstrap": bootstrap,
        "tta": tta,
        "source": "checkpoint" if from_checkpoint else "predictions",
    }


def write_predictions(path: Path, names: tuple[str, ...], probs: np.ndarray, labels: tuple[str, ...]) -> None:
    """One row per image (or study): its name and its (K,) probabilities under the ``labels`` header."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", *labels])
        for name, row in zip(names, probs, strict=True):
            writer.writerow([name, *(f"{float(v):.6f}" for v in row)])
