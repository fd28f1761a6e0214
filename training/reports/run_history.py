"""A run's epoch history, written three ways after every epoch, each file replaced atomically:

* ``OUT/metrics.json``: every record as is (``{"epochs": [...]}``);
* ``OUT/metrics.csv``: one row an epoch, for a spreadsheet (``CSV_COLUMNS``);
* ``OUT/curves.png``: training and validation loss, and validation AUROC (mean and per class), by epoch.

A record is what ``training.train.epoch_record`` makes: ``epoch`` (1-based), ``train_loss`` and ``val_loss`` (mean
BCE per label), ``val_mean_auroc`` and ``val_auroc`` (per class; None where a class has one label value in the
validation split), ``lr`` (at the epoch's start), ``seconds`` (training plus validation, wall clock) and
``train_images_per_s``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from models.files import write_atomically
from training.reports.run_files import CURVES_PNG, METRICS_CSV

logger = logging.getLogger(__name__)

HEAD_COLUMNS = ("epoch", "train_loss", "val_loss", "val_mean_auroc")
TAIL_COLUMNS = ("lr", "seconds", "train_images_per_s", "val_mean_average_precision")


def csv_columns(history: list[dict[str, Any]]) -> tuple[str, ...]:
    """The columns for a run: per-label AUROC for the run's labels (the records' ``val_auroc`` keys, in order), and
    with several datasets their mean validation AUROC each (``val_mean_auroc_<dataset>``)."""
    first = history[0] if history else {}
    labels = list(first.get("val_auroc") or {})
    datasets = list(first.get("val_dataset_mean_auroc") or {})
    per_dataset = [f"val_mean_auroc_{name}" for name in datasets] if len(datasets) > 1 else []
    return (*HEAD_COLUMNS, *(f"val_auroc_{name}" for name in labels), *TAIL_COLUMNS, *per_dataset)


def write_history_files(out: Path, history: list[dict[str, Any]]) -> None:
    """metrics.json, metrics.csv and curves.png in ``out`` for ``history``, each replaced atomically."""
    write_metrics(out, history)
    write_metrics_csv(out / METRICS_CSV, history)
    figure = draw_curves(history)
    write_atomically(out / CURVES_PNG, lambda handle: figure.savefig(handle, format="png", dpi=100))


def write_metrics(out: Path, history: list[dict[str, Any]]) -> None:
    """OUT/metrics.json: every finished epoch's record, replaced atomically."""
    text = json.dumps({"epochs": history}, indent=2) + "\n"
    write_atomically(out / "metrics.json", lambda handle: handle.write(text.encode()))


def csv_row(record: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    """``record`` as ``columns``; an undefined AUROC, or a field older runs did not record, is empty."""
    aurocs = record.get("val_auroc") or {}
    datasets = record.get("val_dataset_mean_auroc") or {}
    values = []
    for column in columns:
        if column.startswith("val_mean_auroc_"):
            values.append(datasets.get(column.removeprefix("val_mean_auroc_")))
        elif column.startswith("val_auroc_"):
            values.append(aurocs.get(column.removeprefix("val_auroc_")))
        else:
            values.append(record.get(column))
    return ["" if value is None else str(value) for value in values]


def write_metrics_csv(path: Path, history: list[dict[str, Any]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    columns = csv_columns(history)
    writer.writerow(columns)
    writer.writerows(csv_row(record, columns) for record in history)
    write_atomically(path, lambda handle: handle.write(text.getvalue().encode()))


def _series(history: list[dict[str, Any]], pick: Any) -> list[float]:
    """One value an epoch; an undefined one (None) becomes NaN, which matplotlib leaves as a gap."""
    values = [pick(record) for record in history]
    return [float("nan") if value is None else float(value) for value in values]


def draw_curves(history: list[dict[str, Any]]) -> Figure:
    """Two panels on matplotlib's Agg canvas: loss (train, validation) and validation AUROC (mean, each class
    in grey, chance at 0.5), by epoch; the best mean AUROC's epoch is marked. 1200 x 450 px at 100 dpi."""
    figure = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(figure)  # Agg, explicitly: no display, no pyplot state
    loss_ax, auroc_ax = figure.subplots(1, 2)
    epochs = [record["epoch"] for record in history]
    loss_ax.plot(epochs, _series(history, lambda r: r["train_loss"]), marker="o", label="training loss")
    loss_ax.plot(epochs, _series(history, lambda r: r["val_loss"]), marker="o", label="validation loss")
    loss_ax.set(title="loss (BCE per label)", xlabel="epoch", ylabel="loss")
    loss_ax.legend(loc="upper right")
    for name in history[0].get("val_auroc") or {} if history else ():
        per_class = _series(history, lambda r, name=name: (r.get("val_auroc") or {}).get(name))
        auroc_ax.plot(epochs, per_class, color="0.75", linewidth=0.8)
    mean = _series(history, lambda r: r["val_mean_auroc"])
    auroc_ax.plot(epochs, mean, color="C3", marker="o", linewidth=2, label="mean AUROC")
    auroc_ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8, label="chance")
    defined = [(value, epoch) for value, epoch in zip(mean, epochs, strict=True) if value == value]  # not NaN
    if defined:
        best = max(value for value, _ in defined)
        at = next(epoch for value, epoch in defined if value == best)  # the first, as best.pt keeps
        auroc_ax.plot([at], [best], marker="*", markersize=14, color="C3", linestyle="none",
                      label=f"best {best:.3f} (epoch {at})")  # fmt: skip
    auroc_ax.set(title="validation AUROC (grey: each class)", xlabel="epoch", ylabel="AUROC", ylim=(0.0, 1.0))
    auroc_ax.legend(loc="lower right")
    for ax in (loss_ax, auroc_ax):
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure
