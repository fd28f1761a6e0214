"""How close ``chexnet import``'s models are to their sources: the figures README's "Real models" quotes.

For several random-weight source networks (the layouts of tests/training/import_sources.py), the largest
difference in probability between the imported model and the source's own forward:

- network: the same input tensor (arnoweng: 3 x 64 x 64; torchxrayvision: 1 x 64 x 64 in [-1024, 1024]);
- xrv pipeline: a file through our decoder and ``XRV_SPEC`` against xrv's own recipe (``normalize``,
  ``XRayCenterCrop``, then either ``XRayResizer(224)`` (skimage) or the torch resize xrv's model applies itself),
  on the bundled 1024 x 1024 X-ray cut three ways.

    .venv/bin/python -m benchmarks.import_parity [--seeds 3]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
import torchxrayvision as xrv
from PIL import Image

from models.bundled import SAMPLE_XRAY
from models.imaging.decoder import decode_image
from models.network import CheXNet
from models.preprocessing import eval_tensor
from tests.training.import_sources import arnoweng_network, write_arnoweng_file, xrv_network
from training.import_weights import ImportRequest, import_checkpoint
from training.importers.xrv import XRV_SPEC, XRV_WEIGHTS

CUTS = {
    "1024x1024": (slice(None), slice(None)),
    "1024x900": (slice(None), slice(50, 950)),
    "800x1024": (slice(100, 900), slice(None)),
}


def _model(source: str, path: Path, **kwargs: str) -> CheXNet:
    checkpoint = import_checkpoint(ImportRequest(source, path, path.with_suffix(".out"), **kwargs))
    model = CheXNet(len(checkpoint.labels))
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval()


def network_differences(seed: int, folder: Path) -> tuple[float, float]:
    """(arnoweng, xrv) largest |probability difference| on the same input tensors."""
    generator = torch.Generator().manual_seed(seed)
    arnoweng = arnoweng_network(seed)
    imported = _model("arnoweng", write_arnoweng_file(folder / "model.pth.tar", arnoweng))
    images = torch.randn(4, 3, 64, 64, generator=generator)
    with torch.no_grad():
        first = float((torch.sigmoid(imported(images)) - arnoweng(images)).abs().max())
    source = xrv_network(seed)
    torch.save(source.state_dict(), folder / "xrv.pt")
    imported = _model("torchxrayvision", folder / "xrv.pt", xrv_weights="all")
    grey = torch.rand(4, 1, 64, 64, generator=generator) * 2048 - 1024
    rows = list(XRV_WEIGHTS["all"].kept_outputs)  # the imported model keeps every trained output, in xrv order
    with torch.no_grad():
        second = float((torch.sigmoid(imported(grey.expand(-1, 3, -1, -1))) - source(grey)[:, rows]).abs().max())
    return first, second


def pipeline_differences(seed: int, folder: Path, cut: str) -> tuple[float, float, float, float]:
    """|dp| vs xrv with torch's resize, and with skimage's XRayResizer; max and mean input |diff| vs the latter."""
    pixels = np.asarray(Image.open(SAMPLE_XRAY).convert("L"))[CUTS[cut]]
    Image.fromarray(pixels).save(folder / "cut.png")
    source = xrv_network(seed)
    torch.save(source.state_dict(), folder / "xrv.pt")
    imported = _model("torchxrayvision", folder / "xrv.pt", xrv_weights="all")
    ours = eval_tensor(XRV_SPEC, decode_image(folder / "cut.png").gray)
    square = xrv.datasets.XRayCenterCrop()(xrv.datasets.normalize(pixels, 255)[None])
    by_skimage = torch.from_numpy(xrv.datasets.XRayResizer(224)(square))[None]
    by_torch = torch.nn.functional.interpolate(
        torch.from_numpy(square)[None], size=(224, 224), mode="bilinear", antialias=True
    )
    rows = list(XRV_WEIGHTS["all"].kept_outputs)  # the imported model keeps every trained output, in xrv order
    with torch.no_grad():
        got = torch.sigmoid(imported(ours[None]))
        vs_torch = float((got - source(by_torch)[:, rows]).abs().max())
        vs_skimage = float((got - source(by_skimage)[:, rows]).abs().max())
    input_diff = (ours[0] - by_skimage[0, 0]).abs()
    return vs_torch, vs_skimage, float(input_diff.max()), float(input_diff.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nets = [network_differences(seed, folder) for seed in range(args.seeds)]
        print(  # noqa: T201  (the figures are the output)
            f"network, largest |dp| over {args.seeds} seeds: arnoweng {max(a for a, _ in nets):.1e}, "
            f"torchxrayvision {max(b for _, b in nets):.1e}"
        )
        for cut in CUTS:
            rows = [pipeline_differences(seed, folder, cut) for seed in range(args.seeds)]
            print(  # noqa: T201  (the figures are the output)
                f"xrv pipeline, {cut}: vs torch resize {max(r[0] for r in rows):.1e}, vs XRayResizer "
                f"{max(r[1] for r in rows):.1e}; input |diff| to XRayResizer's: max {rows[0][2]:.0f}, "
                f"mean {rows[0][3]:.2f} (of a 2048 range)"
            )


if __name__ == "__main__":
    main()
