"""The GPU path: precisions, batch buckets, pinned assembly, decode workers.

What can be checked on the CPU is checked here on the CPU; the tests marked ``cuda`` skip without a CUDA device
and are run on a GPU machine by ``benchmarks/gpu_check.sh``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from app.backends import InferenceBackend
from app.backends.torch_backend import TorchBackend
from app.inference.batch_assembly import BatchAssembler, batch_buckets, bucket_for
from app.inference.predictor import Predictor
from app.inference.threads import available_cores, default_decode_workers
from app.runtime.server import StartupError, prepare_service
from app.settings import Settings
from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS
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
    assert str(caught.value).startswith("invalid settings: CHEXNET_PRECISION: fp16 runs on CUDA only")


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
        TorchBackend(build_network("none", len(NIH_LABELS)), torch.device("cpu"), "fp16")


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


def test_buckets_are_powers_of_two_then_the_largest_batch() -> None:
    assert batch_buckets(16) == (1, 2, 4, 8, 16)
    assert batch_buckets(12) == (1, 2, 4, 8, 12)
    assert batch_buckets(1) == (1,)
    with pytest.raises(ValueError, match="at least 1"):
        batch_buckets(0)


def test_a_batch_runs_as_the_smallest_bucket_that_holds_it() -> None:
    buckets = batch_buckets(12)
    assert [bucket_for(n, buckets) for n in (1, 2, 3, 5, 8, 9, 12)] == [1, 2, 4, 8, 8, 12, 12]
    with pytest.raises(ValueError, match="larger than the largest bucket"):
        bucket_for(13, buckets)


def test_buckets_and_pinned_memory_on_cuda_only() -> None:
    cpu = BatchAssembler.for_device(torch.device("cpu"), 16)
    assert cpu.buckets is None and not cpu.pinned
    cuda = BatchAssembler.for_device(CUDA, 16)  # nothing is allocated until a batch is assembled
    assert cuda.buckets == (1, 2, 4, 8, 16) and cuda.pinned


def test_assembly_stacks_on_the_cpu_and_pads_with_zero_rows_to_a_bucket() -> None:
    tensors = list(_images(3, 8))
    assert torch.equal(BatchAssembler(None, pinned=False).assemble(tensors), torch.stack(tensors))
    padded = BatchAssembler((1, 2, 4), pinned=False).assemble(tensors)
    assert padded.shape == (4, 3, 8, 8)
    assert torch.equal(padded[:3], torch.stack(tensors)) and not padded[3].any()


class RecordingBackend:
    """The real backend, remembering the batch size of every forward."""

    def __init__(self, inner: InferenceBackend) -> None:
        self.inner = inner
        self.sizes: list[int] = []
        self.name, self.device, self.precision = inner.name, inner.device, inner.precision

    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.sizes.append(images.shape[0])
        return self.inner.run(images)


def _serve(predictor: Predictor, tensors: list[torch.Tensor]) -> list[np.ndarray]:
    async def scenario() -> list[np.ndarray]:
        await predictor.start()
        try:
            results = await asyncio.gather(*(predictor.infer(t, with_cams=True) for t in tensors))
        finally:
            await predictor.stop()
        return [np.concatenate([r.probs, r.cams.ravel()]) for r in results if r.cams is not None]

    return asyncio.run(scenario())


def _predictor(checkpoint: Path, assembler: BatchAssembler | None = None, **settings: object) -> Predictor:
    config = Settings(checkpoint=checkpoint, backend="torch", max_batch_size=4, max_wait_ms=500, **settings)  # type: ignore[arg-type]
    predictor = Predictor.load(config)
    predictor.backend = RecordingBackend(predictor.backend)
    if assembler is not None:
        predictor.assembler = assembler
    return predictor


def test_padding_to_a_bucket_leaves_every_row_unchanged(tiny_checkpoint: Path, one_torch_thread: None) -> None:
    tensors = list(_images(3))
    plain = _predictor(tiny_checkpoint, device="cpu", warmup=False)
    padded = _predictor(tiny_checkpoint, BatchAssembler((4,), pinned=False), device="cpu", warmup=False)
    expected, got = _serve(plain, tensors), _serve(padded, tensors)
    assert plain.backend.sizes == [3] and padded.backend.sizes == [4]  # type: ignore[attr-defined]
    assert len(got) == len(expected) == 3  # probabilities and Grad-CAM maps, row by row
    for row, reference in zip(got, expected, strict=True):
        # not bit-equal: the convolution kernels block a batch of 4 differently from one of 3 (~1e-7 seen)
        np.testing.assert_allclose(row, reference, rtol=0, atol=1e-6)


def test_every_bucket_is_warmed_before_the_first_request(tiny_checkpoint: Path, one_torch_thread: None) -> None:
    warmed = _predictor(tiny_checkpoint, BatchAssembler((1, 2, 4), pinned=False), device="cpu")
    _serve(warmed, list(_images(3)))
    assert warmed.backend.sizes == [1, 2, 4, 4]  # type: ignore[attr-defined]
    cold = _predictor(tiny_checkpoint, BatchAssembler((1, 2, 4), pinned=False), device="cpu", warmup=False)
    _serve(cold, list(_images(3)))
    assert cold.backend.sizes == [4]  # type: ignore[attr-defined]
    cpu = _predictor(tiny_checkpoint, device="cpu")  # the CPU's own assembler: no buckets, nothing to warm
    _serve(cpu, list(_images(3)))
    assert cpu.backend.sizes == [3]  # type: ignore[attr-defined]


@pytest.mark.cuda
def test_cuda_batches_are_bucketed_warmed_pinned_and_equal_the_cpu(tiny_checkpoint: Path) -> None:
    tensors = list(_images(3))
    predictor = _predictor(tiny_checkpoint, device="cuda")
    assert predictor.assembler.buckets == (1, 2, 4) and predictor.assembler.pinned
    got = _serve(predictor, tensors)
    assert predictor.backend.sizes == [1, 2, 4, 4]  # type: ignore[attr-defined]
    buffer = predictor.assembler._buffer
    assert buffer is not None and buffer.is_pinned() and buffer.shape == (4, 3, 64, 64)
    expected = _serve(_predictor(tiny_checkpoint, device="cpu", warmup=False), tensors)
    for row, reference in zip(got, expected, strict=True):
        np.testing.assert_allclose(row[:14], reference[:14], rtol=0, atol=FP32_PROB_TOLERANCE)


def test_decode_workers_four_on_the_cpu_the_cores_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = available_cores()
    assert default_decode_workers("cpu", 16) == 4
    assert default_decode_workers("cuda", 16) == min(cores, 16)
    assert default_decode_workers("cuda", 1) == 1  # never more than the uploads admitted at once
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert default_decode_workers("auto", 16) == 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert default_decode_workers("auto", 16) == min(cores, 16)


def test_decode_concurrency_zero_or_unset_means_the_device_s_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(device="cpu").decode_concurrency == 4
    assert Settings(device="cuda", upload_backlog=8).decode_concurrency == min(available_cores(), 8)
    assert Settings(device="cuda", decode_concurrency=3).decode_concurrency == 3
    monkeypatch.setenv("CHEXNET_DECODE_CONCURRENCY", "0")
    monkeypatch.setenv("CHEXNET_DEVICE", "cpu")
    assert Settings().decode_concurrency == 4
