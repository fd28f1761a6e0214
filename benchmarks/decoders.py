"""PNG and JPEG decoders from well-kept packages against Pillow (today's decoder): same pixels, and how fast.

    .venv/bin/python -m benchmarks.decoders [--images DIR] [--repeat 7]

For every PNG in DIR (default: ../shared/data/nih-sample/fullres, NIH's 1024 x 1024 originals, else the test
fixtures) and a JPEG made from each (quality 90, 4:2:0 off, as an archive might store it): decode with each
candidate, check the array equals Pillow's bit for bit, and time it (best of ``--repeat``, interleaved so that a
busy neighbour slows every candidate alike). Prints a table of medians over files; a candidate that differs on any
file is marked and cannot be chosen.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "nih-sample" / "fullres"
Decoder = Callable[[bytes], np.ndarray]


def pillow(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return np.asarray(image)


def candidates(fmt: str) -> dict[str, Decoder]:
    """Pillow first (the reference), then every other decoder installed for ``fmt``."""
    found: dict[str, Decoder] = {"pillow": pillow}
    try:
        import imagecodecs

        if fmt == "png":
            found["imagecodecs.png (libpng)"] = imagecodecs.png_decode
            found["imagecodecs.spng (libspng)"] = imagecodecs.spng_decode
        else:
            found["imagecodecs.jpeg8 (libjpeg-turbo)"] = imagecodecs.jpeg8_decode
    except ImportError:
        pass
    if fmt == "jpeg":
        try:
            import simplejpeg

            found["simplejpeg (libjpeg-turbo)"] = lambda data: simplejpeg.decode_jpeg(data, colorspace="GRAY")[..., 0]
        except ImportError:
            pass
        found["chexnet before: strict check + Pillow"] = _check_then_pillow
        found["chexnet now: one strict pass"] = _one_strict_pass
    return found


def _check_then_pillow(data: bytes) -> np.ndarray:
    """The decoder's JPEG path before it kept the strict pass's pixels: check with libjpeg-turbo, decode again."""
    from models.imaging.decoded import DecodeLimits
    from models.imaging.raster import check_jpeg_data

    check_jpeg_data(data, DecodeLimits())
    return pillow(data)


def _one_strict_pass(data: bytes) -> np.ndarray:
    from models.imaging.decoded import DecodeLimits
    from models.imaging.raster import strict_jpeg_pixels

    pixels = strict_jpeg_pixels(data, DecodeLimits())
    assert pixels is not None  # these test JPEGs are grayscale
    return pixels


def inputs(folder: Path) -> dict[str, list[bytes]]:
    pngs = [p.read_bytes() for p in sorted(folder.glob("*.png"))]
    jpegs = []
    for data in pngs:
        gray = pillow(data)
        gray = gray if gray.ndim == 2 else np.asarray(Image.fromarray(gray).convert("L"))
        buffer = io.BytesIO()
        Image.fromarray(gray).save(buffer, format="JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    return {"png": pngs, "jpeg": jpegs}


def measure(files: list[bytes], decoders: dict[str, Decoder], repeat: int) -> dict[str, dict[str, object]]:
    times: dict[str, list[float]] = {name: [] for name in decoders}
    exact = dict.fromkeys(decoders, True)
    for data in files:
        reference = pillow(data)
        best = dict.fromkeys(decoders, float("inf"))
        for _ in range(repeat):
            for name, decode in decoders.items():
                start = time.perf_counter()
                pixels = decode(data)
                best[name] = min(best[name], time.perf_counter() - start)
                exact[name] = exact[name] and pixels.shape == reference.shape and np.array_equal(pixels, reference)
        for name in decoders:
            times[name].append(best[name] * 1000)
    return {name: {"median_ms": statistics.median(times[name]), "exact": exact[name]} for name in decoders}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    folder = args.images if args.images.is_dir() else REPO / "tests" / "fixtures"
    results = {}
    for fmt, files in inputs(folder).items():
        results[fmt] = measure(files, candidates(fmt), args.repeat)
        base = results[fmt]["pillow"]["median_ms"]
        print(f"{fmt}: {len(files)} files from {folder.name}")  # noqa: T201
        for name, row in results[fmt].items():
            speed = base / row["median_ms"]  # type: ignore[operator]
            mark = "" if row["exact"] else "  (differs from Pillow: not eligible)"
            print(f"  {name:<40} {row['median_ms']:7.2f} ms  {speed:4.2f}x Pillow{mark}")  # noqa: T201
    print(json.dumps(results))  # noqa: T201


if __name__ == "__main__":
    main()
