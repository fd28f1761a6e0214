"""DICOM stage 3, the Modality LUT: stored values -> modality values (PS3.3 C.11.1).

Either a Modality LUT Sequence (its input is the stored value) or the rescale ``slope * stored + intercept``
(PS3.3 C.11.1.1.2), never both: the LUT wins.  What we do with values a writer got wrong, as DCMTK does (it warns
and ignores each of these):

* an empty Modality LUT Sequence item (no LUT Descriptor or LUT Data) is absent;
* a Rescale Slope or Intercept that is empty, not a number, or not finite makes the rescale absent (slope 1,
  intercept 0: the pair is defined together), and so does a Rescale Slope of 0, which would collapse every
  pixel to one value.

Each is logged as a warning that names the attribute and never its value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian

from models.imaging.dicom.lut import apply_lut, read_lut

__all__ = [
    "Rescale",
    "apply_modality_lut",
    "little_endian",
    "modality_output_can_be_negative",
    "normalise_modality_attributes",
    "read_rescale",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rescale:
    """``slope`` and ``intercept`` after unusable values were dropped; ``present`` when either was usable."""

    slope: float = 1.0
    intercept: float = 0.0
    present: bool = False


def read_rescale(ds: Dataset) -> Rescale:
    """Rescale Slope (0028,1053) and Intercept (0028,1052) as a pair: absent as a whole when either one is present
    but unusable (with a warning), since PS3.3 C.11.1 defines them together; an absent one takes its default.
    """
    present = [keyword for keyword in ("RescaleSlope", "RescaleIntercept") if keyword in ds]
    slope = _usable_number(ds, "RescaleSlope", zero_allowed=False)
    intercept = _usable_number(ds, "RescaleIntercept", zero_allowed=True)
    usable = [
        keyword for keyword, number in (("RescaleSlope", slope), ("RescaleIntercept", intercept)) if number is not None
    ]
    if not present or usable != present:
        return Rescale()
    return Rescale(1.0 if slope is None else slope, 0.0 if intercept is None else intercept, present=True)


def _usable_number(ds: Dataset, keyword: str, zero_allowed: bool) -> float | None:
    if keyword not in ds:
        return None
    raw: Any = ds[keyword].value
    try:
        if raw is None or (isinstance(raw, str | bytes) and not raw.strip()):
            raise ValueError("empty")
        number = float(raw[0] if not isinstance(raw, str | bytes) and hasattr(raw, "__getitem__") else raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        logger.warning("DICOM %s is empty or not a number; treated as absent", keyword)
        return None
    if not np.isfinite(number) or (number == 0.0 and not zero_allowed):
        logger.warning("DICOM %s is zero or not finite; treated as absent", keyword)
        return None
    return number


def normalise_modality_attributes(ds: Dataset) -> None:
    """Drop what counts as absent from ``ds`` in place: an empty Modality LUT Sequence item, unusable rescale values.

    Afterwards Rescale Slope and Intercept are both present (and usable) or both absent, as PS3.3 C.11.1 has
    them, so that every later step (and pydicom's windowing, which reads them for its output range) sees one
    consistent description.
    """
    sequence = ds.get("ModalityLUTSequence")
    if sequence is not None and not (sequence and "LUTDescriptor" in sequence[0] and "LUTData" in sequence[0]):
        if sequence:
            logger.warning("DICOM Modality LUT Sequence item is empty; treated as absent")
        del ds.ModalityLUTSequence
    rescale = read_rescale(ds)
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        if keyword in ds and not rescale.present:
            del ds[keyword]
    if rescale.present:  # both usable, or one usable and the other absent: that one takes its default
        ds.RescaleSlope = ds.get("RescaleSlope", "1")
        ds.RescaleIntercept = ds.get("RescaleIntercept", "0")


def modality_lut_item(ds: Dataset) -> Dataset | None:
    """The first Modality LUT Sequence item (call :func:`normalise_modality_attributes` first)."""
    sequence = ds.get("ModalityLUTSequence")
    return sequence[0] if sequence else None


def apply_modality_lut(stored: npt.NDArray[np.generic], ds: Dataset) -> tuple[npt.NDArray[np.generic], bool]:
    """Stored values -> modality values (same shape), and whether a LUT or rescale was applied.

    A rescale that is the identity is not applied (the values stay integers, so a VOI LUT indexes them as is).
    """
    item = modality_lut_item(ds)
    if item is not None:
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        return apply_lut(stored, read_lut(item, signed, little_endian(ds))), True
    rescale = read_rescale(ds)
    if not rescale.present:
        return stored, False
    if rescale.slope == 1.0 and rescale.intercept == 0.0:
        return stored, True
    return stored.astype(np.float64) * rescale.slope + rescale.intercept, True


def modality_output_can_be_negative(ds: Dataset) -> bool:
    """Whether the Modality LUT step's output range includes negative values (decides US-or-SS LUT readings).

    Stored values are signed when Pixel Representation is 1 (PS3.3 C.7.6.3.1); a rescale (PS3.3 C.11.1.1.2)
    maps the stored range linearly.  A Modality LUT Sequence outputs its (unsigned) entries.
    """
    if modality_lut_item(ds) is not None:
        return False
    bits = int(ds.get("BitsStored") or 16)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    rescale = read_rescale(ds)
    return bool(min(low * rescale.slope + rescale.intercept, high * rescale.slope + rescale.intercept) < 0)


def little_endian(ds: Dataset) -> bool:
    """Byte order of OW values in ``ds`` (only Explicit VR Big Endian, retired, is big endian)."""
    return bool(ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian)
