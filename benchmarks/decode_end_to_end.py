"""The decoder end to end (bytes -> float32 grey, ``models.imaging.decoder.decode_image``), on NIH's originals as
PNG and as quality-90 JPEG: median over files of the best of ``--repeat`` calls.

    .venv/bin/python -m benchmarks.decode_end_to_end [--images DIR] [--tree CHECKOUT]

``--tree`` imports ``models`` from another checkout of this repository (e.g. ``git worktree add /tmp/old REV``),
so that two versions of the decoder are timed by the same script on the same machine, one after the other.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_IMAGES = REPO.parent / "shared" / "data" / "nih-sample" / "fullres"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--tree", type=Path, help="a checkout whose models/ is timed instead of this one's")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    if args.tree is not None:
        sys.path.insert(0, str(args.tree.resolve()))
    from models.imaging.decoded import DecodeLimits
    from models.imaging.decoder import decode_image

    folder = args.images if args.images.is_dir() else REPO / "tests" / "fixtures"
    pngs = [path.read_bytes() for path in sorted(folder.glob("*.png"))]
    jpegs = []
    for data in pngs:
        buffer = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("L").save(buffer, "JPEG", quality=90)
        jpegs.append(buffer.getvalue())
    limits = DecodeLimits()
    for fmt, files in (("png", pngs), ("jpeg", jpegs)):
        bests = []
        for data in files:
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                decode_image(data, limits)
                best = min(best, time.perf_counter() - start)
            bests.append(best * 1000)
        where = args.tree or REPO
        print(f"{where.name}: {fmt} {len(files)} files, median {statistics.median(bests):.2f} ms")  # noqa: T201


if __name__ == "__main__":
    main()
