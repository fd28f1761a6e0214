"""Bundling: same weights and record, no training state, a note and a name; bundling in place keeps the recipe."""

from __future__ import annotations

from pathlib import Path

import torch

from models.checkpoint import load_checkpoint
from training.bundle import DEMO_NOTE, bundle


def test_bundle_names_the_model_and_keeps_everything_else(tiny_checkpoint: Path, tmp_path: Path) -> None:
    target = bundle(tiny_checkpoint, tmp_path / "demo.pt", recipe_selection="the only recipe")
    source, bundled = load_checkpoint(tiny_checkpoint), load_checkpoint(target)
    assert bundled.provenance == {
        **source.provenance, "note": DEMO_NOTE, "recipe_selection": "the only recipe", "model_name": "chexnet-demo"
    }  # fmt: skip
    assert bundled.training_state is None
    assert (bundled.spec, bundled.metrics, bundled.config) == (source.spec, source.metrics, source.config)
    assert all(torch.equal(bundled.state_dict[k], v) for k, v in source.state_dict.items())

    again = bundle(target, target, model_name="site-demo")  # in place: the recipe selection stays
    assert load_checkpoint(again).provenance == {**bundled.provenance, "model_name": "site-demo"}
