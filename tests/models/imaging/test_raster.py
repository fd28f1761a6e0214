"""models.imaging.raster: PNG/JPEG as people have them — MPO previews, sBIT-declared precision, APNG still refused."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from models.imaging.decoded import DecodeLimits
from models.imaging.decoder import decode_image, probe_image
from models.imaging.errors import InvalidImageError, MultiFrameError, UnsupportedCompressionError
from models.imaging.raster import png_significant_bits

LIMITS = DecodeLimits()


def encode(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_16(samples: np.ndarray, colour_type: int, sbit: bytes | None, depth: int = 16) -> bytes:
    """A 16-bit (or ``depth``-bit) PNG written by hand (Pillow cannot write 16-bit colour or an sBIT chunk)."""
    height, width = samples.shape[:2]
    rows = samples.astype(">u2" if depth == 16 else np.uint8).reshape(height, -1)
    raw = b"".join(b"\0" + row.tobytes() for row in rows)
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
    extra = chunk(b"sBIT", sbit) if sbit is not None else b""
    return b"\x89PNG\r\n\x1a\n" + header + extra + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def twelve_bit(shape: tuple[int, int] = (64, 80)) -> np.ndarray:
    values = np.random.default_rng(0).integers(0, 4096, shape)
    values[0, 0], values[0, 1] = 0, 4095
    return values


# --- MPO: a camera JPEG with a preview picture ----------------------------------------------------------


def mpo(primary: Image.Image, preview: Image.Image) -> bytes:
    data = encode(primary, "MPO", save_all=True, append_images=[preview], quality=95)
    with Image.open(io.BytesIO(data)) as check:
        assert check.format == "MPO" and check.n_frames == 2  # really what a phone sends
    return data


def test_mpo_decodes_its_primary_picture() -> None:
    primary = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 128), dtype=np.uint8), "L")
    preview = Image.new("L", (64, 64), 255)
    decoded = decode_image(mpo(primary, preview), LIMITS)
    alone = decode_image(encode(primary, "JPEG", quality=95), LIMITS)
    assert decoded.format == "jpeg"
    assert decoded.steps == ("mpo_primary_image",)
    np.testing.assert_array_equal(decoded.gray, alone.gray)


def test_mpo_probe_reads_the_primary_size() -> None:
    header = probe_image(mpo(Image.new("L", (128, 96), 30), Image.new("L", (64, 64))), LIMITS)
    assert (header.format, header.width, header.height) == ("jpeg", 128, 96)


def test_animated_png_stays_refused() -> None:
    frames = [Image.new("L", (64, 64), v) for v in (0, 255)]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    with pytest.raises(MultiFrameError) as info:
        decode_image(data, LIMITS)
    assert info.value.code == "multi_frame"
    with pytest.raises(MultiFrameError):
        probe_image(data, LIMITS)


# --- sBIT: fewer significant bits than the bit depth ----------------------------------------------------


def test_sbit_is_read_from_the_header() -> None:
    values = twelve_bit()
    assert png_significant_bits(png_16(values, 0, b"\x0c")) == (16, 12)
    assert png_significant_bits(png_16(values, 0, None)) is None
    assert png_significant_bits(png_16(values, 0, b"\x10")) is None  # all 16 bits significant: nothing to do
    assert png_significant_bits(png_16(np.stack([values] * 3, -1), 2, b"\x0c\x0c\x0b")) == (16, 12)


def test_12_bit_data_in_a_16_bit_png_is_scaled_by_4095() -> None:
    values = twelve_bit()
    decoded = decode_image(png_16(values, 0, b"\x0c"), LIMITS)
    assert decoded.steps == ("sbit_12",)
    np.testing.assert_array_equal(decoded.gray, (values / 4095.0).astype(np.float32))
    assert decoded.gray.max() == 1.0


def test_sbit_12_png_equals_the_same_pixels_as_an_8_bit_png() -> None:
    eight = np.random.default_rng(2).integers(0, 256, (64, 80))
    eight[0, 0], eight[0, 1] = 0, 255
    sixteen = decode_image(png_16(eight * 4095 // 255, 0, b"\x0c"), LIMITS).gray
    plain = decode_image(encode(Image.fromarray(eight.astype(np.uint8), "L")), LIMITS).gray
    np.testing.assert_allclose(sixteen, plain, atol=1 / 4095)


def test_conforming_scaled_data_is_divided_by_65535() -> None:
    """A writer that followed PNG 1.2 §12.5 scaled 12-bit data up to 16 bits: the full depth is right."""
    values = twelve_bit()
    scaled = (values << 4) | (values >> 8)
    decoded = decode_image(png_16(scaled, 0, b"\x0c"), LIMITS)
    assert decoded.steps == ()
    np.testing.assert_array_equal(decoded.gray, (scaled / 65535.0).astype(np.float32))


def test_16_bit_png_without_sbit_is_divided_by_65535() -> None:
    values = twelve_bit()
    np.testing.assert_array_equal(
        decode_image(png_16(values, 0, None), LIMITS).gray, (values / 65535).astype(np.float32)
    )


def test_8_bit_png_with_6_significant_bits() -> None:
    values = np.random.default_rng(3).integers(0, 64, (64, 64))
    values[0, 0] = 63
    decoded = decode_image(png_16(values, 0, b"\x06", depth=8), LIMITS)
    assert decoded.steps == ("sbit_6",)
    np.testing.assert_array_equal(decoded.gray, (values / 63.0).astype(np.float32))


def test_16_bit_colour_png_with_unscaled_12_bit_data_is_refused_not_shown_dark() -> None:
    """Pillow keeps only the high byte of 16-bit colour samples; 12-bit values would come out near black."""
    values = np.stack([twelve_bit()] * 3, -1)
    with pytest.raises(InvalidImageError, match="16-bit grayscale PNG"):
        decode_image(png_16(values, 2, b"\x0c\x0c\x0c"), LIMITS)
    conforming = (values << 4) | (values >> 8)
    gray = decode_image(png_16(conforming, 2, b"\x0c\x0c\x0c"), LIMITS).gray
    np.testing.assert_allclose(gray, (conforming[..., 0] >> 8) / 255.0, atol=1e-6)  # what Pillow gives


def test_truncated_png_gets_one_verdict_from_decoder_and_header_check() -> None:
    data = encode(Image.fromarray(np.random.default_rng(4).integers(0, 256, (64, 64), dtype=np.uint8), "L"))
    message = "The PNG file is truncated: it ends before its IEND chunk."
    for cut in (data[:-12], data[: len(data) // 2], data[:40]):
        for call in (decode_image, probe_image):
            with pytest.raises(InvalidImageError) as info:
                call(cut, LIMITS)
            assert info.value.message == message, (len(cut), call.__name__)


def test_data_after_iend_is_ignored_by_both() -> None:
    data = encode(Image.new("L", (64, 64), 7)) + np.random.default_rng(5).bytes(5000)
    assert decode_image(data, LIMITS).gray.shape == (64, 64)
    assert probe_image(data, LIMITS).width == 64


def _xray_jpeg() -> bytes:
    pixels = np.random.default_rng(6).normal(120, 30, (128, 128)).clip(0, 255).astype(np.uint8)
    return encode(Image.fromarray(pixels, "L"), "JPEG", quality=90)


def test_jpeg_with_damaged_or_cut_scan_data_is_refused_not_shown_grey() -> None:
    """Pillow fills a damaged scan with grey and says nothing; libjpeg-turbo's strict mode refuses it."""
    data = _xray_jpeg()
    scan = data.index(b"\xff\xda")
    cut_with_end_marker = data[: scan + (len(data) - scan) // 3] + b"\xff\xd9"
    flipped = bytearray(data)
    flipped[scan + 200 : scan + 260] = bytes(b ^ 0x55 for b in flipped[scan + 200 : scan + 260])
    for damaged in (cut_with_end_marker, bytes(flipped), data[:-2]):
        with pytest.raises(InvalidImageError) as info:
            decode_image(damaged, LIMITS)
        assert info.value.code == "invalid_image"
    assert decode_image(data + b"trailing bytes after the end marker", LIMITS).gray.shape == (128, 128)


def test_cmyk_and_progressive_jpegs_still_decode() -> None:
    image = Image.fromarray(np.random.default_rng(7).integers(0, 256, (96, 96), dtype=np.uint8), "L")
    assert decode_image(encode(image.convert("CMYK"), "JPEG"), LIMITS).steps == ("luma",)
    assert decode_image(encode(image, "JPEG", progressive=True), LIMITS).gray.shape == (96, 96)


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("12-bit", "JPEG files with more than 8 bits per sample are read only inside DICOM files."),
        ("12-bit lossless", "JPEG files with more than 8 bits per sample are read only inside DICOM files."),
        ("JPEG-LS", "JPEG-LS files are read only inside DICOM files."),
    ],
)
def test_jpeg_kinds_read_only_inside_dicom_are_named_by_decoder_and_header_check(kind: str, message: str) -> None:
    import imagecodecs

    pixels = np.random.default_rng(10).integers(0, 4096, (64, 64)).astype(np.uint16)
    data = {
        "12-bit": lambda: imagecodecs.jpeg8_encode(pixels, level=80, bitspersample=12),
        "12-bit lossless": lambda: imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=1, bitspersample=12),
        "JPEG-LS": lambda: imagecodecs.jpegls_encode(pixels, level=0),
    }[kind]()
    for call in (decode_image, probe_image):
        with pytest.raises(UnsupportedCompressionError) as info:
            call(data, LIMITS)
        assert info.value.message == message


