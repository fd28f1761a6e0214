"""A fake inference engine with fixed outputs, so API tests assert exact bodies without a network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from fastapi.testclient import TestClient

from app.main import create_app
from app.predictor import Inference, ModelInfo
from app.settings import Settings
from models.preprocessing import PreprocessSpec

FIXED_PROBS = np.array([0.01 * (i + 1) for i in range(14)], dtype=np.float32)  # Hernia (0.14) is the largest
SPEC = PreprocessSpec(image_size=64, resize=72)


class FakeEngine:
    """Returns FIXED_PROBS; Grad-CAM maps follow the input's brightness over the crop it was given."""

    def __init__(self, error: BaseException | None = None, gate: asyncio.Event | None = None) -> None:
        self.info = ModelInfo(
            name="fake", version="0.0.0", sha256="ab" * 32, device="cpu", spec=SPEC,
            metrics={"val_mean_auroc": 0.5}, provenance={"command": "fake"}, config={"epochs": 1},
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
            cams = np.stack([cam] * 14).astype(np.float32)
        return Inference(probs=FIXED_PROBS.copy(), cams=cams)


@contextmanager
def client_for(engine: Any, **settings: Any) -> Iterator[TestClient]:
    """A TestClient on create_app with ``engine``, waiting until /readyz says ready (unless gated)."""
    app = create_app(Settings(**settings), engine)
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while engine.gate is None and client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "app never became ready"
            time.sleep(0.01)
        yield client
