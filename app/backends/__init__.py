"""Inference backends behind one small interface: a batch of images in, logits and the norm5 map out.

``torch`` is eager PyTorch, the reference (and the choice on CUDA); ``openvino`` is the compiled CPU backend
(the choice on the CPU).
Grad-CAM (``models.gradcam``) needs only the norm5 map and the head's weights, so it works with either.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Protocol

import torch

from app.backends.cache import resolve_cache_dir
from app.backends.torch_backend import TorchBackend
from app.settings import Settings
from models.network import CheXNet

logger = logging.getLogger(__name__)


class InferenceBackend(Protocol):
    """Runs the network; called from one thread only (the model owner's)."""

    name: str
    device: torch.device
    precision: str

    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) float32 -> logits (N, K) float32, norm5 map (N, 1024, S/32, S/32) float32 (pre-ReLU)."""
        ...


def backend_name(settings: Settings, device: torch.device) -> str:
    """``auto`` means OpenVINO on the CPU (about 2x eager here, probabilities within 2e-7) and torch on CUDA.

    Without the openvino package (a trimmed install) ``auto`` falls back to torch and logs a warning; an explicit
    ``openvino`` still needs the package.
    """
    if settings.backend != "auto":
        return settings.backend
    if device.type != "cpu":
        return "torch"
    if settings.precision == "int8":
        return "openvino"  # int8 is an OpenVINO model; the settings' validator has checked the package
    if importlib.util.find_spec("openvino") is None:
        logger.warning("the openvino package is not installed; CHEXNET_BACKEND=auto uses eager torch on the CPU")
        return "torch"
    return "openvino"


def build_backend(
    settings: Settings, model: CheXNet, device: torch.device, sha256: str, image_size: int
) -> InferenceBackend:
    """The backend the settings ask for, ready to run (exported, compiled and checked when compiled)."""
    name = backend_name(settings, device)
    if name == "torch":
        return TorchBackend(model, device, settings.precision)
    from app.backends.openvino_backend import cache_for, load_int8_backend, load_openvino_backend  # needs openvino

    if settings.precision == "int8":
        if settings.int8_model is None:  # the settings' validator refuses this; kept for direct callers
            raise ValueError("precision int8 needs CHEXNET_INT8_MODEL, a folder made by chexnet quantize")
        return load_int8_backend(model, image_size, settings.int8_model, sha256, settings.intra_op_threads)

    folder = resolve_cache_dir(settings.cache_dir, Path(settings.checkpoint))
    if folder is None:
        logger.warning("no writable cache folder; the OpenVINO export is kept in memory only")
    cache = cache_for(folder, sha256, image_size)
    return load_openvino_backend(model, image_size, settings.precision, settings.intra_op_threads, cache)
