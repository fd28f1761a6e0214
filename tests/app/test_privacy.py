"""Nothing private leaves the service: no training-machine path in /model, no file name, header value or
exception text in any response or log line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.model_card import model_identity, without_paths
from app.settings import Settings
from models.checkpoint import Checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from tests.conftest import TINY_SPEC
from tests.models.imaging.test_dicom import PATIENT_ID, PATIENT_NAME, make_dicom

HOME = "/home/alice-radiology/st-elsewhere-share"
PROVENANCE = {
    "command": f"chexnet train --images {HOME}/nih/images --labels=../private/labels.csv --out runs/x --lr 1e-3",
    "data": {"images": "images", "labels": "labels.csv", "n_train": 400},
    "note": f"trained at {HOME} on 400/100 images, see https://example.org/cxr/notes",
    "chexnet_version": "0.1.0",
}
CONFIG = {"images": f"{HOME}/nih/images", "labels": "C:\\Users\\alice\\labels.csv", "out": "runs/x", "lr": 0.001}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (PROVENANCE["command"], "chexnet train --images images --labels=labels.csv --out x --lr 1e-3"),
        (PROVENANCE["note"], "trained at st-elsewhere-share on 400/100 images, see https://example.org/cxr/notes"),
        (CONFIG, {"images": "images", "labels": "labels.csv", "out": "x", "lr": 0.001}),
        (["a/b/c.pt", 3, None], ["c.pt", 3, None]),
        ("Data_Entry_2017.csv", "Data_Entry_2017.csv"),
    ],
)
def test_paths_are_reduced_to_file_names(value: object, expected: object) -> None:
    assert without_paths(value) == expected


def test_model_identity_prefers_the_setting_then_the_recorded_name() -> None:
    recorded = {"model_name": "cxr-densenet", "model_version": "2.1", "chexnet_version": "0.1.0"}
    assert model_identity("site-a", recorded, Path("/x/best.pt")) == ("site-a", "2.1")
    assert model_identity(None, recorded, Path("/x/best.pt")) == ("cxr-densenet", "2.1")
    assert model_identity(None, {"chexnet_version": "0.1.0"}, Path("/x/best.pt")) == ("best", "0.1.0")


@pytest.fixture(scope="module")
def private_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("alice") / "st-elsewhere-best.pt"
    spec, state = TINY_SPEC, build_network("none", len(NIH_LABELS)).state_dict()
    save_checkpoint(
        Checkpoint(state_dict=state, spec=spec, labels=NIH_LABELS, provenance=PROVENANCE, config=CONFIG), path
    )
    return path


@pytest.fixture(scope="module")
def client(private_checkpoint: Path) -> Iterator[TestClient]:
    settings = Settings(checkpoint=private_checkpoint, model_name="site-a-densenet", max_wait_ms=0)
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        while test_client.get("/readyz").status_code != 200:
            pass
        yield test_client


def test_model_card_shows_names_not_paths(client: TestClient) -> None:
    card = client.get("/model").json()
    assert card["name"] == "site-a-densenet"
    assert card["training"]["config"]["images"] == "images"
    assert card["training"]["provenance"]["command"].startswith("chexnet train --images images --labels=labels.csv")
    text = str(card)
    assert "alice" not in text, text[text.find("alice") - 200 : text.find("alice") + 50]


def hostile_uploads() -> list[tuple[str, bytes]]:
    pixels = np.random.default_rng(0).integers(0, 4096, (64, 64))
    dicom = make_dicom(pixels, bits_stored=12)
    return [
        (f"{HOME}/John-Doe-1.dcm", dicom),
        (f"{HOME}/John-Doe-2.dcm", dicom[: len(dicom) // 2]),  # truncated
        (f"{HOME}/John-Doe-3.dcm", make_dicom(pixels, bits_stored=12, Rows=999)),
        (f"{HOME}/John-Doe-4.png", b"\x89PNG\r\n\x1a\n" + PATIENT_NAME.encode() * 10),
        (f"{HOME}/John-Doe-5.jpg", b"\xff\xd8\xff" + PATIENT_ID.encode() * 10),
        (f"{HOME}/John-Doe-6.txt", f"{PATIENT_NAME} {PATIENT_ID}".encode()),
    ]


def test_no_file_name_header_value_or_path_in_any_response_or_log(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = ("alice", "John-Doe", PATIENT_NAME, PATIENT_ID, "st-elsewhere", "Traceback")
    statuses = set()
    with caplog.at_level(logging.DEBUG):
        for name, data in hostile_uploads():
            for route in ("/predict", "/gradcam?format=json"):
                headers = {"X-Request-ID": f"{PATIENT_ID}-John-Doe"}  # free text: replaced, never logged
                response = client.post(route, files={"file": (name, data, "application/dicom")}, headers=headers)
                statuses.add(response.status_code)
                text = response.text + str(response.headers)
                assert not [s for s in secrets if s in text], (route, response.status_code)
    assert statuses == {200, 415, 422}  # the good file, the unknown format and the broken ones
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert not [s for s in secrets if s in logged]
