"""Cost of one Grad-CAM overlay, by stage, and of each PNG encoder option, on the bundled 1024 px X-ray.

    python -m benchmarks.overlay_render [--repeat 20] [--max-side 1024]

Used to choose how app/encoding/overlay.py draws and encodes (see its docstring).  Prints the median of ``--repeat``
runs in milliseconds for: scaling the image to the overlay size, colouring + blending the map, the PNG encode,
the whole overlay, ``pathology=all`` (14 panels), and the float64 full-size drawing this replaced; then each
encoder option on the same overlay, with its size.  Times on a shared CPU are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
import zlib
from collections.abc import Callable
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

from app.encoding import overlay
from models.bundled import SAMPLE_XRAY
from models.gradcam import cam_on_image
from models.imaging.decoder import decode_image
from models.preprocessing import PreprocessSpec, center_crop_geometry


def median_ms(work: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    result = work()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, result


def pillow_png(image: Image.Image, **params: Any) -> Callable[[], bytes]:
    def encode() -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", **params)
        return buffer.getvalue()

    return encode


def float_overlay(gray: np.ndarray, cam: np.ndarray, geometry: Any) -> np.ndarray:
    """The previous drawing: every step in float at the upload's size (kept here only as the baseline)."""
    full = cam_on_image(cam, geometry)
    mixed = np.repeat(gray[..., None], 3, axis=-1) * (1 - overlay.ALPHA) + overlay.jet(full) * overlay.ALPHA
    return np.asarray(np.round(mixed * 255.0), dtype=np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--max-side", type=int, default=1024)
    args = parser.parse_args()
    gray = decode_image(SAMPLE_XRAY).gray
    geometry = center_crop_geometry(PreprocessSpec(image_size=224, resize=256), *gray.shape)
    cam = np.random.default_rng(0).random((7, 7)).astype(np.float32)
    size = overlay.output_size(gray.shape[0], gray.shape[1], args.max_side)
    box = overlay.crop_box(geometry, size)
    rows: list[tuple[str, float, int | None]] = []

    def add(name: str, work: Callable[[], Any]) -> Any:
        ms, result = median_ms(work, args.repeat)
        rows.append((name, ms, len(result) if isinstance(result, bytes) else None))
        return result

    base = add("overlay base: scale to uint8 (at decode time)", lambda: overlay.overlay_base(gray, args.max_side))
    image = add("colour + blend the map", lambda: overlay.blend_cam(base, cam, box))
    add("PNG encode (as shipped)", lambda: overlay.encode_png(image))
    add(
        "whole overlay, base included (as shipped)",
        lambda: overlay.render_overlay_png(overlay.overlay_base(gray, args.max_side), cam, geometry),
    )
    titles = [f"class {i}" for i in range(14)]
    add("pathology=all, 14 panels", lambda: overlay.render_panels_png(base, np.stack([cam] * 14), geometry, titles))
    add("previous float64 drawing (no encode)", lambda: float_overlay(gray, cam, geometry))
    pixels = np.asarray(image)
    raw = np.asarray(image).reshape(image.height, -1)
    up = np.concatenate([np.full((image.height, 1), 2, np.uint8), np.vstack([raw[:1], raw[1:] - raw[:-1]])], axis=1)
    add("deflate only: zlib level 1, Up rows", lambda: zlib.compress(up.tobytes(), 1))
    add("deflate only: libdeflate level 1, Up rows", lambda: imagecodecs.deflate_encode(up.tobytes(), level=1))
    add("Pillow PNG level 1", pillow_png(image, compress_level=1))
    add("Pillow PNG level 1, Z_RLE", pillow_png(image, compress_level=1, compress_type=zlib.Z_RLE))
    add("Pillow PNG level 0", pillow_png(image, compress_level=0))
    for name, flt in (("none", 8), ("sub", 16), ("up", 32), ("paeth", 128), ("adaptive", None)):
        for strategy_name, strategy in (("default", None), ("Z_RLE", zlib.Z_RLE)):
            add(
                f"libpng level 1, {name} filter, {strategy_name}",
                lambda f=flt, s=strategy: imagecodecs.png_encode(pixels, level=1, filter=f, strategy=s),
            )
    print(f"overlay {size[1]} x {size[0]} from a {gray.shape[1]} x {gray.shape[0]} image, median of {args.repeat}")  # noqa: T201
    for name, ms, nbytes in rows:
        size_text = f"{nbytes / 1e6:6.2f} MB" if nbytes is not None else ""
        print(f"  {name:42s} {ms:7.1f} ms  {size_text}")  # noqa: T201


if __name__ == "__main__":
    main()
