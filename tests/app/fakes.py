"""A fake predictor with fixed outputs, so API tests assert exact bodies without a network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient

from app.inference.predictor import Inference, ModelInfo
from app.main import create_app
from app.settings import Settings
from models.labels import NIH_LABELS
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from models.preprocessing import PreprocessSpec

FIXED_PROBS = np.array([0.01 * (i + 1) for i in range(14)], dtype=np.float32)  # Hernia (0.14) is the largest
SPEC = PreprocessSpec(image_size=64, resize=72)
# youden: 0.075 for every class but Effusion, whose threshold is exactly its probability (>= counts as above);
# spec90: 0.125. So at youden, classes 3 (Effusion) and 8-14 are above; at spec90, Pleural_Thickening and Hernia.
YOUDEN_THRESHOLDS = {name: 0.075 for name in NIH_LABELS} | {"Effusion": float(FIXED_PROBS[2])}


def fake_operating_points(temperature: float | None = None) -> OperatingPoints:
    youden = {name: ClassThreshold(t, 0.8, 0.7, 0.2, 0.95) for name, t in YOUDEN_THRESHOLDS.items()}
    spec90 = {name: ClassThreshold(0.125) for name in NIH_LABELS}
    return OperatingPoints(
        points={"youden": OperatingPoint("maximises J", youden), "spec90": OperatingPoint("specificity 0.9", spec90)},
        default="youden",
        source={"data": "labels.csv, the images in /home/alice/val_list.txt", "images": 50},
        unreliable=("Hernia",),
        temperature=temperature,
    )


class FakePredictor:
    """Returns FIXED_PROBS; Grad-CAM maps follow the input's brightness over the crop it was given."""

    def __init__(
        self,
        error: BaseException | None = None,
        gate: asyncio.Event | None = None,
        operating_points: OperatingPoints | None = None,
    ) -> None:
        self.info = ModelInfo(
            name="fake", version="0.0.0", sha256="ab" * 32, device="cpu", spec=SPEC, labels=NIH_LABELS,
            metrics={"val_mean_auroc": 0.5}, provenance={"command": "fake"}, config={"epochs": 1},
            operating_points=operating_points,
        )  # fmt: skip
        self.error, self.gate = error, gate
        self.tensors: list[torch.Tensor] = []
        self.depth = 3

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def queue_depth(self) -> int:
        return self.depth

    def is_running(self) -> bool:
        return True

    async def infer(self, tensor: torch.Tensor, with_cams: bool) -> Inference:
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None and self.tensors:  # the warm-up (first call) succeeds
            raise self.error
        self.tensors.append(tensor)
        cams = None
        if with_cams:
            brightness = torch.nn.functional.avg_pool2d(tensor[:1][None], 8)[0, 0]  # (8, 8) over the crop
            low, high = brightness.min(), brightness.max()
            cam = ((brightness - low) / (high - low)).numpy() if high > low else np.zeros((8, 8), np.float32)
            cams = np.stack([cam] * len(NIH_LABELS)).astype(np.float32)
        return Inference(probs=FIXED_PROBS.copy(), cams=cams)


@contextmanager
def client_for(predictor: Any, **settings: Any) -> Iterator[TestClient]:
    """A TestClient on create_app with ``predictor``, waiting until /readyz says ready (unless gated)."""
    app = create_app(Settings(**settings), predictor)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while predictor.gate is None and client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "app never became ready"
            time.sleep(0.01)
        yield client
