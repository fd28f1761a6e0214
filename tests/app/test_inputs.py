"""Every input format through the real (tiny) model; train/serve parity; overlay geometry."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import JPEGLosslessSV1

from app.main import create_app
from app.settings import Settings
from tests.app.fakes import FakePredictor, client_for
from tests.conftest import FIXTURES
from tests.models.imaging.test_dicom import make_dicom
from tests.models.imaging.test_dicom_codecs import encapsulated
from tests.models.imaging.test_raster import mpo, png_16
from training.predict import predict_files


@pytest.fixture(scope="module")
def client(tiny_checkpoint: Path) -> Iterator[TestClient]:
    app = create_app(Settings(checkpoint=tiny_checkpoint, max_wait_ms=0))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        while test_client.get("/readyz").status_code != 200:
            pass
        yield test_client


def predict(client: TestClient, data: bytes) -> np.ndarray:
    response = client.post("/predict", files={"file": ("upload", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    return np.array(list(response.json()["probabilities"].values()))


def encoded(image: Image.Image, fmt: str = "PNG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "name", ["00000075_000.png", "00002578_000_rgba.png", "siim-cxr-monochrome2.dcm", "cxr-monochrome1.dcm"]
)
def test_real_files_predict(client: TestClient, name: str) -> None:
    probs = predict(client, (FIXTURES / name).read_bytes())
    assert probs.shape == (14,)
    assert np.all((probs > 0) & (probs < 1))


def test_16bit_png_matches_its_8bit_version(client: TestClient) -> None:
    eight = np.asarray(Image.open(FIXTURES / "00000075_000.png"), dtype=np.uint16)
    sixteen = Image.fromarray((eight * 257).astype(np.uint16))  # v/255 == 257v/65535 exactly
    assert np.allclose(
        predict(client, encoded(sixteen)), predict(client, encoded(Image.fromarray(eight.astype(np.uint8)))), atol=1e-6
    )


def test_jpeg_exif_orientation_is_applied(client: TestClient) -> None:
    pixels = np.asarray(Image.open(FIXTURES / "00000282_000.png").resize((96, 80)))
    upright = Image.fromarray(pixels)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a camera stores; EXIF 6 rotates it back
    exif = Image.Exif()
    exif[0x0112] = 6
    with_exif = predict(client, encoded(stored, "JPEG", quality=95, exif=exif))
    plain = predict(client, encoded(upright, "JPEG", quality=95))
    ignored = predict(client, encoded(stored, "JPEG", quality=95))
    assert np.abs(with_exif - plain).max() < np.abs(ignored - plain).max()
    assert np.abs(with_exif - plain).max() < 0.02


def test_monochrome1_and_monochrome2_of_the_same_image_predict_alike(client: TestClient) -> None:
    gray = np.asarray(Image.open(FIXTURES / "00000353_000.png"), dtype=np.int64) * 16  # 12-bit values
    mono2 = make_dicom(gray, "MONOCHROME2", bits_stored=12)
    mono1 = make_dicom(4095 - gray, "MONOCHROME1", bits_stored=12)
    assert np.allclose(predict(client, mono1), predict(client, mono2), atol=1e-6)


def test_train_serve_parity(client: TestClient, tiny_checkpoint: Path) -> None:
    paths = [FIXTURES / "00000075_000.png", FIXTURES / "00002578_000_rgba.png"]
    cli = predict_files(tiny_checkpoint, paths, batch_size=2, workers=0, device=torch.device("cpu"))
    for path, row in zip(paths, cli.probs, strict=True):
        assert np.allclose(predict(client, path.read_bytes()), row, atol=1e-6)


def test_overlay_lands_on_the_bright_region_in_original_coordinates() -> None:
    pixels = np.full((100, 200), 60, dtype=np.uint8)  # H=100, W=200: the crop is x 55.6..144.4, y 5.6..94.4
    pixels[60:80, 110:130] = 250
    with client_for(FakePredictor()) as client:
        response = client.post(
            "/gradcam?pathology=Effusion", files={"file": ("a", encoded(Image.fromarray(pixels)), "x")}
        )
    assert response.status_code == 200
    overlay = np.asarray(Image.open(io.BytesIO(response.content)), dtype=np.int32)
    assert overlay.shape == (100, 200, 3)
    red_minus_blue = overlay[..., 0] - overlay[..., 2]
    y, x = np.unravel_index(np.argmax(red_minus_blue), red_minus_blue.shape)
    assert 55 <= y <= 85 and 105 <= x <= 135
    assert red_minus_blue[20, 80] < 0  # cold (blue) inside the crop, far from the blob
    outside = overlay[:, :50]  # left of the crop: the image alone, gray
    assert np.array_equal(outside[..., 0], outside[..., 2]) and np.all(outside[..., 0] == 60)


def predict_json(client: TestClient, data: bytes) -> dict[str, object]:
    response = client.post("/predict", files={"file": ("upload", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_12_bit_data_in_a_16_bit_png_equals_the_8_bit_png(client: TestClient) -> None:
    eight = np.asarray(Image.open(FIXTURES / "00000353_000.png").convert("L"), dtype=np.int64)
    twelve = eight * 4095 // 255  # what a detector writes unscaled into 16 bits, declared by sBIT = 12
    body = predict_json(client, png_16(twelve, 0, b"\x0c"))
    assert body["input"] == {"format": "png", "width": 64, "height": 64, "steps": ["sbit_12"]}
    reference = predict(client, encoded(Image.fromarray(eight.astype(np.uint8))))
    probs = np.array(list(body["probabilities"].values()))  # type: ignore[attr-defined]
    np.testing.assert_allclose(probs, reference, atol=1e-4)


def test_camera_jpeg_with_a_preview_equals_its_primary_picture(client: TestClient) -> None:
    primary = Image.open(FIXTURES / "00000282_000.png").convert("L")
    body = predict_json(client, mpo(primary, Image.new("L", (160, 120), 255)))
    assert body["input"] == {"format": "jpeg", "width": 64, "height": 64, "steps": ["mpo_primary_image"]}
    reference = predict(client, encoded(primary, "JPEG", quality=95))
    probs = np.array(list(body["probabilities"].values()))  # type: ignore[attr-defined]
    np.testing.assert_allclose(probs, reference, atol=1e-4)


def _xray_8bit() -> np.ndarray:
    eight = np.asarray(Image.open(FIXTURES / "00000404_000.png").convert("L"), dtype=np.int64)
    eight[0, 0], eight[0, 1] = 0, 255  # full range: min-max scaling of the DICOM then equals v / 255
    return eight


def _same_as_png(client: TestClient, data: bytes, eight: np.ndarray, steps: list[str]) -> None:
    body = predict_json(client, data)
    assert body["input"] == {"format": "dicom", "width": 64, "height": 64, "steps": steps}
    reference = predict(client, encoded(Image.fromarray(eight.astype(np.uint8))))
    probs = np.array(list(body["probabilities"].values()))  # type: ignore[attr-defined]
    np.testing.assert_allclose(probs, reference, atol=1e-4)


def test_voi_lut_with_8_bit_entries_one_per_word_equals_the_8_bit_png(client: TestClient) -> None:
    """Was 200 with a scrambled image: pydicom indexed the table with the LUT's own 8-bit type."""
    eight = _xray_8bit()
    stored = eight * 16 + np.random.default_rng(0).integers(0, 16, eight.shape)  # 12-bit; v // 16 is the image
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 8])  # LUT Descriptor: 4096 entries, first mapped 0, 8 bits
    item.add_new(0x00283006, "OW", (np.arange(4096) // 16).astype("<u2").tobytes())  # LUT Data, one per word
    _same_as_png(client, make_dicom(stored, bits_stored=12, VOILUTSequence=[item]), eight, ["voi_lut"])


def test_12_bit_jpeg_lossless_dicom_equals_the_8_bit_png(client: TestClient) -> None:
    """Was 422 "could not be decoded": no decoder for transfer syntax 1.2.840.10008.1.2.4.70 was installed."""
    eight = _xray_8bit()
    stored = (eight * 16).astype(np.uint16)
    frame = imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1, bitspersample=12)
    data = encapsulated(frame, JPEGLosslessSV1, stored, 12)
    _same_as_png(client, data, eight, ["decompress", "auto_window"])


def test_dicom_without_preamble_equals_the_8_bit_png(client: TestClient) -> None:
    """Was 415 "upload a PNG, JPEG or DICOM image" (raw PACS exports have no preamble or DICM marker)."""
    eight = _xray_8bit()
    part10 = make_dicom(eight * 16, bits_stored=12)
    assert part10[128:132] == b"DICM"
    _same_as_png(client, part10[132:], eight, ["auto_window"])


def test_unsupported_compression_is_named(client: TestClient) -> None:
    data = encapsulated(b"\xff\x0a" + bytes(64), "1.2.840.10008.1.2.4.110", np.zeros((64, 64), np.uint16), 12)
    response = client.post("/predict", files={"file": ("upload", data, "application/octet-stream")})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "unsupported_compression"
    assert "JPEG XL" in body["detail"] and "1.2.840" not in body["detail"]


# --- issue 16: DICOM pixel attributes and PNG metadata, end to end through the API --------------------------


def test_padded_monochrome1_dicom_equals_the_8_bit_png_with_a_black_border(client: TestClient) -> None:
    """Was 200 with a washed-out picture: the white padding border (Pixel Padding Value) set the min-max window."""
    eight = _xray_8bit()
    eight[8, 8], eight[9, 9] = 0, 255  # the picture inside the 8-pixel border still spans 0..255
    stored = (255 - eight) * 15 + 100
    stored[:8], stored[:, :8] = 0, 0
    data = make_dicom(stored, "MONOCHROME1", bits_stored=12, PixelPaddingValue=0)
    shown = eight.copy()
    shown[:8], shown[:, :8] = 0, 0  # padding is shown at the display minimum
    _same_as_png(client, data, shown, ["auto_window", "monochrome1_inversion", "pixel_padding"])


def test_high_bit_15_dicom_equals_the_8_bit_png(client: TestClient) -> None:
    """Was 200 with a scrambled picture: a 12-bit sample stored in bits 4..15 was read from bits 0..11."""
    eight = _xray_8bit()
    cells = ((eight * 16) << 4) | 0xA
    _same_as_png(client, make_dicom(cells, bits_stored=12, HighBit=15), eight, ["high_bit_shift", "auto_window"])


def test_dicom_with_a_non_numeric_rescale_slope_equals_the_8_bit_png(client: TestClient) -> None:
    """Was 422 "could not be decoded": the rescale is treated as absent (as DCMTK does) and the window applies."""
    eight = _xray_8bit()
    window = {"WindowCenter": "2140.5", "WindowWidth": "4081"}  # maps 16 v + 100 onto v / 255 (PS3.3 C.11.2.1.2.1)
    data = make_dicom(eight * 16 + 100, bits_stored=13, RescaleSlope="7.25", RescaleIntercept="-1024", **window)
    data = data.replace(b"7.25", b"abc ")
    _same_as_png(client, data, eight, ["window"])


def test_png_with_a_compressed_text_chunk_over_1_mib_equals_the_plain_png(client: TestClient) -> None:
    """Was 422 "may be corrupt or truncated": Pillow refuses a zTXt over its 1 MiB limit; the chunk is now skipped."""
    plain = (FIXTURES / "00000075_000.png").read_bytes()
    text = zlib.compress(np.random.default_rng(0).bytes(2 * 1024 * 1024), 0)
    chunk = struct.pack(">I", len(text) + 9) + b"zTXtComment\0\0" + text
    chunk += struct.pack(">I", zlib.crc32(chunk[4:]))
    at = plain.index(b"IDAT") - 4
    assert np.allclose(predict(client, plain[:at] + chunk + plain[at:]), predict(client, plain), atol=0)


def test_float_pixel_data_is_refused_by_name(client: TestClient) -> None:
    ds = pydicom.dcmread(io.BytesIO(make_dicom(np.zeros((64, 64), np.int64), bits_stored=12)))
    del ds.PixelData
    ds.add_new(0x7FE00008, "OF", np.zeros(64 * 64, np.float32).tobytes())
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = client.post("/predict", files={"file": ("upload", buffer.getvalue(), "application/octet-stream")})
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_image"
    assert "Float Pixel Data" in response.json()["detail"]
