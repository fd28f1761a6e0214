"""Compressed transfer syntaxes: each decodes to the original (lossless) or to the same codestream decoded by an
independent library (lossy); refused compressions are named; codestream sizes must match Rows/Columns.

Codestreams are made at test time with imagecodecs (libjpeg-turbo, CharLS, OpenJPEG; a dev dependency), which
none of the pinned runtime decoders share, so "equal" compares two implementations.
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any

import imagecodecs  # a dev dependency: it writes the compressed test files
import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom import uid
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

from models.imaging.decoder import probe_image
from models.imaging.dicom import decode_dicom
from models.imaging.errors import InputError, InvalidImageError, UnsupportedCompressionError
from tests.models.imaging.test_dicom import PATIENT_ID, PATIENT_NAME, make_dicom


def original(bits: int = 12) -> npt.NDArray[np.unsignedinteger[Any]]:
    """(128, 128) smooth ramp plus noise, using the full ``bits`` range (0 and the maximum both present)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0.0, 1.0, 128 * 128).reshape(128, 128)
    values = ramp * (2**bits - 1) + rng.normal(0.0, 2 ** (bits - 6), ramp.shape)
    out = np.clip(np.rint(values), 0, 2**bits - 1).astype(np.uint16)
    out[0, 0], out[-1, -1] = 0, 2**bits - 1
    return out.astype(np.uint8) if bits <= 8 else out


def encapsulated(frame: bytes, syntax: str, pixels: npt.NDArray[Any], bits: int, **attributes: Any) -> bytes:
    """A DICOM file holding one compressed frame, header consistent with ``pixels``."""
    ds = pydicom.dcmread(BytesIO(make_dicom(pixels, bits_stored=bits, **attributes)))
    ds.BitsAllocated = 8 if bits <= 8 else 16
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    # Written by hand: pydicom refuses to write a transfer syntax it does not know (JPEG XL, private ones).
    buffer = DicomBytesIO()
    buffer.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(buffer, ds.file_meta, enforce_standard=True)
    buffer.is_little_endian, buffer.is_implicit_VR = True, False
    write_dataset(buffer, ds)
    return buffer.getvalue()


