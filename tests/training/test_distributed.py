"""DDP on 2 CPU processes (gloo) under torchrun: trains, only rank 0 writes, validation sees every sample once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.checkpoint import load_checkpoint
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.slow


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    images, labels = make_square_dataset(tmp_path, 24)
    chexnet = Path(sys.executable).with_name("chexnet")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    out = tmp_path / "out"
    command = [
        torchrun, "--standalone", "--nproc_per_node=2", "--no-python", str(chexnet), "train",
        "--images", str(images), "--labels", str(labels), "--out", str(out), "--epochs", "1",
        "--batch-size", "4", "--image-size", "32", "--weights", "none", "--workers", "0", "--device", "cpu",
        "--val-fraction", "0.25",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "last.pt",
        "metrics.json",
        "train_list.txt",
        "val_list.txt",
    ]
    checkpoint = load_checkpoint(out / "best.pt")
    n_val = checkpoint.provenance["data"]["n_val"]
    assert n_val == 6
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    assert len(history) == 1
    assert history[0]["val_images"] == n_val  # gathered from both ranks, none dropped or padded
    assert history[0]["val_mean_auroc"] is not None
    assert "rank 1 of 2" in result.stderr  # both ranks joined the gloo group
