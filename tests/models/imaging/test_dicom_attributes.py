"""DICOM pixel attributes per PS3.3, one by one, with the standard's text (and DCMTK, where it is right) as oracle.

DCMTK's ``dcm2pnm`` (Debian package ``dcmtk``) renders a file independently of pydicom and of us; its 8-bit
output must match ours within 1 grey level of 255.  Those tests skip when ``dcm2pnm`` is not installed.  Where
DCMTK does not follow the standard (it counts padding pixels in its min-max window), the expected picture is
computed from PS3.3's text instead, and the test says so.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from models.imaging.decoder import decode_image, probe_image
from models.imaging.errors import InvalidImageError
from tests.models.imaging.builders import dicom_cells
from tests.models.imaging.test_dicom import ramp

DCM2PNM = shutil.which("dcm2pnm")
needs_dcmtk = pytest.mark.skipif(DCM2PNM is None, reason="dcm2pnm (Debian package dcmtk) is not installed")

PICTURE = ramp(100, 3000, (96, 96))  # 12-bit stored values, min 100, max 3000


def dcmtk_render(data: bytes, tmp_path: Path, *options: str) -> npt.NDArray[np.float64]:
    """dcm2pnm's 8-bit rendering of ``data`` (0..255) with the given VOI options."""
    source, target = tmp_path / "in.dcm", tmp_path / "out.pgm"
    source.write_bytes(data)
    assert DCM2PNM is not None
    subprocess.run([DCM2PNM, "+op", *options, str(source), str(target)], check=True, capture_output=True, timeout=60)
    with Image.open(target) as image:
        return np.asarray(image, dtype=np.float64)


def replaced(data: bytes, placeholder: bytes, value: bytes) -> bytes:
    """``data`` with its one ``placeholder`` replaced by ``value`` of the same length (a value pydicom won't write)."""
    assert data.count(placeholder) == 1 and len(value) == len(placeholder)
    return data.replace(placeholder, value)


def windowed(**attributes: Any) -> bytes:
    return dicom_cells(PICTURE, WindowCenter="1000", WindowWidth="2000", **attributes)


def rle_high_bit() -> bytes:
    """RLE-compressed 16-bit cells holding a 12-bit sample in bits 4..15, junk in bits 0..3 (High Bit 15)."""
    ds = pydicom.dcmread(BytesIO(dicom_cells((PICTURE << 4) | 0x9, bits_stored=16)))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    ds.BitsStored, ds.HighBit = 12, 15
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


DCMTK_CASES = {
    # name: (file, dcm2pnm VOI options)
    "min-max": (dicom_cells(PICTURE), ["+Wm"]),
    "window": (windowed(), ["+Wi", "1"]),
    "high bit 15, unsigned": (dicom_cells((PICTURE << 4) | 0xF, high_bit=15), ["+Wm"]),
    "high bit 15, MONOCHROME1": (dicom_cells((PICTURE << 4) | 0x5, "MONOCHROME1", high_bit=15), ["+Wm"]),
    "high bit 13, signed": (dicom_cells((((PICTURE - 1500) & 0xFFF) << 2) | 0xC003, high_bit=13, signed=True), ["+Wm"]),
    "high bit 15, RLE": (rle_high_bit(), ["+Wm"]),
    "rescale slope 2": (windowed(RescaleSlope="2", RescaleIntercept="-1024"), ["+Wi", "1"]),
    "rescale slope 0": (windowed(RescaleSlope="0", RescaleIntercept="-1024"), ["+Wi", "1"]),
    "rescale slope empty": (
        replaced(windowed(RescaleSlope="7.25", RescaleIntercept="-1024"), b"7.25", b"    "),
        ["+Wi", "1"],
    ),
    "rescale slope 'abc'": (
        replaced(windowed(RescaleSlope="7.25", RescaleIntercept="-1024"), b"7.25", b"abc "),
        ["+Wi", "1"],
    ),
    "empty Modality LUT item": (windowed(ModalityLUTSequence=[Dataset()]), ["+Wi", "1"]),
    "empty VOI LUT item": (windowed(VOILUTSequence=[Dataset()]), ["+Wi", "1"]),
}


@needs_dcmtk
@pytest.mark.parametrize("name", DCMTK_CASES)
def test_matches_dcmtk_within_one_grey_level(name: str, tmp_path: Path) -> None:
    data, options = DCMTK_CASES[name]
    ours = decode_image(data).gray.astype(np.float64) * 255.0
    assert np.abs(ours - dcmtk_render(data, tmp_path, *options)).max() <= 1.0 + 1e-4  # float32 rounding


def test_high_bit_takes_the_sample_from_its_place_in_the_cell() -> None:
    """PS3.5 8.1.1: the sample is bits High Bit - Bits Stored + 1 .. High Bit; other bits are not image."""
    plain = decode_image(dicom_cells(PICTURE))
    shifted = decode_image(dicom_cells((PICTURE << 4) | 0xF, high_bit=15))
    assert shifted.steps == ("high_bit_shift", "auto_window")
    np.testing.assert_array_equal(shifted.gray, plain.gray)
    signed = decode_image(dicom_cells((((PICTURE - 1500) & 0xFFF) << 2) | 0xC003, high_bit=13, signed=True))
    np.testing.assert_array_equal(signed.gray, plain.gray)  # min-max of PICTURE - 1500 is that of PICTURE


