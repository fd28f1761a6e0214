"""models.imaging.png_chunks: ancillary chunks the pipeline does not use never decide whether a PNG decodes.

Each input is the same picture as a plain 8-bit PNG, with one chunk added or damaged; where the chunk is one the
pipeline does not read, the decoded image must be identical to the plain PNG's, through decode and probe alike.
"""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from models.imaging.decoder import decode_image, probe_image
from models.imaging.errors import InvalidImageError, MultiFrameError
from tests.models.imaging.builders import png_bytes, png_chunk, png_with_chunk, with_bad_crc

GRAY = (np.add.outer(np.arange(80), np.arange(96)) * 3 % 256).astype(np.uint8)
PLAIN = png_bytes(GRAY)
OVER_TEXT_LIMIT = np.random.default_rng(0).bytes(PngImagePlugin.MAX_TEXT_CHUNK + 1024)  # incompressible


def compressed_profile() -> bytes:
    """An iCCP body (name, method 0, deflated data) over Pillow's limit: content is never looked at."""
    return b"big profile\0\0" + zlib.compress(OVER_TEXT_LIMIT, 0)


UNUSED = {
    "zTXt over 1 MiB": png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(OVER_TEXT_LIMIT, 0)),
    "iCCP over 1 MiB": png_chunk(b"iCCP", compressed_profile()),
    "compressed iTXt over 1 MiB": png_chunk(b"iTXt", b"Comment\0\1\0\0\0" + zlib.compress(OVER_TEXT_LIMIT, 0)),
    "tEXt with a bad CRC": png_chunk(b"tEXt", b"Software\0x", crc=0),
    "pHYs with a bad CRC": png_chunk(b"pHYs", struct.pack(">IIB", 3780, 3780, 1), crc=1),
    "tIME with a bad CRC": png_chunk(b"tIME", struct.pack(">HBBBBB", 2026, 1, 2, 3, 4, 5), crc=2),
    "gAMA with a bad CRC": png_chunk(b"gAMA", struct.pack(">I", 45455), crc=3),
    "private chunk with a bad CRC": png_chunk(b"prIv", b"\1\2\3", crc=4),
}


@pytest.mark.parametrize("name", UNUSED)
def test_unused_ancillary_chunks_never_decide_decoding(name: str) -> None:
    before_data = png_with_chunk(PLAIN, UNUSED[name], b"IDAT")
    after_data = png_with_chunk(PLAIN, UNUSED[name], b"IEND")
    with pytest.raises((OSError, SyntaxError, ValueError)):  # the premise: Pillow alone refuses it
        Image.open(BytesIO(before_data)).load()
    for data in (before_data, after_data):
        np.testing.assert_array_equal(decode_image(data).gray, decode_image(PLAIN).gray)
        assert probe_image(data) == probe_image(PLAIN)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize("kind", [b"IHDR", b"IDAT", b"IEND"])
def test_a_critical_chunk_with_a_bad_crc_is_refused(kind: bytes) -> None:
    data = with_bad_crc(PLAIN, kind)
    calls = (decode_image, probe_image) if kind == b"IHDR" else (decode_image,)  # probe reads no image data
    for call in calls:
        with pytest.raises(InvalidImageError, match="may be empty, corrupt or truncated"):
            call(data)  # type: ignore[operator]


def palette_png() -> bytes:
    image = Image.fromarray(GRAY // 64).convert("P")
    image.putpalette([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255])
    buffer = BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


@pytest.mark.parametrize("kind", [b"PLTE", b"tRNS"])
def test_chunks_that_change_pixels_keep_their_crc_strict(kind: bytes) -> None:
    data = palette_png()
    decode_image(data)  # the undamaged file decodes
    with pytest.raises(InvalidImageError, match="may be empty, corrupt or truncated"):
        decode_image(with_bad_crc(data, kind))


def test_sbit_and_exif_keep_their_crc_strict() -> None:
    for chunk in (png_chunk(b"sBIT", b"\x06", crc=0), png_chunk(b"eXIf", b"MM\0*\0\0\0\x08\0\0", crc=0)):
        with pytest.raises(InvalidImageError, match="may be empty, corrupt or truncated"):
            decode_image(png_with_chunk(PLAIN, chunk))


def test_a_truncated_png_is_still_refused_with_unused_chunks_present() -> None:
    data = png_with_chunk(PLAIN, UNUSED["zTXt over 1 MiB"], b"IEND")
    idat = data.index(b"IDAT")
    for cut in (data[: idat + 20], data[: len(data) - 8]):
        for call in (decode_image, probe_image):
            with pytest.raises(InvalidImageError, match="truncated"):
                call(cut)  # type: ignore[operator]


def test_an_animated_png_stays_refused_after_chunk_filtering() -> None:
    frames = [Image.fromarray(GRAY), Image.fromarray(255 - GRAY)]
    buffer = BytesIO()
    frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
    data = png_with_chunk(buffer.getvalue(), UNUSED["tEXt with a bad CRC"])
    for call in (decode_image, probe_image):
        with pytest.raises(MultiFrameError):
            call(data)  # type: ignore[operator]
