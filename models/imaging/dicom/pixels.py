"""DICOM stage 2, stored values: the one frame's cells decoded (natively or by a codec), then High Bit honoured.

PS3.5 8.1.1: a sample of Bits Stored bits sits in bits ``High Bit - Bits Stored + 1 .. High Bit`` of its cell of
Bits Allocated bits; the bits around it may hold anything (overlays, in old ACR-NEMA files).  Pixel
Representation 1 means the sample is two's complement within its Bits Stored bits (PS3.3 C.7.6.3.1.1).
pydicom takes the sample from the low bits of the cell (it assumes High Bit = Bits Stored - 1), so when High Bit
says otherwise the cells are read whole here and the sample shifted down, for native and codec-decoded data
alike.
"""

from __future__ import annotations

import copy
from typing import Final

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from models.imaging.dicom.codecs import NATIVE, decode_pixels
from models.imaging.errors import InvalidImageError

__all__ = ["high_bit_shift", "read_stored_values"]

_CELL_DTYPES: Final = {8: "u1", 16: "u2", 32: "u4"}


def high_bit_shift(ds: Dataset) -> int:
    """How far the sample lies above bit 0 of its cell: High Bit - (Bits Stored - 1); 0 when High Bit is absent."""
    high_bit = ds.get("HighBit")
    if high_bit in (None, ""):
        return 0
    return int(high_bit) - (int(ds.BitsStored) - 1)


def read_stored_values(ds: Dataset) -> npt.NDArray[np.generic]:
    """The frame's stored values: (rows, columns) int64 for grayscale, or pydicom's (rows, columns, 3) for colour.

    Call ``check_header`` and ``check_codestream_size`` first.  Raises :class:`InvalidImageError` when the pixel
    data is shorter than Rows x Columns cells.
    """
    shift = high_bit_shift(ds)
    if int(ds.get("SamplesPerPixel") or 1) != 1 or shift == 0:
        return decode_pixels(ds)
    cells = _native_cells(ds) if ds.file_meta.TransferSyntaxUID in NATIVE else _codec_cells(ds)
    return _samples_from_cells(cells, shift, int(ds.BitsStored), int(ds.get("PixelRepresentation") or 0) == 1)


def _native_cells(ds: Dataset) -> npt.NDArray[np.int64]:
    """Uncompressed cells, whole, as unsigned integers (Bits Allocated 8, 16 or 32; 1 cannot have a shift)."""
    rows, columns, allocated = int(ds.Rows), int(ds.Columns), int(ds.BitsAllocated)
    order = ">" if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.2" else "<"  # Explicit VR Big Endian
    dtype = np.dtype(order + _CELL_DTYPES[allocated])
    data = bytes(ds.PixelData)
    if len(data) < rows * columns * dtype.itemsize:
        raise InvalidImageError("The DICOM pixel data is shorter than its rows and columns need.")
    return np.frombuffer(data, dtype=dtype, count=rows * columns).reshape(rows, columns).astype(np.int64)


def _codec_cells(ds: Dataset) -> npt.NDArray[np.int64]:
    """Codec-decoded cells, whole: the codec is asked for High Bit + 1 unsigned bits, so nothing is masked away."""
    whole = copy.copy(ds)  # a shallow copy: the pixel data is shared, only the description changes
    whole.BitsStored = int(ds.HighBit) + 1
    whole.PixelRepresentation = 0
    return np.asarray(decode_pixels(whole)).astype(np.int64)


def _samples_from_cells(
    cells: npt.NDArray[np.int64], shift: int, bits_stored: int, signed: bool
) -> npt.NDArray[np.int64]:
    """``bits_stored`` bits from bit ``shift`` of each cell; sign-extended when ``signed``."""
    samples = (cells >> shift) & ((1 << bits_stored) - 1)
    if signed:
        sign = 1 << (bits_stored - 1)
        samples = (samples ^ sign) - sign
    return samples
