"""One file, one tensor: the service, ``chexnet predict`` and the training dataset see the same input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.app.fakes import SPEC, FakePredictor, client_for
from tests.conftest import FIXTURES
from tests.models.imaging.builders import png_chunk, png_with_chunk
from tests.models.imaging.test_dicom import make_dicom
from tests.models.imaging.test_raster import mpo, png_16
from training.data.dataset import XrayDataset
from training.scoring.inference import InferenceImages


def _pixels() -> np.ndarray:
    with Image.open(FIXTURES / "00000075_000.png") as image:
        return np.asarray(image.convert("L"), dtype=np.int64)


def _jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L").save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _files() -> dict[str, bytes]:
    pixels = _pixels()
    return {
        "png": (FIXTURES / "00000075_000.png").read_bytes(),
        "rgba-png": (FIXTURES / "00002578_000_rgba.png").read_bytes(),
        "sbit-png": png_16(pixels * 16, 0, b"\x0c"),
        "jpeg": _jpeg(pixels),
        "mpo": mpo(Image.fromarray(pixels.astype(np.uint8), "L"), Image.new("L", (64, 64))),
        "dicom-jpeg-baseline": (FIXTURES / "cxr-monochrome1.dcm").read_bytes(),
        "dicom-window": make_dicom(pixels * 16, "MONOCHROME1", 12, WindowCenter=2048, WindowWidth=4096),
        "dicom-padding-high-bit": _padded_high_bit(pixels),
        "png-unused-chunks": png_with_chunk(
            (FIXTURES / "00000075_000.png").read_bytes(), png_chunk(b"tEXt", b"Comment\0x", crc=0)
        ),
    }


def _padded_high_bit(pixels: np.ndarray) -> bytes:
    """A 12-bit sample in bits 4..15 (High Bit 15) with a padding border (Pixel Padding Value 4095)."""
    stored = pixels * 16
    stored[:8], stored[:, :8] = 4095, 4095
    return make_dicom((stored << 4) | 0x3, bits_stored=12, HighBit=15, PixelPaddingValue=4095)


FILES = _files()


@pytest.mark.parametrize("name", sorted(FILES))
def test_service_predict_and_training_see_the_same_tensor(name: str, tmp_path: Path) -> None:
    data = FILES[name]
    path = tmp_path / "upload"  # no suffix: the format comes from the bytes everywhere
    path.write_bytes(data)
    engine = FakePredictor()
    with client_for(engine) as client:
        response = client.post("/predict", files={"file": ("x", data, "application/octet-stream")})
    assert response.status_code == 200, response.text
    served = engine.tensors[-1]
    assert served.shape == (3, SPEC.image_size, SPEC.image_size)
    predicted = InferenceImages([path], SPEC)[0]  # evaluate, calibrate and predict all read through it
    trained = XrayDataset([path], np.zeros((1, 14)), SPEC, train=False)[0]
    evaluated = InferenceImages([path], SPEC, tencrop=False)[0]
    assert isinstance(predicted, tuple) and isinstance(trained, tuple) and isinstance(evaluated, tuple)
    assert torch.equal(served, predicted[0])
    assert torch.equal(served, trained[0])
    assert torch.equal(served, evaluated[0])
