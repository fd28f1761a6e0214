"""The one owner of the model: a bounded queue, a worker that batches, one forward per batch.

decode + preprocess happen per request off the event loop (see ``app.pipeline``); here requests wait in a
bounded queue, the worker takes up to ``max_batch_size`` of them (waiting at most ``max_wait_ms`` for
company), runs one forward pass in its own thread, and hands each request its row: probabilities and,
when asked, Grad-CAM maps for all 14 classes from the same forward pass (no backward, no hooks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import torch

from app.backends import InferenceBackend, build_backend
from app.errors import NotReadyError, OverloadedError
from app.model_card import model_identity, without_paths
from app.settings import Settings
from app.threads import model_executor
from models.checkpoint import load_checkpoint
from models.gradcam import gradcam_maps, normalise_maps
from models.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the model card says: identity, preprocessing, provenance, metrics, where it runs."""

    name: str
    version: str
    sha256: str
    device: str
    spec: PreprocessSpec
    backend: str = "torch"
    precision: str = "fp32"
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Inference:
    """One request's result: ``probs`` (14,) after sigmoid; ``cams`` (14, h, w) in [0, 1] when asked for."""

    probs: npt.NDArray[np.float32]
    cams: npt.NDArray[np.float32] | None = None


class BatchObserver(Protocol):
    def on_batch(self, size: int, seconds: float) -> None: ...


class InferenceEngine(Protocol):
    """What the routes need from a predictor; tests substitute a fake with fixed outputs."""

    info: ModelInfo

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def infer(self, tensor: torch.Tensor, with_cams: bool) -> Inference: ...
    def queue_depth(self) -> int: ...
    def is_running(self) -> bool: ...


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("CHEXNET_DEVICE=cuda was asked for but no CUDA device is available")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


@dataclass
class _Job:
    tensor: torch.Tensor
    with_cams: bool
    future: asyncio.Future[Inference]


class Predictor:
    """Holds the backend; everything that touches it runs on one dedicated thread.

    ``head_weight`` (K, 1024) is the classifier's weight, which closed-form Grad-CAM needs with the norm5 map.
    """

    def __init__(
        self, backend: InferenceBackend, head_weight: torch.Tensor, info: ModelInfo, settings: Settings
    ) -> None:
        self.backend, self.info = backend, info
        self.head_weight = head_weight.detach().to(backend.device)
        self.max_batch_size, self.max_wait = settings.max_batch_size, settings.max_wait_ms / 1000.0
        self.queue_size = settings.queue_size
        self.observer: BatchObserver | None = None
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._in_flight: list[_Job] = []
        self._executor = model_executor(settings.intra_op_threads)

    @classmethod
    def load(cls, settings: Settings) -> Predictor:
        """Load the checkpoint strictly onto the device; raises CheckpointError / RuntimeError on failure."""
        device = resolve_device(settings.device)
        checkpoint = load_checkpoint(settings.checkpoint)
        model = checkpoint.build_model()
        digest = checkpoint.sha256 or ""
        head_weight = model.classifier.weight.detach().clone()
        backend = build_backend(settings, model, device, digest, checkpoint.spec.image_size)
        name, version = model_identity(settings.model_name, checkpoint.provenance, Path(settings.checkpoint))
        info = ModelInfo(
            name=name,
            version=version,
            sha256=digest,
            device=str(backend.device),
            spec=checkpoint.spec,
            backend=backend.name,
            precision=backend.precision,
            metrics=checkpoint.metrics,
            provenance=without_paths(checkpoint.provenance),  # file names, never the training machine's paths
            config=without_paths(checkpoint.config),
        )
        logger.info(
            "model loaded: %s backend, %s, on %s (sha256 %s…)", backend.name, backend.precision, device, digest[:12]
        )
        return cls(backend, head_weight, info, settings)

    async def start(self) -> None:
        self._queue = asyncio.Queue(maxsize=self.queue_size)
        self._worker = asyncio.create_task(self._serve_batches(), name="chexnet-batcher")
        self._worker.add_done_callback(self._on_worker_exit)

    def _on_worker_exit(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("the batching worker stopped (%s); failing queued requests", type(task.exception()).__name__)
        self._fail_pending()

    def _fail_pending(self) -> None:
        """No request waits forever: whatever is queued or in flight when the worker ends gets a 503."""
        pending = list(self._in_flight)
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            if not job.future.done():
                job.future.set_exception(NotReadyError())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    def is_running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    def queue_depth(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def infer(self, tensor: torch.Tensor, with_cams: bool) -> Inference:
        """Queue one (3, S, S) tensor; a full queue raises OverloadedError at once (503)."""
        if self._queue is None or not self.is_running():
            raise NotReadyError()
        job = _Job(tensor, with_cams, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise OverloadedError() from None
        return await job.future

    async def _next_batch(self, queue: asyncio.Queue[_Job]) -> list[_Job]:
        batch = [await queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return [job for job in batch if not job.future.cancelled()]

    async def _serve_batches(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch(self._queue)
            if not batch:
                continue
            self._in_flight = batch
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, batch)
            except Exception as exc:  # a failed batch fails its requests (500), not the worker
                logger.error("batch of %d failed (%s)", len(batch), type(exc).__name__)  # no exception text
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(exc)
                self._in_flight = []
                continue
            self._in_flight = []  # (on cancellation it stays set, so _fail_pending answers these requests)
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    job.future.set_result(result)
            self._observe(len(batch), time.perf_counter() - start)

    def _observe(self, size: int, seconds: float) -> None:
        if self.observer is None:
            return
        try:
            self.observer.on_batch(size, seconds)
        except Exception:  # metrics must never stop the worker
            logger.warning("batch observer failed", exc_info=False)

    @torch.inference_mode()
    def run_batch(self, batch: list[_Job]) -> list[Inference]:
        """One forward for the batch: (B, 3, S, S) -> probabilities, plus cams for the rows that asked."""
        logits, features = self.backend.run(torch.stack([job.tensor for job in batch]))
        probs = torch.sigmoid(logits).float().cpu().numpy()
        wanted = [i for i, job in enumerate(batch) if job.with_cams]
        cams: dict[int, npt.NDArray[np.float32]] = {}
        if wanted:
            maps = normalise_maps(gradcam_maps(features[wanted], self.head_weight))
            cams = dict(zip(wanted, maps.float().cpu().numpy(), strict=True))
        return [Inference(probs=probs[i], cams=cams.get(i)) for i in range(len(batch))]
