"""The GPU path: precisions, batch buckets, pinned assembly, decode workers.

What can be checked on the CPU is checked here on the CPU; the tests marked ``cuda`` skip without a CUDA device
and are run on a GPU machine by ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from app.backends.torch_backend import TorchBackend
from app.server import StartupError, prepare_service
from app.settings import Settings
from models.checkpoint import load_checkpoint
from models.network import build_network

CUDA = torch.device("cuda")
# fp32 on CUDA (TF32 off) against CPU eager; bf16/fp16 autocast against fp32 on the same device (random weights)
FP32_PROB_TOLERANCE = 1e-4
HALF_PROB_TOLERANCE = 1e-2


def test_fp16_on_the_cpu_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHEXNET_DEVICE", "cpu")
    monkeypatch.setenv("CHEXNET_PRECISION", "fp16")
    with pytest.raises(StartupError) as caught:
        prepare_service({})
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith("invalid settings: CHEXNET_PRECISION: Value error, fp16 runs on CUDA only")


def test_fp16_with_device_auto_is_refused_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValidationError, match="fp16 runs on CUDA only"):
        Settings(precision="fp16")


def test_fp16_is_accepted_for_cuda_but_not_with_openvino(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert Settings(precision="fp16").precision == "fp16"
    assert Settings(device="cuda", precision="fp16").precision == "fp16"
    with pytest.raises(ValidationError, match="OpenVINO takes fp32 or bf16"):
        Settings(backend="openvino", precision="fp16")


def test_bf16_is_allowed_on_the_cpu() -> None:
    assert Settings(device="cpu", precision="bf16").precision == "bf16"


def test_the_torch_backend_refuses_fp16_on_the_cpu() -> None:
    with pytest.raises(ValueError, match="fp16 runs on CUDA only"):
        TorchBackend(build_network("none"), torch.device("cpu"), "fp16")


def _images(n: int = 4, size: int = 64) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(3))


@pytest.mark.cuda
def test_fp32_on_cuda_equals_cpu_eager(tiny_checkpoint: Path) -> None:
    loaded = load_checkpoint(tiny_checkpoint)
    backend = TorchBackend(loaded.build_model(), CUDA, "fp32")
    assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
    assert torch.backends.cudnn.benchmark
    images = _images()
    logits, features = backend.run(images)
    with torch.inference_mode():
        model = loaded.build_model().eval()
        expected_features = model.forward_features(images)
        expected = torch.sigmoid(model.forward_head(expected_features))
    assert logits.device.type == "cuda" and logits.dtype == features.dtype == torch.float32
    difference = float((torch.sigmoid(logits).cpu() - expected).abs().max())
    assert difference <= FP32_PROB_TOLERANCE, f"fp32 CUDA vs CPU eager: max |diff| {difference:.2e}"
    assert torch.allclose(features.cpu(), expected_features, atol=1e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_on_cuda_stays_close_to_fp32(tiny_checkpoint: Path, precision: str) -> None:
    loaded = load_checkpoint(tiny_checkpoint)
    images = _images()
    reference = torch.sigmoid(TorchBackend(loaded.build_model(), CUDA, "fp32").run(images)[0])
    half = TorchBackend(loaded.build_model(), CUDA, precision)
    logits, features = half.run(images)
    assert half.precision == precision and logits.dtype == features.dtype == torch.float32
    difference = float((torch.sigmoid(logits) - reference).abs().max())
    assert 0 < difference <= HALF_PROB_TOLERANCE, f"{precision} vs fp32 on CUDA: max |diff| {difference:.2e}"
