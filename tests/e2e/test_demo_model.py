"""The bundled demo model, re-evaluated on the real NIH sample, reproduces the validation AUROC it records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import load_checkpoint
from tests.conftest import shared_or_skip
from training.data.label_tables import read_label_table
from training.data.splits import split_by_patient
from training.evaluate import EvaluateOptions, run_evaluate

pytestmark = pytest.mark.slow


def test_demo_model_reproduces_its_recorded_validation_auroc(tmp_path: Path) -> None:
    labels = shared_or_skip("nih-sample", "Data_Entry_sample.csv")
    checkpoint = load_checkpoint(DEMO_CHECKPOINT)
    config = checkpoint.config
    table = read_label_table(labels)
    _, val = split_by_patient(table, config["val_fraction"], config["seed"])  # the split the demo was trained with
    split_list = tmp_path / "val_list.txt"
    split_list.write_text("".join(f"{table.image_names[i]}\n" for i in val))
    options = EvaluateOptions(
        checkpoint=DEMO_CHECKPOINT, predictions=None, images=labels.parent / "images", labels=labels,
        split_list=split_list, bootstrap=0, out=tmp_path / "eval", device="cpu",
    )  # fmt: skip
    assert run_evaluate(options) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n"] == 100
    assert metrics["mean_auroc"] == pytest.approx(checkpoint.metrics["val_mean_auroc"], abs=1e-6)
    for name, value in checkpoint.metrics["val_auroc"].items():
        assert metrics["auroc"][name] == pytest.approx(value, abs=1e-6)
    # and its stored operating points are the ones chosen on that split: evaluate chooses the same again
    assert checkpoint.operating_points is not None
    stored = checkpoint.operating_points.to_dict()["points"]
    chosen = metrics["operating_points"]["points"]
    assert list(chosen) == list(stored) == ["youden", "spec90"]
    for name, point in stored.items():
        for label, entry in point["thresholds"].items():
            again = chosen[name]["thresholds"][label]
            assert again.pop("threshold") == pytest.approx(entry.pop("threshold"), abs=1e-6)
            assert again == entry  # sensitivity, specificity, PPV, NPV
    assert metrics["unreliable"] == list(checkpoint.operating_points.unreliable)
