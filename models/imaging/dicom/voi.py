"""DICOM stage 4, the VOI LUT: modality values -> display values and the display range (PS3.3 C.11.2).

One of, in this order (as ``pydicom.pixels.apply_voi_lut(prefer_lut=True)``): the first VOI LUT Sequence item
that holds a table; the first window (Window Center / Width with the VOI LUT Function) when it is usable; else
the "auto window", min-max of the image *without its padding pixels* (PS3.3 C.7.5.1.1.2: padding is described
so that displays leave it out of the dynamic range).  An empty VOI LUT Sequence item counts as absent.
"""

from __future__ import annotations

import logging
from typing import Final

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_windowing

from models.imaging.dicom.lut import apply_lut, read_lut
from models.imaging.dicom.modality import little_endian, modality_output_can_be_negative
from models.imaging.errors import InvalidImageError

__all__ = ["apply_voi", "flatten_functional_groups"]

logger = logging.getLogger(__name__)

# (functional group sequence, attributes it carries) for the first frame of an enhanced image (PS3.3 C.7.6.16)
_FRAME_GROUPS: Final = (
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")),
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
)


def apply_voi(
    values: npt.NDArray[np.generic], ds: Dataset, padding: npt.NDArray[np.bool_] | None
) -> tuple[npt.NDArray[np.generic], tuple[float, float], str]:
    """(display values, (low, high) display range, step name: ``voi_lut``, ``window`` or ``auto_window``).

    ``padding`` (same shape, True = padding) is left out of the auto window's min and max.  Raises
    :class:`InvalidImageError` when every pixel is padding (there is no picture to show).
    """
    sequence = ds.get("VOILUTSequence")
    if sequence is not None and not (sequence and "LUTDescriptor" in sequence[0] and "LUTData" in sequence[0]):
        if sequence:
            logger.warning("DICOM VOI LUT Sequence item is empty; treated as absent")
        del ds.VOILUTSequence
        sequence = None
    if sequence:
        if not np.issubdtype(values.dtype, np.integer):  # LUT inputs are indices (a rescale gives floats)
            values = np.rint(values).astype(np.int64)
        lut = read_lut(sequence[0], modality_output_can_be_negative(ds), little_endian(ds))
        # The LUT's output range is the range of its entries: every input maps to one of them.
        return apply_lut(values, lut), lut.output_range, "voi_lut"
    if "VOILUTFunction" in ds and not str(ds.VOILUTFunction or "").strip():
        del ds.VOILUTFunction  # present but empty: LINEAR, the default (PS3.3 C.11.2.1.3)
    if _usable_window(ds):
        # The window's output range is where it sends -inf and +inf (y_min and y_max; reversed when a rescale
        # slope is negative), computed by pydicom itself so the range always matches the function applied.
        ends = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return apply_windowing(values, ds), (float(ends.min()), float(ends.max())), "window"
    # No VOI data: there is no defined display range.  The Bits Stored range is not one either (raw CR/DX data
    # commonly occupies a small part of it, which would give a dark, flat image unlike the display-windowed
    # 8-bit images the model was trained on), so min-max of the image is used, as viewers do.
    image = np.asarray(values, dtype=np.float64)
    shown = image if padding is None else image[~padding]
    if shown.size == 0:
        raise InvalidImageError("The DICOM image holds only padding (Pixel Padding Value): there is no picture.")
    return values, (float(shown.min()), float(shown.max())), "auto_window"


def flatten_functional_groups(ds: Dataset) -> None:
    """Copy the first frame's window and rescale from an enhanced image's functional groups onto ``ds``.

    Enhanced IODs (Enhanced DX, Enhanced CT, ...) keep Frame VOI LUT and Pixel Value Transformation in the
    Shared or the Per-frame Functional Groups (PS3.3 C.7.6.16.2.10 and .9); the per-frame item wins.  Without
    this a single-frame enhanced image would be min-max scaled, ignoring the window its device chose.
    """
    items = [ds.get(name) for name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")]
    for group in (sequence[0] for sequence in items if sequence):
        for macro, keywords in _FRAME_GROUPS:
            values = group.get(macro)
            if values:
                for keyword in keywords:
                    if keyword in values[0]:
                        setattr(ds, keyword, values[0][keyword].value)


def _usable_window(ds: Dataset) -> bool:
    """Whether the first window is one PS3.3 C.11.2.1.2 allows: numeric, finite, width >= 1 (> 0 for
    LINEAR_EXACT and SIGMOID), and a known VOI LUT Function.

    Some devices write 0 for "not set", or a value that is not a number; viewers then fall back to the image's
    own range, and so do we (the ``auto_window`` step) rather than refuse a picture a viewer shows.
    """
    try:
        center, width = (_first_number(ds.get(k)) for k in ("WindowCenter", "WindowWidth"))
        function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    except (TypeError, ValueError, OverflowError):
        return False
    if center is None or width is None or not (np.isfinite(center) and np.isfinite(width)):
        return False
    return (function == "LINEAR" and width >= 1.0) or (function in ("LINEAR_EXACT", "SIGMOID") and width > 0.0)


def _first_number(value: object) -> float | None:
    """The first value of a (possibly multi-valued) DS element as a float; None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes) or not hasattr(value, "__getitem__"):
        return float(value)  # type: ignore[arg-type]
    return float(value[0]) if len(value) else None  # type: ignore[arg-type]
