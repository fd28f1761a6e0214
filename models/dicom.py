"""DICOM bytes -> :class:`~models.decoded.DecodedImage`: (H, W) float32 in [0, 1] and the steps applied.

Order of operations (PS3.3 C.11, and pydicom's documented order): stored values -> Modality LUT / rescale
-> VOI LUT or window -> scale to [0, 1] -> MONOCHROME1 inverted (``1 - x``, which is the same as inverting
within the VOI output range before scaling).  Compressed transfer syntaxes are decoded by whatever pydicom
decoder is installed; JPEG baseline (1.2.840.10008.1.2.4.50) needs only Pillow.

Privacy: nothing read from the header is ever logged or put into an error message.  Failures are logged with
the exception *type* only, and every error carries a fixed message.
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt
import pydicom
import pydicom.filereader
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels.processing import apply_modality_lut, apply_windowing  # = pydicom.pixels.*
from pydicom.tag import BaseTag, Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian

from models.decoded import DEFAULT_LIMITS, DecodedImage, DecodeLimits, check_dimensions
from models.input_errors import DecompressionBombError, InputError, InvalidImageError, MultiFrameError
from models.voi_lut import apply_lut, modality_output_can_be_negative, read_lut

__all__ = ["decode_dicom", "looks_like_dicom", "read_dicom_header"]

logger = logging.getLogger(__name__)

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
        "ExtendedOffsetTable",
        "ExtendedOffsetTableLengths",
        "PixelData",
    )
]


DICOM_MAGIC: Final = b"DICM"
DICOM_MAGIC_OFFSET: Final = 128  # after the 128-byte preamble (PS3.10 §7.1)


def looks_like_dicom(data: bytes) -> bool:
    """True for a Part-10 file ("DICM" after the 128-byte preamble)."""
    return data[DICOM_MAGIC_OFFSET : DICOM_MAGIC_OFFSET + len(DICOM_MAGIC)] == DICOM_MAGIC


def read_dicom_header(stream: BinaryIO, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[int, int]:
    """(width, height) from the header, with every check that needs no pixel data; raises InputError."""
    try:
        data = stream.read()
        _refuse_deflated(data)
        ds = pydicom.dcmread(BytesIO(data), specific_tags=_IMAGE_TAGS, stop_before_pixels=True)
        _check_header(ds, limits, need_pixels=False)
        return int(ds.Columns), int(ds.Rows)
    except InputError:
        raise
    except Exception as exc:
        logger.info("DICOM header could not be read (%s)", type(exc).__name__)
        raise InvalidImageError("The DICOM file could not be decoded.") from exc


def decode_dicom(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> DecodedImage:
    """A single-frame DICOM file -> :class:`DecodedImage`; raises :class:`InputError`."""
    try:
        return _decode(data, limits)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError() from exc
    except Exception as exc:  # pydicom / Pillow / numpy errors: their text may quote header values
        logger.info("DICOM upload could not be decoded (%s)", type(exc).__name__)
        raise InvalidImageError("The DICOM file could not be decoded.") from exc


def _decode(data: bytes, limits: DecodeLimits) -> DecodedImage:
    # force=False: the preamble + "DICM" must be there.  specific_tags: only the image tags are kept, so patient
    # and study data are never parsed (nor validated by pydicom, whose warnings quote the offending values).
    _refuse_deflated(data)
    ds = pydicom.dcmread(BytesIO(data), specific_tags=_IMAGE_TAGS)
    photometric = _check_header(ds, limits)
    _check_compressed_frame(ds)
    steps: list[str] = ["decompress"] if ds.file_meta.TransferSyntaxUID.is_encapsulated else []
    pixels = ds.pixel_array  # the only place pixel data is decoded
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


def _refuse_deflated(data: bytes) -> None:
    """A deflated dataset is inflated whole, without a size cap, before any tag can be checked: a zip bomb."""
    stream = BytesIO(data)
    pydicom.filereader.read_preamble(stream, force=False)
    meta = pydicom.filereader._read_file_meta_info(stream)  # the public variant only takes a path
    if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        raise InvalidImageError("Deflated DICOM files are not accepted; send the uncompressed or JPEG form.")


def _check_header(ds: Dataset, limits: DecodeLimits, need_pixels: bool = True) -> str:
    """Everything that can be judged before touching pixel data; returns the photometric interpretation."""
    if need_pixels and "PixelData" not in ds:
        raise InvalidImageError("The DICOM file contains no image.")
    frames = ds.get("NumberOfFrames")
    if frames not in (None, "") and int(frames) > 1:
        raise MultiFrameError("Multi-frame DICOM files are not supported: upload a single image.")
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if rows is None or columns is None:
        raise InvalidImageError("The DICOM file could not be decoded.")
    check_dimensions(int(columns), int(rows), limits)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1))
    if not ((photometric in _MONOCHROME and samples == 1) or (photometric in _COLOUR and samples == 3)):
        raise InvalidImageError("This kind of DICOM image (photometric interpretation) is not supported.")
    return photometric


def _check_compressed_frame(ds: Dataset) -> None:
    """For JPEG-family pixel data, the codestream's own size must match Rows/Columns.

    Rows/Columns were checked against the limits, but the decoder allocates what the codestream header says.
    Pillow reads that header without decoding; a codestream Pillow cannot parse (RLE, JPEG-LS, ...) is left to
    pydicom's decoders, which validate their output against Rows/Columns.
    """
    if not ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return
    frame = next(generate_frames(ds.PixelData, number_of_frames=1), b"")
    try:
        with Image.open(BytesIO(frame), formats=["JPEG", "JPEG2000"]) as codestream:
            size = codestream.size
    except Image.DecompressionBombError:
        raise
    except Exception:
        return
    if size != (int(ds.Columns), int(ds.Rows)):
        raise InvalidImageError("The DICOM file could not be decoded.")


def _monochrome_to_unit(
    pixels: npt.NDArray[np.generic], ds: Dataset, invert: bool, steps: list[str]
) -> npt.NDArray[np.float64]:
    if "ModalityLUTSequence" in ds or "RescaleSlope" in ds or "RescaleIntercept" in ds:
        steps.append("modality_lut")
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
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        # The window's output range is where it sends -inf and +inf (y_min and y_max; reversed when a rescale
        # slope is negative), computed by pydicom itself so the range always matches the function applied.
        ends = apply_windowing(np.array([-np.inf, np.inf]), ds)
        return apply_windowing(values, ds), (float(ends.min()), float(ends.max())), "window"
    return values, None, "auto_window"


def _little_endian(ds: Dataset) -> bool:
    """Byte order of OW values in ``ds`` (only Explicit VR Big Endian, retired, is big endian)."""
    return bool(ds.file_meta.TransferSyntaxUID != ExplicitVRBigEndian)
