"""Eager PyTorch: the reference backend, and the one used on CUDA."""

from __future__ import annotations

import torch

from models.network import CheXNet

_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CUDA_ONLY = frozenset({"fp16"})


def configure_cuda() -> None:
    """Process-wide cuDNN/cuBLAS choices for serving on CUDA: exact fp32, kernels autotuned per shape.

    TF32 off: cuDNN convolutions use TF32 by default on Ampere and later, which moves probabilities by ~1e-4
    from the CPU's (seen on an H200). ``fp32`` here means IEEE fp32, equal to CPU eager within 1e-4; for
    speed ask for bf16 or fp16, which are faster than TF32 anyway. Autotuning (``cudnn.benchmark``) pays
    because the predictor pads every batch to one of a few sizes and runs each of them once at warm-up.
    """
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True


class TorchBackend:
    """Eager forward in channels_last (faster on both CPU and CUDA here); bf16/fp16 autocast only when asked.

    channels_last on this project's 2-core CPU: batch 1 11.8 vs 10.7 img/s, batch 8 14.5 vs 11.7 img/s against
    the contiguous layout (benchmarks/results, ``make bench``). fp16 runs on CUDA only (CPU kernels for it are
    slow or missing); bf16 runs on both.
    """

    name = "torch"

    def __init__(self, model: CheXNet, device: torch.device, precision: str = "fp32") -> None:
        if precision not in _AUTOCAST:
            raise ValueError(f"unknown precision {precision!r}")
        if precision in CUDA_ONLY and device.type != "cuda":
            raise ValueError(f"precision {precision} runs on CUDA only, not on {device}")
        if device.type == "cuda":
            configure_cuda()
        self.device, self.precision = device, precision
        self._dtype = _AUTOCAST[precision]
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) -> logits (N, K) float32 and the norm5 map (N, 1024, S/32, S/32) float32, on the device.

        From pinned host memory the copy to the GPU is asynchronous; the caller's read-back waits for it.
        """
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self._dtype or torch.bfloat16, enabled=self._dtype is not None):
            features = self.model.forward_features(images)
            logits = self.model.forward_head(features)
        return logits.float(), features.float()