def min_max(values: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """What decode_dicom gives without VOI data: the image min-max scaled."""
    values = values.astype(np.float64)
    return (values - values.min()) / (values.max() - values.min())


J2K = imagecodecs.JPEG2K.CODEC.J2K
# syntax -> (bits, encode(pixels) -> codestream)
LOSSLESS = {
    uid.JPEGLossless: (12, lambda a: imagecodecs.jpeg8_encode(a, lossless=True, predictor=6, bitspersample=12)),
    uid.JPEGLosslessSV1: (12, lambda a: imagecodecs.jpeg8_encode(a, lossless=True, predictor=1, bitspersample=12)),
    uid.JPEGLSLossless: (12, lambda a: imagecodecs.jpegls_encode(a, level=0)),
    uid.JPEG2000Lossless: (
        12,
        lambda a: imagecodecs.jpeg2k_encode(a, codecformat=J2K, bitspersample=12, reversible=True),
    ),
    uid.HTJ2KLossless: (12, lambda a: imagecodecs.htj2k_encode(a, reversible=True)),
}
# lossy syntax -> (bits, encode, decode the same codestream independently)
LOSSY = {
    uid.JPEGBaseline8Bit: (8, lambda a: imagecodecs.jpeg8_encode(a, level=80), imagecodecs.jpeg8_decode),
    uid.JPEGExtended12Bit: (
        12,
        lambda a: imagecodecs.jpeg8_encode(a, level=80, bitspersample=12),
        imagecodecs.jpeg8_decode,
    ),
    uid.JPEGLSNearLossless: (12, lambda a: imagecodecs.jpegls_encode(a, level=3), imagecodecs.jpegls_decode),
    uid.JPEG2000: (
        12,
        lambda a: imagecodecs.jpeg2k_encode(a, level=50, codecformat=J2K, bitspersample=12, reversible=False),
        imagecodecs.jpeg2k_decode,
    ),
}


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_lossless_syntax_decodes_to_the_original(syntax: str) -> None:
    bits, encode = LOSSLESS[syntax]
    pixels = original(bits)
    decoded = decode_dicom(encapsulated(encode(pixels), syntax, pixels, bits))
    np.testing.assert_allclose(decoded.gray, min_max(pixels), rtol=0, atol=1e-6)
    assert decoded.steps == ("decompress", "auto_window")


def test_rle_decodes_to_the_original() -> None:
    pixels = original(12)
    ds = pydicom.dcmread(BytesIO(make_dicom(pixels, bits_stored=12)))
    ds.compress(uid.RLELossless, encoding_plugin="pydicom")
    buffer = BytesIO()
    ds.save_as(buffer)
    decoded = decode_dicom(buffer.getvalue())
    np.testing.assert_allclose(decoded.gray, min_max(pixels), rtol=0, atol=1e-6)
    assert decoded.steps[0] == "decompress"


@pytest.mark.parametrize("syntax", LOSSY)
def test_lossy_syntax_decodes_like_an_independent_decoder(syntax: str) -> None:
    bits, encode, decode = LOSSY[syntax]
    pixels = original(bits)
    codestream = encode(pixels)
    reference = decode(codestream)
    assert 0 < np.abs(reference.astype(np.int64) - pixels).max() < 2 ** (bits - 3)  # really lossy, still close
    gray = decode_dicom(encapsulated(codestream, syntax, pixels, bits)).gray
    # Same standard, same codestream: the integer pixels agree exactly (measured), so only float rounding remains.
    np.testing.assert_allclose(gray, min_max(reference), rtol=0, atol=1e-6)


def test_monochrome1_jpeg_lossless_is_inverted() -> None:
    pixels = original(12)
    data = encapsulated(LOSSLESS[uid.JPEGLosslessSV1][1](pixels), uid.JPEGLosslessSV1, pixels, 12)
    mono1 = data.replace(b"MONOCHROME2", b"MONOCHROME1")
    np.testing.assert_allclose(decode_dicom(mono1).gray, 1.0 - min_max(pixels), rtol=0, atol=1e-6)


@pytest.mark.parametrize("syntax", [uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.HTJ2KLossless])
def test_codestream_size_must_match_rows_and_columns(syntax: str) -> None:
    pixels = original(12)
    big = np.tile(pixels, (4, 4))  # the codestream says 512 x 512, the header 128 x 128
    data = encapsulated(LOSSLESS[syntax][1](big), syntax, pixels, 12)
    with pytest.raises(InvalidImageError):
        decode_dicom(data)


def test_codestream_without_a_frame_header_is_invalid() -> None:
    pixels = original(12)
    with pytest.raises(InvalidImageError):
        decode_dicom(encapsulated(b"\xff\xd8\xff\xd9", uid.JPEGLosslessSV1, pixels, 12))


@pytest.mark.parametrize(
    ("syntax", "name"),
    [
        ("1.2.840.10008.1.2.4.110", "JPEG XL"),
        ("1.2.840.10008.1.2.4.112", "JPEG XL"),
        ("1.2.840.10008.1.2.4.92", "JPEG 2000 Part 2"),
        ("1.2.840.10008.1.2.4.100", "MPEG-2"),
        ("1.2.840.10008.1.2.4.53", "retired JPEG"),
        ("1.2.826.0.1.3680043.9.7731", "an unknown compression"),
    ],
)
def test_unsupported_compression_is_named_by_decode_and_probe(syntax: str, name: str) -> None:
    pixels = original(12)
    data = encapsulated(b"\xff\x0a" + b"\0" * 64, syntax, pixels, 12)
    for read in (decode_dicom, probe_image):
        with pytest.raises(UnsupportedCompressionError) as info:
            read(data)
        assert info.value.code == "unsupported_compression"
        assert name in info.value.message
        assert "1.2." not in info.value.message  # never the UID itself


def test_probe_accepts_every_decodable_syntax() -> None:
    pixels = original(12)
    for syntax, (bits, encode) in LOSSLESS.items():
        header = probe_image(encapsulated(encode(pixels), syntax, pixels, bits))
        assert (header.format, header.width, header.height) == ("dicom", 128, 128)


def test_patient_data_never_in_new_error_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pixels = original(12)
    lossless = LOSSLESS[uid.JPEGLosslessSV1][1]
    uploads = [
        encapsulated(b"\xff\x0a" + b"\0" * 64, "1.2.840.10008.1.2.4.110", pixels, 12),
        encapsulated(b"\xff\x0a" + b"\0" * 64, "1.2.826.0.1.3680043.9.7731", pixels, 12),
        encapsulated(lossless(np.tile(pixels, (2, 2))), uid.JPEGLosslessSV1, pixels, 12),
        encapsulated(lossless(pixels)[:300], uid.JPEGLosslessSV1, pixels, 12),
        encapsulated(b"\xff\xd8" + PATIENT_NAME.encode() * 8, uid.JPEGLosslessSV1, pixels, 12),
    ]
    secrets = ("secretname", "jane", PATIENT_ID.lower(), "1.2.826")
    for data in uploads:
        assert PATIENT_NAME.encode() in data
        for read in (decode_dicom, probe_image):
            try:
                read(data)
            except InputError as exc:
                for text in (str(exc), exc.message, repr(exc)):
                    assert not any(secret in text.lower() for secret in secrets)
    assert not any(secret in caplog.text.lower() for secret in secrets)
