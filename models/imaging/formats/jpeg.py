"""JPEG (ITU T.81, 8 bits per sample; MPO's primary picture), through Pillow after a strict libjpeg-turbo pass."""

from __future__ import annotations

from typing import BinaryIO, Final

from models.imaging.decoded import DecodedImage, DecodeLimits, ImageHeader
from models.imaging.formats.base import ImageFormat
from models.imaging.raster import decode_raster, read_raster_header

__all__ = ["FORMAT", "JPEG_MAGIC"]

JPEG_MAGIC: Final = b"\xff\xd8\xff"  # SOI and the first marker's 0xFF


def _probe(stream: BinaryIO, limits: DecodeLimits) -> ImageHeader:
    return ImageHeader("jpeg", *read_raster_header(stream, "jpeg", limits))


def _decode(data: bytes, limits: DecodeLimits) -> DecodedImage:
    return decode_raster(data, "jpeg", limits)


FORMAT = ImageFormat("jpeg", lambda head: head.startswith(JPEG_MAGIC), _probe, _decode)
