"""PNG (ISO/IEC 15948), through Pillow; unused ancillary chunks dropped first (:mod:`models.imaging.png_chunks`)."""

from __future__ import annotations

from typing import BinaryIO

from models.imaging.decoded import DecodedImage, DecodeLimits, ImageHeader
from models.imaging.formats.base import ImageFormat
from models.imaging.png_chunks import PNG_SIGNATURE
from models.imaging.raster import decode_raster, read_raster_header

__all__ = ["FORMAT"]


def _probe(stream: BinaryIO, limits: DecodeLimits) -> ImageHeader:
    return ImageHeader("png", *read_raster_header(stream, "png", limits))


def _decode(data: bytes, limits: DecodeLimits) -> DecodedImage:
    return decode_raster(data, "png", limits)


FORMAT = ImageFormat("png", lambda head: head.startswith(PNG_SIGNATURE), _probe, _decode)