@pytest.mark.parametrize("high_bit", [10, 16])
def test_high_bit_outside_the_cell_is_refused_by_name(high_bit: int) -> None:
    data = dicom_cells(PICTURE, high_bit=high_bit)
    for call in (probe_image, decode_image):
        with pytest.raises(InvalidImageError, match="High Bit must lie between"):
            call(data)  # type: ignore[operator]


def padded(cells: npt.NDArray[np.int64], border: int | npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``cells`` with a 16-pixel left and top border set to ``border``."""
    out = cells.copy()
    out[:, :16] = border if np.isscalar(border) else np.asarray(border)[:, :16]
    out[:16, :] = border if np.isscalar(border) else np.asarray(border)[:16, :]
    return out


def standard_padding_render(picture: npt.NDArray[np.int64], invert: bool = False) -> npt.NDArray[np.float64]:
    """PS3.3 C.7.5.1.1.2 as text: min-max of the non-padding pixels, MONOCHROME1 inverted, padding at 0."""
    inside = picture[16:, 16:]
    unit = (picture - inside.min()) / (inside.max() - inside.min())
    unit = 1.0 - unit if invert else unit
    unit[:, :16] = 0.0
    unit[:16, :] = 0.0
    return unit


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_pixel_padding_value_is_out_of_the_window_and_shown_black(photometric: str) -> None:
    """DCMTK (dcm2pnm +Wm) counts the padding in its min-max, against PS3.3 C.7.5.1.1.2, which says padding is
    described so that it can be excluded from the dynamic range: the standard's text is the oracle here.
    """
    data = dicom_cells(padded(PICTURE, 4095), photometric, PixelPaddingValue=4095)
    decoded = decode_image(data)
    expected = standard_padding_render(padded(PICTURE, 4095), invert=photometric == "MONOCHROME1")
    np.testing.assert_allclose(decoded.gray, expected, rtol=0, atol=1e-6)
    assert decoded.steps[-1] == "pixel_padding"


@needs_dcmtk
def test_non_padding_pixels_match_dcmtk_given_the_standards_window(tmp_path: Path) -> None:
    """DCMTK with the window PS3.3 implies (min-max of the non-padding pixels) agrees on every non-padding pixel."""
    data = dicom_cells(padded(PICTURE, 0), PixelPaddingValue=0)
    low, high = int(PICTURE[16:, 16:].min()), int(PICTURE[16:, 16:].max())
    theirs = dcmtk_render(data, tmp_path, "+Ww", str((low + high) / 2), str(high - low))
    ours = decode_image(data).gray.astype(np.float64) * 255.0
    assert np.abs(ours[16:, 16:] - theirs[16:, 16:]).max() <= 1.0 + 1e-4
    assert np.all(ours[:16] == 0.0) and np.all(ours[:, :16] == 0.0)


def test_padding_range_is_inclusive_in_either_order_and_compared_on_stored_values() -> None:
    border = np.random.default_rng(0).integers(3500, 4001, PICTURE.shape)
    expected = standard_padding_render(padded(PICTURE, border))
    for value, limit in ((3500, 4000), (4000, 3500)):
        # A rescale that maps the padding into the picture's range: the comparison is on stored values.
        data = dicom_cells(
            padded(PICTURE, border),
            PixelPaddingValue=value,
            PixelPaddingRangeLimit=limit,
            RescaleSlope="-1",
            RescaleIntercept="4100",
        )
        np.testing.assert_allclose(decode_image(data).gray, 1.0 - expected - _border(1.0), rtol=0, atol=1e-6)


def _border(value: float) -> npt.NDArray[np.float64]:
    """An image of PICTURE's shape that is ``value`` on the 16-pixel border and 0 inside."""
    out = np.zeros(PICTURE.shape)
    out[:, :16] = value
    out[:16, :] = value
    return out


def test_signed_padding_value_written_as_us_is_read_as_ss() -> None:
    signed = PICTURE - 2048
    ds = pydicom.dcmread(BytesIO(dicom_cells(padded(signed, -32768), bits_stored=16, signed=True)))
    ds.add_new(0x00280120, "US", 0x8000)  # Pixel Padding Value, written unsigned by a careless writer
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    np.testing.assert_allclose(decode_image(data).gray, standard_padding_render(padded(signed, -32768)), atol=1e-6)


def test_an_image_of_padding_only_is_refused() -> None:
    data = dicom_cells(np.full((96, 96), 7), PixelPaddingValue=7)
    with pytest.raises(InvalidImageError, match="only padding"):
        decode_image(data)


@pytest.mark.parametrize(("placeholder", "value"), [(b"7.25", b"0   "), (b"7.25", b"    "), (b"7.25", b"abc ")])
def test_unusable_rescale_is_absent_and_logged_without_its_value(
    placeholder: bytes, value: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    data = replaced(dicom_cells(PICTURE, RescaleSlope="7.25", RescaleIntercept="-1024"), placeholder, value)
    with caplog.at_level(logging.WARNING, logger="models.imaging"):
        decoded = decode_image(data)
    assert decoded.steps == ("auto_window",)  # no rescale: the stored values' min-max
    np.testing.assert_array_equal(decoded.gray, decode_image(dicom_cells(PICTURE)).gray)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("models.imaging")]
    assert messages and all("RescaleSlope" in m and "abc" not in m and "1024" not in m for m in messages)


def test_empty_lut_items_are_absent() -> None:
    expected = decode_image(windowed()).gray
    for attributes in ({"ModalityLUTSequence": [Dataset()]}, {"VOILUTSequence": [Dataset()]}):
        decoded = decode_image(windowed(**attributes))
        assert decoded.steps == ("window",)
        np.testing.assert_array_equal(decoded.gray, expected)
