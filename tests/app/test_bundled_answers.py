"""The bundled model's /predict answers are the ones recorded before labels became data (issue 15).

``tests/fixtures/bundled-predict.json`` was recorded from main before the change with
``python -m tests.app.test_bundled_answers --record`` (torch backend, fp32, CPU). The JSON text of each answer
must be the same bytes apart from its numbers; every number must equal the recorded one to 1e-6, since a CPU
of another instruction set may round a DenseNet forward differently in the last bits.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from models.bundled import DEMO_CHECKPOINT, SAMPLE_XRAY

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RECORDED = FIXTURES / "bundled-predict.json"
IMAGES = (SAMPLE_XRAY, FIXTURES / "00000075_000.png", FIXTURES / "cxr-monochrome1.dcm")
POINTS = (None, "spec90")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def bundled_answers() -> dict[str, str]:
    """``{"<image> <point>": /predict's body text}`` for the bundled model served on the CPU by the torch backend."""
    settings = Settings(checkpoint=DEMO_CHECKPOINT, device="cpu", backend="torch", intra_op_threads=1)
    answers: dict[str, str] = {}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 60
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "app never became ready"
            time.sleep(0.05)
        for image in IMAGES:
            for point in POINTS:
                params = {"operating_point": point} if point else {}
                response = client.post("/predict", files={"file": image.read_bytes()}, params=params)
                assert response.status_code == 200, response.text
                answers[f"{image.name} {point or 'default'}"] = response.text
    return answers


def _skeleton(text: str) -> str:
    return _NUMBER.sub("#", text)


def _numbers(text: str) -> list[float]:
    return [float(n) for n in _NUMBER.findall(text)]


@pytest.mark.slow
def test_bundled_model_answers_are_unchanged(one_torch_thread: None) -> None:
    recorded: dict[str, str] = json.loads(RECORDED.read_text())
    answers = bundled_answers()
    assert list(answers) == list(recorded)
    for key, text in answers.items():
        assert _skeleton(text) == _skeleton(recorded[key]), key  # keys, their order, every string: same bytes
        assert _numbers(text) == pytest.approx(_numbers(recorded[key]), abs=1e-6, rel=0), key


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    RECORDED.write_text(json.dumps(bundled_answers(), indent=1) + "\n")
