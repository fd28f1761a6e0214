"""A reliability diagram (observed frequency against mean predicted probability, per bin), before and after
temperature scaling, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from training.scoring.temperature import ReliabilityBins

logger = logging.getLogger(__name__)


def draw_reliability_diagram(before: ReliabilityBins, after: ReliabilityBins, temperature: float, path: Path) -> None:
    """Top: both curves against the diagonal (perfect calibration), with their ECE; bottom: entries per bin."""
    figure = Figure(figsize=(6, 7))
    FigureCanvasAgg(figure)  # Agg, explicitly: attaches the canvas that savefig renders with
    curve_ax, count_ax = figure.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    curve_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="perfectly calibrated")
    centres = (before.edges[:-1] + before.edges[1:]) / 2
    width = (before.edges[1] - before.edges[0]) * 0.4
    for bins, label, colour, shift in (
        (before, "raw", "C1", -width / 2),
        (after, f"T = {temperature:.3f}", "C0", width / 2),
    ):
        filled = bins.counts > 0
        ece = bins.expected_calibration_error
        curve_ax.plot(
            bins.mean_predicted[filled],
            bins.observed[filled],
            marker="o",
            color=colour,
            label=f"{label}: ECE {ece:.4f}",
        )
        count_ax.bar(centres + shift, bins.counts, width=width, color=colour, label=label)
    curve_ax.set_xlim(0, 1)
    curve_ax.set_ylim(0, 1)
    curve_ax.set_ylabel("observed frequency of the class")
    curve_ax.legend(loc="upper left", fontsize=9)
    curve_ax.set_title(f"Reliability, all classes pooled ({int(before.counts.sum())} known entries)", fontsize=11)
    count_ax.set_yscale("log" if np.max(before.counts, initial=0) > 0 else "linear")
    count_ax.set_xlabel("predicted probability")
    count_ax.set_ylabel("entries")
    figure.subplots_adjust(left=0.13, right=0.97, bottom=0.08, top=0.94, hspace=0.08)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=80)
    logger.info("wrote the reliability diagram to %s", path)
