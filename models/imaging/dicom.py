"""DICOM bytes -> :class:`~models.imaging.decoded.DecodedImage`: (H, W) float32 in [0, 1] and the steps applied.

Order of operations (PS3.3 C.11, and pydicom's documented order): stored values -> Modality LUT / rescale
-> VOI LUT or window -> scale to [0, 1] -> MONOCHROME1 inverted (``1 - x``, which is the same as inverting
within the VOI output range before scaling).  The LUT maths is in :mod:`models.imaging.voi_lut`; which decoder reads
each compressed transfer syntax, and the codestream size check, in :mod:`models.imaging.dicom_codecs`.

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

import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.filereader
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_modality_lut, apply_windowing  # = pydicom.pixels.*
from pydicom.tag import BaseTag, Tag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from models.imaging.decoded import DEFAULT_LIMITS, DecodedImage, DecodeLimits, check_dimensions, too_many_pixels
from models.imaging.dicom_codecs import NATIVE, check_codestream_size, check_transfer_syntax, decode_pixels
from models.imaging.errors import (
    InputError,
    InvalidImageError,
    MultiFrameError,
    UnsupportedCompressionError,
    UnsupportedFormatError,
)
from models.imaging.voi_lut import apply_lut, modality_output_can_be_negative, read_lut

__all__ = ["decode_dicom", "looks_like_dicom", "read_dicom_header"]

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

_MONOCHROME: Final = frozenset({"MONOCHROME1", "MONOCHROME2"})
# pydicom's pixel_array returns these as RGB (YBR is converted by default).
_COLOUR: Final = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_LUMA: Final = np.array([0.299, 0.587, 0.114], dtype=np.float64)  # as models.preprocessing
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


def _check_pixel_extent(ds: Dataset, pixels: _PixelElement | None, total: int) -> None:
    """The header check's view of the pixel data: present, integer, and (native) as long as Rows x Columns say.

    Raises :class:`InvalidImageError` for a file without (integer) pixel data or whose pixel data is cut short,
    which the decoder would refuse too, so that ``chexnet train`` finds such files before epoch 1.
    """
    if pixels is None:
        raise InvalidImageError("The DICOM file contains no image.")  # none, or only Float / Double Float Pixel Data
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
        ds, pixels = _read_dataset(data, stop_before_pixels=True)
        _check_header(ds, limits, need_pixels=False)
        _check_pixel_extent(ds, pixels, total)
        return int(ds.Columns), int(ds.Rows)
    except (InputError, MemoryError):  # out of memory is the server's trouble, not a bad file
        raise
    except Exception as exc:
        logger.debug("DICOM header could not be read (%s)", type(exc).__name__)
        raise InvalidImageError("The DICOM file could not be decoded.") from exc


def decode_dicom(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> DecodedImage:
    """A single-frame DICOM file (Part 10, or without the preamble) -> :class:`DecodedImage`.

    ``gray`` is (H, W) float32 in [0, 1].  Raises :class:`UnsupportedFormatError`,
    :class:`UnsupportedCompressionError` (naming the compression), :class:`InvalidImageError`,
    :class:`MultiFrameError`, :class:`DecompressionBombError` or another :class:`InputError`.
    """
    try:
        return _decode(data, limits)
    except (InputError, MemoryError):  # out of memory is the server's trouble, not a bad file
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(limits) from exc
    except Exception as exc:  # pydicom / decoder / numpy errors: their text may quote header values
        logger.debug("DICOM file could not be decoded (%s)", type(exc).__name__)
        raise InvalidImageError("The DICOM file could not be decoded.") from exc


def _decode(data: bytes, limits: DecodeLimits) -> DecodedImage:
    ds, _ = _read_dataset(data, stop_before_pixels=False)
    photometric = _check_header(ds, limits)
    check_codestream_size(ds)
    steps: list[str] = [] if ds.file_meta.TransferSyntaxUID in NATIVE else ["decompress"]
    pixels = decode_pixels(ds)  # the only place pixel data is decoded
    if photometric in _MONOCHROME:
        if pixels.ndim != 2:
            raise InvalidImageError("The DICOM file could not be decoded.")
        gray = _monochrome_to_unit(pixels, ds, invert=photometric == "MONOCHROME1", steps=steps)
    else:
        if pixels.ndim != 3 or pixels.shape[-1] != 3:
            raise InvalidImageError("The DICOM file could not be decoded.")
        gray = pixels.astype(np.float64) @ _LUMA / float(2 ** int(ds.BitsStored) - 1)
        steps.append("luma")
    out = np.clip(gray, 0.0, 1.0).astype(np.float32)
    check_dimensions(out.shape[1], out.shape[0], limits)
    return DecodedImage(out, "dicom", tuple(steps))


@dataclass(frozen=True)
class _PixelElement:
    """Where a header read stopped: the pixel data element's tag, value length (bytes) and value offset."""

    tag: int
    length: int
    value_start: int


def _read_dataset(data: bytes, stop_before_pixels: bool) -> tuple[Dataset, _PixelElement | None]:
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
    found: list[_PixelElement] = []

    def at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
        if stop_before_pixels and tag == _PIXEL_DATA:  # Float / Double Float Pixel Data are skipped, as in decoding
            found.append(_PixelElement(int(tag), length, stream.tell()))  # positioned at the value
            return True
        return False

    ds = pydicom.filereader.read_partial(stream, stop_when=at_pixel_data, force=not part10, specific_tags=_IMAGE_TAGS)
    if "TransferSyntaxUID" not in ds.file_meta:
        # No file meta (a stream starting at group 0008): the encoding is what the first element showed, and
        # the pixel data can only be native, since nothing says how it would be compressed.
        guessed = ImplicitVRLittleEndian if encoding == "implicit" else ExplicitVRLittleEndian
        ds.file_meta.TransferSyntaxUID = guessed
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


