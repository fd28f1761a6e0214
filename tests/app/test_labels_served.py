"""Models with other labels than NIH's 14, served end to end by the real app: the answers name the model's labels.

A 5-label (CheXpert's competition tasks, with an operating point) and an 18-label random-weight checkpoint are
loaded by the real predictor (torch backend, CPU) behind a TestClient; every route that names an output must use
the checkpoint's labels in the checkpoint's order.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from app.encoding.overlay import PANEL_SIDE, TITLE_HEIGHT
from app.main import create_app
from app.settings import Settings
from models.bundled import SAMPLE_XRAY
from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.imaging.decoder import decode_image
from models.labels import CHEXPERT_COMPETITION, CHEXPERT_LABELS
from models.network import build_network
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from models.preprocessing import eval_tensor
from tests.conftest import TINY_SPEC

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FIVE = CHEXPERT_COMPETITION
EIGHTEEN = (*CHEXPERT_LABELS, "Emphysema", "Fibrosis", "Hernia", "Nodule")
# Panels: (columns, rows) of the all-labels sheet, ceil(sqrt(K)) columns
GRID = {5: (3, 2), 18: (5, 4)}


def _thresholds(labels: tuple[str, ...]) -> OperatingPoints:
    point = OperatingPoint("for the test", {name: ClassThreshold(0.05 * (i + 1)) for i, name in enumerate(labels)})
    return OperatingPoints(points={"youden": point}, default="youden", source={"data": "synthetic"})


def _served_checkpoint(folder: Path, labels: tuple[str, ...], with_points: bool) -> Path:
    torch.manual_seed(len(labels))
    model = build_network("none", len(labels))
    with torch.no_grad():  # random heads give probabilities near 0.5; spread them so the order matters
        model.classifier.bias.copy_(torch.linspace(-3, 3, len(labels)))
    points = _thresholds(labels) if with_points else None
    checkpoint = Checkpoint(model.state_dict(), TINY_SPEC, labels, operating_points=points)
    return save_checkpoint(checkpoint, folder / f"k{len(labels)}.pt")


@pytest.fixture(scope="module", params=[FIVE, EIGHTEEN], ids=["5-labels", "18-labels"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, Path]]:
    labels: tuple[str, ...] = request.param
    path = _served_checkpoint(tmp_path_factory.mktemp("labels"), labels, with_points=len(labels) == 5)
    settings = Settings(checkpoint=path, device="cpu", backend="torch", intra_op_threads=1, max_wait_ms=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "app never became ready"
            time.sleep(0.02)
        yield client, path


def _labels(path: Path) -> tuple[str, ...]:
    return load_checkpoint(path).labels


def _keys_in_order(text: str, field: str) -> list[str]:
    pairs = json.loads(text, object_pairs_hook=lambda items: items)
    return [key for key, _ in dict(pairs)[field]]


def test_predict_keys_are_the_models_labels_in_its_order(served: tuple[TestClient, Path]) -> None:
    client, path = served
    labels = _labels(path)
    response = client.post("/predict", files={"file": SAMPLE_XRAY.read_bytes()})
    assert response.status_code == 200
    assert _keys_in_order(response.text, "probabilities") == list(labels)
    body = response.json()
    checkpoint = load_checkpoint(path)
    with torch.no_grad():
        tensor = eval_tensor(checkpoint.spec, decode_image(SAMPLE_XRAY).gray)[None]
        expected = torch.sigmoid(checkpoint.build_model()(tensor))[0].numpy()
    served_probs = np.array([body["probabilities"][name] for name in labels])
    assert np.allclose(served_probs, expected, rtol=0, atol=1e-6)
    if checkpoint.operating_points is None:
        assert body["findings"] is None
    else:
        assert _keys_in_order(response.text, "findings") == list(labels)
        thresholds = [body["findings"][name]["threshold"] for name in labels]
        assert thresholds == pytest.approx([0.05 * (i + 1) for i in range(len(labels))])


def test_the_model_card_lists_the_labels(served: tuple[TestClient, Path]) -> None:
    client, path = served
    assert client.get("/model").json()["labels"] == list(_labels(path))


def test_all_draws_one_panel_per_label(served: tuple[TestClient, Path]) -> None:
    client, path = served
    labels = _labels(path)
    maps = client.post(
        "/gradcam", params={"pathology": "all", "format": "json"}, files={"file": SAMPLE_XRAY.read_bytes()}
    )
    assert maps.status_code == 200
    assert _keys_in_order(maps.text, "heatmaps") == list(labels)
    assert _keys_in_order(maps.text, "probabilities") == list(labels)
    sheet = client.post("/gradcam", params={"pathology": "all"}, files={"file": SAMPLE_XRAY.read_bytes()})
    assert sheet.status_code == 200 and sheet.headers["X-Pathology"] == "all"
    columns, rows = GRID[len(labels)]
    with Image.open(io.BytesIO(sheet.content)) as image:  # a square upload: square panels
        assert image.size == (columns * PANEL_SIDE, rows * (PANEL_SIDE + TITLE_HEIGHT))


@pytest.mark.parametrize("query", ["pleural effusion", "PLEURAL_EFFUSION", " Pleural  Effusion "])
def test_pathology_matches_the_models_labels_loosely(served: tuple[TestClient, Path], query: str) -> None:
    client, path = served
    response = client.post(
        "/gradcam", params={"pathology": query, "format": "json"}, files={"file": SAMPLE_XRAY.read_bytes()}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["pathology"] == "Pleural Effusion"
    index = _labels(path).index("Pleural Effusion")
    predicted = client.post("/predict", files={"file": SAMPLE_XRAY.read_bytes()}).json()["probabilities"]
    assert body["probability"] == pytest.approx(predicted["Pleural Effusion"], abs=1e-6)
    assert list(predicted)[index] == "Pleural Effusion"


def test_a_typo_gets_a_suggestion_from_the_models_labels(served: tuple[TestClient, Path]) -> None:
    client, path = served
    labels = _labels(path)
    response = client.post("/gradcam", params={"pathology": "Pleural Efusion"}, files={"file": b"unread"})
    assert response.status_code == 422
    assert response.json() == {
        "detail": "unknown pathology; did you mean 'Pleural Effusion'? use one of this model's "
        f"{len(labels)} labels ({', '.join(labels)}; case, spaces and underscores do not matter) or 'all'",
        "code": "unknown_pathology",
    }


def test_a_name_of_another_label_set_is_unknown_here(served: tuple[TestClient, Path]) -> None:
    client, path = served
    labels = _labels(path)
    name = "Infiltration"  # NIH's, in neither model
    response = client.post("/gradcam", params={"pathology": name}, files={"file": b"unread"})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        f"unknown pathology; use one of this model's {len(labels)} labels ({', '.join(labels)}; case, spaces and "
        "underscores do not matter) or 'all'"
    )


def test_telemetry_counts_scores_under_the_models_labels(served: tuple[TestClient, Path]) -> None:
    client, path = served
    client.post("/predict", files={"file": SAMPLE_XRAY.read_bytes()})
    text = client.get("/metrics").text
    named = set(re.findall(r'chexnet_score_count\{pathology="([^"]+)"\}', text))
    assert named == set(_labels(path))
