"""The registry of input formats: the one place that lists them, in the order they are sniffed.

Adding a format is one module that defines ``FORMAT = ImageFormat(name, sniff, probe, decode)`` (see
:mod:`.base`) and one line below.  Order matters where magic numbers are weaker: DICOM without the preamble is
recognised from its first element only, so it is tried last.
"""

from __future__ import annotations

from typing import Final

from models.imaging.formats import dicom, jpeg, png
from models.imaging.formats.base import ImageFormat

__all__ = ["FORMATS", "ImageFormat"]

FORMATS: Final[tuple[ImageFormat, ...]] = (
    png.FORMAT,
    jpeg.FORMAT,
    dicom.FORMAT,
)
