"""The frame header (SOF segment) of a JPEG or JPEG-LS codestream, read without decoding anything.

Used to check a codestream's own size against what its container says (DICOM Rows/Columns) and to name what a
standalone JPEG file holds when no decoder here reads it (12-bit samples, JPEG-LS).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["JPEG_LS_SOF", "JpegFrame", "read_jpeg_frame"]

# SOF0-3, 5-7, 9-11, 13-15 (ITU T.81 B.1.1.3) and SOF55 (JPEG-LS, ITU T.87 C.2.2)
JPEG_LS_SOF: Final = 0xF7
_SOF_MARKERS: Final = frozenset(
    {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), JPEG_LS_SOF}
)
_STANDALONE_MARKERS: Final = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RSTn: no length field


@dataclass(frozen=True)
class JpegFrame:
    """``marker`` (0xC0 baseline, 0xC3 lossless, 0xF7 JPEG-LS, ...), sample ``precision`` in bits, size in px."""

    marker: int
    precision: int
    width: int
    height: int


def read_jpeg_frame(data: bytes) -> JpegFrame | None:
    """The first SOF segment before the first scan (ITU T.81 B.2.2); None if there is none or it is cut."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE_MARKERS:
            pos += 2
            continue
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            precision = data[pos + 4]
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return JpegFrame(marker, precision, width, height)
        if marker in (0xDA, 0xD9):  # scan or end of image before any frame header
            return None
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
    return None
