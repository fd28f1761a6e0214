"""Per-request steps around the predictor: bytes -> decoded image -> model input; never on the event loop."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from app.encoding.overlay import overlay_base
from app.settings import Settings
from models.imaging.decoder import DecodeLimits, decode_image
from models.preprocessing import CropGeometry, PreprocessSpec, center_crop_geometry, eval_tensor

MIB = 1024 * 1024
# Peak memory of one decode + preprocess + overlay base, per pixel of the upload: 28 bytes measured for a 16-bit
# DICOM (20 for a 16-bit PNG, 26 for RGB, 10 for 8-bit) by `python -m benchmarks.request_memory`; rounded up.
DECODE_BYTES_PER_PIXEL = 32
# What an admitted request holds outside a decode: up to 1 MiB of spooled body in memory (Starlette spools the
# rest to disk), the model input, and the 8-bit overlay base (1 MiB at 1024 px).
HELD_BYTES_PER_REQUEST = 3 * MIB
# Activations of one forward pass, per input pixel per image: 570 bytes measured for eager DenseNet-121 at
# 224 px, batch 16 (437 MiB); rounded up.
FORWARD_BYTES_PER_PIXEL = 600


def memory_bound_bytes(settings: Settings, image_size: int = 224) -> int:
    """Memory the service can use for requests beyond its idle footprint, in bytes (README, Reliability).

    = decode_concurrency x (max_upload_bytes + DECODE_BYTES_PER_PIXEL x max_pixels)   decodes and renders
    + (queue_size + upload_backlog) x HELD_BYTES_PER_REQUEST                         requests waiting
    + max_batch_size x image_size² x FORWARD_BYTES_PER_PIXEL                          one forward pass
    """
    decoding = settings.decode_concurrency * (settings.max_upload_bytes + DECODE_BYTES_PER_PIXEL * settings.max_pixels)
    waiting = (settings.queue_size + settings.upload_backlog) * HELD_BYTES_PER_REQUEST
    forward = settings.max_batch_size * image_size * image_size * FORWARD_BYTES_PER_PIXEL
    return decoding + waiting + forward


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
