"""``make bench-training`` end to end at a tiny size: every recipe variant trains and is reported (no timing is
asserted: the figures depend on the machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import training_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_every_variant_trains_and_is_reported(tmp_path: Path) -> None:
    assert training_recipe.main(["--image-size", "32", "--steps", "1", "--out", str(tmp_path)]) == 0
    [written] = tmp_path.glob("training-recipe-*.json")
    report = json.loads(written.read_text())
    assert [entry["variant"] for entry in report["results"]] == list(training_recipe.VARIANTS)
    assert all(entry["images_per_s"] > 0 for entry in report["results"])
    assert report["results"][0]["vs_seed"] == 1.0
