"""End to end with other label sets: a CheXpert-format model, a two-dataset (NIH + CheXpert) model, and fine-tuning
across label sets; each then evaluated, calibrated and predicted with through the ``chexnet`` command line."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from models.labels import CHEXPERT_LABELS, NIH_LABELS
from tests.training.data.formats import chexpert_row, write_chexpert
from tests.training.synthetic import make_square_dataset

PATIENTS = 12


def make_chexpert(root: Path) -> tuple[Path, Path]:
    """``root/CheXpert-v1.0-small/train/patientN/study1/view{1,2}`` JPEGs and train.csv (frontal + lateral each)."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(1, PATIENTS + 1):
        positive = i % 2 == 0
        for view, side in (("view1_frontal", "Frontal"), ("view2_lateral", "Lateral")):
            relative = f"CheXpert-v1.0-small/train/patient{i:05d}/study1/{view}.jpg"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.normal(90, 20, (64, 64)).clip(0, 255)
            pixels[16:36, 16:36] = 240 if positive else 90
            Image.fromarray(pixels.astype(np.uint8), "L").save(root / relative, quality=95)
            values = {"No Finding": "1.0"}  # every other pathology but Support Devices negative by the rule
            if positive:
                values = {"Pleural Effusion": "1.0", "Edema": "-1.0", "Cardiomegaly": "0.0",
                          "Atelectasis": str(float(i % 3 == 0)), "Consolidation": str(float(i % 4 == 0))}  # fmt: skip
            rows.append(chexpert_row(relative, side, "AP" if side == "Frontal" else "", values))
    return root / "CheXpert-v1.0-small", write_chexpert(root, rows)


def train_args(out: Path, *data: str, weights: str = "none", extra: tuple[str, ...] = ()) -> list[str]:
    return ["train", *data, "--out", str(out), "--epochs", "1", "--batch-size", "4", "--image-size", "32",
            "--weights", weights, "--workers", "0", "--device", "cpu", "--val-fraction", "0.3", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def chexpert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_chexpert(tmp_path_factory.mktemp("chexpert"))


def test_chexpert_model_trains_evaluates_per_study_calibrates_and_predicts(
    chexpert: tuple[Path, Path], tmp_path: Path
) -> None:
    images, labels = chexpert
    run = tmp_path / "run"
    assert (
        main(train_args(run, "--images", str(images), "--labels", str(labels), extra=("--test-fraction", "0.25"))) == 0
    )
    best = load_checkpoint(run / "best.pt")
    assert best.labels == CHEXPERT_LABELS
    assert best.operating_points is not None and best.operating_points.labels == CHEXPERT_LABELS
    (dataset,) = best.provenance["datasets"]
    assert dataset["format"] == "chexpert" and dataset["policy"] == {"uncertain": "ignore", "blank": "zeros",
                                                                      "views": "frontal"}  # fmt: skip
    assert dataset["rows"] == {"train": 6, "val": 3, "test": 3}  # frontal views only: 12, split by patient
    lists = {part: (run / f"{part}_list.txt").read_text().split() for part in ("train", "val", "test")}
    assert sum(map(len, lists.values())) == PATIENTS and len(set().union(*lists.values())) == PATIENTS
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert [c.removeprefix("val_auroc_") for c in header[4:18]] == list(CHEXPERT_LABELS)

    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--images", str(images), "--labels", str(labels),
                 "--per", "study:max", "--views", "all", "--bootstrap", "20", "--device", "cpu",
                 "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["per"] == "study:max" and metrics["labels"] == list(CHEXPERT_LABELS)
    assert metrics["n"] == PATIENTS  # 24 images (frontal + lateral) combined into 12 studies
    # Edema is uncertain (unknown, U-Ignore) in every positive study and negative by the No Finding rule elsewhere
    assert metrics["undefined"]["Edema"] == "only one label value among the known rows (0 positives of 6)"
    assert "mean_auroc_competition" in metrics and metrics["not_scored"] == {"model_only": [], "table_only": []}

    calibrated = tmp_path / "calibrated.pt"
    assert main(["calibrate", "--checkpoint", str(run / "best.pt"), "--images", str(images), "--labels",
                 str(labels), "--split-list", str(run / "val_list.txt"), "--out", str(calibrated), "--temperature",
                 "--device", "cpu"]) == 0  # fmt: skip
    points = load_checkpoint(calibrated).operating_points
    assert points is not None and points.labels == CHEXPERT_LABELS and points.temperature is not None

    predictions = tmp_path / "predictions.csv"
    image = images / lists["test"][0]
    assert main(["predict", str(image), "--checkpoint", str(calibrated), "--out", str(predictions),
                 "--device", "cpu"]) == 0  # fmt: skip
    rows = list(csv.reader(predictions.open()))
    assert rows[0] == ["Image Index", "path", *CHEXPERT_LABELS]
    assert len(rows) == 2 and all(0.0 <= float(v) <= 1.0 for v in rows[1][2:])


def test_two_datasets_then_fine_tuning_across_label_sets(chexpert: tuple[Path, Path], tmp_path: Path) -> None:
    images, labels = chexpert
    nih_images, nih_labels = make_square_dataset(tmp_path / "nih", 12)
    run = tmp_path / "two"
    data = ("--data", f"nih:{nih_labels}:{nih_images}", "--data", f"chexpert:{labels}:{images}")
    assert main(train_args(run, *data)) == 0
    best = load_checkpoint(run / "best.pt")
    extra = tuple(name for name in CHEXPERT_LABELS if name not in ("Cardiomegaly", "Pleural Effusion", "Edema",
                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax"))  # fmt: skip
    assert best.labels == (*NIH_LABELS, *extra)  # union by label key: "Pleural Effusion" is NIH's "Effusion"
    assert [d["name"] for d in best.provenance["datasets"]] == ["nih", "chexpert"]
    assert (run / "nih" / "val_list.txt").is_file() and (run / "chexpert" / "val_list.txt").is_file()
    row = next(csv.DictReader((run / "metrics.csv").open()))
    assert set(row) >= {"val_mean_auroc_nih", "val_mean_auroc_chexpert"}

    out = tmp_path / "eval-nih"
    assert main(["evaluate", "--checkpoint", str(run / "best.pt"), "--images", str(nih_images), "--labels",
                 str(nih_labels), "--bootstrap", "0", "--device", "cpu", "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["labels"] == list(NIH_LABELS) and metrics["not_scored"]["model_only"] == list(extra)
    assert not any(isinstance(v, float) and math.isnan(v) for v in metrics["auroc"].values())

    tuned = tmp_path / "tuned"
    assert main(train_args(tuned, "--images", str(images), "--labels", str(labels), weights=str(run / "best.pt"))) == 0
    head = load_checkpoint(tuned / "best.pt").provenance["head"]
    assert head["copied"]["Pleural Effusion"] == "Effusion" and head["copied"]["No Finding"] == "No Finding"
    assert head["initialised"] == []  # every CheXpert label was an output of the two-dataset model
