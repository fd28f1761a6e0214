"""DICOM stage 1, the header: is it DICOM, read the image tags, and every check that needs no pixel data.

A stream without the Part-10 preamble (raw PACS exports) is accepted when its first element is well formed
(:func:`looks_like_dicom`); one that starts at group 0008 has no file meta, so its pixel data must be native.

Privacy: nothing read from the header is ever logged or put into an error message.  Failures are logged with
the exception *type* only, and every error carries a fixed message.  pydicom itself reports odd header values
(an unknown character set, a malformed UID) through its logger and through warnings, quoting the value; both are
silenced for the ``pydicom`` namespace, once, when this module is imported (:func:`_silence_pydicom`).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO, Final

import pydicom
import pydicom.filereader
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from models.imaging.decoded import DEFAULT_LIMITS, DecodeLimits, check_dimensions
from models.imaging.dicom.codecs import NATIVE, check_transfer_syntax
from models.imaging.errors import (
    InputError,
    InvalidImageError,
    MultiFrameError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)

__all__ = [
    "MONOCHROME",
    "check_header",
    "looks_like_dicom",
    "read_dataset",
    "read_dicom_header",
]

logger = logging.getLogger(__name__)


def _silence_pydicom() -> None:
    """pydicom's logger and warnings quote header values (possibly patient data): neither may reach a log.

    Process-wide, but set once at import, never per call (``warnings.catch_warnings`` per decode would not be
    thread-safe).  Our own messages say what failed, without the values.
    """
    pydicom_logger = logging.getLogger("pydicom")
    pydicom_logger.setLevel(logging.CRITICAL + 1)
    pydicom_logger.propagate = False
    pydicom_logger.addHandler(logging.NullHandler())
    warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


_silence_pydicom()

MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})
# pydicom's pixel_array returns these as RGB (YBR is converted by default).
_COLOUR: Final = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
# Everything decoding needs: Image Pixel module, Modality LUT and VOI LUT modules, and the pixel data.
_IMAGE_TAGS: Final[list[BaseTag | int]] = [
    Tag(keyword)
    for keyword in (
        "SamplesPerPixel",
        "PhotometricInterpretation",
        "PlanarConfiguration",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "RescaleIntercept",
        "RescaleSlope",
        "ModalityLUTSequence",
        "WindowCenter",
        "WindowWidth",
        "VOILUTFunction",
        "VOILUTSequence",
        "SharedFunctionalGroupsSequence",  # enhanced images keep the window and rescale in functional groups
        "PerFrameFunctionalGroupsSequence",
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
        "PixelData",
    )
]


DICOM_MAGIC: Final = b"DICM"
DICOM_MAGIC_OFFSET: Final = 128  # after the 128-byte preamble (PS3.10 §7.1)
# PS3.5 6.2: every VR; those with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 7.1.2).
_VRS: Final = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_LONG_VRS: Final = frozenset(b"OB OD OF OL OV OW SQ UC UN UR UT SV UV".split())
_MAX_FIRST_LENGTH: Final = 1 << 16  # a first element longer than this is not a header element
_UNDEFINED_LENGTH: Final = 0xFFFFFFFF
_PIXEL_DATA: Final = 0x7FE00010
_FLOAT_PIXEL_DATA: Final = frozenset({0x7FE00008, 0x7FE00009})  # Float / Double Float Pixel Data
_FLOAT_REFUSED: Final = (
    "The DICOM file holds floating-point pixel data (Float Pixel Data or Double Float Pixel Data), which is "
    "not read: only integer Pixel Data is."
)
HEADER_PREFIX_BYTES: Final = 256 * 1024  # what a header check reads first (a CR/DX header is a few KiB)


def looks_like_dicom(data: bytes) -> bool:
    """True for a Part-10 file ("DICM" after the 128-byte preamble), or a stream without the preamble.

    Without one, the first element must be well formed (PS3.5 7.1): group 0002 (file meta) in explicit VR
    little endian, or group 0008 in implicit or explicit VR little endian; the VR must be a real VR and the
    length even and small (or undefined, for a sequence).  Looks at 12 bytes; parses nothing else.
    """
    if data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC:
        return True
    return _preambleless_encoding(data) is not None


def _preambleless_encoding(data: bytes) -> str | None:
    """ "explicit" or "implicit" (VR little endian) when ``data`` starts with a well-formed element, else None."""
    if len(data) < 12:
        return None
    group = int.from_bytes(data[0:2], "little")
    if group not in (0x0002, 0x0008):
        return None
    vr = data[4:6]
    if vr in _VRS:
        if vr in _LONG_VRS:
            length = int.from_bytes(data[8:12], "little")
            reserved_ok = data[6:8] == b"\0\0"
            undefined_ok = vr in (b"SQ", b"UN") and length == _UNDEFINED_LENGTH
            if reserved_ok and (undefined_ok or _plausible_length(length)):
                return "explicit"
        elif _plausible_length(int.from_bytes(data[6:8], "little")):
            return "explicit"
    if group == 0x0008:  # group 0002 is always explicit VR (PS3.10 7.1)
        length = int.from_bytes(data[4:8], "little")
        if _plausible_length(length) or length == _UNDEFINED_LENGTH:
            return "implicit"
    return None


def _plausible_length(length: int) -> bool:
    return length % 2 == 0 and length <= _MAX_FIRST_LENGTH


def read_dicom_header(stream: BinaryIO, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """(width, height) in pixels from the header, with every check that needs no pixel data.

    Reads the first :data:`HEADER_PREFIX_BYTES` of the stream, where the image tags of almost every file lie,
    and the rest only when the header does not parse from that prefix alone.  Raises
    :class:`UnsupportedFormatError` (not DICOM), :class:`UnsupportedCompressionError` (no decoder for the
    transfer syntax; the message names it), or another :class:`InputError`.
    """
    total = stream.seek(0, 2)
    stream.seek(0)
    data = stream.read(HEADER_PREFIX_BYTES)
    if len(data) == HEADER_PREFIX_BYTES:
        try:
            return _header_size(data, limits, total)
        except InvalidImageError as error:
            if type(error) is not InvalidImageError:
                raise
        data += stream.read()  # a header longer than the prefix (large private tags, an icon, overlays)
    return _header_size(data, limits, total)


def _check_pixel_extent(ds: Dataset, pixels: PixelElement | None, total: int) -> None:
    """The header check's view of the pixel data: present, integer, and (native) as long as Rows x Columns say.

    Raises :class:`InvalidImageError` for a file without (integer) pixel data or whose pixel data is cut short,
    which the decoder would refuse too, so that ``chexnet train`` finds such files before epoch 1.
    """
    if pixels is None:
        raise InvalidImageError("The DICOM file contains no image.")
    if pixels.length == _UNDEFINED_LENGTH:  # encapsulated: the codec checks its frames when decoding
        if pixels.value_start >= total:
            raise InvalidImageError("The DICOM file is truncated: it ends before its pixel data.")
        return
    if pixels.value_start + pixels.length > total:
        raise InvalidImageError("The DICOM file is truncated: it ends inside its pixel data.")
    if ds.file_meta.TransferSyntaxUID in NATIVE:
        bits = int(ds.get("BitsAllocated") or 0)
        samples = int(ds.get("SamplesPerPixel") or 1)
        expected = (int(ds.Rows) * int(ds.Columns) * samples * bits + 7) // 8
        if pixels.length < expected:
            raise InvalidImageError("The DICOM pixel data is shorter than its rows and columns need.")


def _header_size(data: bytes, limits: DecodeLimits, total: int) -> tuple[int, int]:
    """(width, height) from ``data``, the first bytes of a ``total``-byte file; checks the pixel data's extent."""
    try:
        ds, pixels = read_dataset(data, stop_before_pixels=True)
        check_header(ds, limits, need_pixels=False)
        _check_pixel_extent(ds, pixels, total)
        return int(ds.Columns), int(ds.Rows)
    except (InputError, MemoryError):  # out of memory is the server's trouble, not a bad file
        raise
    except Exception as exc:
        logger.debug("DICOM header could not be read (%s)", type(exc).__name__)
        raise InvalidImageError("The DICOM file could not be decoded.") from exc


