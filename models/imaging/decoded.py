"""What every decoder promises: the limits it enforces before decoding pixels, and what it returns.

A format (``models.imaging.formats``: PNG and JPEG through ``models.imaging.raster``, DICOM through
``models.imaging.dicom``, all reached through ``models.imaging.decoder.decode_image``) turns file bytes into a
:class:`DecodedImage`: one (H, W) float32 image in [0, 1] and the names of the steps that made it.  Limits are
checked from the header, before any pixel data is decoded, so a small file that claims a huge image costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from models.imaging.errors import AspectRatioError, DecompressionBombError, ImageTooSmallError, InvalidImageError

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeLimits",
    "DecodedImage",
    "ImageHeader",
    "check_dimensions",
    "too_many_pixels",
]


@dataclass(frozen=True)
class DecodeLimits:
    """What an image file must satisfy; checked from the header before pixels are decoded.

    ``min_side`` and ``max_pixels`` are in pixels; ``max_aspect_ratio`` is longer side / shorter side.
    """

    min_side: int = 64
    max_aspect_ratio: float = 4.0
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.min_side < 1 or self.max_pixels < 1 or self.max_aspect_ratio < 1.0:
            raise ValueError("need min_side >= 1, max_pixels >= 1 and max_aspect_ratio >= 1")


DEFAULT_LIMITS: Final = DecodeLimits()


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read without decoding pixels: ``format`` ("png", "jpeg", "dicom"), size in px."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class DecodedImage:
    """``gray`` (H, W) float32 in [0, 1]; ``format`` as sniffed; ``steps`` applied, in order.

    Step names: ``exif_orientation``, ``mpo_primary_image``, ``sbit_<n>`` (16-bit PNG scaled by 2**n - 1),
    ``luma`` (colour reduced to ITU-R 601 luma), and for DICOM ``decompress``, ``high_bit_shift`` (the sample
    taken from above bit 0 of its cell), ``modality_lut``, ``voi_lut``, ``window``, ``auto_window`` (min-max of
    the non-padding pixels, no VOI data), ``monochrome1_inversion``, ``pixel_padding`` (padding shown black).
    """

    gray: npt.NDArray[np.float32]
    format: str
    steps: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return int(self.gray.shape[0])

    @property
    def width(self) -> int:
        return int(self.gray.shape[1])


def too_many_pixels(limits: DecodeLimits) -> DecompressionBombError:
    """The error for an image over the pixel cap (ours, or a decoder's own bomb guard, which lies above it)."""
    return DecompressionBombError(f"The image has too many pixels (at most {limits.max_pixels} are accepted).")


def check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    """Pixel cap, then minimum side, then aspect ratio (all invariant under 90° rotation).

    Raises :class:`InvalidImageError`, :class:`DecompressionBombError`, :class:`ImageTooSmallError` or
    :class:`AspectRatioError`.
    """
    if width < 1 or height < 1:
        raise InvalidImageError("The image has no pixels.")
    if width * height > limits.max_pixels:
        raise too_many_pixels(limits)
    short, long = min(width, height), max(width, height)
    if short < limits.min_side:
        raise ImageTooSmallError(f"The image is too small: both sides must be at least {limits.min_side} pixels.")
    if long / short > limits.max_aspect_ratio:
        raise AspectRatioError(
            f"The image is too elongated: the longer side may be at most {limits.max_aspect_ratio:g} times "
            "the shorter side."
        )
