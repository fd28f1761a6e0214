"""Transfer syntaxes: which decoder reads each one, the names of those we refuse, and the codestream size check.

Each compressed transfer syntax is decoded by one pinned pydicom plugin, so a file gives the same pixels on
every machine whatever else is installed (a lossy codestream can decode differently, by one or two grey
levels, in another library).  The choice was measured on a 1024 x 1024 12-bit frame
(``benchmarks/dicom_decoders.py``; figures in the commit that added the decoders):

==========================  ===================  =============================================================
transfer syntax             decoder              why
==========================  ===================  =============================================================
JPEG baseline (.50)         Pillow               already a dependency; 3.5 ms (GDCM 12.9 ms)
JPEG extended (.51)         Pillow / GDCM        Pillow for 8 bits; 12 bits through GDCM directly (pydicom's
                                                 GDCM plugin refuses 12-bit .51 although GDCM decodes it)
JPEG lossless (.57, .70)    GDCM                 the only non-GPL decoder: 22.6 ms (pylibjpeg-libjpeg,
                                                 GPL-3.0, 36.4 ms)
JPEG-LS (.80, .81)          pyjpegls (CharLS)    19.8 ms (GDCM 30.3 ms, and GDCM misreads 6- and 7-bit data)
JPEG 2000 (.90, .91)        pylibjpeg-openjpeg   105 ms (GDCM 118 ms); also reads HTJ2K (.201, .202, .203)
RLE (.5)                    pydicom              no extra package; 29.6 ms
==========================  ===================  =============================================================
"""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt
from pydicom import uid
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder

from models.imaging.decoded import DEFAULT_LIMITS
from models.imaging.errors import InvalidImageError, UnsupportedCompressionError
from models.imaging.jpeg_header import read_jpeg_frame
from models.imaging.raster import check_jpeg_data

__all__ = ["check_codestream_size", "check_transfer_syntax", "decode_pixels"]

_INVALID = "The DICOM file could not be decoded."
NATIVE: Final = frozenset({uid.ImplicitVRLittleEndian, uid.ExplicitVRLittleEndian, uid.ExplicitVRBigEndian})
_JPEG: Final = frozenset(
    {uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1}
    | {uid.JPEGLSLossless, uid.JPEGLSNearLossless}
)
_J2K: Final = frozenset({uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K})
# transfer syntax -> pydicom decoding plugin
PLUGINS: Final[dict[str, str]] = {
    uid.JPEGBaseline8Bit: "pillow",
    uid.JPEGExtended12Bit: "pillow",  # 8-bit only; 12-bit goes to _decode_gdcm_12bit
    uid.JPEGLossless: "gdcm",
    uid.JPEGLosslessSV1: "gdcm",
    uid.JPEGLSLossless: "pyjpegls",
    uid.JPEGLSNearLossless: "pyjpegls",
    uid.JPEG2000Lossless: "pylibjpeg",
    uid.JPEG2000: "pylibjpeg",
    uid.HTJ2KLossless: "pylibjpeg",
    uid.HTJ2KLosslessRPCL: "pylibjpeg",
    uid.HTJ2K: "pylibjpeg",
    uid.RLELossless: "pydicom",
}
_RETIRED_JPEG: Final = "a retired JPEG process"
# Names shown to a person when a transfer syntax cannot be decoded (PS3.6 Annex A).  Anything not listed is
# "an unknown compression": the UID itself is never shown.
NAMES: Final[dict[str, str]] = {
    uid.JPEGBaseline8Bit: "JPEG baseline",
    uid.JPEGExtended12Bit: "JPEG extended",
    uid.JPEGLossless: "JPEG lossless",
    uid.JPEGLosslessSV1: "JPEG lossless",
    uid.JPEGLSLossless: "JPEG-LS",
    uid.JPEGLSNearLossless: "JPEG-LS",
    uid.JPEG2000Lossless: "JPEG 2000",
    uid.JPEG2000: "JPEG 2000",
    uid.HTJ2KLossless: "HTJ2K",
    uid.HTJ2KLosslessRPCL: "HTJ2K",
    uid.HTJ2K: "HTJ2K",
    uid.RLELossless: "RLE",
    **{f"1.2.840.10008.1.2.4.{n}": _RETIRED_JPEG for n in (*range(52, 57), *range(58, 67))},
    "1.2.840.10008.1.2.4.92": "JPEG 2000 Part 2 (multi-component)",
    "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2 (multi-component)",
    "1.2.840.10008.1.2.4.94": "JPIP (referenced pixel data)",
    "1.2.840.10008.1.2.4.95": "JPIP (referenced pixel data)",
    "1.2.840.10008.1.2.4.204": "JPIP (referenced pixel data)",
    "1.2.840.10008.1.2.4.205": "JPIP (referenced pixel data)",
    **{f"1.2.840.10008.1.2.4.{n}": "MPEG-2 video" for n in (100, 101)},
    **{f"1.2.840.10008.1.2.4.{n}": "MPEG-4 AVC/H.264 video" for n in range(102, 107)},
    **{f"1.2.840.10008.1.2.4.{n}": "HEVC/H.265 video" for n in (107, 108)},
    **{f"1.2.840.10008.1.2.4.{n}": "JPEG XL" for n in (110, 111, 112)},
    "1.2.840.10008.1.2.1.98": "encapsulated uncompressed",
    **{f"1.2.840.10008.1.2.7.{n}": "SMPTE ST 2110 video" for n in (1, 2, 3)},
}


