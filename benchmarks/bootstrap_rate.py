"""How fast ``chexnet evaluate`` draws its patient-level bootstrap CIs (all 14 classes).

    .venv/bin/python -m benchmarks.bootstrap_rate --images 500 --resamples 1000

Prints resamples per second. tests/training/scoring/test_metrics.py checks that the bootstrap is vectorised (one call
per class, whatever the number of resamples); the rate it buys is measured here, not asserted by a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from training.scoring.metrics import bootstrap_ci


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    targets = (rng.random((args.images, 14)) < 0.2).astype(np.float32)
    probs = 1.0 / (1.0 + np.exp(-(targets + rng.normal(size=targets.shape))))
    patients = [f"p{i // 2}" for i in range(args.images)]  # two images per patient
    start = time.perf_counter()
    bootstrap_ci(targets, probs, patients, n_boot=args.resamples, seed=0)
    seconds = time.perf_counter() - start
    rate = args.resamples / seconds
    print(f"{args.resamples} resamples of {args.images} images in {seconds:.2f} s: {rate:,.0f} resamples/s")  # noqa: T201


if __name__ == "__main__":
    main()
