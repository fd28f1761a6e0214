"""Eager PyTorch: the reference backend, and the one used on CUDA."""

from __future__ import annotations

import torch

from models.network import CheXNet

_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


class TorchBackend:
    """Eager forward in channels_last (faster on both CPU and CUDA here); bf16 autocast only when asked.

    channels_last on this project's 2-core CPU: batch 1 11.8 vs 10.7 img/s, batch 8 14.5 vs 11.7 img/s against
    the contiguous layout (benchmarks/results, ``make bench``).
    """

    name = "torch"

    def __init__(self, model: CheXNet, device: torch.device, precision: str = "fp32") -> None:
        if precision not in _AUTOCAST:
            raise ValueError(f"unknown precision {precision!r}")
        self.device, self.precision = device, precision
        self._dtype = _AUTOCAST[precision]
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def run(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) -> logits (N, K) float32 and the norm5 map (N, 1024, S/32, S/32) float32, on the device."""
        images = images.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self._dtype or torch.bfloat16, enabled=self._dtype is not None):
            features = self.model.forward_features(images)
            logits = self.model.forward_head(features)
        return logits.float(), features.float()
