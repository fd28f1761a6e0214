"""PNG and JPEG bytes -> :class:`~models.imaging.decoded.DecodedImage`, through Pillow and libjpeg-turbo.

A grayscale or YCbCr JPEG is decoded once: the strict libjpeg-turbo pass that refuses corrupt data
(``simplejpeg``, accurate integer IDCT and fancy upsampling, as Pillow's libjpeg-turbo decodes) gives the pixels,
which are bit for bit Pillow's (checked on every test corpus: ``tests/models/imaging/test_raster.py``; timed by
``python -m benchmarks.decoders``). Pillow still reads the header, the frames and the EXIF orientation. CMYK and
YCCK JPEGs are decoded by Pillow. An 8- or 16-bit non-interlaced greyscale PNG (the X-ray case) without
transparency or an eXIf chunk is inflated by libpng (``imagecodecs``, faster than Pillow's own inflate and equal bit
for bit); every other PNG by Pillow.

Thread safety: files are decoded concurrently in threads, so nothing here touches process-wide state.
``Image.MAX_IMAGE_PIXELS`` is only read, never set, and ``warnings.catch_warnings`` is not used (on Python 3.11
it swaps the global filter list and is not thread-safe); instead of promoting Pillow's
``DecompressionBombWarning`` to an error we apply the very threshold that triggers it ourselves, from the
header, before ``load()``.

Two things people's files do that a plain ``Image.open`` gets wrong:

* A phone or camera JPEG with a preview picture is an MPO (CIPA DC-007): Pillow opens it with 2+ frames.
  Every viewer shows the first, primary picture, and so do we.  APNG stays refused (which frame is "the" X-ray?).
* A PNG's ``sBIT`` chunk (PNG 1.2 §4.2.6) declares how many bits of each sample are significant.  Conforming
  writers scale the data up to the full depth, but some write 12-bit detector values unscaled into a 16-bit PNG
  (0..4095), which divided by 65535 is an almost black image.  When every value fits in the declared bits, and
  the low bits carry data (scaled-up values are all multiples of ``2**(depth - bits)``), we divide by
  ``2**bits - 1`` instead.  Pillow reads 16-bit colour PNGs as 8-bit (their high bytes), so such a file
  whose values all fit in the declared bits cannot be read faithfully and is refused rather than shown dark.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import BinaryIO, Final

import imagecodecs
import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from models.imaging.decoded import DecodedImage, DecodeLimits, check_dimensions, too_many_pixels
from models.imaging.errors import InputError, InvalidImageError, MultiFrameError, UnsupportedCompressionError
from models.imaging.jpeg_header import JPEG_LS_SOF, read_jpeg_frame
from models.imaging.png_chunks import PNG_SIGNATURE, png_header_stream, png_without_unused_chunks
from models.preprocessing import image_to_gray, samples_to_gray

__all__ = [
    "check_jpeg_data",
    "check_jpeg_process",
    "decode_raster",
    "png_significant_bits",
    "read_raster_header",
    "strict_jpeg_pixels",
]

logger = logging.getLogger(__name__)

_PILLOW_FORMATS: Final = {"png": ["PNG"], "jpeg": ["JPEG", "MPO"]}
_EXIF_ORIENTATION: Final = 0x0112
_JPEG_HEAD_BYTES: Final = 256 * 1024  # room for APP segments (EXIF, ICC, previews) before the frame header
# PNG colour type -> sBIT bytes of its colour (non-alpha) samples; palette images (type 3) are left as they are.
_COLOUR_SAMPLES: Final = {0: 1, 2: 3, 4: 1, 6: 3}
_SIXTEEN_BIT_GRAY: Final = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I"})
_GRAY_MODES: Final = frozenset({"L", "1", "LA", "F", *_SIXTEEN_BIT_GRAY})
# The JPEG colour spaces whose pixels the strict pass keeps (simplejpeg's header names -> its output colour space).
_KEPT_JPEG_PIXELS: Final = {"Gray": "GRAY", "YCbCr": "RGB"}
# PNG 1.2 §11.2.2 IHDR: colour type 0 (greyscale) at these bit depths is what libpng decodes here.
_LIBPNG_DEPTHS: Final = frozenset({8, 16})
_PILLOW_ONLY_PNG_CHUNKS: Final = (b"tRNS", b"eXIf", b"acTL")  # transparency, orientation, animation
# EXIF 2.32 Orientation (tag 0x0112) -> the transposition that makes the picture upright (1 is upright).
_UPRIGHT: Final = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def png_significant_bits(data: bytes) -> tuple[int, int] | None:
    """(bit depth, significant bits) from a PNG's IHDR and ``sBIT`` chunks; None without a usable sBIT.

    Only chunks before the first IDAT are read (sBIT must precede it, PNG 1.2 §4.2.6).  For colour types the
    largest of the colour channels' values is taken; alpha is ignored.
    """
    offset, depth, colour_type = len(PNG_SIGNATURE), 0, -1
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR" and len(body) >= 10:
            depth, colour_type = body[8], body[9]
        elif kind == b"sBIT" and colour_type in _COLOUR_SAMPLES and len(body) >= _COLOUR_SAMPLES[colour_type]:
            bits = max(body[: _COLOUR_SAMPLES[colour_type]])
            return (depth, bits) if 0 < bits < depth else None
        elif kind in (b"IDAT", b"IEND"):
            return None
        offset += 12 + length
    return None


def check_jpeg_process(head: bytes) -> None:
    """Name what a standalone JPEG holds when it is one no decoder here reads: more than 8 bits per sample, or
    JPEG-LS.  Inside DICOM these are read (``models.imaging.dicom_codecs``).
    Raises :class:`UnsupportedCompressionError`.
    """
    frame = read_jpeg_frame(head)
    if frame is None:
        return  # no frame header in these bytes: the decoder says what is wrong
    if frame.marker == JPEG_LS_SOF:
        raise UnsupportedCompressionError("JPEG-LS files are read only inside DICOM files.")
    if frame.precision > 8:
        raise UnsupportedCompressionError(
            "JPEG files with more than 8 bits per sample are read only inside DICOM files."
        )


def check_jpeg_data(data: bytes, limits: DecodeLimits) -> None:
    """Decode the JPEG once, strictly, with libjpeg-turbo (``simplejpeg``): corrupt entropy-coded data is refused.

    Pillow ignores libjpeg's "corrupt data" warnings and fills a damaged or cut scan with grey, which would be
    scored as an X-ray.  Costs about 2 ms for a 1024 x 1024 image here.  Raises :class:`InvalidImageError`, or
    :class:`UnsupportedCompressionError` for 12- and 16-bit JPEG, which is read only inside DICOM.
    """
    strict_jpeg_pixels(data, limits)  # the pixels are the caller's decoder's to make (DICOM frames)


def strict_jpeg_pixels(data: bytes, limits: DecodeLimits) -> np.ndarray | None:
    """Decode the JPEG strictly (see :func:`check_jpeg_data`) and return its pixels when Pillow would give the same.

    Returns uint8 ``(H, W)`` for a grayscale JPEG, ``(H, W, 3)`` RGB for a YCbCr one (as stored: EXIF orientation
    not applied), or ``None`` after checking any other JPEG (CMYK, YCCK, RGB without the YCbCr transform), which
    Pillow decodes. Raises
    :class:`InvalidImageError` (corrupt or truncated data) or :class:`UnsupportedCompressionError` (12/16-bit,
    JPEG-LS); the size is checked against ``limits`` before any pixel is decoded.
    """
    check_jpeg_process(data)
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        _check_size(width, height, limits)
        kept = _KEPT_JPEG_PIXELS.get(colorspace)
        # Pixels Pillow decodes itself are only checked: CMYK/YCCK as CMYK, anything else (Adobe RGB) as grey.
        checked_as = kept or ("CMYK" if colorspace in ("CMYK", "YCCK") else "GRAY")
        pixels = simplejpeg.decode_jpeg(data, colorspace=checked_as, strict=True, fastdct=False, fastupsample=False)
    except (InputError, MemoryError):  # out of memory is the server's trouble, not a bad file
        raise
    except ValueError as exc:
        logger.debug("jpeg data failed the strict check (%s)", type(exc).__name__)
        raise InvalidImageError("The JPEG data is corrupt or truncated.") from exc
    if kept is None:
        return None
    kept_pixels: np.ndarray = pixels[..., 0] if kept == "GRAY" else pixels
    return kept_pixels


def _libpng_gray_pixels(data: bytes) -> np.ndarray | None:
    """uint8 or uint16 ``(H, W)`` samples of an 8/16-bit non-interlaced greyscale PNG, or ``None`` for any other PNG
    (Pillow's).

    ``data`` has been through :func:`png_without_unused_chunks`. A chunk name found anywhere in the bytes (even by
    chance inside the image data) only sends the file to Pillow: never a wrong pixel. Raises what libpng raises
    for corrupt data (turned into ``invalid_image`` by the caller)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    depth, colour_type, interlaced = data[24], data[25], data[28]
    if colour_type != 0 or depth not in _LIBPNG_DEPTHS or interlaced:  # Adam7: imagecodecs warns on every file
        return None
    if any(name in data for name in _PILLOW_ONLY_PNG_CHUNKS):
        return None
    pixels: np.ndarray = imagecodecs.png_decode(data)
    return pixels if pixels.ndim == 2 else None


@contextmanager
def _typed_errors(fmt: str, limits: DecodeLimits) -> Iterator[None]:
    """Pillow's exceptions as InputErrors: a bomb as ``decompression_bomb``, anything else ``invalid_image``."""
    try:
        yield
    except (InputError, MemoryError):  # out of memory is the server's trouble, not a bad file
        raise
    except Image.DecompressionBombError as exc:
        raise too_many_pixels(limits) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, EOFError, zlib.error, ...
        logger.debug("%s image could not be read (%s)", fmt, type(exc).__name__)
        raise InvalidImageError() from exc


def read_raster_header(stream: BinaryIO, fmt: str, limits: DecodeLimits) -> tuple[int, int]:
    """(width, height) of a PNG/JPEG from its header, limits checked, nothing decoded; raises InputError."""
    with _typed_errors(fmt, limits):
        if fmt == "png":
            stream = BytesIO(png_header_stream(stream))  # unused ancillary chunks dropped, as when decoding
        else:
            check_jpeg_process(stream.read(_JPEG_HEAD_BYTES))
        stream.seek(0)
        with Image.open(stream, formats=_PILLOW_FORMATS[fmt]) as image:
            _check_frames(image)
            width, height = image.size
    _check_size(width, height, limits)
    return width, height


def decode_raster(data: bytes, fmt: str, limits: DecodeLimits) -> DecodedImage:
    """PNG (``fmt="png"``) or JPEG (``"jpeg"``) bytes -> DecodedImage; raises :class:`InputError`."""
    with _typed_errors(fmt, limits):
        return _decode(data, fmt, limits)


def _check_frames(image: Image.Image) -> None:
    if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":  # APNG (acTL chunk), ...
        raise MultiFrameError()


def _check_size(width: int, height: int, limits: DecodeLimits) -> None:
    pillow_cap = Image.MAX_IMAGE_PIXELS  # read, never written: see the module docstring
    if pillow_cap is not None and width * height > pillow_cap:
        raise too_many_pixels(limits)
    check_dimensions(width, height, limits)


def _decode(data: bytes, fmt: str, limits: DecodeLimits) -> DecodedImage:
    steps: list[str] = []
    pixels = None
    if fmt == "png":
        data = png_without_unused_chunks(data)  # metadata never decides decoding: see models.imaging.png_chunks
    else:
        pixels = strict_jpeg_pixels(data, limits)  # the primary picture of an MPO: it comes first in the file
    # formats=[...] keeps Pillow from trying any other plugin on the bytes; open() parses only the header.
    with Image.open(BytesIO(data), formats=_PILLOW_FORMATS[fmt]) as image:
        _check_frames(image)
        if image.format == "MPO":
            image.seek(0)  # the primary picture; later frames are previews or other views
            steps.append("mpo_primary_image")
        _check_size(*image.size, limits)
        if fmt == "png":
            pixels = _libpng_gray_pixels(data)  # after the size check: nothing is inflated past the limits
        if pixels is None:
            image.load()  # truncated data raises OSError here (LOAD_TRUNCATED_IMAGES is left False)
        # A libpng PNG has no eXIf chunk (and Pillow's getexif would decode a PNG's pixels to look for one); a
        # JPEG's EXIF is read with its header.
        libpng = fmt == "png" and pixels is not None
        orientation = 1 if libpng else image.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in _UPRIGHT:  # 1 is upright; other values mean nothing
            steps.append("exif_orientation")
        if pixels is None:
            gray = np.asarray(image_to_gray(image), dtype=np.float32)
            colour = image.mode not in _GRAY_MODES
        else:
            upright = pixels
            if orientation in _UPRIGHT:
                upright = np.asarray(Image.fromarray(pixels).transpose(_UPRIGHT[orientation]))
            gray = samples_to_gray(upright)
            colour = pixels.ndim == 3
        if colour:
            steps.append("luma")
        bits = png_significant_bits(data) if fmt == "png" else None
        if bits is not None:
            samples = image if pixels is None else Image.fromarray(pixels)  # a libpng PNG has no orientation
            gray = _honour_significant_bits(samples, gray, *bits, steps)
    if gray.ndim != 2:
        raise InvalidImageError()
    check_dimensions(gray.shape[1], gray.shape[0], limits)  # the oriented image (same verdict, by invariance)
    return DecodedImage(gray, fmt, tuple(steps))


def _scaled_up_by_a_conforming_writer(samples: np.ndarray, depth: int, bits: int) -> bool:
    """Whether every sample is what one of PNG 1.2 §12.5's scalings makes of some ``bits``-bit value.

    Left shift and bit replication leave values below 2**bits multiples of 2**(depth - bits); linear scaling
    gives round(v * (2**depth - 1) / (2**bits - 1)).  A dark image scaled up either way fits in ``bits`` bits too,
    but is not unscaled data.
    """
    values = samples.astype(np.int64)
    if not np.any(values % (1 << (depth - bits))):
        return True
    full, significant = 2**depth - 1, 2**bits - 1
    original = np.rint(values * significant / full)
    return bool(np.array_equal(np.rint(original * full / significant), values))


def _honour_significant_bits(
    image: Image.Image, gray: np.ndarray, depth: int, bits: int, steps: list[str]
) -> np.ndarray:
    """``gray`` (divided by 2**depth - 1) divided by 2**bits - 1 instead, when every sample fits in ``bits``."""
    oriented = ImageOps.exif_transpose(image)
    samples = np.asarray(oriented)
    if oriented.mode in ("RGBA", "LA", "PA"):
        samples = samples[..., :-1]  # alpha is not image data
    top = int(samples.max()) if samples.size else 0
    if depth == 16 and oriented.mode not in _SIXTEEN_BIT_GRAY:
        # Pillow kept only the high byte of each 16-bit colour sample; data that fits in `bits` would be lost.
        if top <= (2**bits - 1) >> 8:
            raise InvalidImageError(
                "This 16-bit PNG with colour or alpha channels stores fewer significant bits than its depth, "
                "unscaled, and cannot be read faithfully; save it as a 16-bit grayscale PNG without alpha."
            )
        return gray
    if top > 2**bits - 1:
        return gray  # conforming: the data was scaled up to the full depth, as PNG 1.2 §12.5 asks
    if _scaled_up_by_a_conforming_writer(samples, depth, bits):
        return gray
    steps.append(f"sbit_{bits}")
    if oriented.mode in _SIXTEEN_BIT_GRAY or oriented.mode == "L":
        exact: np.ndarray = (samples.astype(np.float64) / (2**bits - 1)).astype(np.float32)
        return exact
    scaled: np.ndarray = np.clip(gray * np.float32((2**depth - 1) / (2**bits - 1)), 0.0, 1.0).astype(np.float32)
    return scaled
