"""The whole loop as a user runs it: chexnet train -> best.pt -> chexnet serve -> POST /predict == chexnet predict;
then chexnet calibrate -> a checkpoint with a temperature -> served findings on calibrated probabilities."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import numpy as np
import pytest

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS
from models.operating_points import apply_temperature
from tests.server_process import running_server
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.slow


def test_train_then_serve_then_predict(tmp_path: Path) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 40, side=64)  # the service needs >= 64 px
    out = tmp_path / "run"
    code = main(
        ["train", "--images", str(images), "--labels", str(labels), "--out", str(out), "--epochs", "1",
         "--batch-size", "8", "--image-size", "32", "--weights", "none", "--workers", "0", "--specificity", "0.95",
         "--name", "squares", "--version", "1.2.0"]
    )  # fmt: skip
    assert code == 0
    best = out / "best.pt"
    sample = images / "00000000_000.png"
    # Both sides on the CPU, so they must agree to 1e-6; CUDA against the CPU is tests/app/inference/test_gpu_path.py's.
    predict = ["predict", "--checkpoint", str(best), "--out", str(tmp_path / "p.csv"), "--device", "cpu", str(sample)]
    assert main(predict) == 0
    row = next(iter(csv.DictReader((tmp_path / "p.csv").open())))
    expected = np.array([float(row[name]) for name in NIH_LABELS])

    with running_server(best, CHEXNET_DEVICE="cpu") as server:
        response = httpx.post(f"{server.url}/predict", files={"file": ("s.png", sample.read_bytes())}, timeout=30)
        card = httpx.get(f"{server.url}/model", timeout=10).json()
    assert response.status_code == 200
    served = np.array(list(response.json()["probabilities"].values()))
    assert np.allclose(served, expected, atol=1e-6)
    assert card["preprocessing"]["image_size"] == 32
    assert card["training"]["provenance"]["data"]["labels"] == "labels.csv"
    assert (card["name"], card["version"]) == ("squares", "1.2.0")  # chexnet train --name, --version
    assert response.json()["model"]["name"] == "squares" and response.json()["model"]["version"] == "1.2.0"
    assert len(response.headers["x-request-id"]) == 32

    # best.pt's operating points, chosen on its validation split, are what the service decides with
    body = response.json()
    points = load_checkpoint(best).operating_points
    assert points is not None and card["operating_points"]["points"] == points.to_dict()["points"]
    assert body["operating_point"]["name"] == "youden" and body["operating_point"]["available"] == ["youden", "spec95"]
    for k, name in enumerate(NIH_LABELS):
        finding = body["findings"][name]
        assert finding["probability"] == body["probabilities"][name]  # no temperature
        assert finding["threshold"] == points.points["youden"].thresholds[name].threshold
        assert finding["above"] == (served[k] >= finding["threshold"])

    calibrated = tmp_path / "calibrated.pt"
    code = main(
        ["calibrate", "--checkpoint", str(best), "--images", str(images), "--labels", str(labels), "--split-list",
         str(out / "val_list.txt"), "--out", str(calibrated), "--temperature", "--default", "spec90"]
    )  # fmt: skip
    assert code == 0
    stored = load_checkpoint(calibrated).operating_points
    assert stored is not None and stored.temperature is not None
    with running_server(calibrated) as server:
        body = httpx.post(
            f"{server.url}/predict?operating_point=youden", files={"file": ("s.png", sample.read_bytes())}, timeout=30
        ).json()
        default = httpx.post(f"{server.url}/predict", files={"file": ("s.png", sample.read_bytes())}, timeout=30)
    assert np.allclose(list(body["probabilities"].values()), expected, atol=1e-6)  # raw, as before
    assert body["operating_point"]["temperature"] == stored.temperature
    calibrated_probs = apply_temperature(np.array(list(body["probabilities"].values())), stored.temperature)
    for k, (name, finding) in enumerate(body["findings"].items()):
        assert finding["probability"] == calibrated_probs[k]  # the same 14 numbers through the same function
        assert finding["threshold"] == stored.points["youden"].thresholds[name].threshold
        assert finding["above"] == (finding["probability"] >= finding["threshold"])
    assert default.json()["operating_point"]["name"] == "spec90"  # calibrate --default
