"""``chexnet import`` -> the service, with no other change: the model card names the source, /predict computes
exactly the imported model on our preprocessing, /gradcam draws on the crop it saw."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torchxrayvision as xrv
from fastapi.testclient import TestClient
from PIL import Image

from app.main import create_app
from app.settings import Settings
from chexnet_cli import main
from models.bundled import SAMPLE_XRAY
from models.checkpoint import load_checkpoint
from models.imaging.decoder import decode_image
from models.preprocessing import eval_tensor
from tests.training.import_sources import xrv_network
from training.importers.xrv import XRV_PATHOLOGIES, XRV_WEIGHTS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("import")
    source = folder / XRV_WEIGHTS["nih"].file_name  # the weights are told from the release file's name
    torch.save(xrv_network(seed=2).state_dict(), source)
    out = folder / "xrv-nih.pt"
    assert main(["import", "--from", "torchxrayvision", str(source), "--out", str(out), "--model-version", "v1"]) == 0
    return source, out


@pytest.fixture(scope="module")
def client(imported: tuple[Path, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(checkpoint=imported[1], max_wait_ms=0))) as test_client:
        while test_client.get("/readyz").status_code != 200:
            pass
        yield test_client


def _wide_png() -> bytes:
    pixels = np.asarray(Image.open(SAMPLE_XRAY).convert("L"))[100:900, :]  # 800 x 1024: the square is cropped
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_model_card_says_what_is_served(client: TestClient, imported: tuple[Path, Path]) -> None:
    response = client.get("/model")
    card = response.json()
    assert response.headers["X-Disclaimer"]
    assert (card["name"], card["version"]) == ("xrv-densenet121-res224-nih", "v1")
    assert card["preprocessing"]["crop_first"] is True and card["preprocessing"]["image_size"] == 224
    source = card["training"]["provenance"]["source"]
    assert source["file"] == imported[0].name
    assert source["sha256"] == hashlib.sha256(imported[0].read_bytes()).hexdigest()
    assert source["weights"] == "densenet121-res224-nih"


def test_predict_is_the_imported_model_on_our_preprocessing(client: TestClient, imported: tuple[Path, Path]) -> None:
    data = _wide_png()
    response = client.post("/predict", files={"file": ("x.png", data)})
    assert response.status_code == 200
    labels = load_checkpoint(imported[1]).labels
    assert labels == XRV_PATHOLOGIES[:14]  # xrv's nih weights: NIH's 14 in xrv's order
    assert list(response.json()["probabilities"]) == list(labels)
    served = np.array([response.json()["probabilities"][name] for name in labels])
    model = load_checkpoint(imported[1]).build_model()
    spec = load_checkpoint(imported[1]).spec
    with torch.no_grad():
        expected = torch.sigmoid(model(eval_tensor(spec, decode_image(data).gray)[None]))[0].numpy()
    assert np.allclose(served, expected, rtol=0, atol=1e-6)


def test_gradcam_draws_on_the_square_the_model_saw(client: TestClient) -> None:
    response = client.post("/gradcam", files={"file": ("x.png", _wide_png())})
    assert response.status_code == 200
    overlay = Image.open(io.BytesIO(response.content))
    assert overlay.size == (1024, 800)
    pixels = np.asarray(overlay.convert("RGB"), dtype=np.int16)
    coloured = np.abs(pixels[..., 0] - pixels[..., 2]) > 8  # the grey X-ray has R == B; the heatmap does not
    # The crop is the centred 800 x 800 square, x in [112, 912): only there is the map drawn
    assert not coloured[:, :112].any() and not coloured[:, 912:].any()
    assert coloured[:, 112:912].mean() > 0.5


@pytest.fixture(scope="module")
def imported_all(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path, str]:
    """xrv's ``all`` weights (18 outputs, every one trained) imported by the command, and what it printed."""
    folder = tmp_path_factory.mktemp("import-all")
    network = xrv_network(seed=3)
    source = folder / XRV_WEIGHTS["all"].file_name
    torch.save(network.state_dict(), source)
    out = folder / "xrv-all.pt"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["import", "--from", "torchxrayvision", str(source), "--out", str(out)]) == 0
    return network, out, printed.getvalue()


def test_an_imported_18_output_model_is_served_whole(imported_all: tuple[torch.nn.Module, Path, str]) -> None:
    network, out, printed = imported_all
    assert f"  labels kept (18): {', '.join(XRV_PATHOLOGIES)}\n" in printed
    assert "dropped" not in printed
    data = _wide_png()
    with TestClient(create_app(Settings(checkpoint=out, max_wait_ms=0, backend="torch"))) as client:
        while client.get("/readyz").status_code != 200:
            pass
        assert client.get("/model").json()["labels"] == list(XRV_PATHOLOGIES)
        response = client.post("/predict", files={"file": ("x.png", data)})
        panels = client.post("/gradcam", params={"pathology": "all", "format": "json"}, files={"file": data})
        chosen = client.post("/gradcam", params={"pathology": "enlarged cardiomediastinum"}, files={"file": data})
    assert response.status_code == 200
    body = response.json()
    assert list(body["probabilities"]) == list(body["findings"]) == list(XRV_PATHOLOGIES)
    assert body["operating_point"]["name"] == "xrv"
    published = xrv.models.model_urls["densenet121-res224-all"]["op_threshs"]
    assert [body["findings"][name]["threshold"] for name in XRV_PATHOLOGIES] == pytest.approx(published, rel=1e-7)
    # xrv's own network on the same input tensor (our preprocessing, its one grey channel): the same 18 numbers
    tensor = eval_tensor(load_checkpoint(out).spec, decode_image(data).gray)[None]
    with torch.no_grad():
        expected = network(tensor[:, :1]).numpy()[0]
    served = np.array([body["probabilities"][name] for name in XRV_PATHOLOGIES])
    assert np.allclose(served, expected, rtol=0, atol=1e-5), float(np.abs(served - expected).max())
    assert list(panels.json()["heatmaps"]) == list(XRV_PATHOLOGIES)
    assert chosen.status_code == 200 and chosen.headers["X-Pathology"] == "Enlarged Cardiomediastinum"
