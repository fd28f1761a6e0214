"""DICOM stage 5, presentation: display values -> [0, 1], MONOCHROME1 inverted, padding at the display minimum.

PS3.3 C.7.6.3.1.2: MONOCHROME1 means the minimum value is displayed white; ``1 - x`` after scaling is the same
as inverting within the VOI output range before it.  A Presentation LUT Shape of INVERSE on such images
describes this same inversion (PS3.3 C.8.11.6.1.2), so it is not applied again.  Padding pixels are shown at
the display minimum (black) whatever the photometric interpretation, after the inversion (PS3.3 C.7.5.1.1.2).
Colour images become ITU-R 601 luma of the stored values over the Bits Stored range.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from models.imaging.errors import InvalidImageError

__all__ = ["colour_to_unit", "display_to_unit"]

_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # as models.preprocessing


def display_to_unit(
    values: npt.NDArray[np.generic],
    display_range: tuple[float, float],
    invert: bool,
    padding: npt.NDArray[np.bool_] | None,
) -> npt.NDArray[np.float64]:
    """Display values (H, W) and their (low, high) range -> (H, W) float64 in [0, 1].

    Values outside the range are clipped (a window clips on purpose); a range of one value gives zeros.
    Raises :class:`InvalidImageError` for values that are not finite.
    """
    floats = np.asarray(values, dtype=np.float64)
    if not np.isfinite(floats).all():
        raise InvalidImageError("The DICOM file could not be decoded.")
    low, high = display_range
    unit = np.clip((floats - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(floats)
    if invert:
        unit = 1.0 - unit
    if padding is not None:
        unit[padding] = 0.0
    return unit


def colour_to_unit(pixels: npt.NDArray[np.generic], bits_stored: int) -> npt.NDArray[np.float64]:
    """(H, W, 3) RGB stored values -> (H, W) luma in [0, 1] over the Bits Stored range."""
    luma: npt.NDArray[np.float64] = pixels.astype(np.float64) @ _LUMA / float(2**bits_stored - 1)
    return luma