@dataclass(frozen=True)
class PixelElement:
    """Where a header read stopped: the pixel data element's tag, value length (bytes) and value offset."""

    tag: int
    length: int
    value_start: int


def read_dataset(data: bytes, stop_before_pixels: bool) -> tuple[Dataset, PixelElement | None]:
    """The image tags of a DICOM stream, with ``file_meta.TransferSyntaxUID`` always set and decodable.

    With ``stop_before_pixels`` the pixel data element is not read, but where it lies is returned (None when the
    stream has none).

    Only the image tags are kept (``specific_tags``), so patient and study data are never parsed, nor validated
    by pydicom, whose warnings quote the offending values.  ``force=True`` is used only for a stream that
    :func:`looks_like_dicom` accepted without the preamble.
    """
    part10 = data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC
    encoding = None if part10 else _preambleless_encoding(data)
    if not part10 and encoding is None:
        raise UnsupportedFormatError()
    transfer_syntax = _meta_transfer_syntax(data, part10)
    if transfer_syntax == DeflatedExplicitVRLittleEndian:
        # A deflated dataset is inflated whole, without a size cap, before any tag can be checked: a zip bomb.
        raise UnsupportedCompressionError(
            "Deflated DICOM files are not accepted (they are inflated whole before any check); send the "
            "uncompressed or JPEG form."
        )
    if transfer_syntax is not None:
        check_transfer_syntax(transfer_syntax)  # before parsing: an unknown syntax may not even parse
    stream = BytesIO(data)
    found: list[PixelElement] = []
    floats: list[int] = []  # Float / Double Float Pixel Data seen (their values are skipped, never read)

    def at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
        if tag in _FLOAT_PIXEL_DATA:
            floats.append(int(tag))
        elif stop_before_pixels and tag == _PIXEL_DATA:
            found.append(PixelElement(int(tag), length, stream.tell()))  # positioned at the value
            return True
        return False

    ds = pydicom.filereader.read_partial(stream, stop_when=at_pixel_data, force=not part10, specific_tags=_IMAGE_TAGS)
    if "TransferSyntaxUID" not in ds.file_meta:
        # No file meta (a stream starting at group 0008): the encoding is what the first element showed, and
        # the pixel data can only be native, since nothing says how it would be compressed.
        guessed = ImplicitVRLittleEndian if encoding == "implicit" else ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = guessed
    if floats and not found and "PixelData" not in ds:
        raise InvalidImageError(_FLOAT_REFUSED)
    return ds, (found[0] if found else None)


