"""The serving pipeline of one app: its state (settings, predictor, telemetry, backlog, readiness; no globals) and
the steps its routes call, in LitServe's words: decode (per request, in the bounded pool) -> predict (the
predictor batches) -> encode (``app.encoding``; drawing runs in the same pool through ``run_bounded``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import torch
from fastapi import FastAPI, UploadFile

from app.errors import NotReadyError
from app.guards.admission import Admission, Backlog
from app.guards.telemetry import Telemetry
from app.inference.decode import PreparedImage, decode_limits, prepare_image
from app.inference.predictor import Inference, PredictorLike
from app.inference.threads import decode_executor
from app.settings import Settings
from models.imaging.decoder import DecodeLimits
from models.imaging.errors import InvalidImageError
from models.preprocessing import PreprocessSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Pipeline:
    """Per app: ``decode`` -> ``predict``; the encode steps are in ``app.encoding``."""

    def __init__(self, settings: Settings, predictor: PredictorLike, telemetry: Telemetry) -> None:
        self.settings, self.predictor, self.telemetry = settings, predictor, telemetry
        self.limits: DecodeLimits = decode_limits(settings)
        self._warm = False
        self.draining = False  # set on SIGTERM (app.runtime.server): /readyz says 503 while requests finish
        self.backlog = Backlog(settings.upload_backlog)  # admitted requests outside the model's queue
        self._decode_slots = asyncio.Semaphore(settings.decode_concurrency)
        self._decoder = decode_executor(settings.decode_concurrency)  # one torch thread each (app.inference.threads)
        if hasattr(predictor, "observer"):
            predictor.observer = telemetry

    @property
    def ready(self) -> bool:
        """Warmed up, and the model's worker still running (a dead worker makes /readyz say 503)."""
        return self._warm and self.predictor.is_running()

    def begin_drain(self) -> None:
        """Stop saying ready (/readyz 503), so that balancers send no more; requests already here are answered."""
        if not self.draining:
            logger.info("draining: not ready for new requests")
        self.draining = True

    def queue_full(self) -> bool:
        return self.predictor.queue_depth() >= self.settings.queue_size

    async def decode(self, upload: UploadFile, overlay_side: int | None = None) -> PreparedImage:
        """Read the upload and decode + preprocess it in the bounded pool (its bytes are read there too).

        Admission (``app.guards.admission``) has already refused what the headers alone could refuse.
        """
        return await self.run_bounded(_read_and_prepare, upload, self.predictor.info.spec, self.limits, overlay_side)

    async def run_bounded(self, work: Callable[..., T], *args: object) -> T:
        """Run CPU work (decode, preprocess, overlay rendering) in the bounded pool, one slot per call.

        At most ``decode_concurrency`` run at once, each on a thread with one torch thread (app.inference.threads).
        """
        async with self._decode_slots:
            return await asyncio.get_running_loop().run_in_executor(self._decoder, work, *args)

    async def predict(self, prepared: PreparedImage, with_cams: bool, admission: Admission | None = None) -> Inference:
        """The model's answer for one prepared image; while it is queued, the request is out of the backlog."""
        if not self.ready:
            raise NotReadyError()
        if admission is not None:
            admission.leave()
        try:
            result = await self.predictor.infer(prepared.tensor, with_cams)
        finally:
            if admission is not None:
                admission.rejoin()
        self.telemetry.on_scores(result.probs)
        return result

    async def warm_up(self) -> None:
        """One prediction with Grad-CAM through the real queue, then report ready."""
        try:
            if self.settings.warmup:
                size = self.predictor.info.spec.image_size
                await self.predictor.infer(torch.zeros(3, size, size), True)
        except Exception:
            logger.exception("warm-up failed; the service stays not ready")
            return
        self._warm = True
        logger.info("ready")

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self._decoder = decode_executor(self.settings.decode_concurrency)  # fresh per run (threads start lazily)
        await self.predictor.start()
        warm = asyncio.create_task(self.warm_up(), name="chexnet-warmup")
        try:
            yield
        finally:
            self._warm = False
            warm.cancel()
            await asyncio.gather(warm, return_exceptions=True)
            await self.predictor.stop()
            self._decoder.shutdown(wait=False, cancel_futures=True)


def _read_and_prepare(
    upload: UploadFile, spec: PreprocessSpec, limits: DecodeLimits, overlay_side: int | None
) -> PreparedImage:
    """In a pool thread: the spooled upload's bytes (read here, so only pool slots hold them) -> PreparedImage."""
    upload.file.seek(0)
    data = upload.file.read()
    if not data:
        raise InvalidImageError("The uploaded file is empty.")
    return prepare_image(data, spec, limits, overlay_side)
