"""The predictor with the real (tiny, random) network: batching, overload, Grad-CAM from the same forward."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch

from app.errors import OverloadedError
from app.predictor import Predictor
from app.settings import Settings
from models.checkpoint import load_checkpoint
from models.gradcam import gradcam_maps, normalise_maps


def inputs(n: int, size: int = 32) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(3, size, size, generator=generator) for _ in range(n)]


class Sizes:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def on_batch(self, size: int, seconds: float) -> None:
        self.sizes.append(size)


def test_concurrent_requests_are_batched_and_equal_unbatched(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, max_batch_size=8, max_wait_ms=200))
    observer = Sizes()
    predictor.observer = observer
    tensors = inputs(6)

    async def scenario() -> list[np.ndarray]:
        await predictor.start()
        try:
            results = await asyncio.gather(*(predictor.infer(t, with_cams=i % 2 == 0) for i, t in enumerate(tensors)))
        finally:
            await predictor.stop()
        assert all((r.cams is not None) == (i % 2 == 0) for i, r in enumerate(results))
        return [r.probs for r in results]

    batched = asyncio.run(scenario())
    assert observer.sizes == [6]  # one forward for all six
    model = load_checkpoint(tiny_checkpoint).build_model()
    with torch.no_grad():
        for tensor, probs in zip(tensors, batched, strict=True):
            alone = torch.sigmoid(model(tensor[None]))[0].numpy()
            assert np.allclose(probs, alone, atol=1e-5)


def test_cams_come_from_the_same_forward(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint))
    tensor = inputs(1, 64)[0]

    async def scenario() -> np.ndarray:
        await predictor.start()
        try:
            result = await predictor.infer(tensor, with_cams=True)
        finally:
            await predictor.stop()
        assert result.cams is not None
        return result.cams

    cams = asyncio.run(scenario())
    model = load_checkpoint(tiny_checkpoint).build_model()
    with torch.no_grad():
        expected = normalise_maps(gradcam_maps(model.forward_features(tensor[None]), model.classifier.weight))[0]
    assert cams.shape == (14, 2, 2)
    assert np.allclose(cams, expected.numpy(), atol=1e-6)


def test_full_queue_answers_overloaded_at_once(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, queue_size=2, max_batch_size=1))

    async def scenario() -> list[object]:
        await predictor.start()
        predictor._worker.cancel()  # type: ignore[union-attr]  # nobody drains the queue
        try:
            tasks = [asyncio.create_task(predictor.infer(t, False)) for t in inputs(4)]
            done, pending = await asyncio.wait(tasks, timeout=2)
            outcomes = [t.exception() for t in done]
            for t in pending:
                t.cancel()
            return outcomes
        finally:
            await predictor.stop()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 2
    assert all(isinstance(e, OverloadedError) for e in outcomes)


def test_cuda_requested_without_a_gpu_fails_clearly(tiny_checkpoint: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        Predictor.load(Settings(checkpoint=tiny_checkpoint, device="cuda"))
