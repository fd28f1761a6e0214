"""Inputs built in the test: DICOM files with any pixel description, and PNG files with chosen chunks."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from tests.models.imaging.test_dicom import PATIENT_ID, PATIENT_NAME


def dicom_cells(
    cells: npt.NDArray[Any],
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int = 12,
    high_bit: int | None = None,
    signed: bool = False,
    **attributes: Any,
) -> bytes:
    """An Explicit VR Little Endian DICOM file whose Pixel Data holds ``cells`` (rows, columns) as written.

    ``cells`` are the whole cells (the caller places the sample at High Bit); negative values are written in
    two's complement of ``bits_allocated`` bits.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = PATIENT_NAME, PATIENT_ID, "DX"
    ds.Rows, ds.Columns = cells.shape
    ds.PhotometricInterpretation, ds.SamplesPerPixel = photometric, 1
    ds.BitsAllocated, ds.BitsStored = bits_allocated, bits_stored
    ds.HighBit = bits_stored - 1 if high_bit is None else high_bit
    ds.PixelRepresentation = int(signed)
    mask = (1 << bits_allocated) - 1
    ds.PixelData = (np.asarray(cells, dtype=np.int64) & mask).astype(f"<u{bits_allocated // 8}").tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def png_bytes(gray: npt.NDArray[np.uint8]) -> bytes:
    """An 8-bit grayscale PNG of ``gray``."""
    buffer = BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk: length, type, data and CRC-32 (the right one unless ``crc`` is given)."""
    right = zlib.crc32(kind + body)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", right if crc is None else crc)


def png_with_chunk(png: bytes, chunk: bytes, before: bytes = b"IDAT") -> bytes:
    """``png`` with ``chunk`` inserted before its first chunk of type ``before`` (IDAT or IEND)."""
    at = png.index(before) - 4
    return png[:at] + chunk + png[at:]


def png_chunks(png: bytes) -> list[tuple[bytes, int]]:
    """(type, offset of the length field) of every chunk, in order."""
    chunks, offset = [], 8
    while offset + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[offset : offset + 8])
        chunks.append((kind, offset))
        offset += 12 + length
    return chunks


def with_bad_crc(png: bytes, kind: bytes) -> bytes:
    """``png`` with the CRC of its first ``kind`` chunk flipped."""
    offset = dict(png_chunks(png)[::-1])[kind]
    (length,) = struct.unpack(">I", png[offset : offset + 4])
    end = offset + 8 + length
    return png[:end] + bytes(b ^ 0xFF for b in png[end : end + 4]) + png[end + 4 :]
