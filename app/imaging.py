"""Uploaded bytes (PNG, JPEG or DICOM) -> the shared (H, W) float32 image in [0, 1].

The format is judged by magic bytes only (never by file name or content type).  Every size limit is checked
from the header before any pixel data is decoded, so a small file that claims a huge image costs nothing.
Failures raise the domain errors of :mod:`app.input_errors` with fixed messages.

Thread safety: requests are decoded concurrently in threads, so nothing here touches process-wide state.
In particular ``Image.MAX_IMAGE_PIXELS`` is only read, never set, and ``warnings.catch_warnings`` is not used
(on Python 3.11 it swaps the global filter list and is documented as not thread-safe); instead of promoting
Pillow's ``DecompressionBombWarning`` to an error we apply the very threshold that triggers it ourselves, from
the header, before ``load()``.  Pillow's ``DecompressionBombError`` (raised by ``Image.open`` at twice that
threshold) is mapped to :class:`DecompressionBombError`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from io import BytesIO
from typing import Final

import numpy as np
import numpy.typing as npt
from PIL import Image

from app.input_errors import (
    AspectRatioError,
    DecompressionBombError,
    ImageTooSmallError,
    InputError,
    InvalidImageError,
    MultiFrameError,
    UnsupportedFormatError,
)
from models.preprocessing import image_to_gray

__all__ = ["DEFAULT_LIMITS", "DecodeLimits", "check_dimensions", "decode_image", "sniff_format"]

logger = logging.getLogger(__name__)

PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC: Final = b"\xff\xd8\xff"
DICOM_MAGIC: Final = b"DICM"
DICOM_MAGIC_OFFSET: Final = 128  # after the 128-byte preamble (PS3.10 §7.1)
_PILLOW_FORMATS: Final = {"png": "PNG", "jpeg": "JPEG"}


@dataclass(frozen=True)
class DecodeLimits:
    """What an upload must satisfy; checked from the header before pixels are decoded."""

    min_side: int = 64
    max_aspect_ratio: float = 4.0
    max_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.min_side < 1 or self.max_pixels < 1 or self.max_aspect_ratio < 1.0:
            raise ValueError("need min_side >= 1, max_pixels >= 1 and max_aspect_ratio >= 1")


DEFAULT_LIMITS: Final = DecodeLimits()


def sniff_format(data: bytes) -> str:
    """``"png"``, ``"jpeg"`` or ``"dicom"`` from the magic bytes.

    DICOM is recognised only with its preamble ("DICM" at offset 128).  Preamble-less DICOM streams have no
    magic number; accepting them would mean guessing from the first tag and reading with ``force=True``,
    which makes pydicom parse arbitrary bytes, so they are rejected as unsupported.
    """
    if not data:
        raise InvalidImageError("The uploaded file is empty.")
    if data.startswith(PNG_MAGIC):
        return "png"
    if data.startswith(JPEG_MAGIC):
        return "jpeg"
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC:
        return "dicom"
    raise UnsupportedFormatError()


def check_dimensions(width: int, height: int, limits: DecodeLimits) -> None:
    """Pixel cap, then minimum side, then aspect ratio.  All three are invariant under 90° rotation."""
    if width < 1 or height < 1:
        raise InvalidImageError("The image has no pixels.")
    if width * height > limits.max_pixels:
        raise DecompressionBombError(f"The image has too many pixels (at most {limits.max_pixels} are accepted).")
    short, long = min(width, height), max(width, height)
    if short < limits.min_side:
        raise ImageTooSmallError(f"The image is too small: both sides must be at least {limits.min_side} pixels.")
    if long / short > limits.max_aspect_ratio:
        raise AspectRatioError(
            f"The image is too elongated: the longer side may be at most {limits.max_aspect_ratio:g} times "
            "the shorter side."
        )


def decode_image(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> npt.NDArray[np.float32]:
    """Upload bytes -> (H, W) float32 in [0, 1], EXIF orientation applied; raises :class:`InputError`."""
    fmt = sniff_format(data)
    if fmt == "dicom":
        from app.dicom import decode_dicom  # lazy: pydicom is heavy and app.dicom imports this module

        return decode_dicom(data, limits)
    try:
        return _decode_raster(data, _PILLOW_FORMATS[fmt], limits)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError() from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib.error, ...
        logger.info("%s upload could not be decoded (%s)", fmt, type(exc).__name__)
        raise InvalidImageError() from exc


def _decode_raster(data: bytes, pillow_format: str, limits: DecodeLimits) -> npt.NDArray[np.float32]:
    # formats=[...] keeps Pillow from trying any other plugin on the bytes; open() parses only the header.
    with Image.open(BytesIO(data), formats=[pillow_format]) as image:
        if getattr(image, "n_frames", 1) > 1:  # APNG (acTL chunk), MPO, ...
            raise MultiFrameError()
        width, height = image.size
        pillow_cap = Image.MAX_IMAGE_PIXELS  # read, never written: see the module docstring
        if pillow_cap is not None and width * height > pillow_cap:
            raise DecompressionBombError()
        check_dimensions(width, height, limits)
        image.load()  # truncated data raises OSError here (LOAD_TRUNCATED_IMAGES is left False)
        gray = np.asarray(image_to_gray(image), dtype=np.float32)
    if gray.ndim != 2:
        raise InvalidImageError()
    check_dimensions(gray.shape[1], gray.shape[0], limits)  # the oriented image (same verdict, by invariance)
    return gray