def test_dark_conforming_data_is_not_taken_for_unscaled() -> None:
    """Scaled-up values below 2**bits are all multiples of 2**(depth - bits): they stay divided by the depth."""
    dark = np.random.default_rng(8).integers(0, 256, (64, 64)) << 4  # 12-bit 0..255, shifted: < 4096
    decoded = decode_image(png_16(dark, 0, b"\x0c"), LIMITS)
    assert decoded.steps == ()
    np.testing.assert_array_equal(decoded.gray, (dark / 65535.0).astype(np.float32))
    linear = np.rint(np.random.default_rng(11).integers(0, 256, (64, 64)) * 65535 / 4095).astype(np.int64)
    assert linear.max() < 4096 and np.any(linear % 16)  # fits in 12 bits, and not all multiples of 16
    decoded = decode_image(png_16(linear, 0, b"\x0c"), LIMITS)
    assert decoded.steps == ()
    np.testing.assert_array_equal(decoded.gray, (linear / 65535.0).astype(np.float32))
    even = np.random.default_rng(9).integers(0, 64, (64, 64)) * 2  # 8-bit sBIT 7, left-shifted, all < 128
    data = png_16(even, 0, b"\x07", depth=8)
    np.testing.assert_array_equal(decode_image(data, LIMITS).gray, (even / 255.0).astype(np.float32))


