"""PNG chunk policy: metadata never decides whether a picture decodes (PNG 1.2 §4, §5.3).

Before Pillow sees a PNG, its chunks are walked and the stream is rebuilt from the chunks that affect pixels:

* kept, checksum (CRC-32) checked: every critical chunk (IHDR, PLTE, IDAT, IEND, and any other whose name
  starts with a capital letter), and the ancillary chunks the pipeline reads: ``tRNS`` (transparency), ``sBIT``
  (significant bits), ``eXIf`` (orientation), and APNG's ``acTL``/``fcTL``/``fdAT`` (an animation stays refused);
* dropped, unread: every other ancillary chunk (tEXt, zTXt, iTXt, iCCP, pHYs, tIME, gAMA, cHRM, sRGB, bKGD,
  private chunks, ...).  Their size or a wrong checksum no longer matters: Pillow refuses a zTXt or iCCP chunk
  over 1 MiB (``PngImagePlugin.MAX_TEXT_CHUNK``) and any chunk with a bad CRC, though the pixels are intact and
  browsers and libpng show them (PNG 1.2 §13.2 lets a decoder ignore an ancillary chunk's CRC error).

A file that ends before its IEND chunk, or inside a chunk, is refused as truncated; nothing process-wide
(``ImageFile.LOAD_TRUNCATED_IMAGES``) is touched.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from typing import BinaryIO, Final

from models.imaging.errors import InvalidImageError

__all__ = ["KEPT_ANCILLARY", "PNG_SIGNATURE", "png_header_stream", "png_without_unused_chunks"]

PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
KEPT_ANCILLARY: Final = frozenset({b"tRNS", b"sBIT", b"eXIf", b"acTL", b"fcTL", b"fdAT"})
_MAX_PNG_CHUNKS: Final = 65_536  # real files have a few dozen; more is a file built to waste time
_TRUNCATED: Final = "The PNG file is truncated: it ends before its IEND chunk."


@dataclass(frozen=True)
class _Chunk:
    kind: bytes
    offset: int  # of the length field
    length: int  # of the data

    @property
    def kept(self) -> bool:
        return self.kind[:1].isupper() or self.kind in KEPT_ANCILLARY


def _walk(stream: BinaryIO) -> Iterator[_Chunk]:
    """Every chunk up to and including IEND, from the headers alone (8 bytes read a chunk).

    Raises :class:`InvalidImageError` for a file that ends first, or with more than 65,536 chunks.
    """
    total = stream.seek(0, 2)
    offset = len(PNG_SIGNATURE)
    for _ in range(_MAX_PNG_CHUNKS):
        stream.seek(offset)
        head = stream.read(8)
        if len(head) < 8:
            raise InvalidImageError(_TRUNCATED)
        length, kind = struct.unpack(">I4s", head)
        if offset + 12 + length > total:
            raise InvalidImageError(_TRUNCATED)
        yield _Chunk(kind, offset, length)
        if kind == b"IEND":
            return
        offset += 12 + length
    raise InvalidImageError("The PNG file has too many chunks.")


def _checked(stream: BinaryIO, chunk: _Chunk) -> bytes:
    """The whole chunk (length, type, data, CRC) after checking its CRC; raises :class:`InvalidImageError`."""
    stream.seek(chunk.offset)
    raw = stream.read(12 + chunk.length)
    (crc,) = struct.unpack(">I", raw[-4:])
    if zlib.crc32(raw[4:-4]) != crc:
        raise InvalidImageError()  # the generic "corrupt or truncated" message, as Pillow's own CRC error gave
    return raw


def png_without_unused_chunks(data: bytes) -> bytes:
    """The PNG rebuilt from its kept chunks, their CRCs checked whether or not anything is dropped (so the image
    data's checksum is checked whichever library inflates it); ``data`` itself when nothing is dropped.
    Raises :class:`InvalidImageError`."""
    stream = BytesIO(data)
    kept, dropped = [PNG_SIGNATURE], False
    for chunk in list(_walk(stream)):
        if chunk.kept:
            kept.append(_checked(stream, chunk))
        else:
            dropped = True
    return b"".join(kept) if dropped else data


def png_header_stream(stream: BinaryIO) -> bytes:
    """A small PNG that Pillow's ``open`` reads like the file's header: the kept chunks before the first IDAT,
    an empty IDAT, and IEND.  Walks every chunk header (so a truncated file is refused); reads only the kept
    chunks before the image data.  Raises :class:`InvalidImageError`.
    """
    parts, in_header = [PNG_SIGNATURE], True
    for chunk in list(_walk(stream)):
        if chunk.kind == b"IDAT":
            in_header = False
        elif in_header and chunk.kept:
            parts.append(_checked(stream, chunk))
    empty = (b"IDAT", b"IEND")
    parts.extend(struct.pack(">I", 0) + kind + struct.pack(">I", zlib.crc32(kind)) for kind in empty)
    return b"".join(parts)
