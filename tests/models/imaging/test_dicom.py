"""models.imaging.dicom: real JPEG-baseline DICOMs, generated uncompressed ones, the LUT pipeline, limits, privacy."""

from __future__ import annotations

import logging
import subprocess
import sys
import warnings
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from models.imaging.decoder import DecodeLimits, decode_image
from models.imaging.dicom import decode_dicom
from models.imaging.errors import (
    AspectRatioError,
    DecompressionBombError,
    ImageTooSmallError,
    InputError,
    InvalidImageError,
    MultiFrameError,
    UnsupportedCompressionError,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
MONO2 = FIXTURES / "siim-cxr-monochrome2.dcm"
MONO1 = FIXTURES / "cxr-monochrome1.dcm"
PATIENT_NAME = "Secretname^Jane"
PATIENT_ID = "PID-7731-XYZ"


def make_dicom(
    pixels: npt.NDArray[Any],
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    frames: int = 1,
    **attributes: Any,
) -> bytes:
    """An uncompressed Explicit VR Little Endian DICOM file (with preamble) holding ``pixels``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape[-2:] if pixels.ndim == 2 or frames > 1 else pixels.shape[:2]
    ds.PhotometricInterpretation = photometric
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        ds.SamplesPerPixel = 1
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
        ds.PixelData = pixels.astype("<u2").tobytes()
    else:
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = pixels.astype(np.uint8).tobytes()
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def ramp(low: int, high: int, shape: tuple[int, int] = (128, 128)) -> npt.NDArray[np.int64]:
    """Integers from low to high (both present) laid out row by row."""
    return np.linspace(low, high, shape[0] * shape[1]).round().astype(np.int64).reshape(shape)


def linear_window(x: npt.NDArray[Any], center: float, width: float) -> npt.NDArray[np.float64]:
    """PS3.3 C.11.2.1.2.1 (VOI LUT Function LINEAR), output scaled to [0, 1]."""
    c, w = center - 0.5, width - 1.0
    x = x.astype(np.float64)
    out = (x - c) / w + 0.5
    out[x <= c - w / 2] = 0.0
    out[x > c + w / 2] = 1.0
    return out


# --- the real JPEG-baseline files ---------------------------------------------------------------------


def test_real_dicoms_decode() -> None:
    for path in (MONO2, MONO1):
        gray = decode_dicom(path.read_bytes(), DecodeLimits()).gray
        assert gray.dtype == np.float32
        assert gray.shape == (1024, 1024)
        assert gray.min() == 0.0
        assert gray.max() == 1.0


def test_real_monochrome2_is_min_max_scaled_stored_values() -> None:
    stored = pydicom.dcmread(MONO2).pixel_array
    assert (int(stored.min()), int(stored.max())) == (0, 254)  # no VOI data: min-max is the range
    gray = decode_dicom(MONO2.read_bytes(), DecodeLimits()).gray
    np.testing.assert_allclose(gray, stored / 254.0, rtol=0, atol=1e-6)


def test_real_monochrome1_is_exact_inverse_of_monochrome2() -> None:
    mono2 = decode_dicom(MONO2.read_bytes(), DecodeLimits()).gray
    mono1 = decode_dicom(MONO1.read_bytes(), DecodeLimits()).gray
    np.testing.assert_allclose(mono1, 1.0 - mono2, rtol=0, atol=1e-6)
    assert np.corrcoef(mono1.ravel(), mono2.ravel())[0, 1] < -0.999


def test_real_monochrome2_shows_a_bright_mediastinum_and_dark_lung() -> None:
    gray = decode_dicom(MONO2.read_bytes(), DecodeLimits()).gray
    mediastinum = gray[400:600, 480:540].mean()
    right_lung = gray[400:600, 200:350].mean()  # patient's right is the image's left
    assert mediastinum > right_lung + 0.2


def test_decode_image_dispatches_dicom() -> None:
    data = MONO1.read_bytes()
    np.testing.assert_array_equal(decode_image(data, DecodeLimits()).gray, decode_dicom(data, DecodeLimits()).gray)


def test_jpeg_frame_size_must_match_rows_and_columns() -> None:
    ds = pydicom.dcmread(MONO2)
    ds.Rows, ds.Columns = 512, 512  # the JPEG codestream still says 1024 x 1024
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds)
    with pytest.raises(InvalidImageError):
        decode_dicom(buffer.getvalue(), DecodeLimits())


# --- generated uncompressed files ---------------------------------------------------------------------


def test_generated_monochrome_pair_are_exact_inverses() -> None:
    pixels = ramp(100, 40_000)
    mono2 = decode_dicom(make_dicom(pixels, "MONOCHROME2"), DecodeLimits()).gray
    mono1 = decode_dicom(make_dicom(pixels, "MONOCHROME1"), DecodeLimits()).gray
    assert mono2.shape == mono1.shape == (128, 128)
    expected = (pixels - 100) / (40_000 - 100)  # no VOI data: min-max, not the 16-bit range
    np.testing.assert_allclose(mono2, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(mono1, 1.0 - mono2, rtol=0, atol=2e-7)
    assert mono2[0, 0] == 0.0
    assert mono1[0, 0] == 1.0


def test_rescale_without_window_is_min_max_of_output() -> None:
    pixels = ramp(0, 2000)
    gray = decode_dicom(make_dicom(pixels, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1024), DecodeLimits()).gray
    np.testing.assert_allclose(gray, pixels / 2000.0, rtol=0, atol=1e-6)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_window_maps_to_its_output_range(photometric: str) -> None:
    pixels = np.arange(4096).reshape(64, 64)  # every 12-bit value once
    data = make_dicom(pixels, photometric, bits_stored=12, WindowCenter=2048, WindowWidth=1024)
    gray = decode_dicom(data, DecodeLimits()).gray
    expected = linear_window(pixels, 2048, 1024)
    if photometric == "MONOCHROME1":
        expected = 1.0 - expected
    np.testing.assert_allclose(gray, expected, rtol=0, atol=1e-6)
    # saturated at each end: 0..1536 below the window, 2560..4095 above it, and 2559 lands exactly on the top
    assert (gray == 0.0).sum() == 1537
    assert (gray == 1.0).sum() == 1537


def test_window_applies_after_rescale() -> None:
    pixels = ramp(0, 4095)
    data = make_dicom(
        pixels, bits_stored=12, RescaleSlope=2, RescaleIntercept=-1000, WindowCenter=1000, WindowWidth=2001
    )
    gray = decode_dicom(data, DecodeLimits()).gray
    np.testing.assert_allclose(gray, linear_window(pixels * 2 - 1000, 1000, 2001), rtol=0, atol=1e-6)


def test_window_wider_than_the_data_is_not_stretched() -> None:
    pixels = ramp(1000, 3000)  # the window [0, 4096) holds all of it: no pixel reaches 0 or 1
    gray = decode_dicom(make_dicom(pixels, bits_stored=12, WindowCenter=2048, WindowWidth=4096), DecodeLimits()).gray
    np.testing.assert_allclose(gray, linear_window(pixels, 2048, 4096), rtol=0, atol=1e-6)
    assert 0.24 < gray.min() < gray.max() < 0.74


def test_voi_lut_sequence_wins_over_window_and_scales_by_its_entries() -> None:
    pixels = np.arange(4096).reshape(64, 64)
    lut = np.round(np.sqrt(np.arange(4096) / 4095.0) * 4095).astype(np.uint16)  # 12-bit entries, 16-bit descriptor
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 16])  # LUT Descriptor
    item.add_new(0x00283006, "US", lut.tolist())  # LUT Data
    data = make_dicom(pixels, bits_stored=12, WindowCenter=100, WindowWidth=10, VOILUTSequence=[item])
    gray = decode_dicom(data, DecodeLimits()).gray
    np.testing.assert_allclose(gray, lut[pixels] / 4095.0, rtol=0, atol=1e-6)


def test_rgb_dicom_is_reduced_to_luma() -> None:
    rgb = np.zeros((64, 64, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    gray = decode_dicom(make_dicom(rgb, "RGB"), DecodeLimits()).gray
    np.testing.assert_allclose(gray, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255.0, rtol=0, atol=1e-6)


def test_constant_image_is_zero_not_nan() -> None:
    gray = decode_dicom(make_dicom(np.full((64, 64), 700)), DecodeLimits()).gray
    assert not np.isnan(gray).any()
    np.testing.assert_array_equal(gray, 0.0)


# --- rejected files -----------------------------------------------------------------------------------


def test_multi_frame_rejected() -> None:
    data = make_dicom(np.zeros((2, 64, 64), dtype=np.int64), frames=2)
    with pytest.raises(MultiFrameError) as info:
        decode_dicom(data, DecodeLimits())
    assert info.value.code == "multi_frame"


def test_too_small_and_elongated_rejected() -> None:
    with pytest.raises(ImageTooSmallError):
        decode_dicom(make_dicom(np.zeros((32, 32))), DecodeLimits())
    with pytest.raises(AspectRatioError):
        decode_dicom(make_dicom(np.zeros((64, 400))), DecodeLimits())


def test_huge_rows_columns_rejected_from_the_header() -> None:
    # 60000 x 60000 claimed, 8 KiB of pixel data: judged before any pixel access
    data = make_dicom(np.zeros((64, 64)), Rows=60_000, Columns=60_000)
    with pytest.raises(DecompressionBombError):
        decode_dicom(data, DecodeLimits())


def test_short_pixel_data_is_invalid() -> None:
    data = make_dicom(np.zeros((64, 64)), Rows=128, Columns=128)  # header wants 4x the pixel bytes
    with pytest.raises(InvalidImageError):
        decode_dicom(data, DecodeLimits())


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
@pytest.mark.parametrize("cut", [200, 2000, 60_000, 127_000])
def test_truncated_real_dicom_is_invalid(cut: int) -> None:
    with pytest.raises(InvalidImageError):
        decode_dicom(MONO2.read_bytes()[:cut], DecodeLimits())


def test_no_pixel_data_is_invalid() -> None:
    ds = pydicom.dcmread(MONO2)
    del ds.PixelData
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds)
    with pytest.raises(InvalidImageError):
        decode_dicom(buffer.getvalue(), DecodeLimits())


def test_unsupported_photometric_is_invalid() -> None:
    with pytest.raises(InvalidImageError):
        decode_dicom(make_dicom(np.zeros((64, 64)), "PALETTE COLOR"), DecodeLimits())


@pytest.mark.filterwarnings("ignore:End of file reached:UserWarning")
def test_non_dicom_bytes_are_invalid() -> None:
    with pytest.raises(InvalidImageError):
        decode_dicom(b"\0" * 128 + b"DICM" + b"\xff" * 64, DecodeLimits())


# --- privacy: header values never reach messages or logs ----------------------------------------------


def _failing_uploads() -> list[bytes]:
    zeros = np.zeros((64, 64))
    return [
        make_dicom(np.zeros((2, 64, 64)), frames=2),
        make_dicom(np.zeros((32, 32))),
        make_dicom(np.zeros((64, 400))),
        make_dicom(zeros, Rows=60_000, Columns=60_000),
        make_dicom(zeros, Rows=128, Columns=128),
        make_dicom(zeros, "PALETTE COLOR"),
        make_dicom(zeros)[:-100],
    ]


def _odd_windows() -> list[bytes]:
    """Malformed VOI values quoting the patient name: they fall back to the image range, and say nothing."""
    zeros = np.zeros((64, 64))
    return [
        make_dicom(zeros, WindowCenter="1234567890", WindowWidth=100).replace(b"1234567890", b"Secretname"),
        make_dicom(zeros, WindowCenter=10, WindowWidth=100, VOILUTFunction="SECRETNAME"),
    ]


def test_patient_data_never_in_error_messages_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    uploads = _failing_uploads()
    assert all(PATIENT_NAME.encode() in data for data in uploads)  # the header really holds the name
    secrets = ("secretname", "jane", PATIENT_ID.lower())
    codes, causes = [], []
    for data in uploads:
        with pytest.raises(InputError) as info:
            decode_image(data, DecodeLimits())
        codes.append(info.value.code)
        causes.append(str(info.value.__cause__).lower())
        for text in (str(info.value), info.value.message, repr(info.value)):
            assert not any(secret in text.lower() for secret in secrets)
    assert codes == [
        "multi_frame",
        "image_too_small",
        "extreme_aspect_ratio",
        "decompression_bomb",
        "invalid_image",
        "invalid_image",
        "invalid_image",
    ]
    for data in _odd_windows():
        assert PATIENT_NAME.encode() in data
        assert decode_image(data, DecodeLimits()).steps == ("auto_window",)
    assert not any(secret in caplog.text.lower() for secret in secrets)


def test_deflated_dicom_is_refused_before_inflating() -> None:
    """A deflated body is inflated whole by pydicom before any check: refuse the transfer syntax outright."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    pixels = np.zeros((128, 128), dtype=np.int64)
    data = make_dicom(pixels)
    ds = pydicom.dcmread(BytesIO(data))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(UnsupportedCompressionError, match="Deflated"):
        decode_dicom(buffer.getvalue())


def test_pydicom_never_quotes_header_values_in_logs_or_warnings(tmp_path: Path) -> None:
    """pydicom's own reports of odd values (unknown charset, malformed UID) quote them: they must go nowhere.

    Run in a fresh process, as a service or CLI runs: pytest resets warning filters around collection, which
    would hide whether the filter set at import is in force.
    """
    # Writing these odd values makes pydicom warn in this process, quoting them; that is the fixture being built,
    # not the decoder under test (which runs in the child below), so only here are its warnings set aside.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(Unknown encoding|Invalid value for VR UI).*SECRETNAME")
        (tmp_path / "charset.dcm").write_bytes(make_dicom(np.zeros((64, 64)), SpecificCharacterSet="SECRETNAME"))
        ds = pydicom.dcmread(BytesIO(make_dicom(np.zeros((64, 64)))))
        ds.SOPInstanceUID = "1.2.SECRETNAME"
        ds.save_as(tmp_path / "uid.dcm", enforce_file_format=True)
    script = (
        "import logging, sys; logging.basicConfig(level=logging.DEBUG)\n"
        "from models.imaging.decoder import decode_image\n"
        "for path in sys.argv[1:]: print(decode_image(path).steps)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "charset.dcm"), str(tmp_path / "uid.dcm")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert result.stdout.splitlines() == ["('auto_window',)", "('auto_window',)"]  # both decode
    assert "secretname" not in (result.stdout + result.stderr).lower()


def test_probe_reads_a_header_longer_than_its_first_read() -> None:
    from models.imaging.decoder import probe_image
    from models.imaging.dicom.header import HEADER_PREFIX_BYTES

    ds = pydicom.dcmread(BytesIO(make_dicom(np.zeros((96, 80)))))
    ds.add_new(0x00091010, "OB", b"\0" * (HEADER_PREFIX_BYTES + 1000))  # a large private element before 7FE0
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    header = probe_image(buffer.getvalue())
    assert (header.format, header.width, header.height) == ("dicom", 80, 96)
    truncated = buffer.getvalue()[: HEADER_PREFIX_BYTES // 2]
    with pytest.raises(InvalidImageError):
        probe_image(truncated)


@pytest.mark.parametrize(
    "window",
    [
        {"WindowCenter": 0, "WindowWidth": 0},  # "not set", as some devices write it
        {"WindowCenter": 500, "WindowWidth": -100},
        {"WindowCenter": 500, "WindowWidth": 0.5},
        {"WindowCenter": 500, "WindowWidth": 1000, "VOILUTFunction": "SECRETFN"},
    ],
)
def test_a_window_the_standard_does_not_allow_falls_back_to_the_image_range(window: dict[str, Any]) -> None:
    pixels = ramp(100, 3000)
    decoded = decode_dicom(make_dicom(pixels, bits_stored=12, **window), DecodeLimits())
    assert decoded.steps == ("auto_window",)
    np.testing.assert_allclose(decoded.gray, (pixels - 100) / 2900.0, atol=1e-6)


def test_non_numeric_window_falls_back_too() -> None:
    pixels = ramp(100, 3000)
    data = make_dicom(pixels, bits_stored=12, WindowCenter="1234", WindowWidth="5678").replace(b"5678", b"abcd")
    decoded = decode_dicom(data, DecodeLimits())
    assert decoded.steps == ("auto_window",)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: make_dicom(np.zeros((64, 64)))[:-2000], "The DICOM file is truncated: it ends inside its pixel data."),
        (lambda: _without_pixel_data(), "The DICOM file contains no image."),
        (
            lambda: make_dicom(np.zeros((64, 64)), Rows=80),
            "The DICOM pixel data is shorter than its rows and columns need.",
        ),
    ],
)
def test_header_check_finds_what_decoding_would_refuse(make: Any, message: str) -> None:
    from models.imaging.decoder import probe_image

    data = make()
    with pytest.raises(InvalidImageError) as probed:
        probe_image(data)
    assert probed.value.message == message
    with pytest.raises(InvalidImageError):
        decode_image(data, DecodeLimits())


