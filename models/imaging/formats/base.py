"""The interface every input format provides (after MONAI's ``ImageReader``): sniff, probe, decode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from models.imaging.decoded import DecodedImage, DecodeLimits, ImageHeader

__all__ = ["ImageFormat"]


@dataclass(frozen=True)
class ImageFormat:
    """One input format.

    ``name``: what :func:`~models.imaging.decoder.sniff_format` returns and ``ImageHeader.format`` holds.
    ``sniff(head)``: whether the file's first bytes (at most ``SNIFF_BYTES``, maybe fewer) are this format.
    ``probe(stream, limits)``: the header alone -> :class:`ImageHeader`, limits checked, pixels not decoded.
    ``decode(data, limits)``: the whole file -> :class:`DecodedImage`.
    ``probe`` and ``decode`` raise :class:`~models.imaging.errors.InputError` subclasses only.
    """

    name: str
    sniff: Callable[[bytes], bool]
    probe: Callable[[BinaryIO, DecodeLimits], ImageHeader]
    decode: Callable[[bytes, DecodeLimits], DecodedImage]
