"""Turn a training run's best.pt into the bundled demo model: same weights, plus a plain-words note.

.venv/bin/python -m training.bundle runs/demo-a/best.pt runs/demo-a/bundled.pt
(then ``chexnet calibrate`` writes models/bundled/chexnet-demo.pt with its operating points: see ``make demo-model``)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.checkpoint import load_checkpoint, save_checkpoint

DEMO_NOTE = (
    "Demonstration model: DenseNet-121 trained from random weights (no ImageNet weights could be had) on the "
    "500-image NIH ChestX-ray14 sample, 400 training and 100 validation images split by patient. It shows the "
    "pipeline working; it is not a diagnostic model. Research use only."
)


def bundle(source: Path, target: Path, recipe_selection: str) -> Path:
    checkpoint = load_checkpoint(source)
    checkpoint.training_state = None
    checkpoint.provenance = {**checkpoint.provenance, "note": DEMO_NOTE, "recipe_selection": recipe_selection}
    return save_checkpoint(checkpoint, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--recipe-selection", default="", help="how the recipe was chosen (kept in provenance)")
    args = parser.parse_args()
    bundle(args.source, args.target, args.recipe_selection)


if __name__ == "__main__":
    main()