def _without_pixel_data() -> bytes:
    ds = pydicom.dcmread(BytesIO(make_dicom(np.zeros((64, 64)))))
    del ds.PixelData
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_jpeg_baseline_dicom_with_a_damaged_scan_is_refused() -> None:
    ds = pydicom.dcmread(MONO2)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    scan = frame.index(b"\xff\xda")
    frame[scan + 5000 : scan + 5100] = bytes(b ^ 0x55 for b in frame[scan + 5000 : scan + 5100])
    ds.PixelData = encapsulate([bytes(frame)])
    buffer = BytesIO()
    ds.save_as(buffer)
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        decode_dicom(buffer.getvalue(), DecodeLimits())


def _enhanced(shared: dict[str, Any], per_frame: dict[str, Any] | None = None) -> bytes:
    """A single-frame image whose window and rescale sit in functional groups, as Enhanced DX writes them."""
    stored = ramp(0, 4095, (64, 64)) if "VOILUTSequence" in shared else ramp(0, 2000, (64, 64))
    ds = pydicom.dcmread(BytesIO(make_dicom(stored, bits_stored=12)))
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1.1"  # Enhanced XA; the module is the same for Enhanced DX
    ds.NumberOfFrames = 1

    def group(values: dict[str, Any]) -> Dataset:
        item = Dataset()
        voi, rescale = Dataset(), Dataset()
        for keyword, value in values.items():
            setattr(rescale if keyword.startswith("Rescale") else voi, keyword, value)
        if len(voi):
            item.FrameVOILUTSequence = [voi]
        if len(rescale):
            item.PixelValueTransformationSequence = [rescale]
        return item

    ds.SharedFunctionalGroupsSequence = [group(shared)]
    if per_frame is not None:
        ds.PerFrameFunctionalGroupsSequence = [group(per_frame)]
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_enhanced_single_frame_uses_its_functional_group_window() -> None:
    stored = ramp(0, 2000, (64, 64))
    decoded = decode_dicom(_enhanced({"WindowCenter": 500, "WindowWidth": 1000}), DecodeLimits())
    assert decoded.steps == ("window",)
    np.testing.assert_allclose(decoded.gray, linear_window(stored, 500, 1000), atol=1e-6)
    per_frame = _enhanced({"WindowCenter": 500, "WindowWidth": 1000}, {"WindowCenter": 1000, "WindowWidth": 2000})
    np.testing.assert_allclose(decode_dicom(per_frame).gray, linear_window(stored, 1000, 2000), atol=1e-6)