def check_transfer_syntax(transfer_syntax: str) -> None:
    """Raise :class:`UnsupportedCompressionError`, naming the compression, unless this syntax can be decoded.

    Native syntaxes always can; a compressed one when its pinned plugin is installed.  (Deflate is refused
    earlier, before the dataset is read.)
    """
    if transfer_syntax in NATIVE:
        return
    plugin = PLUGINS.get(transfer_syntax)
    if plugin is not None and plugin in get_decoder(transfer_syntax).available_plugins:
        return
    name = NAMES.get(transfer_syntax, "an unknown compression")
    raise UnsupportedCompressionError(f"The DICOM file uses {name}, which no installed decoder can read.")


def decode_pixels(ds: Dataset) -> npt.NDArray[np.generic]:
    """The one frame of ``ds`` as stored values: (rows, columns) or (rows, columns, 3) for colour.

    Call :func:`check_transfer_syntax` and :func:`check_codestream_size` first.
    """
    transfer_syntax = ds.file_meta.TransferSyntaxUID
    if transfer_syntax == uid.JPEGExtended12Bit and int(ds.BitsStored) > 8:
        return _decode_gdcm_12bit(ds)
    if transfer_syntax in PLUGINS:
        ds.pixel_array_options(decoding_plugin=PLUGINS[transfer_syntax])
    return ds.pixel_array


def check_codestream_size(ds: Dataset) -> None:
    """The compressed frame's own size (JPEG SOF / JPEG-LS SOF55, J2K SIZ) must equal Columns x Rows.

    Rows and Columns were checked against the limits, but a decoder allocates what the codestream says, so a
    small file could otherwise make it allocate a huge image.  Raises :class:`InvalidImageError`.
    """
    transfer_syntax = ds.file_meta.TransferSyntaxUID
    if transfer_syntax not in _JPEG | _J2K:
        return
    frame = next(generate_frames(ds.PixelData, number_of_frames=1), b"")
    size = _jpeg_frame_size(frame) if transfer_syntax in _JPEG else _j2k_frame_size(frame)
    if size != (int(ds.Columns), int(ds.Rows)):
        raise InvalidImageError(_INVALID)
    if transfer_syntax in (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit) and int(ds.get("BitsStored") or 8) <= 8:
        check_jpeg_data(frame, DEFAULT_LIMITS)  # Pillow, the decoder here, would show a damaged scan as grey


def _jpeg_frame_size(frame: bytes) -> tuple[int, int] | None:
    header = read_jpeg_frame(frame)
    return None if header is None else (header.width, header.height)


def _j2k_frame_size(frame: bytes) -> tuple[int, int] | None:
    """(width, height) from the SIZ segment (ITU T.800 A.5.1) of a raw codestream or of a JP2 file's one."""
    start = frame.find(b"\xff\x4f\xff\x51", 0, 4096)
    if start < 0 or start + 24 > len(frame):
        return None
    x_size, y_size, x_offset, y_offset = struct.unpack(">IIII", frame[start + 8 : start + 24])
    return x_size - x_offset, y_size - y_offset


def _decode_gdcm_12bit(ds: Dataset) -> npt.NDArray[np.generic]:
    """12-bit JPEG extended (.51), grayscale, through GDCM's own 12-bit IJG codec: (rows, columns)."""
    import gdcm  # a dependency; imported here because only this path needs it directly

    if int(ds.get("SamplesPerPixel", 1)) != 1:
        raise UnsupportedCompressionError(
            "The DICOM file uses JPEG extended (12-bit colour), which no installed decoder can read."
        )
    rows, columns, bits = int(ds.Rows), int(ds.Columns), int(ds.BitsStored)
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(next(generate_frames(ds.PixelData, number_of_frames=1)))
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((columns, rows, 1))
    image.SetDataElement(element)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(gdcm.PhotometricInterpretation.MONOCHROME2))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.JPEGExtendedProcess2_4))
    image.SetPixelFormat(gdcm.PixelFormat(1, 16, bits, bits - 1, int(signed)))
    buffer = image.GetBuffer().encode("utf-8", "surrogateescape")  # GDCM hands char* back as str
    if len(buffer) != rows * columns * 2:
        raise InvalidImageError(_INVALID)
    return np.frombuffer(buffer, dtype="<i2" if signed else "<u2").reshape(rows, columns)
