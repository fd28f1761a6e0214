"""How close our DICOM rendering is to DCMTK's, and what the PNG chunk policy costs: the figures docs/imaging.md quotes.

- For every file of ``tests/models/imaging/test_dicom_attributes.py``'s DCMTK cases: the largest difference, in
  grey levels of 255, between our decode and ``dcm2pnm``'s 8-bit rendering (Debian package ``dcmtk``).
- For a 1024 x 1024 noise PNG (about 1 MiB of IDAT), with and without a 1 MiB zTXt chunk: the time of the chunk
  walk with CRC checks that runs before Pillow, and of the whole decode (best of several runs).

    .venv/bin/python -m benchmarks.decoder_oracle
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from models.imaging.decoder import decode_image
from models.imaging.png_chunks import png_without_unused_chunks
from tests.models.imaging.builders import png_bytes, png_with_chunk
from tests.models.imaging.test_dicom_attributes import DCMTK_CASES, dcmtk_render
from tests.models.imaging.test_png_chunks import UNUSED


def best_ms(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def main() -> None:
    logging.disable(logging.WARNING)  # the unusable-rescale cases warn, by design
    if shutil.which("dcm2pnm") is None:
        print("dcm2pnm not installed (apt-get install dcmtk): DCMTK comparison skipped")  # noqa: T201
    else:
        print(f"{'case':28s} {'dcm2pnm VOI':12s} max |ours - dcm2pnm| (grey levels of 255)")  # noqa: T201
        with tempfile.TemporaryDirectory() as tmp:
            for name, (data, options) in DCMTK_CASES.items():
                ours = decode_image(data).gray.astype(np.float64) * 255.0
                difference = np.abs(ours - dcmtk_render(data, Path(tmp), *options)).max()
                print(f"{name:28s} {' '.join(options):12s} {difference:.3f}")  # noqa: T201
    noise = np.random.default_rng(0).integers(0, 256, (1024, 1024), dtype=np.uint8)
    plain = png_bytes(noise)
    with_text = png_with_chunk(plain, UNUSED["zTXt over 1 MiB"])
    for label, data in (("1024 x 1024 PNG", plain), ("same + 1 MiB zTXt", with_text)):
        walk = best_ms(lambda data=data: png_without_unused_chunks(data), 20)
        decode = best_ms(lambda data=data: decode_image(data), 5)
        print(  # noqa: T201  (the figures are the output)
            f"{label:18s} {len(data):>9d} bytes: chunk walk + CRC {walk:.2f} ms, whole decode {decode:.1f} ms"
        )


if __name__ == "__main__":
    main()
