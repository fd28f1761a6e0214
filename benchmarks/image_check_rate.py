"""How fast ``chexnet train`` / ``evaluate`` check a dataset before epoch 1 (headers only, threads).

    .venv/bin/python benchmarks/image_check_rate.py ../shared/data/nih-sample/images --repeat 20

Prints files per second.  The page cache is warm after the first pass, so this measures the checking, not the
disk; a cold network file system is slower.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from training.data.image_check import find_unreadable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--repeat", type=int, default=10, help="check the folder's files this many times over")
    args = parser.parse_args()
    paths = sorted(p for p in args.folder.iterdir() if p.is_file()) * args.repeat
    find_unreadable(paths[: min(len(paths), 100)], show=False)  # warm the page cache and imports
    start = time.perf_counter()
    failures = find_unreadable(paths, show=False)
    seconds = time.perf_counter() - start
    print(f"{len(paths)} files in {seconds:.2f} s: {len(paths) / seconds:,.0f} files/s; {len(failures)} unreadable")  # noqa: T201


if __name__ == "__main__":
    main()
