"""models.imaging.decoder: magic-byte sniffing, PNG/JPEG decoding to (H, W) float32 in [0, 1], and the upload limits."""

from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.imaging.decoder import DecodeLimits, check_dimensions, decode_image, sniff_format
from models.imaging.errors import (
    AspectRatioError,
    DecompressionBombError,
    ImageTooSmallError,
    InputError,
    InvalidImageError,
    MultiFrameError,
    UnsupportedFormatError,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
NIH_GRAY = ("00000075_000.png", "00000282_000.png", "00000353_000.png", "00000404_000.png")
NIH_RGBA = "00002578_000_rgba.png"


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gray_png(width: int, height: int, value: int = 128) -> bytes:
    return encode(Image.new("L", (width, height), value))


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 64x64 PNG whose IHDR is patched (CRC fixed) to claim width x height."""
    data = bytearray(gray_png(64, 64))
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- sniffing -------------------------------------------------------------------------------------------


def test_sniff_format_by_magic_bytes() -> None:
    assert sniff_format(gray_png(8, 8)) == "png"
    assert sniff_format(encode(Image.new("L", (8, 8)), "JPEG")) == "jpeg"
    assert sniff_format((FIXTURES / "siim-cxr-monochrome2.dcm").read_bytes()) == "dicom"
    assert sniff_format(b"\0" * 128 + b"DICM" + b"\0" * 16) == "dicom"


@pytest.mark.parametrize(
    "data",
    [
        b"hello world, not an image",
        b"DICM" + b"\0" * 200,  # no preamble: not accepted
        b"\x89PNG",  # a prefix of the signature only
        b"GIF89a" + b"\0" * 100,
        np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    ],
)
def test_sniff_format_rejects_other_bytes(data: bytes) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        sniff_format(data)
    assert info.value.code == "unsupported_format"


def test_empty_upload_is_invalid_not_unsupported() -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_image(b"", DecodeLimits())
    assert info.value.code == "invalid_image"


def test_gif_is_unsupported_even_though_pillow_reads_it() -> None:
    with pytest.raises(UnsupportedFormatError):
        decode_image(encode(Image.new("L", (64, 64)), "GIF"), DecodeLimits())


# --- decoding -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NIH_GRAY)
def test_nih_8bit_png_is_value_over_255(name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    with Image.open(BytesIO(data)) as image:
        assert image.mode == "L"
        stored = np.asarray(image)
    gray = decode_image(data, DecodeLimits()).gray
    assert gray.dtype == np.float32
    assert gray.shape == (64, 64)
    np.testing.assert_array_equal(gray, stored.astype(np.float32) / np.float32(255.0))
    assert 0.0 <= gray.min() < gray.max() <= 1.0


def test_16bit_png_ramp_is_value_over_65535() -> None:
    ramp = (np.arange(128 * 128, dtype=np.uint32) * 4).reshape(128, 128)
    ramp[-1, -1] = 65535
    ramp = ramp.astype(np.uint16)
    data = encode(Image.fromarray(ramp))
    with Image.open(BytesIO(data)) as image:
        assert image.mode in ("I;16", "I")  # really a 16-bit PNG
    gray = decode_image(data, DecodeLimits()).gray
    np.testing.assert_array_equal(gray, (ramp.astype(np.float64) / 65535.0).astype(np.float32))
    assert gray[0, 0] == 0.0
    assert gray[-1, -1] == 1.0
    assert gray[0, 1] == np.float32(4 / 65535)


def test_rgba_nih_png_drops_alpha() -> None:
    data = (FIXTURES / NIH_RGBA).read_bytes()
    with Image.open(BytesIO(data)) as image:
        assert image.mode == "RGBA"
        rgba = np.asarray(image)
    assert (rgba[..., 0] == rgba[..., 1]).all()
    assert (rgba[..., 0] == rgba[..., 2]).all()  # a gray X-ray stored as RGBA
    gray = decode_image(data, DecodeLimits()).gray
    assert gray.shape == (96, 96)
    np.testing.assert_allclose(gray, rgba[..., 0] / 255.0, rtol=0, atol=1e-6)


def test_rgba_with_transparency_uses_colour_only() -> None:
    rgba = np.zeros((64, 64, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :32, 3] = 0  # left half fully transparent
    rgba[:, 32:, 3] = 255
    gray = decode_image(encode(Image.fromarray(rgba, "RGBA")), DecodeLimits()).gray
    np.testing.assert_allclose(gray, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0, rtol=0, atol=1e-6)


def test_palette_png_maps_through_palette_to_luma() -> None:
    indices = np.zeros((64, 64), dtype=np.uint8)
    indices[:, 16:32], indices[:, 32:48], indices[:, 48:] = 1, 2, 3
    image = Image.fromarray(indices, "L").convert("P")
    image.putpalette([0, 0, 0, 255, 255, 255, 255, 0, 0, 10, 20, 30] + [0, 0, 0] * 252)
    data = encode(image)
    with Image.open(BytesIO(data)) as reopened:
        assert reopened.mode == "P"
    gray = decode_image(data, DecodeLimits()).gray
    expected = [0.0, 1.0, 0.299, (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255.0]
    for column, value in zip((0, 16, 32, 48), expected, strict=True):
        np.testing.assert_allclose(gray[:, column : column + 16], value, rtol=0, atol=1e-6)


def test_jpeg_exif_orientation_6_is_applied() -> None:
    stored = np.zeros((64, 128), dtype=np.uint8)  # H=64, W=128 as stored
    stored[:16, :16] = 255  # bright block in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the stored image must be rotated 90° clockwise for display
    data = encode(Image.fromarray(stored, "L"), "JPEG", quality=95, exif=exif.tobytes())
    gray = decode_image(data, DecodeLimits()).gray
    assert gray.shape == (128, 64)  # transposed
    # 90° clockwise: the stored top-left corner becomes the displayed top-right corner.
    assert gray[:16, -16:].mean() > 0.95
    assert gray[:16, :16].mean() < 0.05
    assert gray[-16:, -16:].mean() < 0.05
    assert gray[-16:, :16].mean() < 0.05


def test_jpeg_without_exif_keeps_stored_layout() -> None:
    stored = np.zeros((64, 128), dtype=np.uint8)
    stored[:16, :16] = 255
    gray = decode_image(encode(Image.fromarray(stored, "L"), "JPEG", quality=95), DecodeLimits()).gray
    assert gray.shape == (64, 128)
    assert gray[:16, :16].mean() > 0.95


# --- rejected uploads -----------------------------------------------------------------------------------


def test_truncated_png_is_invalid() -> None:
    data = (FIXTURES / NIH_GRAY[0]).read_bytes()
    with pytest.raises(InvalidImageError):
        decode_image(data[: len(data) // 2], DecodeLimits())


def test_truncated_jpeg_is_invalid() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (128, 128), dtype=np.uint8)
    data = encode(Image.fromarray(noise, "L"), "JPEG", quality=90)
    with pytest.raises(InvalidImageError):
        decode_image(data[: len(data) // 2], DecodeLimits())


def test_garbage_after_png_signature_is_invalid() -> None:
    with pytest.raises(InvalidImageError) as info:
        decode_image(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20, DecodeLimits())
    assert "garbage" not in info.value.message


def test_corrupt_png_crc_is_invalid() -> None:
    data = bytearray(gray_png(64, 64))
    data[17] ^= 0x01  # width changed, IHDR CRC no longer matches
    with pytest.raises(InvalidImageError):
        decode_image(bytes(data), DecodeLimits())


def test_too_small() -> None:
    with pytest.raises(ImageTooSmallError) as info:
        decode_image(gray_png(32, 32), DecodeLimits())
    assert info.value.code == "image_too_small"
    assert "64" in info.value.message


@pytest.mark.parametrize(("width", "height"), [(1000, 100), (100, 1000)])
def test_extreme_aspect_ratio(width: int, height: int) -> None:
    with pytest.raises(AspectRatioError) as info:
        decode_image(gray_png(width, height), DecodeLimits())
    assert info.value.code == "extreme_aspect_ratio"


def test_limits_are_inclusive() -> None:
    assert decode_image(gray_png(64, 64), DecodeLimits()).gray.shape == (64, 64)
    assert decode_image(gray_png(256, 64), DecodeLimits()).gray.shape == (64, 256)  # ratio exactly 4
    with pytest.raises(AspectRatioError):
        decode_image(gray_png(257, 64), DecodeLimits())
    with pytest.raises(ImageTooSmallError):
        decode_image(gray_png(63, 200), DecodeLimits())


def test_custom_limits() -> None:
    assert decode_image(gray_png(32, 32), DecodeLimits(min_side=16)).gray.shape == (32, 32)
    with pytest.raises(DecompressionBombError):
        decode_image(gray_png(100, 100), DecodeLimits(max_pixels=9_999))


def test_invalid_limits_rejected() -> None:
    with pytest.raises(ValueError, match="max_aspect_ratio"):
        DecodeLimits(max_aspect_ratio=0.5)


def test_check_dimensions_order() -> None:
    limits = DecodeLimits()
    check_dimensions(64, 256, limits)
    with pytest.raises(DecompressionBombError):
        check_dimensions(1_000_000, 100, limits)  # over the pixel cap beats the aspect ratio
    with pytest.raises(ImageTooSmallError):
        check_dimensions(10, 1000, limits)  # too small beats the aspect ratio


def test_header_claiming_huge_size_is_rejected_before_decoding() -> None:
    """20000² = 400 M pixels with ~100 bytes of data: Pillow's own DecompressionBombError at open()."""
    before = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DecompressionBombError) as info:
        decode_image(png_claiming_size(20_000, 20_000), DecodeLimits())
    assert info.value.code == "decompression_bomb"
    assert before == Image.MAX_IMAGE_PIXELS  # global Pillow state untouched


