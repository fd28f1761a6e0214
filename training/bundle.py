"""Turn a training run's best.pt into the bundled demo model: same weights, plus a plain-words note and its name.

.venv/bin/python -m training.bundle runs/demo-a/best.pt runs/demo-a/bundled.pt
(then ``chexnet calibrate`` writes models/bundled/chexnet-demo.pt with its operating points: see ``make demo-model``)

Bundling the bundled file onto itself keeps its recipe selection and sets the note and name again, so an older
demo file gains ``model_name`` without retraining:

.venv/bin/python -m training.bundle models/bundled/chexnet-demo.pt models/bundled/chexnet-demo.pt
"""

from __future__ import annotations

import argparse
from pathlib import Path

from models.checkpoint import load_checkpoint, save_checkpoint

DEMO_NAME = "chexnet-demo"
DEMO_NOTE = (
    "Demonstration model: DenseNet-121 trained from random weights (no ImageNet weights could be had) on the "
    "500-image NIH ChestX-ray14 sample, 400 training and 100 validation images split by patient. It shows the "
    "pipeline working; it is not a diagnostic model. Research use only."
)


def bundle(source: Path, target: Path, recipe_selection: str | None = None, model_name: str = DEMO_NAME) -> Path:
    """``source``'s weights, spec, config, metrics and provenance, without training state, into ``target``.

    ``provenance`` gains ``note``, ``model_name`` (what the service calls the model) and ``recipe_selection``
    (kept from ``source`` when None). Everything else in the file is as in ``source``, versions included.
    """
    checkpoint = load_checkpoint(source)
    checkpoint.training_state = None
    recipe = checkpoint.provenance.get("recipe_selection", "") if recipe_selection is None else recipe_selection
    checkpoint.provenance = {
        **checkpoint.provenance,
        "note": DEMO_NOTE,
        "recipe_selection": recipe,
        "model_name": model_name,
    }
    return save_checkpoint(checkpoint, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--recipe-selection", help="how the recipe was chosen (kept in provenance; unset: source's)")
    parser.add_argument("--name", default=DEMO_NAME, help=f"the model's name (default: {DEMO_NAME})")
    args = parser.parse_args()
    bundle(args.source, args.target, args.recipe_selection, args.name)


if __name__ == "__main__":
    main()