def _pillow_only_gray(data: bytes) -> np.ndarray:
    """What Pillow alone makes of a JPEG (decode, EXIF orientation, luma): the reference the one-pass decode keeps."""
    from models.preprocessing import image_to_gray

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image_to_gray(image), dtype=np.float32)


def _jpeg_corpus() -> dict[str, bytes]:
    """JPEGs as archives and phones write them: gray and colour, every chroma subsampling Pillow writes, progressive,
    restart markers, odd sizes, low and high quality, every EXIF orientation."""
    rng = np.random.default_rng(11)
    smooth = np.cumsum(rng.normal(0, 4, (157, 203)), axis=1).clip(-120, 120) + 128
    gray = smooth.astype(np.uint8)
    colour = np.stack([gray, np.roll(gray, 9, axis=0), 255 - gray], axis=-1)
    corpus: dict[str, bytes] = {}
    for quality in (40, 95):
        corpus[f"gray q{quality}"] = encode(Image.fromarray(gray, "L"), "JPEG", quality=quality)
        corpus[f"gray progressive q{quality}"] = encode(Image.fromarray(gray, "L"), "JPEG", quality=quality,
                                                        progressive=True)  # fmt: skip
        for subsampling in (0, 1, 2):  # 4:4:4, 4:2:2, 4:2:0
            corpus[f"rgb {subsampling} q{quality}"] = encode(Image.fromarray(colour, "RGB"), "JPEG",
                                                             quality=quality, subsampling=subsampling)  # fmt: skip
    corpus["rgb progressive 4:2:0"] = encode(Image.fromarray(colour, "RGB"), "JPEG", progressive=True, subsampling=2)
    noise = rng.integers(0, 256, (67, 131, 3), dtype=np.uint8)  # odd sides: partial MCUs and chroma edges
    corpus["odd size noise 4:2:0"] = encode(Image.fromarray(noise, "RGB"), "JPEG", subsampling=2)
    corpus["odd size noise 4:2:2"] = encode(Image.fromarray(noise, "RGB"), "JPEG", subsampling=1)
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        corpus[f"rgb exif {orientation}"] = encode(Image.fromarray(colour, "RGB"), "JPEG", exif=exif.tobytes())
        corpus[f"gray exif {orientation}"] = encode(Image.fromarray(gray, "L"), "JPEG", exif=exif.tobytes())
    corpus["restart markers"] = encode(Image.fromarray(colour, "RGB"), "JPEG", restart_marker_blocks=3)
    import imagecodecs  # an RGB JPEG without the YCbCr transform (Adobe APP14): checked strictly, Pillow decodes

    corpus["rgb no transform"] = imagecodecs.jpeg8_encode(colour, level=90, colorspace="RGB", outcolorspace="RGB")
    return corpus


