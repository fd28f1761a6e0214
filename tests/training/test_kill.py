"""kill -9 of a real ``chexnet train`` leaves a run that --resume finishes bit for bit as an uninterrupted one
would (CPU, one thread): killed mid-epoch, then killed again between writing last.pt and renaming it into place."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from tests.conftest import REPO
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.slow

# One thread, so every run computes in the same order; the repository first on the path, so this code is run.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
TIMING_KEYS = ("train_images_per_s", "seconds")  # the only thing allowed to differ between two runs


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 24)


def train_args(data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    images, labels = data
    return [
        "train", "--images", str(images), "--labels", str(labels), "--out", str(out), "--epochs", "3",
        "--batch-size", "4", "--image-size", "32", "--lr", "1e-3", "--weights", "none", "--workers", "0",
        "--device", "cpu", "--val-fraction", "0.25", "--scheduler", "cosine", *extra,
    ]  # fmt: skip


def run_cli(args: list[str]) -> None:
    """In this process (one torch thread, as the killed run): only the run to be killed needs a process of its own."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(args) == 0
    finally:
        torch.set_num_threads(threads)


def kill_at(moment: str, args: list[str], marker: Path) -> None:
    """Start a paused_train run, wait until it has halted at ``moment``, then SIGKILL it."""
    command = [sys.executable, "-m", "tests.training.paused_train", moment, str(marker), *args]
    process = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():  # polling only waits: where the run halted is fixed by paused_train
            if process.poll() is not None:
                pytest.fail(f"the run ended before {moment}: {process.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"the run did not reach {moment}"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stderr.close()  # type: ignore[union-attr]


def same(a: Any, b: Any) -> bool:
    """Exact equality through dicts, lists and tensors."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def without_timing(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def assert_same_run(expected: Path, actual: Path) -> None:
    for name in ("best.pt", "last.pt"):
        want, got = load_checkpoint(expected / name), load_checkpoint(actual / name)
        assert same(want.state_dict, got.state_dict), name
        assert want.metrics == got.metrics, name
    want_state = load_checkpoint(expected / "last.pt").training_state
    got_state = load_checkpoint(actual / "last.pt").training_state
    assert want_state is not None and got_state is not None
    for key in ("optimizer", "scheduler", "scaler", "next_epoch", "best_mean_auroc", "rng"):
        assert same(want_state[key], got_state[key]), key
    assert without_timing(want_state["history"]) == without_timing(got_state["history"])
    metrics = [json.loads((folder / "metrics.json").read_text())["epochs"] for folder in (expected, actual)]
    assert without_timing(metrics[0]) == without_timing(metrics[1])
    assert [record["epoch"] for record in metrics[1]] == [1, 2, 3]


def test_killed_twice_the_run_resumes_bit_identically(squares: tuple[Path, Path], tmp_path: Path) -> None:
    straight, out = tmp_path / "straight", tmp_path / "run"
    run_cli(train_args(squares, straight))

    kill_at("sample:2:10", train_args(squares, out), tmp_path / "halted-1")  # two steps into epoch 2
    state = load_checkpoint(out / "last.pt").training_state
    assert state is not None and state["next_epoch"] == 1

    # resumed, and killed again between writing epoch 2's last.pt and renaming it into place
    kill_at("replace:last.pt:1", train_args(squares, out, "--resume"), tmp_path / "halted-2")
    state = load_checkpoint(out / "last.pt").training_state
    assert state is not None and state["next_epoch"] == 1  # the old file, whole
    (written,) = out.glob(".last.pt.*.tmp")  # the new one, complete but never renamed into place
    assert torch.load(written, weights_only=True)["training_state"]["next_epoch"] == 2

    run_cli(train_args(squares, out, "--resume"))
    assert not list(out.glob(".*.tmp"))
    assert_same_run(straight, out)