def _meta_transfer_syntax(data: bytes, part10: bool) -> str | None:
    """The Transfer Syntax UID of the file meta (group 0002), read alone; None when there is no file meta."""
    stream = BytesIO(data)
    if part10:
        stream.seek(DICOM_MAGIC_OFFSET + len(DICOM_MAGIC))
    elif data[0:2] != b"\x02\x00":
        return None
    meta = pydicom.filereader._read_file_meta_info(stream)  # the public variant only takes a path
    value = meta.get("TransferSyntaxUID")
    return None if value is None else str(value).strip("\0 ")


def check_header(ds: Dataset, limits: DecodeLimits, need_pixels: bool = True) -> str:
    """Everything that can be judged before touching pixel data; returns the photometric interpretation."""
    if need_pixels and "PixelData" not in ds:
        raise InvalidImageError("The DICOM file contains no image.")
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "") and int(frames) > 1:
        raise MultiFrameError("Multi-frame DICOM files are not supported: only single images are read.")
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if rows is None or columns is None:
        raise InvalidImageError("The DICOM file could not be decoded.")
    check_dimensions(int(columns), int(rows), limits)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    if not ((photometric in MONOCHROME and samples == 1) or (photometric in _COLOUR and samples == 3)):
        raise InvalidImageError("This kind of DICOM image (photometric interpretation) is not supported.")
    _check_pixel_description(ds)
    return photometric


def _check_pixel_description(ds: Dataset) -> None:
    """The Image Pixel module's sample layout must be one PS3.3 C.7.6.3 allows and a decoder can read.

    High Bit may lie anywhere from Bits Stored - 1 to Bits Allocated - 1 (PS3.5 8.1.1: the sample sits in bits
    High Bit - Bits Stored + 1 .. High Bit of its cell); absent, it is taken as Bits Stored - 1.
    """
    allocated, stored = int(ds.get("BitsAllocated") or 0), int(ds.get("BitsStored") or 0)
    representation = int(ds.get("PixelRepresentation") or 0)
    if allocated not in (1, 8, 16, 32) or not 1 <= stored <= allocated or representation not in (0, 1):
        raise InvalidImageError(
            "The DICOM pixel description is not valid (bits allocated, bits stored or pixel representation)."
        )
    high_bit = ds.get("HighBit")
    if high_bit not in (None, "") and not stored - 1 <= int(high_bit) < allocated:
        raise InvalidImageError(
            "The DICOM pixel description is not valid: High Bit must lie between Bits Stored - 1 and "
            "Bits Allocated - 1."
        )