def test_enhanced_rescale_with_a_negative_slope_inverts() -> None:
    stored = ramp(0, 2000, (64, 64))
    decoded = decode_dicom(_enhanced({"RescaleSlope": -1, "RescaleIntercept": 2000}), DecodeLimits())
    assert decoded.steps == ("modality_lut", "auto_window")
    np.testing.assert_allclose(decoded.gray, 1.0 - stored / 2000.0, atol=1e-6)


def test_empty_voi_lut_function_means_linear() -> None:
    pixels = ramp(0, 2000)
    data = make_dicom(pixels, bits_stored=12, WindowCenter=500, WindowWidth=1000, VOILUTFunction="")
    decoded = decode_dicom(data, DecodeLimits())
    assert decoded.steps == ("window",)
    np.testing.assert_allclose(decoded.gray, linear_window(pixels, 500, 1000), atol=1e-6)


@pytest.mark.parametrize(
    "attributes", [{"BitsAllocated": 12}, {"PixelRepresentation": 2}, {"BitsStored": 17}, {"BitsStored": 0}]
)
def test_an_impossible_pixel_description_is_refused_by_the_header_check_too(attributes: dict[str, int]) -> None:
    from models.imaging.decoder import probe_image

    data = make_dicom(ramp(0, 2000, (64, 64)), bits_stored=12, **attributes)
    for call in (probe_image, decode_image):
        with pytest.raises(InvalidImageError, match="pixel description is not valid"):
            call(data)  # type: ignore[operator]


