"""CHEXNET_PRECISION=int8: the folder chexnet quantize wrote, served by OpenVINO and named in /model."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from models.checkpoint import load_checkpoint
from tests.conftest import FIXTURES
from tests.models.test_openvino_ir import make_int8_folder

pytest.importorskip("nncf")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def int8_folder(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_int8_folder(tiny_checkpoint, tmp_path_factory.mktemp("int8") / "tiny-int8")


def test_the_service_serves_int8_and_says_so(int8_folder: Path, tiny_checkpoint: Path) -> None:
    settings = Settings(checkpoint=tiny_checkpoint, device="cpu", precision="int8", int8_model=int8_folder)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        card = client.get("/model").json()
        assert (card["backend"], card["precision"]) == ("openvino", "int8")
        answer = client.post("/predict", files={"file": ("x.png", (FIXTURES / "00000075_000.png").read_bytes())})
        assert answer.status_code == 200
        assert len(answer.json()["probabilities"]) == len(load_checkpoint(tiny_checkpoint).labels)
        overlay = client.post("/gradcam", files={"file": ("x.png", (FIXTURES / "00000075_000.png").read_bytes())})
        assert overlay.status_code == 200 and overlay.content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"precision": "int8"}, "needs the int8 model folder"),
        ({"precision": "fp32", "int8_model": "x"}, "precision is not int8"),
        ({"precision": "int8", "int8_model": "x", "backend": "torch"}, "int8 runs on the CPU with OpenVINO"),
    ],
)
def test_int8_settings_are_checked_up_front(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Settings(**overrides)  # type: ignore[arg-type]
