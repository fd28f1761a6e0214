"""DICOM without the 128-byte preamble and "DICM" (raw PACS exports): accepted when the first element is well
formed, decoded like the Part-10 file; anything else is not DICOM, and no byte string crashes the decoder."""

from __future__ import annotations

import contextlib
from io import BytesIO

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from models.imaging.decoder import decode_image, probe_image
from models.imaging.dicom import decode_dicom, looks_like_dicom
from models.imaging.errors import InputError, UnsupportedFormatError
from tests.models.imaging.test_dicom import make_dicom, ramp

PIXELS = ramp(0, 4095)


def without_meta(implicit_vr: bool, **attributes: object) -> bytes:
    """The dataset alone (starts at group 0008), as some PACS exports write it: no preamble, no file meta."""
    ds = pydicom.dcmread(BytesIO(make_dicom(PIXELS, bits_stored=12, **attributes)))
    plain = Dataset()
    plain.update(ds)
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, plain, implicit_vr=implicit_vr, little_endian=True)
    return buffer.getvalue()


def test_file_meta_without_preamble_decodes_like_the_part10_file() -> None:
    part10 = make_dicom(PIXELS, bits_stored=12, WindowCenter=2048, WindowWidth=2000)
    raw = part10[132:]
    assert raw[:2] == b"\x02\x00" and looks_like_dicom(raw)
    expected = decode_dicom(part10)
    decoded = decode_image(raw)
    np.testing.assert_array_equal(decoded.gray, expected.gray)
    assert decoded.steps == expected.steps == ("window",)
    assert probe_image(raw).width == 128


@pytest.mark.parametrize("implicit_vr", [True, False])
def test_dataset_without_file_meta_decodes_like_the_part10_file(implicit_vr: bool) -> None:
    raw = without_meta(implicit_vr)
    assert raw[:2] == b"\x08\x00" and looks_like_dicom(raw)
    expected = decode_dicom(make_dicom(PIXELS, bits_stored=12)).gray
    np.testing.assert_array_equal(decode_image(raw).gray, expected)
    header = probe_image(raw)
    assert (header.format, header.width, header.height) == ("dicom", 128, 128)


def test_stream_starting_with_another_group_is_not_dicom() -> None:
    raw = make_dicom(PIXELS)[132:]
    other_group = b"\x10\x00" + raw[2:]  # (0010,xxxx): a dataset cut somewhere in the middle
    assert not looks_like_dicom(other_group)
    for read in (decode_image, probe_image, decode_dicom):
        with pytest.raises(UnsupportedFormatError):
            read(other_group)


@pytest.mark.parametrize(
    "head",
    [
        b"\x02\x00\x00\x00ZZ\x04\x00",  # not a VR
        b"\x02\x00\x00\x00ul\x04\x00",  # lower case
        b"\x02\x00\x00\x00UL\x05\x00",  # odd length
        b"\x02\x00\x01\x00OB\x01\x00\x02\x00\x00\x00",  # long VR with a non-zero reserved field
        b"\x08\x00\x05\x00\x00\x00\x02\x00",  # implicit, 128 KiB: too long for a header element
        b"\x08\x00\x05\x00\x03\x00\x00\x00",  # implicit, odd length
        b"\x02\x00\x00\x00\x04\x00\x00\x00",  # group 0002 is never implicit VR
    ],
)
def test_malformed_first_elements_are_not_dicom(head: bytes) -> None:
    assert not looks_like_dicom(head + b"\0" * 64)


def test_random_bytes_are_never_taken_for_dicom() -> None:
    rng = np.random.default_rng(0)
    assert not any(looks_like_dicom(rng.bytes(256)) for _ in range(20_000))


def test_random_and_mutated_streams_raise_only_input_errors() -> None:
    rng = np.random.default_rng(1)
    sources = [make_dicom(PIXELS[:64, :64], bits_stored=12), without_meta(True), without_meta(False)]
    sources.append(sources[0][132:])
    uploads = [rng.bytes(int(n)) for n in rng.integers(1, 3000, 50)]
    for source in sources:
        for _ in range(40):
            data = bytearray(source)
            for position in rng.integers(0, min(len(data), 400), 3):  # the header, where parsing decides
                data[position] = int(rng.integers(0, 256))
            uploads.append(bytes(data[: int(rng.integers(12, len(data) + 1))]))
    for data in uploads:
        for read in (decode_image, probe_image):
            with contextlib.suppress(InputError):  # anything else fails the test
                read(data)
