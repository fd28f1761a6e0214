"""Lookup tables from a DICOM header (Modality LUT Sequence, VOI LUT Sequence) and their application.

Written here rather than taken from pydicom because pydicom's ``apply_voi`` indexes the table in the LUT's own
dtype (so 8-bit tables wrap inputs >= 256) and reads OW data as one entry per 16-bit word only.  The rules
(PS3.3 C.11.1.1 for the Modality LUT, C.11.2.1.1 for the VOI LUT; the LUT Descriptor is described in both):

* LUT Descriptor = (number of entries, first input value mapped, bits per entry); 0 entries means 65536.
* The first input value mapped is US or SS: a value read as unsigned (>= 32768) means a negative one when the
  LUT's input can be negative (signed stored values; a rescale whose output can be negative).
* Inputs below the first value mapped take the first entry, inputs beyond the table take the last:
  ``index = clip(value - first_mapped, 0, entries - 1)``.
* Entries are 8 or 16 bits.  8-bit entries come packed one per byte (the standard's "8 bits allocated") or,
  from many writers, one per 16-bit word; LUT Data arrives as bytes (OW/OB) or as integers (US).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from models.imaging.errors import InvalidImageError

__all__ = ["Lut", "apply_lut", "read_lut"]

_INVALID = "The DICOM file could not be decoded."


@dataclass(frozen=True)
class Lut:
    """``table`` (entries,) int64 output values; ``first_mapped`` the input value that maps to ``table[0]``."""

    table: npt.NDArray[np.int64]
    first_mapped: int

    @property
    def output_range(self) -> tuple[float, float]:
        """(min, max) of the entries: every input maps to one of them."""
        return float(self.table.min()), float(self.table.max())


def read_lut(item: Dataset, signed_input: bool, little_endian: bool = True) -> Lut:
    """One Modality or VOI LUT Sequence item -> :class:`Lut`; raises :class:`InvalidImageError` if malformed.

    ``signed_input``: whether the LUT's input can be negative, which decides how a first value mapped read as
    unsigned is taken (PS3.3 C.11.1.1.1 / C.11.2.1.1.1).  ``little_endian``: byte order of OW data.
    """
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or "LUTData" not in item or len(descriptor) != 3:
        raise InvalidImageError(_INVALID)
    entries = int(descriptor[0]) & 0xFFFF or 65536
    first_mapped = int(descriptor[1])
    if signed_input and first_mapped >= 32768:
        first_mapped -= 65536
    bits = int(descriptor[2])
    if not 1 <= bits <= 16:
        raise InvalidImageError(_INVALID)
    table = _unpack_entries(item.LUTData, entries, bits, little_endian)
    return Lut(table, first_mapped)


def apply_lut(values: npt.NDArray[Any], lut: Lut) -> npt.NDArray[np.int64]:
    """Integer-valued ``values`` (any shape) -> table outputs, same shape, int64 (PS3.3 C.11.2.1.1)."""
    index = np.clip(values.astype(np.int64) - lut.first_mapped, 0, lut.table.size - 1)
    return lut.table[index]


def _unpack_entries(data: Any, entries: int, bits: int, little_endian: bool) -> npt.NDArray[np.int64]:
    """LUT Data as stored -> (entries,) int64, for every packing the module docstring lists."""
    if isinstance(data, bytes | bytearray):
        byte_order = "<" if little_endian else ">"
        if bits <= 8 and len(data) in (entries, entries + 1):  # one per byte (+ a pad byte to an even length)
            return np.frombuffer(data, dtype=np.uint8, count=entries).astype(np.int64)
        if len(data) == 2 * entries:  # one per 16-bit word (kept whole: a mislabelled bit depth stays visible)
            return np.frombuffer(data, dtype=f"{byte_order}u2").astype(np.int64)
        raise InvalidImageError(_INVALID)
    words = np.atleast_1d(np.asarray(data, dtype=np.int64)) & 0xFFFF  # US values (SS read as negative: mask)
    if words.ndim != 1:
        raise InvalidImageError(_INVALID)
    if words.size == entries:  # one per word
        return words
    if bits <= 8 and words.size == (entries + 1) // 2:  # two per word, first entry in the low byte
        pairs = np.stack([words & 0xFF, words >> 8], axis=1).ravel()
        return pairs[:entries]
    raise InvalidImageError(_INVALID)
