"""The model at a chosen inference precision, for the offline commands: (N, 3, S, S) inputs -> (N, K)
probabilities, computed the way the service computes them at that precision.

On the CPU: ``fp32`` is eager PyTorch (the reference), ``bf16`` and ``int8`` are OpenVINO (as the service's
default CPU backend runs them; int8 from a folder made by ``chexnet quantize``). On CUDA: eager PyTorch with
autocast for ``bf16`` / ``fp16``; int8 is CPU-only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
import torch

from models.checkpoint import Checkpoint

PRECISIONS: Final = ("fp32", "bf16", "fp16", "int8")

ProbabilityFn = Callable[[torch.Tensor], np.ndarray]


class PrecisionError(ValueError):
    """A precision this device cannot run, or int8 without its folder; the message says what to do."""


def check_precision(precision: str, device: torch.device, int8_model: Path | None) -> None:
    """Raises :class:`PrecisionError` before any data is read when the combination cannot run."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionError("fp16 runs on CUDA only; on the CPU use bf16 or int8")
    if precision == "int8" and device.type != "cpu":
        raise PrecisionError("int8 runs on the CPU (OpenVINO); on CUDA use bf16 or fp16")
    if precision == "int8" and int8_model is None:
        raise PrecisionError("int8 needs --int8-model, the folder chexnet quantize wrote for this checkpoint")
    if precision != "int8" and int8_model is not None:
        raise PrecisionError("--int8-model goes with --precision int8")


def probability_fn(
    checkpoint: Checkpoint, precision: str, device: torch.device, int8_model: Path | None = None, threads: int = 0
) -> ProbabilityFn:
    """A function from a float32 batch (N, 3, S, S) to float32 probabilities (N, K) at ``precision``.

    ``threads`` 0 means torch's current thread count. Raises :class:`PrecisionError` as :func:`check_precision`,
    and :class:`~models.openvino_ir.QuantizedModelError` for an int8 folder of another checkpoint.
    """
    check_precision(precision, device, int8_model)
    threads = threads or torch.get_num_threads()
    if precision == "fp32" or device.type == "cuda":
        return _eager(checkpoint, precision, device)
    from models.openvino_ir import compile_cpu, export_ir, load_int8  # OpenVINO only where it is used

    if precision == "int8":
        assert int8_model is not None  # check_precision refused it
        ir, _ = load_int8(int8_model, checkpoint.sha256 or "", checkpoint.spec.image_size)
    else:
        ir = export_ir(checkpoint.build_model(), checkpoint.spec.image_size)
    compiled = compile_cpu(ir, precision, threads)

    def run(images: torch.Tensor) -> np.ndarray:
        logits = compiled(np.ascontiguousarray(images.numpy(), dtype=np.float32))[0]
        return np.asarray(torch.sigmoid(torch.from_numpy(np.asarray(logits, dtype=np.float32))).numpy())

    return run


def _eager(checkpoint: Checkpoint, precision: str, device: torch.device) -> ProbabilityFn:
    model = checkpoint.build_model().to(device).eval()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    def run(images: torch.Tensor) -> np.ndarray:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None),
        ):
            logits = model(images.to(device))
        return np.asarray(torch.sigmoid(logits.float()).cpu().numpy())

    return run
