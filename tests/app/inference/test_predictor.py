"""The predictor with the real (tiny, random) network: batching, overload, Grad-CAM from the same forward."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from app.errors import NotReadyError
from app.inference.predictor import Predictor
from app.settings import Settings
from models.cam_boxes import FLAT_SPAN, cam_spans
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
    # device cpu: the reference below is CPU eager (tests/app/inference/test_gpu_path.py holds CUDA to it)
    settings = Settings(checkpoint=tiny_checkpoint, device="cpu", max_batch_size=8, max_wait_ms=200)
    predictor = Predictor.load(settings)
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
    # 64 px into the 32 px checkpoint for 2x2 maps: only eager takes other sizes (the export's size is fixed).
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, device="cpu", backend="torch"))
    tensor = inputs(1, 64)[0]

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        await predictor.start()
        try:
            result = await predictor.infer(tensor, with_cams=True)
        finally:
            await predictor.stop()
        assert result.cams is not None and result.cam_spans is not None
        return result.cams, result.cam_spans

    cams, spans = asyncio.run(scenario())
    model = load_checkpoint(tiny_checkpoint).build_model()
    with torch.no_grad():
        raw = gradcam_maps(model.forward_features(tensor[None]), model.classifier.weight)
    expected, expected_spans = normalise_maps(raw)[0].numpy(), cam_spans(raw)[0].numpy()
    expected[expected_spans < FLAT_SPAN] = 0.0  # flat maps come back all zero, not stretched
    assert cams.shape == (14, 2, 2)
    assert np.allclose(spans, expected_spans, rtol=1e-5, atol=1e-9)  # batched vs single forward: float32
    assert np.allclose(cams, expected, atol=1e-6)


def test_full_queue_answers_overloaded_at_once(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, queue_size=2, max_batch_size=1, backend="torch"))
    release = threading.Event()

    async def scenario() -> list[BaseException | None]:
        await predictor.start()
        predictor._executor.submit(release.wait)  # the model thread is busy: nothing leaves the queue
        try:
            tasks = [asyncio.create_task(predictor.infer(t, False)) for t in inputs(5)]
            await asyncio.sleep(0.2)
            refused = [t for t in tasks if t.done()]
            release.set()
            await asyncio.wait(tasks, timeout=30)
            assert len(refused) == 3  # two fit the queue before the worker runs; three are refused at once
            return [t.exception() for t in tasks]
        finally:
            release.set()
            await predictor.stop()

    outcomes = asyncio.run(scenario())
    assert [type(e).__name__ for e in outcomes] == ["NoneType", "NoneType", *["OverloadedError"] * 3]


def test_a_stopped_worker_fails_queued_requests_instead_of_hanging(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, max_batch_size=1, backend="torch"))
    release = threading.Event()

    async def scenario() -> list[BaseException | None]:
        await predictor.start()
        predictor._executor.submit(release.wait)
        tasks = [asyncio.create_task(predictor.infer(t, False)) for t in inputs(3)]
        await asyncio.sleep(0.2)
        assert predictor.batcher._worker is not None
        predictor.batcher._worker.cancel()
        done, _ = await asyncio.wait(tasks, timeout=5)
        assert not predictor.is_running()
        release.set()
        await predictor.stop()
        return [t.exception() for t in done]

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 3
    assert all(isinstance(e, NotReadyError) for e in outcomes)


def test_stop_waits_for_the_model_thread_without_blocking_the_event_loop(tiny_checkpoint: Path) -> None:
    predictor = Predictor.load(Settings(checkpoint=tiny_checkpoint, backend="torch", max_wait_ms=0))
    release = threading.Event()
    forward = predictor.run_batch

    def held_forward(batch: list[Any]) -> Any:
        release.wait(10)
        return forward(batch)

    predictor.run_batch = held_forward  # type: ignore[method-assign]

    async def scenario() -> None:
        await predictor.start()
        job = asyncio.create_task(predictor.infer(inputs(1)[0], False))
        while predictor.batcher.jobs()["in_flight"] == 0:
            await asyncio.sleep(0.001)
        stopping = asyncio.create_task(predictor.stop())
        for _ in range(20):  # the loop keeps running while stop() waits for the model thread
            await asyncio.sleep(0.005)
        assert not stopping.done()
        release.set()
        await asyncio.wait_for(stopping, 10)
        with pytest.raises(NotReadyError):
            await job

    asyncio.run(scenario())


def test_cuda_requested_without_a_gpu_fails_clearly(tiny_checkpoint: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="no CUDA device"):
        Predictor.load(Settings(checkpoint=tiny_checkpoint, device="cuda"))
