"""A seed-style reference server: the tutorial's inference and Grad-CAM pipeline behind plain FastAPI routes.

    .venv/bin/python -m benchmarks.seed_server --checkpoint CKPT --port 8001

What a reader of the seed tutorial would write: PIL decode -> torchvision transforms (Resize 256, CenterCrop 224,
Grayscale to 3 channels, ToTensor, Normalize ImageNet) -> one forward per request, on the event loop (no
batching, no threads). ``POST /gradcam`` is the tutorial's hook-based Grad-CAM (forward + full backward hook on
norm5, backward of the top class, weights = mean gradient, ReLU, min-max), the map stretched over the whole
image with PIL bilinear as the tutorial does, a jet overlay at alpha 0.4 (numpy + Pillow instead of
matplotlib) and Pillow's default PNG compression. It loads the same checkpoint as ``chexnet serve``.
Benchmark reference only: not part of the service, and it binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch
import uvicorn
from fastapi import FastAPI, File, UploadFile
from fastapi.responses import Response
from PIL import Image
from torchvision import transforms

from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS
from models.network import CheXNet

ALPHA = 0.4
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def seed_transforms(image_size: int = 224) -> transforms.Compose:
    """The tutorial's ``val_transforms`` (at its proportions for another crop size)."""
    return transforms.Compose(
        [
            transforms.Resize(round(image_size * 256 / 224)),
            transforms.CenterCrop(image_size),
            transforms.Grayscale(num_output_channels=3),
            transforms.ToTensor(),
            transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
        ]
    )


def load_pil(data: bytes) -> Image.Image:
    """Upload bytes -> grayscale PIL image, as the tutorial's ``Image.open(path).convert("L")``."""
    image = Image.open(io.BytesIO(data))
    return image.convert("L")


@torch.no_grad()
def predict_probs(model: CheXNet, tensor: torch.Tensor) -> npt.NDArray[np.float32]:
    """(3, S, S) -> (14,) probabilities; the tutorial's model ends in a sigmoid, ours returns logits."""
    return torch.sigmoid(model(tensor.unsqueeze(0)))[0].numpy()


@dataclass
class _Hooked:
    """What the hooks catch during one request (created per request, so requests never share it)."""

    feature_maps: list[torch.Tensor] = field(default_factory=list)
    gradients: list[torch.Tensor] = field(default_factory=list)


def gradcam(model: CheXNet, tensor: torch.Tensor) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], int]:
    """The tutorial's GradCAM.generate for the top class -> (cam (h, w) in [0, 1], probs (14,), class index).

    Hooks are registered on norm5 for this call and removed after it (the tutorial registers new ones on every
    call and never removes them). Our network's head applies its ReLU out of place, so the full backward hook
    works on current torchvision; the hooked map is the pre-ReLU norm5 output.
    """
    hooked = _Hooked()
    target = model.features[-1]  # norm5 (BatchNorm2d) after the last dense block
    handles = [
        target.register_forward_hook(lambda _m, _i, out: hooked.feature_maps.append(out.detach())),
        target.register_full_backward_hook(lambda _m, _gi, gout: hooked.gradients.append(gout[0].detach())),
    ]
    try:
        output = torch.sigmoid(model(tensor.unsqueeze(0)))
        index = int(output[0].argmax())
        model.zero_grad()
        output[0, index].backward()  # type: ignore[no-untyped-call]
    finally:
        for handle in handles:
            handle.remove()
    weights = hooked.gradients[0].mean(dim=(2, 3), keepdim=True)  # (1, C, 1, 1)
    cam = torch.relu((weights * hooked.feature_maps[0]).sum(dim=1, keepdim=True)).squeeze().numpy()
    cam = (cam - cam.min()) / (cam.max() - cam.min() + 1e-8)
    return cam.astype(np.float32), output[0].detach().numpy(), index


def jet_rgb(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(H, W) in [0, 1] -> (H, W, 3) in [0, 1]: piecewise-linear jet, close to matplotlib's."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    peaks = np.array([0.75, 0.5, 0.25])  # where red, green and blue are brightest
    return np.clip(1.5 - np.abs(4.0 * v - 4.0 * peaks), 0.0, 1.0)


def overlay_rgb(original: Image.Image, cam: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The tutorial's overlay: the map as uint8, resized to the whole image, jet at alpha 0.4 over the gray image."""
    heatmap = Image.fromarray((cam * 255).astype(np.uint8)).resize(original.size, resample=Image.Resampling.BILINEAR)
    heat = np.asarray(heatmap, dtype=np.float64) / 255.0
    gray = np.asarray(original, dtype=np.float64)[..., None].repeat(3, axis=-1) / 255.0
    mixed = gray * (1.0 - ALPHA) + jet_rgb(heat) * ALPHA
    return np.asarray(np.round(mixed * 255.0), dtype=np.uint8)


def encode_png(rgb: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG")  # Pillow's default compression, as savefig would
    return buffer.getvalue()


def create_seed_app(model: CheXNet, image_size: int) -> FastAPI:
    """The reference app: every step runs inside the ``async def`` route, i.e. on the event loop."""
    app = FastAPI(title="seed-style CheXNet reference (benchmark only)")
    preprocess = seed_transforms(image_size)

    @app.get("/healthz")
    async def read_health() -> dict[str, object]:
        return {"status": "ok", "torch_threads": torch.get_num_threads()}

    @app.post("/predict")
    async def predict_image(file: UploadFile = File(...)) -> dict[str, dict[str, float]]:  # noqa: B008
        tensor = preprocess(load_pil(await file.read()))
        probs = predict_probs(model, tensor)
        return {"probabilities": {name: float(p) for name, p in zip(NIH_LABELS, probs, strict=True)}}

    @app.post("/gradcam")
    async def explain_image(file: UploadFile = File(...)) -> Response:  # noqa: B008
        original = load_pil(await file.read())
        cam, probs, index = gradcam(model, preprocess(original))
        headers = {"X-Pathology": NIH_LABELS[index], "X-Probability": f"{float(probs[index]):.6f}"}
        return Response(encode_png(overlay_rgb(original, cam)), media_type="image/png", headers=headers)

    return app


def load_seed_model(checkpoint: str) -> tuple[CheXNet, int]:
    """The same checkpoint as ``chexnet serve`` (weights_only load), in eval mode; and its crop size."""
    loaded = load_checkpoint(checkpoint)
    return loaded.build_model(), loaded.spec.image_size


def main() -> None:
    parser = argparse.ArgumentParser(description="seed-style reference server (benchmark only, 127.0.0.1)")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    model, image_size = load_seed_model(args.checkpoint)
    gradcam(model, torch.zeros(3, image_size, image_size))  # warm up before the port opens
    uvicorn.run(create_seed_app(model, image_size), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
