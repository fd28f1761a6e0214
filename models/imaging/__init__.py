"""Image file bytes -> (H, W) float32 in [0, 1]: the one decoder every entry point uses.

The formats live behind one interface (:mod:`models.imaging.formats`); :func:`decode_image` and
:func:`probe_image` are the way in. Failures raise the typed errors of :mod:`models.imaging.errors`.
"""

from models.imaging.decoder import (
    DEFAULT_LIMITS,
    SNIFF_BYTES,
    DecodedImage,
    DecodeLimits,
    ImageHeader,
    check_dimensions,
    decode_image,
    probe_image,
    read_image_bytes,
    sniff_format,
)

__all__ = [
    "DEFAULT_LIMITS",
    "SNIFF_BYTES",
    "DecodeLimits",
    "DecodedImage",
    "ImageHeader",
    "check_dimensions",
    "decode_image",
    "probe_image",
    "read_image_bytes",
    "sniff_format",
]
