"""Request decoding: upload bytes -> decoded image -> model input (``PreparedImage``); run off the event loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from app.encoding.overlay import overlay_base
from app.settings import Settings
from models.imaging.decoder import DecodeLimits, decode_image
from models.preprocessing import CropGeometry, PreprocessSpec, center_crop_geometry, eval_tensor


@dataclass(frozen=True)
class PreparedImage:
    """An upload ready for the model: its ``tensor`` (3, S, S), crop geometry and, for overlays, an 8-bit base.

    The decoded (H, W) float image itself is not kept: a request waiting for the model holds the tensor and at
    most an ``overlay_side``² byte image, whatever the upload's size.
    """

    format: str
    steps: tuple[str, ...]
    height: int
    width: int
    tensor: torch.Tensor
    geometry: CropGeometry
    overlay: Image.Image | None = None


def decode_limits(settings: Settings) -> DecodeLimits:
    return DecodeLimits(
        min_side=settings.min_side, max_aspect_ratio=settings.max_aspect_ratio, max_pixels=settings.max_pixels
    )


def prepare_image(
    data: bytes, spec: PreprocessSpec, limits: DecodeLimits, overlay_side: int | None = None
) -> PreparedImage:
    """Decode with the shared decoder and build the eval tensor with the checkpoint's own spec.

    With ``overlay_side``, also the overlay's base image (longer side at most ``overlay_side`` pixels).
    """
    decoded = decode_image(data, limits)
    gray = decoded.gray
    height, width = gray.shape
    return PreparedImage(
        format=decoded.format,
        steps=decoded.steps,
        height=height,
        width=width,
        tensor=eval_tensor(spec, gray),
        geometry=center_crop_geometry(spec, height, width),
        overlay=overlay_base(gray, overlay_side) if overlay_side is not None else None,
    )
