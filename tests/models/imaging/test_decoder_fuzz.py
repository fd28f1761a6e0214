"""Fuzzing the one decoder: random and mutated PNG/JPEG/DICOM bytes give a result or a typed error, nothing else.

``make test`` runs a short, derandomised pass (the ``ci`` profile); ``make fuzz`` runs the long random one
(``CHEXNET_FUZZ=long``, thousands of examples per kind).  A result must be a (H, W) float32 image in [0, 1]
within the limits; an error must be an :class:`InputError` with a code and a message.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from models.imaging.decoded import DecodeLimits
from models.imaging.decoder import decode_image, probe_image
from models.imaging.errors import InputError
from tests.models.imaging.builders import dicom_cells, png_chunk, png_with_chunk
from tests.models.imaging.test_dicom import make_dicom
from tests.models.imaging.test_raster import mpo, png_16

settings.register_profile(
    "ci", max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("long", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("long" if os.environ.get("CHEXNET_FUZZ") == "long" else "ci")

LIMITS = DecodeLimits(min_side=16, max_pixels=4_000_000)  # small images keep each example fast


def _encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _seeds() -> list[bytes]:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    image = Image.fromarray(pixels, "L")
    return [
        _encode(image, "PNG"),
        _encode(image.convert("RGB"), "PNG"),
        _encode(image, "JPEG", quality=80),
        _encode(image, "JPEG", progressive=True),
        mpo(image, Image.new("L", (16, 16))),
        png_16(pixels.astype(np.int64) * 16, 0, b"\x0c"),
        make_dicom(pixels.astype(np.int64) * 16, bits_stored=12, WindowCenter=2048, WindowWidth=4096),
        make_dicom(pixels.astype(np.int64), "MONOCHROME1", bits_stored=8, RescaleSlope=2, RescaleIntercept=-5),
        make_dicom((pixels.astype(np.int64) << 4) | 0xF, bits_stored=12, HighBit=15, PixelPaddingValue=0),
        make_dicom(pixels.astype(np.int64), PixelPaddingValue=10, PixelPaddingRangeLimit=20, RescaleSlope="0"),
        png_with_chunk(_encode(image, "PNG"), png_chunk(b"tEXt", b"Comment\0x", crc=0)),
    ]


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid file with a few bytes flipped, cut, inserted or deleted."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete", "zero"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            data[at : at + 4] = b"\0\0\0\0"
    return bytes(data)


MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"\0" * 128 + b"DICM", b"\x02\x00\x00\x00UL", b"\x08\x00\x05\x00"]


@st.composite
def random_after_magic(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(MAGICS)) + draw(st.binary(max_size=512))


def _typed_error(call: Callable[[], object]) -> InputError | None:
    """None when ``call`` succeeds, its InputError when it raises one; any other exception fails the test."""
    try:
        call()
    except InputError as error:
        return error
    return None


def _check(data: bytes) -> None:
    error = _typed_error(lambda: decode_image(data, LIMITS))
    if error is None:
        gray = decode_image(data, LIMITS).gray
        assert gray.dtype == np.float32 and gray.ndim == 2
        assert LIMITS.min_side <= min(gray.shape) and gray.size <= LIMITS.max_pixels
        assert np.isfinite(gray).all() and gray.min() >= 0.0 and gray.max() <= 1.0
    else:
        assert error.code and error.message
    probe_error = _typed_error(lambda: probe_image(data, LIMITS))
    assert probe_error is None or (probe_error.code and probe_error.message)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@given(mutated())
def test_mutated_files_decode_or_raise_a_typed_error(data: bytes) -> None:
    _check(data)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@given(st.one_of(random_after_magic(), st.binary(max_size=256)))
def test_random_bytes_decode_or_raise_a_typed_error(data: bytes) -> None:
    _check(data)


def test_every_seed_decodes() -> None:
    for data in SEEDS:
        assert decode_image(data, LIMITS).gray.shape == (24, 32)


@st.composite
def pixel_descriptions(draw: st.DrawFn) -> bytes:
    """Any pixel description PS3.3 allows, or nearly: High Bit, signedness, padding, rescale, window, drawn."""
    allocated = draw(st.sampled_from([8, 16]))
    stored = draw(st.integers(1, allocated))
    high_bit = draw(st.integers(max(stored - 2, 0), allocated))  # one below and one above the allowed range, too
    cells = np.asarray(draw(st.lists(st.integers(0, 2**allocated - 1), min_size=24 * 32, max_size=24 * 32)))
    attributes: dict[str, object] = {}
    signed = draw(st.booleans())
    # Pixel Padding Value and Range Limit are US or SS as Pixel Representation says: each drawn in its VR's range
    low, high = (-(2 ** (allocated - 1)), 2 ** (allocated - 1) - 1) if signed else (0, 2**allocated - 1)
    if draw(st.booleans()):
        attributes["PixelPaddingValue"] = draw(st.integers(low, high))
        if draw(st.booleans()):
            attributes["PixelPaddingRangeLimit"] = draw(st.integers(low, high))
    if draw(st.booleans()):
        attributes["RescaleSlope"] = draw(st.sampled_from(["0", "1", "-1", "2.5", "1e-9"]))
        attributes["RescaleIntercept"] = draw(st.sampled_from(["0", "-1024", "1e6"]))
    if draw(st.booleans()):
        attributes["WindowCenter"], attributes["WindowWidth"] = draw(st.sampled_from([("0", "1"), ("40", "0")]))
    return dicom_cells(
        cells.reshape(24, 32),
        draw(st.sampled_from(["MONOCHROME1", "MONOCHROME2"])),
        bits_allocated=allocated,
        bits_stored=stored,
        high_bit=high_bit,
        signed=signed,
        **attributes,
    )


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
@given(pixel_descriptions())
def test_any_pixel_description_decodes_or_raises_a_typed_error(data: bytes) -> None:
    _check(data)
