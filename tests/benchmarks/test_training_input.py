"""benchmarks/training_input.py in --quick mode on the committed fixtures: every section, keys and counts.

No timing assertions: only presence, counts and signs are checked.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RATE_KEYS = {"images", "seconds", "images_per_s", "cpu_ms_per_image", "others_cpu_share"}


@pytest.mark.slow
def test_quick_run_writes_every_section(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "benchmarks.training_input", "--quick", "--images", "tests/fixtures",
               "--gpu-rate", "1000", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    [path] = tmp_path.glob("training-input-*.json")
    results = json.loads(path.read_text())
    assert f"wrote {path}" in done.stdout

    meta = results["meta"]
    assert "--quick" in meta["command"] and meta["spec"]["image_size"] == 224 and meta["spec"]["resize"] == 256
    assert {"python", "torch", "numpy", "pillow"} <= set(meta["versions"])
    assert meta["machine"]["logical_cpus"] > 0

    step = results["train_step"]
    assert set(step) >= RATE_KEYS and step["batch"] == 2 and step["image_size"] == 224 and step["images_per_s"] > 0

    fixtures = results["sets"]["fixtures"]
    assert fixtures["files"] == 7 and fixtures["items_per_epoch"] == 16  # 5 PNGs and 2 DICOMs, repeated
    assert fixtures["cache_entry_bytes"] > 64
    assert [row["workers"] for row in fixtures["loader"]] == [0, 1, 2]
    for row in fixtures["loader"]:
        for side in ("plain", "warm_cache"):
            assert set(row[side]) >= RATE_KEYS | {"over_train_step"}
            assert row[side]["images"] == 16 and row[side]["images_per_s"] > 0 and row[side]["cpu_ms_per_image"] > 0
    assert fixtures["cold_cache"]["images"] == 21  # the 7 distinct files, in 3 fresh caches: at least 16 images
    assert list(fixtures["stages_ms"]) == [
        "read_file",
        "sha256",
        "decode",
        "resize",
        "crop_flip_normalise",
        "cache_hit",
    ]

    [estimate] = results["gpu_estimate"]["rows"]
    assert estimate["gpu_images_per_s"] == 1000 and estimate["basis_workers"] == 2
    assert estimate["cores_plain"] > 0 and estimate["cores_warm_cache"] > 0
