"""models.openvino_ir: the int8 folder (NNCF post-training quantization) names what it was made from and is
checked on every load; the service serves it with CHEXNET_PRECISION=int8."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import load_checkpoint
from models.openvino_ir import (
    Int8Manifest,
    QuantizedModelError,
    export_ir,
    load_int8,
    quantize_ir,
    read_int8_manifest,
    save_int8,
    shared_core,
)

pytest.importorskip("nncf")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_int8_folder(tiny_checkpoint: Path, folder: Path) -> Path:
    """The tiny checkpoint quantized on four random inputs, saved as an int8 folder."""
    checkpoint = load_checkpoint(tiny_checkpoint)
    size = checkpoint.spec.image_size
    generator = torch.Generator().manual_seed(0)
    calibration = [torch.rand(1, 3, size, size, generator=generator).numpy() for _ in range(4)]
    quantized = quantize_ir(export_ir(checkpoint.build_model(), size), calibration, subset_size=4)
    manifest = Int8Manifest(
        checkpoint_sha256=checkpoint.sha256,
        image_size=size,
        calibration_images=4,
        calibration_sha256="0" * 64,
        fidelity={"max_abs_dp": None},
        versions={"test": "1"},
    )
    save_int8(folder, quantized, manifest)
    return folder


@pytest.fixture(scope="module")
def int8_folder(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_int8_folder(tiny_checkpoint, tmp_path_factory.mktemp("int8") / "tiny-int8")


def test_the_quantized_graph_holds_int8_operations(int8_folder: Path, tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    model, manifest = load_int8(int8_folder, checkpoint.sha256, checkpoint.spec.image_size)
    fake_quantize = [op for op in model.get_ops() if op.get_type_name() == "FakeQuantize"]
    assert fake_quantize, "NNCF inserted no quantization nodes"
    assert manifest["calibration"] == {"images": 4, "sha256": "0" * 64}
    assert set(manifest["files"]) == {"model.xml", "model.bin"}


def test_outputs_stay_close_to_fp32_and_keep_the_feature_map(int8_folder: Path, tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    size = checkpoint.spec.image_size
    model, _ = load_int8(int8_folder, checkpoint.sha256, size)
    compiled = shared_core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    images = torch.rand(3, 3, size, size, generator=torch.Generator().manual_seed(1))
    result = compiled(images.numpy())
    with torch.inference_mode():
        eager = checkpoint.build_model().eval()
        features = eager.forward_features(images)
        expected = torch.sigmoid(eager.forward_head(features)).numpy()
    assert result[0].shape == (3, len(checkpoint.labels))
    assert result[1].shape == tuple(features.shape)
    difference = np.abs(1 / (1 + np.exp(-result[0])) - expected).max()
    assert 0 < difference < 0.25  # quantized: not bit-identical, and still this network


def test_another_checkpoint_or_size_is_refused(int8_folder: Path, tiny_checkpoint: Path) -> None:
    checkpoint = load_checkpoint(tiny_checkpoint)
    with pytest.raises(QuantizedModelError, match="another checkpoint"):
        load_int8(int8_folder, "f" * 64, checkpoint.spec.image_size)
    with pytest.raises(QuantizedModelError, match="px inputs"):
        load_int8(int8_folder, checkpoint.sha256, checkpoint.spec.image_size * 2)


def test_a_damaged_or_partial_folder_is_refused(int8_folder: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(int8_folder, damaged)
    with open(damaged / "model.bin", "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(QuantizedModelError, match=r"model\.bin does not match"):
        read_int8_manifest(damaged)
    (damaged / "manifest.json").unlink()
    with pytest.raises(QuantizedModelError, match="no readable manifest"):
        read_int8_manifest(damaged)
    other = tmp_path / "other-format"
    shutil.copytree(int8_folder, other)
    manifest = json.loads((other / "manifest.json").read_text())
    (other / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(QuantizedModelError, match="not format 1"):
        read_int8_manifest(other)
