"""Pixel Padding Value (0028,0120) and Pixel Padding Range Limit (0028,0121): which pixels are not image.

PS3.3 C.7.5.1.1.2: padding marks pixels outside the acquired image (the border of a rotated or collimated
detector) "so that they can be excluded from the dynamic range" a display computes; with a Range Limit, every
stored value between the two (inclusive, in either order) is padding.  Both are compared with *stored* values,
before the Modality LUT.  Their VR is US or SS as Pixel Representation says; a value read as unsigned is taken
as negative when the data are signed.
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

__all__ = ["padding_mask"]

logger = logging.getLogger(__name__)


def padding_mask(stored: npt.NDArray[np.generic], ds: Dataset) -> npt.NDArray[np.bool_] | None:
    """(rows, columns) bool, True where the stored value is padding; None when the file declares no padding.

    A Range Limit without a Pixel Padding Value means nothing (PS3.3 C.7.5.1.1.2 requires the value) and is
    ignored, as is a value that is not an integer (with a warning that quotes nothing from the file).
    """
    value = _stored_number(ds, "PixelPaddingValue")
    if value is None:
        return None
    limit = _stored_number(ds, "PixelPaddingRangeLimit")
    low, high = (value, value) if limit is None else (min(value, limit), max(value, limit))
    values = np.asarray(stored)
    mask: npt.NDArray[np.bool_] = (values >= low) & (values <= high)
    return mask if mask.any() else None


def _stored_number(ds: Dataset, keyword: str) -> int | None:
    """A US-or-SS attribute as an int in the stored values' own range; None when absent or unusable."""
    raw = ds.get(keyword)
    if raw in (None, "", b""):
        return None
    if isinstance(raw, bytes):  # implicit VR read without the dictionary's choice: two bytes, little endian
        if len(raw) != 2:
            logger.warning("DICOM %s is not a 16-bit value; ignored", keyword)
            return None
        raw = int.from_bytes(raw, "little")
    try:
        value = int(raw if isinstance(raw, int) else raw[0])  # a multi-valued element: its first value
    except (TypeError, ValueError, IndexError):
        logger.warning("DICOM %s is not an integer; ignored", keyword)
        return None
    if int(ds.get("PixelRepresentation") or 0) == 1 and value >= 1 << 15:
        value -= 1 << 16  # an SS value read as US
    return value