def test_enhanced_frame_voi_lut_is_applied() -> None:
    stored = ramp(0, 4095, (64, 64))
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 8])
    item.add_new(0x00283006, "OW", (np.arange(4096) // 16).astype("<u2").tobytes())
    data = _enhanced({"VOILUTSequence": [item]})
    decoded = decode_dicom(data, DecodeLimits())
    assert decoded.steps == ("voi_lut",)
    np.testing.assert_allclose(decoded.gray, (stored // 16) / 255.0, atol=1e-6)


def test_float_pixel_data_alone_is_refused_by_name_but_beside_integer_data_is_ignored() -> None:
    from models.imaging.decoder import probe_image

    ds = pydicom.dcmread(BytesIO(make_dicom(ramp(0, 2000, (64, 64)), bits_stored=12)))
    ds.add_new(0x7FE00008, "OF", np.zeros(64 * 64, np.float32).tobytes())  # Float Pixel Data
    both = BytesIO()
    ds.save_as(both, enforce_file_format=True)
    assert probe_image(both.getvalue()).width == 64
    assert decode_image(both.getvalue(), DecodeLimits()).steps == ("auto_window",)
    del ds.PixelData
    only_float = BytesIO()
    ds.save_as(only_float, enforce_file_format=True)
    for call in (probe_image, decode_image):
        with pytest.raises(InvalidImageError, match=r"floating-point pixel data \(Float Pixel Data or Double"):
            call(only_float.getvalue())  # type: ignore[operator]
