"""The one owner of the model: requests batched by ``app.inference.batcher``, one forward per batch on the model thread.

decode + preprocess happen per request off the event loop (see ``app.inference.decode``); here requests wait in the
batcher's bounded queue, which hands up to ``max_batch_size`` of them (waiting at most ``max_wait_ms`` for
company) to one forward pass on the model's own thread; each request gets its row: probabilities and,
when asked, Grad-CAM maps for every label from the same forward pass (no backward, no hooks).
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
from app.inference.batch_assembly import BatchAssembler
from app.inference.batcher import Batcher
from app.inference.threads import model_executor
from app.model_card import model_identity, without_paths
from app.settings import Settings
from models.cam_boxes import FLAT_SPAN, cam_spans
from models.checkpoint import load_checkpoint
from models.files import resolve_device
from models.gradcam import gradcam_maps, normalise_maps
from models.operating_points import OperatingPoints
from models.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the model card says: identity, preprocessing, provenance, metrics, operating points, where it runs."""

    name: str
    version: str
    sha256: str
    device: str
    spec: PreprocessSpec
    labels: tuple[str, ...]  # the checkpoint's K labels, in the order of the model's outputs
    backend: str = "torch"
    precision: str = "fp32"
    metrics: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    operating_points: OperatingPoints | None = None  # /predict's findings; None: probabilities only


@dataclass(frozen=True)
class Inference:
    """One request's result: ``probs`` (K,) after sigmoid, K the model's labels; ``cams`` (K, h, w) in [0, 1]
    when asked for, with ``cam_spans`` (K,): each raw map's span (``models.cam_boxes.cam_spans``); a flat map's cam
    is all zeros."""

    probs: npt.NDArray[np.float32]
    cams: npt.NDArray[np.float32] | None = None
    cam_spans: npt.NDArray[np.float64] | None = None


class BatchObserver(Protocol):
    def on_batch(self, size: int, seconds: float) -> None: ...


class PredictorLike(Protocol):
    """The model owner as the pipeline sees it: ``Predictor`` below, or a test's fake with fixed outputs."""

    info: ModelInfo

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def infer(self, tensor: torch.Tensor, with_cams: bool) -> Inference: ...
    def queue_depth(self) -> int: ...
    def is_running(self) -> bool: ...


@dataclass
class _Job:
    """One request's work: its (3, S, S) input, and whether it wants Grad-CAM maps."""

    tensor: torch.Tensor
    with_cams: bool


class Predictor:
    """Holds the backend; everything that touches it runs on one dedicated thread.

    ``head_weight`` (K, 1024) is the classifier's weight, which closed-form Grad-CAM needs with the norm5 map.
    On CUDA each batch is padded to a bucket and assembled in pinned memory (``app.inference.batch_assembly``),
    and every bucket is run once before the first batch (with ``warmup``), so that no request pays for cuDNN's
    autotuning or the allocator's first growth.
    """

    def __init__(
        self, backend: InferenceBackend, head_weight: torch.Tensor, info: ModelInfo, settings: Settings
    ) -> None:
        self.backend, self.info = backend, info
        self.head_weight = head_weight.detach().to(backend.device)
        self.observer: BatchObserver | None = None
        self._executor = model_executor(settings.intra_op_threads)
        self.assembler = BatchAssembler.for_device(backend.device, settings.max_batch_size)
        self.warm_buckets_first = settings.warmup
        self._warming: asyncio.Future[tuple[int, ...]] | None = None
        self.batcher: Batcher[_Job, Inference] = Batcher(
            self._run_on_model_thread,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_wait_ms / 1000.0,
            queue_size=settings.queue_size,
            queue_timeout_s=settings.queue_timeout_s,
            observe=self._observe,
        )

    @classmethod
    def load(cls, settings: Settings) -> Predictor:
        """Load the checkpoint strictly onto the device.

        Raises CheckpointError or RuntimeError on failure, ValueError for a device that cannot be used here.
        """
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
            labels=checkpoint.labels,
            backend=backend.name,
            precision=backend.precision,
            metrics=checkpoint.metrics,
            provenance=without_paths(checkpoint.provenance),  # file names, never the training machine's paths
            config=without_paths(checkpoint.config),
            operating_points=checkpoint.operating_points,
        )
        logger.info(
            "model loaded: %s backend, %s, on %s (sha256 %s…); operating points: %s",
            backend.name,
            backend.precision,
            device,
            digest[:12],
            ", ".join(checkpoint.operating_points.points) if checkpoint.operating_points else "none",
        )
        return cls(backend, head_weight, info, settings)

    async def start(self) -> None:
        if self.assembler.buckets and self.warm_buckets_first:
            # first in the model thread's line, so every batch runs after it; not awaited here, so /healthz
            # answers meanwhile (the first batch awaits it, and a failure there leaves the service not ready)
            self._warming = asyncio.get_running_loop().run_in_executor(self._executor, self.warm_buckets)
        await self.batcher.start()

    async def stop(self) -> None:
        """Stop batching (unanswered requests get 503), then let the model thread finish, off the event loop."""
        await self.batcher.stop()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def is_running(self) -> bool:
        return self.batcher.is_running()

    def queue_depth(self) -> int:
        return self.batcher.queue_depth()

    async def infer(self, tensor: torch.Tensor, with_cams: bool) -> Inference:
        """Queue one (3, S, S) tensor; see ``app.inference.batcher`` for every way this can end."""
        return await self.batcher.submit(_Job(tensor, with_cams))

    async def _run_on_model_thread(self, batch: list[_Job]) -> list[Inference]:
        if self._warming is not None:
            await self._warming  # done after the first batch; raises for every batch if the warm-up failed
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.run_batch, batch)

    def _observe(self, size: int, seconds: float) -> None:
        if self.observer is not None:
            self.observer.on_batch(size, seconds)

    @torch.inference_mode()
    def warm_buckets(self) -> tuple[int, ...]:
        """One forward of zeros per bucket, smallest first; returns the bucket sizes run."""
        buckets = self.assembler.buckets or ()
        size, start = self.info.spec.image_size, time.perf_counter()
        for bucket in buckets:
            logits, _ = self.backend.run(self.assembler.assemble([torch.zeros(3, size, size)] * bucket))
            logits.cpu()  # waits for the GPU, so the pinned buffer is free again
        logger.info("warmed batch sizes %s in %.1f s", buckets, time.perf_counter() - start)
        return buckets

    @torch.inference_mode()
    def run_batch(self, batch: list[_Job]) -> list[Inference]:
        """One forward for the batch: (B, 3, S, S) -> probabilities, plus cams for the rows that asked.

        The results are read back to the host before returning, which also frees the pinned buffer for the next.
        """
        images = self.assembler.assemble([job.tensor for job in batch])
        logits, features = self.backend.run(images)
        probs = torch.sigmoid(logits[: len(batch)]).float().cpu().numpy()
        wanted = [i for i, job in enumerate(batch) if job.with_cams]
        cams: dict[int, npt.NDArray[np.float32]] = {}
        spans: dict[int, npt.NDArray[np.float64]] = {}
        if wanted:
            raw = gradcam_maps(features[wanted], self.head_weight)
            span_rows = cam_spans(raw).cpu().numpy()
            maps = normalise_maps(raw).float().cpu().numpy()
            maps[span_rows < FLAT_SPAN] = 0.0  # a flat map is not stretched into a picture of noise
            cams = dict(zip(wanted, maps, strict=True))
            spans = dict(zip(wanted, span_rows, strict=True))
        return [Inference(probs=probs[i], cams=cams.get(i), cam_spans=spans.get(i)) for i in range(len(batch))]
