"""DICOM bytes -> :class:`~models.imaging.decoded.DecodedImage`: the pixel pipeline, one stage a module.

Order of operations (PS3.3 C.11, and pydicom's documented order):

1. :mod:`~models.imaging.dicom.header`: parse the image tags, check limits, frames, the pixel description;
2. :mod:`~models.imaging.dicom.pixels`: stored values (decompressed by :mod:`~models.imaging.dicom.codecs`,
   High Bit honoured); :mod:`~models.imaging.dicom.padding`: which stored values are padding;
3. :mod:`~models.imaging.dicom.modality`: Modality LUT or rescale;
4. :mod:`~models.imaging.dicom.voi`: VOI LUT, window, or min-max without the padding;
5. :mod:`~models.imaging.dicom.photometric`: scale to [0, 1], invert MONOCHROME1, padding to the display minimum.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image

from models.imaging.decoded import DEFAULT_LIMITS, DecodedImage, DecodeLimits, check_dimensions, too_many_pixels
from models.imaging.dicom.codecs import NATIVE, check_codestream_size
from models.imaging.dicom.header import MONOCHROME, check_header, read_dataset
from models.imaging.dicom.modality import apply_modality_lut, normalise_modality_attributes
from models.imaging.dicom.padding import padding_mask
from models.imaging.dicom.photometric import colour_to_unit, display_to_unit
from models.imaging.dicom.pixels import high_bit_shift, read_stored_values
from models.imaging.dicom.voi import apply_voi, flatten_functional_groups
from models.imaging.errors import InputError, InvalidImageError

__all__ = ["decode_dicom"]

logger = logging.getLogger(__name__)


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
    ds, _ = read_dataset(data, stop_before_pixels=False)
    photometric = check_header(ds, limits)
    check_codestream_size(ds)
    steps: list[str] = [] if ds.file_meta.TransferSyntaxUID in NATIVE else ["decompress"]
    if high_bit_shift(ds):
        steps.append("high_bit_shift")
    stored = read_stored_values(ds)  # the only place pixel data is decoded
    if photometric in MONOCHROME:
        if stored.ndim != 2:
            raise InvalidImageError("The DICOM file could not be decoded.")
        padding = padding_mask(stored, ds)
        flatten_functional_groups(ds)
        normalise_modality_attributes(ds)
        values, applied = apply_modality_lut(stored, ds)
        if applied:
            steps.append("modality_lut")
        values, display_range, voi_step = apply_voi(values, ds, padding)
        steps.append(voi_step)
        invert = photometric == "MONOCHROME1"
        if invert:
            steps.append("monochrome1_inversion")
        if padding is not None:
            steps.append("pixel_padding")
        gray = display_to_unit(values, display_range, invert, padding)
    else:
        if stored.ndim != 3 or stored.shape[-1] != 3:
            raise InvalidImageError("The DICOM file could not be decoded.")
        gray = colour_to_unit(stored, int(ds.BitsStored))
        steps.append("luma")
    out = np.clip(gray, 0.0, 1.0).astype(np.float32)
    check_dimensions(out.shape[1], out.shape[0], limits)
    return DecodedImage(out, "dicom", tuple(steps))
