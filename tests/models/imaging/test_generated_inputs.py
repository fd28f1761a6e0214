"""Every kind of input from issue 16, built in the test, against the same picture as a plain 8-bit PNG.

The comparison is on the model input (``decode_image`` then ``eval_tensor``, the service's path): max |delta|
<= 1e-4.  Each DICOM is built so that, read as PS3.3 says, its display values are exactly the PNG's grey
levels / 255; padding pixels are shown at the display minimum, so the PNG has a black border there.
"""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
import torch
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from models.imaging.decoder import decode_image
from models.preprocessing import PreprocessSpec, eval_tensor
from tests.models.imaging.builders import dicom_cells, png_bytes, png_chunk, png_with_chunk
from tests.models.imaging.test_png_chunks import UNUSED

SPEC = PreprocessSpec(image_size=64, resize=72)
BORDER = 16


def picture() -> npt.NDArray[np.int64]:
    """(96, 112) grey levels 0..255, both ends present inside the border."""
    rng = np.random.default_rng(16)
    gray = (np.add.outer(np.arange(96), np.arange(112)) * 2 + rng.integers(0, 20, (96, 112))) % 256
    gray[BORDER + 4, BORDER + 4], gray[-1, -1] = 0, 255
    return gray.astype(np.int64)


G = picture()


def bordered(inside: npt.NDArray[np.int64], border: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    out = inside.copy()
    fill = np.broadcast_to(border, inside.shape)
    out[:BORDER], out[:, :BORDER] = fill[:BORDER], fill[:, :BORDER]
    return out


G_BLACK_BORDER = bordered(G, 0)


def replaced(data: bytes, placeholder: bytes, value: bytes) -> bytes:
    assert data.count(placeholder) == 1 and len(value) == len(placeholder)
    return data.replace(placeholder, value)


# A LINEAR window that maps 16 g + 100 onto g / 255 exactly (PS3.3 C.11.2.1.2.1): w - 1 = 255 * 16,
# c - 0.5 - (w - 1) / 2 = 100.
# 16 g + 100 reaches 4180, so these files store 13 bits.
WINDOW = {"WindowCenter": "2140.5", "WindowWidth": "4081", "bits_stored": 13}


def rle_high_bit() -> bytes:
    ds = pydicom.dcmread(BytesIO(dicom_cells(((G * 16) << 4) | 0xA, bits_stored=16)))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.BitsStored, ds.HighBit = 12, 15
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def signed_padding_as_us() -> bytes:
    ds = pydicom.dcmread(BytesIO(dicom_cells(bordered(G * 64 - 8000, -32768), bits_stored=16, signed=True)))
    ds.add_new(0x00280120, "US", 0x8000)
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


# name -> (input bytes, the 8-bit picture it must equal)
KINDS: dict[str, Callable[[], tuple[bytes, npt.NDArray[np.int64]]]] = {
    "8-bit unsigned": lambda: (dicom_cells(G, bits_allocated=8, bits_stored=8), G),
    "12-bit unsigned": lambda: (dicom_cells(G * 16 + 5), G),
    "16-bit unsigned": lambda: (dicom_cells(G * 257, bits_stored=16), G),
    "12-bit signed": lambda: (dicom_cells(G * 16 - 2048, signed=True), G),
    "16-bit signed": lambda: (dicom_cells(G * 128 - 20000, bits_stored=16, signed=True), G),
    "MONOCHROME1 12-bit": lambda: (dicom_cells((255 - G) * 16, "MONOCHROME1"), G),
    "MONOCHROME1 signed": lambda: (dicom_cells((255 - G) * 16 - 2048, "MONOCHROME1", signed=True), G),
    "High Bit 15, 12 stored": lambda: (dicom_cells(((G * 16) << 4) | 0xA, high_bit=15), G),
    "High Bit 13, 12 stored, signed": lambda: (
        dicom_cells((((G * 16 - 2048) & 0xFFF) << 2) | 0xC002, high_bit=13, signed=True),
        G,
    ),
    "High Bit 11, 8 stored in 16": lambda: (dicom_cells((G << 4) | 0xF00F, bits_stored=8, high_bit=11), G),
    "High Bit 15, RLE": lambda: (rle_high_bit(), G),
    "padding value": lambda: (dicom_cells(bordered(G * 16, 4095), PixelPaddingValue=4095), G_BLACK_BORDER),
    "padding value, MONOCHROME1": lambda: (
        dicom_cells(bordered((255 - G) * 15 + 100, 0), "MONOCHROME1", PixelPaddingValue=0),
        G_BLACK_BORDER,
    ),
    "padding range": lambda: (
        dicom_cells(
            bordered(G * 10, np.random.default_rng(1).integers(3000, 4096, G.shape)),
            PixelPaddingValue=4095,
            PixelPaddingRangeLimit=3000,
        ),
        G_BLACK_BORDER,
    ),
    "padding range, reversed, with rescale": lambda: (
        dicom_cells(
            bordered(G * 10, 3500),
            PixelPaddingValue=3000,
            PixelPaddingRangeLimit=4095,
            RescaleSlope="-1",
            RescaleIntercept="3000",
        ),
        255 - G_BLACK_BORDER - bordered(np.zeros_like(G), 255),
    ),
    "signed padding written as US": lambda: (signed_padding_as_us(), G_BLACK_BORDER),
    "rescale slope 0": lambda: (dicom_cells(G * 16, RescaleSlope="0", RescaleIntercept="-1024"), G),
    "rescale slope empty": lambda: (
        replaced(dicom_cells(G * 16, RescaleSlope="7.25", RescaleIntercept="-1024"), b"7.25", b"    "),
        G,
    ),
    "rescale slope 'abc'": lambda: (
        replaced(dicom_cells(G * 16, RescaleSlope="7.25", RescaleIntercept="-1024"), b"7.25", b"abc "),
        G,
    ),
    "window": lambda: (dicom_cells(G * 16 + 100, **WINDOW), G),
    "window, rescale slope 2": lambda: (dicom_cells(G * 8 + 50, RescaleSlope="2", RescaleIntercept="0", **WINDOW), G),
    "window, rescale slope 'abc'": lambda: (
        replaced(dicom_cells(G * 16 + 100, RescaleSlope="7.25", RescaleIntercept="9", **WINDOW), b"7.25", b"abc "),
        G,
    ),
    "window, empty Modality LUT item": lambda: (
        dicom_cells(G * 16 + 100, ModalityLUTSequence=[Dataset()], **WINDOW),
        G,
    ),
    "window, empty VOI LUT item": lambda: (dicom_cells(G * 16 + 100, VOILUTSequence=[Dataset()], **WINDOW), G),
    **{
        f"PNG, {name}": (lambda chunk=chunk: (png_with_chunk(png_bytes(G.astype(np.uint8)), chunk), G))
        for name, chunk in UNUSED.items()
    },
    "PNG, two unused chunks after IDAT": lambda: (
        png_with_chunk(
            png_with_chunk(png_bytes(G.astype(np.uint8)), png_chunk(b"tEXt", b"a\0b", crc=0), b"IEND"),
            UNUSED["iCCP over 1 MiB"],
            b"IEND",
        ),
        G,
    ),
}


def model_input(data: bytes) -> torch.Tensor:
    """The service's path: the shared decoder, then the eval transform."""
    return eval_tensor(SPEC, decode_image(data).gray)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gives_the_model_input_of_its_8bit_png(kind: str) -> None:
    data, expected = KINDS[kind]()
    reference = model_input(png_bytes(expected.astype(np.uint8)))
    assert float((model_input(data) - reference).abs().max()) <= 1e-4
