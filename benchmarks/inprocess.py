"""In-process measurements: the CPU's fp32 matmul rate, model-only forward img/s, and one request's stages."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.models import DenseNet121_Weights

from app.encoding.overlay import blend_cam, crop_box, encode_png, overlay_base
from app.settings import Settings
from benchmarks import seed_server
from models.gradcam import gradcam_maps, normalise_maps
from models.imaging.decoder import decode_image
from models.network import CheXNet
from models.preprocessing import PreprocessSpec, center_crop_geometry, eval_tensor


def time_calls(fn: Callable[[], object], count: int, seconds: float) -> list[float]:
    """Seconds per call for up to ``count`` calls, stopping early once ``seconds`` have passed (at least one)."""
    times: list[float] = []
    deadline = time.monotonic() + seconds
    while len(times) < count and (not times or time.monotonic() < deadline):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def matmul_gflops(n: int, count: int, seconds: float, repetitions: int) -> dict[str, float]:
    """Best fp32 GFLOP/s of an (n x n) @ (n x n) torch.matmul (2 n^3 flops each): our estimate of the CPU's peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)  # warm-up
    best = min(min(time_calls(lambda: torch.matmul(a, b), count, seconds)) for _ in range(repetitions))
    return {"n": n, "best_s": best, "gflops": 2 * n**3 / best / 1e9}


def count_macs(model: CheXNet, image_size: int) -> int:
    """Multiply-accumulates of one forward at ``image_size`` px, counted from every Conv2d and Linear."""
    total = 0

    def on_forward(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, torch.nn.Linear):
            total += output.numel() * module.in_features

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    handles = [m.register_forward_hook(on_forward) for m in layers]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for handle in handles:
            handle.remove()
    return total


def forward_throughput(
    model: CheXNet, image_size: int, batch_sizes: tuple[int, ...], count: int, seconds: float, repetitions: int
) -> list[dict[str, Any]]:
    """img/s of ``model(x)`` under inference_mode, eager fp32, NCHW and channels_last (best call: a shared CPU)."""
    rows = []
    for layout in ("contiguous", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        net = model.to(memory_format=fmt)
        for batch in batch_sizes:
            x = torch.randn(batch, 3, image_size, image_size).contiguous(memory_format=fmt)
            with torch.inference_mode():
                net(x)  # warm-up (the first call allocates and picks kernels)
                call = functools.partial(net, x)
                per_batch = min(min(time_calls(call, count, seconds)) for _ in range(repetitions))
            rows.append(
                {"layout": layout, "batch": batch, "batch_ms": per_batch * 1000, "img_per_s": batch / per_batch}
            )
    model.to(memory_format=torch.contiguous_format)
    return rows


def add_peak_share(rows: list[dict[str, Any]], flops_per_image: float, peak_gflops: float) -> None:
    for row in rows:
        row["gflops"] = row["img_per_s"] * flops_per_image / 1e9
        row["share_of_peak"] = row["gflops"] / peak_gflops


def _best_ms(fn: Callable[[], object], count: int, seconds: float, repetitions: int) -> float:
    """The fastest call: on a CPU shared with other work, the least disturbed estimate of a step's cost."""
    return min(min(time_calls(fn, count, seconds)) for _ in range(repetitions)) * 1000


def our_stages(
    model: CheXNet, spec: PreprocessSpec, image: Path, count: int, seconds: float, repetitions: int
) -> dict[str, float]:
    """Best-of ms of each step of one /gradcam request, with the service's own functions (batch of one)."""
    data = image.read_bytes()
    gray = decode_image(data).gray
    tensor = eval_tensor(spec, gray)
    geometry = center_crop_geometry(spec, *gray.shape)
    with torch.inference_mode():
        features = model.forward_features(tensor[None])
        cam = normalise_maps(gradcam_maps(features, model.classifier.weight))[0, 0].numpy()
    max_side = Settings.model_fields["overlay_max_side"].default

    def overlay() -> Image.Image:
        """The service's overlay: the 8-bit base at overlay size (made at decode time there), the map blended."""
        base = overlay_base(gray, max_side)
        return blend_cam(base, cam, crop_box(geometry, (base.height, base.width)))

    rgb = overlay()

    def forward() -> None:
        with torch.inference_mode():
            torch.sigmoid(model.forward_head(model.forward_features(tensor[None])))

    def maps() -> None:
        with torch.inference_mode():
            normalise_maps(gradcam_maps(features, model.classifier.weight))

    steps: dict[str, Callable[[], object]] = {
        "read_png": image.read_bytes,
        "decode": lambda: decode_image(data),
        "preprocess": lambda: eval_tensor(spec, gray),
        "forward": forward,
        "gradcam_maps": maps,
        "overlay_render": overlay,
        "png_encode": lambda: encode_png(rgb),
    }
    return {name: _best_ms(fn, count, seconds, repetitions) for name, fn in steps.items()}


def seed_stages(
    model: CheXNet, image_size: int, image: Path, count: int, seconds: float, repetitions: int
) -> dict[str, float]:
    """Best-of ms of each step of one seed-style /gradcam request (benchmarks.seed_server's functions)."""
    data = image.read_bytes()
    preprocess = seed_server.seed_transforms(image_size)
    original = seed_server.load_pil(data)
    tensor = preprocess(original)
    cam, _, _ = seed_server.gradcam(model, tensor)
    rgb = seed_server.overlay_rgb(original, cam)
    steps: dict[str, Callable[[], object]] = {
        "read_png": image.read_bytes,
        "decode": lambda: seed_server.load_pil(data),
        "preprocess": lambda: preprocess(original),
        "forward": lambda: seed_server.predict_probs(model, tensor),
        "gradcam_maps": lambda: seed_server.gradcam(model, tensor),  # forward + backward with hooks
        "overlay_render": lambda: seed_server.overlay_rgb(original, cam),
        "png_encode": lambda: seed_server.encode_png(rgb),
    }
    return {name: _best_ms(fn, count, seconds, repetitions) for name, fn in steps.items()}


def reference_macs() -> float:
    """torchvision's published count for DenseNet-121 at 224 px (its ``_ops``, in G multiply-accumulates)."""
    return float(DenseNet121_Weights.IMAGENET1K_V1.meta["_ops"])


def image_size(image: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    with Image.open(image) as opened:
        return opened.size