@pytest.mark.parametrize("name", sorted(_jpeg_corpus()))
def test_the_one_pass_jpeg_decode_gives_pillows_pixels_bit_for_bit(name: str) -> None:
    """Gray and YCbCr JPEGs are decoded once, by the strict libjpeg-turbo pass; the result must be Pillow's."""
    data = _jpeg_corpus()[name]
    decoded = decode_image(data, LIMITS)
    reference = _pillow_only_gray(data)
    assert decoded.gray.dtype == np.float32
    assert decoded.gray.shape == reference.shape
    assert np.array_equal(decoded.gray, reference)
    oriented = "exif" in name and not name.endswith(" 1")
    assert ("exif_orientation" in decoded.steps) == oriented
    assert ("luma" in decoded.steps) == (not name.startswith("gray"))  # "rgb no transform" included


def test_the_primary_picture_of_an_mpo_is_decoded_once_and_equals_pillows() -> None:
    first = Image.fromarray(np.random.default_rng(12).integers(0, 256, (80, 120, 3), dtype=np.uint8), "RGB")
    preview = Image.fromarray(np.zeros((64, 64, 3), dtype=np.uint8), "RGB")
    data = encode(first, "MPO", save_all=True, append_images=[preview])
    decoded = decode_image(data, LIMITS)
    assert decoded.steps == ("mpo_primary_image", "luma")
    with Image.open(io.BytesIO(data)) as image:
        image.seek(0)
        image.load()
        from models.preprocessing import image_to_gray

        assert np.array_equal(decoded.gray, np.asarray(image_to_gray(image), dtype=np.float32))


