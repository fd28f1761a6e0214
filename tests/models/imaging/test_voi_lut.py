"""VOI LUT and Modality LUT Sequences in every packing: each must give exactly the plain image it describes."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from pydicom.dataset import Dataset

from models.imaging.dicom import decode_dicom
from models.imaging.errors import InvalidImageError
from tests.models.imaging.test_dicom import make_dicom

LUT_DATA, LUT_DESCRIPTOR = 0x00283006, 0x00283002
STORED = np.arange(4096).reshape(64, 64)  # every 12-bit value once
# The LUT of the users' files: stored value v -> v // 16, 8-bit entries; the right answer is that 8-bit image.
TABLE8 = (np.arange(4096) // 16).astype(np.int64)
EXPECTED = (STORED // 16) / 255.0


def lut_item(descriptor: list[int], vr: str, data: Any, descriptor_vr: str = "US") -> Dataset:
    item = Dataset()
    item.add_new(LUT_DESCRIPTOR, descriptor_vr, descriptor)
    item.add_new(LUT_DATA, vr, data)
    return item


# (VR, LUT Data) for the 8-bit table in each packing seen in files
EIGHT_BIT_PACKINGS = {
    "one per byte (OW)": ("OW", TABLE8.astype(np.uint8).tobytes()),
    "one per byte (OB)": ("OB", TABLE8.astype(np.uint8).tobytes()),
    "one per word (OW)": ("OW", TABLE8.astype("<u2").tobytes()),
    "one per word (US)": ("US", TABLE8.tolist()),
    "two per word (US)": ("US", (TABLE8[0::2] | (TABLE8[1::2] << 8)).tolist()),
}


@pytest.mark.parametrize("packing", EIGHT_BIT_PACKINGS)
def test_8bit_voi_lut_gives_the_8bit_image(packing: str) -> None:
    vr, data = EIGHT_BIT_PACKINGS[packing]
    item = lut_item([4096, 0, 8], vr, data)
    decoded = decode_dicom(make_dicom(STORED, bits_stored=12, VOILUTSequence=[item]))
    np.testing.assert_allclose(decoded.gray, EXPECTED, rtol=0, atol=1e-6)
    assert decoded.steps == ("voi_lut",)


@pytest.mark.parametrize("vr", ["OW", "US"])
def test_16bit_voi_lut_gives_the_same_image(vr: str) -> None:
    table16 = TABLE8 * 257  # the same picture on a 16-bit scale: output range 0..65535
    data = table16.astype("<u2").tobytes() if vr == "OW" else table16.tolist()
    decoded = decode_dicom(make_dicom(STORED, bits_stored=12, VOILUTSequence=[lut_item([4096, 0, 16], vr, data)]))
    np.testing.assert_allclose(decoded.gray, EXPECTED, rtol=0, atol=1e-6)


def test_65536_entries_are_written_as_zero() -> None:
    table = np.arange(65536) >> 8
    item = lut_item([0, 0, 8], "OW", table.astype(np.uint8).tobytes())
    pixels = np.arange(0, 65536, 16).reshape(64, 64)
    gray = decode_dicom(make_dicom(pixels, VOILUTSequence=[item])).gray
    np.testing.assert_allclose(gray, (pixels >> 8) / 255.0, rtol=0, atol=1e-6)


def signed_pixels() -> npt.NDArray[np.int64]:
    return STORED - 2048  # -2048 .. 2047


@pytest.mark.parametrize(("descriptor_vr", "first"), [("US", 63488), ("SS", -2048)])
@pytest.mark.parametrize("packing", ["one per byte (OW)", "one per word (OW)"])
def test_negative_first_mapped_value_with_signed_pixels(descriptor_vr: str, first: int, packing: str) -> None:
    vr, data = EIGHT_BIT_PACKINGS[packing]
    item = lut_item([4096, first, 8], vr, data, descriptor_vr)
    dicom = make_dicom(signed_pixels(), bits_stored=12, PixelRepresentation=1, VOILUTSequence=[item])
    gray = decode_dicom(dicom).gray  # stored -2048 is table index 0, so the same image as above
    np.testing.assert_allclose(gray, EXPECTED, rtol=0, atol=1e-6)


def test_negative_first_mapped_value_after_a_rescale() -> None:
    item = lut_item([4096, 63488, 8], "OW", EIGHT_BIT_PACKINGS["one per byte (OW)"][1])
    dicom = make_dicom(STORED, bits_stored=12, RescaleSlope=1, RescaleIntercept=-2048, VOILUTSequence=[item])
    decoded = decode_dicom(dicom)
    np.testing.assert_allclose(decoded.gray, EXPECTED, rtol=0, atol=1e-6)
    assert decoded.steps == ("modality_lut", "voi_lut")


def test_first_mapped_value_above_32767_stays_positive_for_unsigned_input() -> None:
    pixels = np.arange(32768, 32768 + 4096).reshape(64, 64)
    item = lut_item([4096, 32768, 8], "OW", EIGHT_BIT_PACKINGS["one per byte (OW)"][1])
    gray = decode_dicom(make_dicom(pixels, VOILUTSequence=[item])).gray
    np.testing.assert_allclose(gray, EXPECTED, rtol=0, atol=1e-6)


def test_inputs_outside_the_table_take_its_end_entries() -> None:
    pixels = np.arange(4096).reshape(64, 64)
    table = np.arange(256)  # maps 1000..1255 -> 0..255
    item = lut_item([256, 1000, 8], "OW", table.astype(np.uint8).tobytes())
    gray = decode_dicom(make_dicom(pixels, bits_stored=12, VOILUTSequence=[item])).gray
    np.testing.assert_allclose(gray, np.clip(pixels - 1000, 0, 255) / 255.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("packing", ["one per byte (OW)", "one per word (OW)", "one per word (US)"])
def test_8bit_modality_lut_gives_the_8bit_image(packing: str) -> None:
    vr, data = EIGHT_BIT_PACKINGS[packing]
    dicom = make_dicom(STORED, bits_stored=12, ModalityLUTSequence=[lut_item([4096, 0, 8], vr, data)])
    decoded = decode_dicom(dicom)  # no VOI data: min-max of the LUT output, 0..255
    np.testing.assert_allclose(decoded.gray, EXPECTED, rtol=0, atol=1e-6)
    assert decoded.steps == ("modality_lut", "auto_window")


def test_modality_lut_with_negative_first_mapped_value_and_signed_pixels() -> None:
    item = lut_item([4096, 63488, 8], "OW", EIGHT_BIT_PACKINGS["one per byte (OW)"][1])
    dicom = make_dicom(signed_pixels(), bits_stored=12, PixelRepresentation=1, ModalityLUTSequence=[item])
    np.testing.assert_allclose(decode_dicom(dicom).gray, EXPECTED, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("descriptor", "data"),
    [([4096, 0, 8], b"\0" * 100), ([4096, 0, 8], list(range(10))), ([4096, 0, 24], b"\0" * 4096), ([4096, 0], b"")],
)
def test_malformed_lut_is_invalid(descriptor: list[int], data: Any) -> None:
    item = lut_item(descriptor, "OW" if isinstance(data, bytes) else "US", data)
    with pytest.raises(InvalidImageError):
        decode_dicom(make_dicom(STORED, bits_stored=12, VOILUTSequence=[item]))