def _check_header(ds: Dataset, limits: DecodeLimits, need_pixels: bool = True) -> str:
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
    if not ((photometric in _MONOCHROME and samples == 1) or (photometric in _COLOUR and samples == 3)):
        raise InvalidImageError("This kind of DICOM image (photometric interpretation) is not supported.")
    _check_pixel_description(ds)
    return photometric


def _check_pixel_description(ds: Dataset) -> None:
    """The Image Pixel module's sample layout must be one PS3.3 C.7.6.3 allows and a decoder can read."""
    allocated, stored = int(ds.get("BitsAllocated") or 0), int(ds.get("BitsStored") or 0)
    representation = int(ds.get("PixelRepresentation") or 0)
    if allocated not in (1, 8, 16, 32) or not 1 <= stored <= allocated or representation not in (0, 1):
        raise InvalidImageError(
            "The DICOM pixel description is not valid (bits allocated, bits stored or pixel representation)."
        )


def _monochrome_to_unit(
    pixels: npt.NDArray[np.generic], ds: Dataset, invert: bool, steps: list[str]
) -> npt.NDArray[np.float64]:
    _flatten_functional_groups(ds)
    if ds.get("ModalityLUTSequence") or ("RescaleSlope" in ds and "RescaleIntercept" in ds):
        steps.append("modality_lut")  # pydicom applies a rescale only when both are present (PS3.3 C.11.1)
    modality_lut = ds.get("ModalityLUTSequence")
    values: npt.NDArray[np.generic]
    if modality_lut:  # PS3.3 C.11.1: a Modality LUT Sequence replaces the rescale; its input is stored values
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        values = apply_lut(pixels, read_lut(modality_lut[0], signed, _little_endian(ds)))
    else:
        values = apply_modality_lut(pixels, ds)  # the rescale (or nothing)
    values, output_range, voi_step = _apply_voi(values, ds)
    steps.append(voi_step)
    floats = values.astype(np.float64)
    if not np.isfinite(floats).all():
        raise InvalidImageError("The DICOM file could not be decoded.")
    # Scaling to [0, 1]:
    # * With a VOI LUT or window, the VOI step's own output range is the display range: a window maps to
    #   [y_min, y_max] and pixels outside it are clipped on purpose, so scaling by the *image's* min/max would
    #   undo the clipping and change contrast from image to image.
    # * Without VOI data there is no defined display range.  The Bits Stored range is not one either: after a
    #   rescale the values are no longer stored values, and raw CR/DX data commonly occupies a small part of it
    #   (e.g. 12-bit data in 16 bits stored), which would give a dark, flat image unlike the display-windowed
    #   8-bit images the model was trained on.  Min-max of the image ("auto window", what viewers do without a
    #   VOI) is used instead; a constant image becomes all zeros.
    low, high = output_range if output_range is not None else (float(floats.min()), float(floats.max()))
    unit = (floats - low) / (high - low) if high > low else np.zeros_like(floats)
    unit = np.clip(unit, 0.0, 1.0)
    # PS3.3 C.7.6.3.1.2: MONOCHROME1 means the minimum value is displayed white.  A Presentation LUT Shape of
    # INVERSE on such images describes this same inversion (PS3.3 C.8.11.6.1.2), so it is not applied again.
    if invert:
        steps.append("monochrome1_inversion")
    return 1.0 - unit if invert else unit


def _apply_voi(
    values: npt.NDArray[np.generic], ds: Dataset
) -> tuple[npt.NDArray[np.generic], tuple[float, float] | None, str]:
    """The VOI step (first view) and its output range; ``None`` when the file has no VOI data.

    Same choice as ``pydicom.pixels.apply_voi_lut(prefer_lut=True)``: a VOI LUT Sequence wins over a window,
    but the two halves are called directly so that we know which one ran and can ask it for its range.
    """
    sequence = ds.get("VOILUTSequence")
    if sequence and "LUTDescriptor" in sequence[0] and "LUTData" in sequence[0]:
        if not np.issubdtype(values.dtype, np.integer):  # LUT inputs are indices (a rescale gives floats)
            values = np.rint(values).astype(np.int64)
        lut = read_lut(sequence[0], modality_output_can_be_negative(ds), _little_endian(ds))
        # The LUT's output range is the range of its entries: every input maps to one of them.
        return apply_lut(values, lut), lut.output_range, "voi_lut"
    if "VOILUTFunction" in ds and not str(ds.VOILUTFunction or "").strip():
        del ds.VOILUTFunction  # present but empty: LINEAR, the default (PS3.3 C.11.2.1.3)
    if _usable_window(ds):
        # The window's output range is where it sends -inf and +inf (y_min and y_max; reversed when a rescale
        # slope is negative), computed by pydicom itself so the range always matches the function applied.
        ends = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return apply_windowing(values, ds), (float(ends.min()), float(ends.max())), "window"
    return values, None, "auto_window"


# (functional group sequence, attributes it carries) for the first frame of an enhanced image (PS3.3 C.7.6.16)
_FRAME_GROUPS: Final = (
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence")),
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept")),
)


def _flatten_functional_groups(ds: Dataset) -> None:
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


def _little_endian(ds: Dataset) -> bool:
    """Byte order of OW values in ``ds`` (only Explicit VR Big Endian, retired, is big endian)."""
    return bool(ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian)
