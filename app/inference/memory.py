"""The memory budget: what the service's limits let requests use beyond its idle footprint (README, Reliability)."""

from __future__ import annotations

from app.settings import Settings

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
