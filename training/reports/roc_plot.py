"""One ROC curve per label on a grid sized by the label count (matplotlib Agg canvas: no display, no pyplot)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score, roc_curve

from training.scoring.metrics import undefined_reason

logger = logging.getLogger(__name__)


def draw_roc_curves(targets: np.ndarray, probs: np.ndarray, path: Path, title: str, labels: Sequence[str]) -> None:
    """One panel per label (curve on its known rows, chance diagonal, AUROC in the legend) on a ceil(sqrt(K))-wide
    grid; undefined classes get a note."""
    y = np.asarray(targets, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or y.shape[1] != len(labels):
        raise ValueError(f"targets and probs must both be (N, {len(labels)}), got {y.shape} and {p.shape}")
    columns = max(1, math.ceil(math.sqrt(len(labels))))
    rows = math.ceil(len(labels) / columns)
    figure = Figure(figsize=(3.5 * columns, 3.5 * rows + 0.6))
    FigureCanvasAgg(figure)  # Agg, explicitly: attaches the canvas that savefig renders with
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False))
    for k, name in enumerate(labels):
        ax = axes.flat[k]
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
        known = ~np.isnan(y[:, k])
        yk, pk = y[known, k], p[known, k]
        positives, n = int(yk.sum()), len(yk)
        if 0 < positives < n:
            fpr, tpr, _ = roc_curve(yk, pk)
            auroc = roc_auc_score(yk, pk)
            ax.plot(fpr, tpr, color="C0", linewidth=1.5, label=f"AUROC {auroc:.3f}")
            ax.legend(loc="lower right", fontsize=9)
        else:
            ax.text(
                0.5,
                0.5,
                f"AUROC undefined:\n{undefined_reason(positives, n)}",
                ha="center",
                va="center",
                fontsize=9,
                bbox={"facecolor": "white", "edgecolor": "grey"},
                wrap=True,
            )
        ax.set_title(f"{name} ({positives}/{n} positive)", fontsize=10)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.set_ylabel("true positive rate", fontsize=8)
    for ax in axes.flat[len(labels) :]:
        ax.set_axis_off()
    figure.suptitle(title, fontsize=14)
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.05, top=0.93, wspace=0.35, hspace=0.4)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=80)
    logger.info("wrote ROC curves to %s", path)