def test_header_over_our_cap_is_rejected_before_decoding() -> None:
    """7000² = 49 M pixels: under Pillow's warning threshold, over the 40 M cap."""
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS > 7000 * 7000
    with pytest.raises(DecompressionBombError):
        decode_image(png_claiming_size(7000, 7000), DecodeLimits())


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillow_warning_threshold_is_an_error_even_with_a_larger_cap() -> None:
    """10000² = 100 M pixels: above Pillow's warning threshold (~89 M), so rejected although under our cap."""
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 10_000 * 10_000 < 2 * Image.MAX_IMAGE_PIXELS
    with pytest.raises(DecompressionBombError):
        decode_image(png_claiming_size(10_000, 10_000), DecodeLimits(max_pixels=200_000_000))


def test_animated_png_is_multi_frame() -> None:
    frames = [Image.new("L", (64, 64), 0), Image.new("L", (64, 64), 255)]
    data = encode(frames[0], save_all=True, append_images=frames[1:], duration=100)
    with Image.open(BytesIO(data)) as image:
        assert image.n_frames == 2
    with pytest.raises(MultiFrameError) as info:
        decode_image(data, DecodeLimits())
    assert info.value.code == "multi_frame"


def test_error_codes_and_default_messages() -> None:
    classes = [
        UnsupportedFormatError,
        InvalidImageError,
        ImageTooSmallError,
        AspectRatioError,
        DecompressionBombError,
        MultiFrameError,
    ]
    codes = [cls.code for cls in classes]
    assert codes == [
        "unsupported_format",
        "invalid_image",
        "image_too_small",
        "extreme_aspect_ratio",
        "decompression_bomb",
        "multi_frame",
    ]
    for cls in classes:
        error = cls()
        assert isinstance(error, InputError)
        assert str(error) == error.message
        assert error.message
    assert str(InvalidImageError("custom")) == "custom"


def test_concurrent_decodes_are_independent() -> None:
    good = (FIXTURES / NIH_GRAY[0]).read_bytes()
    bomb = png_claiming_size(20_000, 20_000)
    expected = decode_image(good, DecodeLimits()).gray

    def run(data: bytes) -> str:
        try:
            return "ok" if np.array_equal(decode_image(data, DecodeLimits()).gray, expected) else "wrong"
        except InputError as error:
            return error.code

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, [good, bomb] * 16))
    assert results == ["ok", "decompression_bomb"] * 16


@pytest.mark.parametrize(
    ("name", "step"),
    [
        ("00000075_000.png", "PIL.Image.open"),
        ("siim-cxr-monochrome2.dcm", "models.imaging.dicom.pipeline.read_dataset"),
    ],
)
def test_out_of_memory_is_not_reported_as_a_bad_file(name: str, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A MemoryError is the server's trouble (the service answers 503), never "could not be decoded"."""

    def no_memory(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(step, no_memory)
    with pytest.raises(MemoryError):
        decode_image((FIXTURES / name).read_bytes(), DecodeLimits())
