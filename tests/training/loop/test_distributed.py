"""DDP on 2 CPU processes (gloo) under torchrun: trains, only rank 0 writes, validation sees every sample once,
and the validation recorded in the checkpoint is the one ``chexnet evaluate`` of that checkpoint gives."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.slow


def test_torchrun_two_cpu_processes(tmp_path: Path) -> None:
    images, labels = make_square_dataset(tmp_path, 40)
    chexnet = Path(sys.executable).with_name("chexnet")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    out = tmp_path / "out"
    command = [
        torchrun, "--standalone", "--nproc_per_node=2", "--no-python", str(chexnet), "train",
        "--images", str(images), "--labels", str(labels), "--out", str(out), "--epochs", "1",
        "--batch-size", "4", "--image-size", "32", "--weights", "none", "--workers", "0", "--device", "cpu",
        "--val-fraction", "0.5",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt",
        "curves.png",
        "last.pt",
        "metrics.csv",
        "metrics.json",
        "train_list.txt",
        "val_list.txt",
    ]
    checkpoint = load_checkpoint(out / "best.pt")
    n_val = checkpoint.provenance["data"]["n_val"]
    assert n_val == 20
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    assert len(history) == 1
    assert history[0]["val_images"] == n_val  # gathered from both ranks, none dropped or padded
    assert history[0]["val_mean_auroc"] is not None
    assert "rank 1 of 2" in result.stderr  # both ranks joined the gloo group

    # Each rank validates half the images: with rank 1's own BatchNorm statistics, the recorded AUROC would mix
    # in a model that was never saved. Rank 0's state is broadcast first, so the saved model is what was scored.
    evaluated = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(out / "best.pt"), "--images", str(images), "--labels", str(labels)]
    args += ["--split-list", str(out / "val_list.txt"), "--bootstrap", "0", "--device", "cpu", "--out", str(evaluated)]
    assert main(args) == 0
    document = json.loads((evaluated / "metrics.json").read_text())
    assert document["n"] == n_val
    assert document["auroc"] == checkpoint.metrics["val_auroc"]
    assert document["mean_auroc"] == checkpoint.metrics["val_mean_auroc"]