def _png_corpus() -> dict[str, bytes]:
    """Greyscale PNGs as detectors and archives write them (libpng's path), and the kinds that stay with Pillow."""
    rng = np.random.default_rng(13)
    eight = rng.integers(0, 256, (71, 97), dtype=np.uint8)
    sixteen = rng.integers(0, 65536, (71, 97), dtype=np.uint16)
    corpus = {
        "gray 8": encode(Image.fromarray(eight, "L")),
        "gray 8 interlaced": png_adam7(eight),
        "gray 16 interlaced": png_adam7(sixteen),
        "gray 16": encode(Image.fromarray(sixteen)),
        "gray 16 sbit 12 unscaled": png_16(sixteen >> 4, 0, b"\x0c"),
        "gray 16 sbit 12 scaled": png_16((sixteen >> 4) << 4, 0, b"\x0c"),
        "gray 8 sbit 6": png_16(eight >> 2, 0, b"\x06", depth=8),
        "gray 8 with text": encode(Image.fromarray(eight, "L"), pnginfo=_text_info()),
        "gray 8 with transparency": encode(Image.fromarray(eight, "L"), transparency=7),
        "gray 4": encode(Image.fromarray(eight >> 4 << 4, "L").convert("P").convert("L"), bits=4),
        "rgb": encode(Image.fromarray(np.stack([eight, eight[::-1], 255 - eight], -1), "RGB")),
        "palette": encode(Image.fromarray(eight, "L").convert("P")),
        "gray alpha": encode(Image.fromarray(np.stack([eight, eight], -1), "LA")),
    }
    exif = Image.Exif()
    exif[0x0112] = 6
    corpus["gray 8 exif 6"] = encode(Image.fromarray(eight, "L"), exif=exif.tobytes())
    return corpus


def png_adam7(samples: np.ndarray) -> bytes:
    """A greyscale PNG with Adam7 interlacing (PNG 1.2 §8.2), written by hand: Pillow writes none."""
    height, width = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = samples[y0::dy, x0::dx].astype(">u2" if depth == 16 else np.uint8)
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 1))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _text_info() -> object:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a dropped ancillary chunk")
    return info


@pytest.mark.parametrize("name", sorted(_png_corpus()))
def test_libpngs_greyscale_pngs_equal_pillows_bit_for_bit(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reference is the decoder with libpng switched off: Pillow decodes every PNG, as before."""
    from models.imaging import raster

    data = _png_corpus()[name]
    fast = decode_image(data, LIMITS)
    monkeypatch.setattr(raster, "_libpng_gray_pixels", lambda _data: None)
    reference = decode_image(data, LIMITS)
    assert fast.gray.dtype == reference.gray.dtype == np.float32
    assert fast.gray.shape == reference.gray.shape
    assert np.array_equal(fast.gray, reference.gray)
    assert fast.steps == reference.steps


def test_libpng_takes_exactly_the_8_and_16_bit_greyscale_pngs() -> None:
    from models.imaging.png_chunks import png_without_unused_chunks
    from models.imaging.raster import _libpng_gray_pixels

    corpus = _png_corpus()
    taken = {name for name, data in corpus.items() if _libpng_gray_pixels(png_without_unused_chunks(data)) is not None}
    assert taken == {
        "gray 8", "gray 16", "gray 16 sbit 12 unscaled", "gray 16 sbit 12 scaled", "gray 8 sbit 6", "gray 8 with text",
    }  # fmt: skip


@pytest.mark.parametrize("name", ["gray 8", "rgb", "palette"])
def test_a_bad_image_data_checksum_is_refused_whichever_library_inflates(name: str) -> None:
    """PNG 1.2 §5.3: a critical chunk's CRC error is an error; libpng (greyscale) and Pillow (the rest) agree."""
    from tests.models.imaging.builders import with_bad_crc

    with pytest.raises(InvalidImageError) as info:
        decode_image(with_bad_crc(_png_corpus()[name], b"IDAT"), LIMITS)
    assert info.value.code == "invalid_image"


def test_an_interlaced_greyscale_png_decodes_to_its_samples() -> None:
    samples = np.random.default_rng(14).integers(0, 65536, (67, 70), dtype=np.uint16)
    decoded = decode_image(png_adam7(samples), LIMITS)
    assert np.array_equal(decoded.gray, (samples.astype(np.float64) / 65535).astype(np.float32))
