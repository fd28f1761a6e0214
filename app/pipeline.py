"""Per-request steps around the predictor: bytes -> decoded image -> model input; never on the event loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from app.settings import Settings
from models.imaging import DecodeLimits, decode_image
from models.preprocessing import CropGeometry, PreprocessSpec, center_crop_geometry, eval_tensor


@dataclass(frozen=True)
class PreparedImage:
    """An upload ready for the model: ``gray`` (H, W) in [0, 1], its ``tensor`` (3, S, S) and crop geometry."""

    format: str
    steps: tuple[str, ...]
    gray: npt.NDArray[np.float32]
    tensor: torch.Tensor
    geometry: CropGeometry


def decode_limits(settings: Settings) -> DecodeLimits:
    return DecodeLimits(
        min_side=settings.min_side, max_aspect_ratio=settings.max_aspect_ratio, max_pixels=settings.max_pixels
    )


def prepare_image(data: bytes, spec: PreprocessSpec, limits: DecodeLimits) -> PreparedImage:
    """Decode with the shared decoder, and build the eval tensor with the checkpoint's own spec."""
    decoded = decode_image(data, limits)
    gray = decoded.gray
    return PreparedImage(
        decoded.format, decoded.steps, gray, eval_tensor(spec, gray), center_crop_geometry(spec, *gray.shape)
    )
