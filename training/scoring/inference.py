"""The offline inference step, written once: a checkpoint over a list of files -> probabilities, failures named.

files -> decode (the shared decoder, in DataLoader workers) -> the checkpoint's eval preprocessing (or its ten
crops) -> batch -> model -> sigmoid (the ten crops' probabilities averaged) -> ``probs`` (N, K) for the readable
files, K the checkpoint's labels, in input order; the unreadable files come back as :class:`DecodeFailure` with
the decoder's code and message. ``chexnet evaluate``, ``calibrate`` and ``predict`` all run their models here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from models.checkpoint import Checkpoint
from models.imaging.errors import InputError
from models.preprocessing import PreprocessSpec, eval_tensor, tencrop_tensor
from training.data.dataset import DecodeFailure, UnreadableImageError, collate_readable, load_gray

logger = logging.getLogger(__name__)


# (input positions (B,), probabilities (B, K), failures) of one batch, as soon as it is done
BatchDone = Callable[[np.ndarray, np.ndarray, list[DecodeFailure]], None]


class InferenceOptionsError(ValueError):
    """Inference settings that cannot work with this checkpoint (a usage error, found before any file is read)."""


@dataclass(frozen=True)
class InferenceSettings:
    """How to run the model: ``device``; ``batch_size`` images a forward pass; ``workers`` decoding processes;
    ``tencrop`` averages the ten crops' probabilities; ``autocast`` is the precision hook (a dtype such as
    ``torch.bfloat16`` runs the forward pass under ``torch.autocast``; None keeps float32); ``forward``, when
    given, replaces the eager model: (B, 3, S, S) float32 -> (B, K) probabilities (see
    :func:`training.scoring.precision.probability_fn`, which runs OpenVINO bf16 / int8 as the service does)."""

    device: torch.device
    batch_size: int = 32
    workers: int = 0
    tencrop: bool = False
    autocast: torch.dtype | None = None
    forward: Callable[[torch.Tensor], np.ndarray] | None = None


class InferenceImages(Dataset[tuple[torch.Tensor, int] | DecodeFailure]):
    """Item i -> (input, i): (3, S, S), or (10, 3, S, S) with ``tencrop``; a DecodeFailure if file i is unreadable."""

    def __init__(self, paths: Sequence[Path], spec: PreprocessSpec, tencrop: bool = False) -> None:
        self.paths, self.spec, self.tencrop = list(paths), spec, tencrop

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int] | DecodeFailure:
        path = self.paths[index]
        try:
            gray = load_gray(path)  # the same decoder as training and the service
        except InputError as error:
            return DecodeFailure(index, str(path), error.code, error.message)
        tensor = tencrop_tensor(self.spec, gray) if self.tencrop else eval_tensor(self.spec, gray)
        return tensor, index


@dataclass(frozen=True)
class Inference:
    """``probs`` (N, K) float32 after sigmoid for the readable files, whose input positions are ``indices`` (N,),
    ascending; ``failures`` the unreadable files, in input order."""

    indices: np.ndarray
    probs: np.ndarray
    failures: list[DecodeFailure]


def check_settings(checkpoint: Checkpoint, settings: InferenceSettings) -> None:
    """Raises :class:`InferenceOptionsError` for settings this checkpoint cannot run with."""
    if settings.batch_size < 1:
        raise InferenceOptionsError(f"--batch-size must be >= 1, got {settings.batch_size}")
    if settings.workers < 0:
        raise InferenceOptionsError(f"--workers must be >= 0, got {settings.workers}")
    if settings.tencrop and checkpoint.spec.crop_first:
        raise InferenceOptionsError(
            "--tta tencrop: this model's input is the whole centred square, which has no ten crops"
        )


def infer_probabilities(
    checkpoint: Checkpoint,
    paths: Sequence[Path],
    settings: InferenceSettings,
    stop_at_failure: bool = False,
    description: str = "predict",
    on_batch: BatchDone | None = None,
) -> Inference:
    """Run ``checkpoint``'s model over ``paths`` in batches; see :class:`Inference` for what comes back.

    With ``stop_at_failure`` the first unreadable file raises :class:`UnreadableImageError` (path and reason)
    instead of being collected. ``on_batch``, when given, is called after each batch with the input positions
    (B,) of its readable files, their probabilities (B, K) and its failures, so that a caller can write each
    batch as it comes (``chexnet predict --resume``). Raises :class:`InferenceOptionsError` for unusable settings,
    before any file is read.
    """
    check_settings(checkpoint, settings)
    device = settings.device
    model = settings.forward or _eager_probabilities(checkpoint.build_model().to(device))
    loader = DataLoader(
        InferenceImages(paths, checkpoint.spec, settings.tencrop),
        batch_size=settings.batch_size,
        shuffle=False,
        num_workers=settings.workers,
        pin_memory=device.type == "cuda",
        collate_fn=collate_readable,
    )
    probs = np.zeros((len(paths), len(checkpoint.labels)), dtype=np.float32)
    failures: list[DecodeFailure] = []
    logger.info("running the model on %d files on %s (ten-crop: %s)", len(paths), device, settings.tencrop)
    precision = (
        torch.autocast(device.type, dtype=settings.autocast)
        if settings.autocast is not None
        else contextlib.nullcontext()
    )
    with (
        torch.inference_mode(),
        precision,
        tqdm(total=len(paths), desc=description, unit="img", disable=not sys.stderr.isatty()) as progress,
    ):
        for inputs, indices, failed in loader:
            if failed and stop_at_failure:
                raise UnreadableImageError(failed[0])
            failures.extend(failed)
            progress.update(len(failed))
            if inputs is not None:
                probs[indices.numpy()] = _batch_probabilities(model, inputs.to(device, non_blocking=True), settings)
                progress.update(len(indices))
            if on_batch is not None:
                on_batch(indices.numpy(), probs[indices.numpy()], failed)
    failed_at = {failure.index for failure in failures}
    keep = np.fromiter((i for i in range(len(paths)) if i not in failed_at), dtype=np.int64)
    return Inference(keep, probs[keep], sorted(failures, key=lambda f: f.index))


def _eager_probabilities(model: torch.nn.Module) -> Callable[[torch.Tensor], np.ndarray]:
    def run(x: torch.Tensor) -> np.ndarray:
        result: np.ndarray = torch.sigmoid(model(x).float()).cpu().numpy()
        return result

    return run


def _batch_probabilities(
    forward: Callable[[torch.Tensor], np.ndarray], x: torch.Tensor, settings: InferenceSettings
) -> np.ndarray:
    """(B, K) probabilities for a batch (B, 3, S, S), or (B, 10, 3, S, S) averaged over the ten crops."""
    if settings.tencrop:
        batch, crops = x.shape[:2]
        averaged: np.ndarray = np.asarray(forward(x.flatten(0, 1))).reshape(batch, crops, -1).mean(axis=1)
        return averaged
    return np.asarray(forward(x))
