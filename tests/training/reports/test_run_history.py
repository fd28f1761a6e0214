"""metrics.csv and curves.png from an epoch history: exact columns and values, the curves' data, atomic writes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image

from models.labels import NIH_LABELS
from training.reports.run_history import csv_columns, draw_curves, write_history_files


def record(epoch: int, mean: float | None, hernia: float | None = None) -> dict[str, Any]:
    aurocs: dict[str, float | None] = {name: 0.5 + 0.01 * i for i, name in enumerate(NIH_LABELS)}
    aurocs["Hernia"] = hernia
    return {
        "epoch": epoch, "train_loss": 0.5 / epoch, "val_loss": 0.6 / epoch, "val_mean_auroc": mean,
        "val_auroc": aurocs, "val_images": 10, "lr": 1e-3, "train_images_per_s": 12.5, "seconds": 3.25 * epoch,
        "val_mean_average_precision": 0.25,
    }  # fmt: skip


def test_csv_has_one_row_an_epoch_with_every_class(tmp_path: Path) -> None:
    history = [record(1, 0.6), record(2, None, hernia=0.75)]
    write_history_files(tmp_path, history)
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert rows[0] == list(csv_columns(history))
    assert rows[0][:4] == ["epoch", "train_loss", "val_loss", "val_mean_auroc"]
    assert rows[0][4:18] == [f"val_auroc_{name}" for name in NIH_LABELS]
    assert rows[0][18:] == ["lr", "seconds", "train_images_per_s", "val_mean_average_precision"]
    assert rows[1] == [
        "1", "0.5", "0.6", "0.6", *[str(0.5 + 0.01 * i) for i in range(13)], "", "0.001", "3.25", "12.5", "0.25"
    ]  # fmt: skip
    assert rows[2][:4] == ["2", "0.25", "0.3", ""]  # an undefined mean AUROC is an empty cell, not NaN
    assert rows[2][17] == "0.75"
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"epochs": history}
    assert not list(tmp_path.glob(".*.tmp"))


def test_csv_of_a_run_recorded_before_seconds_were_kept(tmp_path: Path) -> None:
    old = record(1, 0.6)
    del old["seconds"]
    write_history_files(tmp_path, [old])
    assert next(iter(csv.DictReader((tmp_path / "metrics.csv").open())))["seconds"] == ""


def test_curves_plot_the_history_and_mark_the_first_best_epoch(tmp_path: Path) -> None:
    history = [record(1, 0.6), record(2, 0.7), record(3, None), record(4, 0.7)]
    figure = draw_curves(history)
    loss_ax, auroc_ax = figure.axes
    lines = {line.get_label(): line for line in loss_ax.lines}
    assert list(lines["training loss"].get_xdata()) == [1, 2, 3, 4]
    assert list(lines["training loss"].get_ydata()) == [0.5, 0.25, 0.5 / 3, 0.125]
    assert list(lines["validation loss"].get_ydata()) == [0.6, 0.3, 0.6 / 3, 0.15]
    auroc = {line.get_label(): line for line in auroc_ax.lines}
    mean = list(auroc["mean AUROC"].get_ydata())
    assert mean[:2] == [0.6, 0.7] and math.isnan(mean[2]) and mean[3] == 0.7  # a gap where it was undefined
    best = auroc["best 0.700 (epoch 2)"]
    assert (list(best.get_xdata()), list(best.get_ydata())) == ([2], [0.7])
    assert len([line for line in auroc_ax.lines if line.get_color() == "0.75"]) == len(NIH_LABELS)
    write_history_files(tmp_path, history)
    with Image.open(tmp_path / "curves.png") as image:
        assert image.format == "PNG" and image.size == (1200, 450)


def test_curves_of_a_run_without_any_defined_auroc(tmp_path: Path) -> None:
    figure = draw_curves([record(1, None)])
    assert not [line for line in figure.axes[1].lines if str(line.get_label()).startswith("best")]


def test_csv_columns_follow_the_runs_labels_and_datasets(tmp_path: Path) -> None:
    entry = {
        "epoch": 1, "train_loss": 0.5, "val_loss": 0.6, "val_mean_auroc": 0.7,
        "val_auroc": {"Edema": 0.8, "Pleural Effusion": None, "Mass": 0.6},
        "val_dataset_mean_auroc": {"nih": 0.6, "chexpert": 0.8},
        "lr": 1e-3, "train_images_per_s": 2.0, "seconds": 1.5, "val_mean_average_precision": 0.3,
    }  # fmt: skip
    write_history_files(tmp_path, [entry])
    rows = list(csv.reader((tmp_path / "metrics.csv").open()))
    assert rows[0] == [
        "epoch", "train_loss", "val_loss", "val_mean_auroc", "val_auroc_Edema", "val_auroc_Pleural Effusion",
        "val_auroc_Mass", "lr", "seconds", "train_images_per_s", "val_mean_average_precision",
        "val_mean_auroc_nih", "val_mean_auroc_chexpert",
    ]  # fmt: skip
    assert rows[1] == ["1", "0.5", "0.6", "0.7", "0.8", "", "0.6", "0.001", "1.5", "2.0", "0.3", "0.6", "0.8"]
    assert len([line for line in draw_curves([entry]).axes[1].lines if line.get_color() == "0.75"]) == 3
