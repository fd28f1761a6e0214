"""``chexnet train`` on two emulated nodes: two ``torchrun`` launchers meeting at a c10d rendezvous on 127.0.0.1
(gloo on the CPU, loopback only). Two nodes train what one node with two processes trains, bit for bit; and when
one node dies mid-epoch, the survivor's restart (``--max-restarts``, the same ``--resume auto`` command) continues
from last.pt and finishes the run's epochs alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from models.checkpoint import load_checkpoint
from tests.conftest import REPO
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.slow

# One thread, so every process computes in the same order; gloo and the rendezvous on the loopback interface only.
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "GLOO_SOCKET_IFNAME": "lo",
    "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
}
TIMING_KEYS = ("train_images_per_s", "seconds")


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 24)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def train_args(data: tuple[Path, Path], out: Path, epochs: int) -> list[str]:
    images, labels = data
    return [
        "train", "--images", str(images), "--labels", str(labels), "--out", str(out), "--epochs", str(epochs),
        "--batch-size", "4", "--image-size", "32", "--lr", "1e-3", "--weights", "none", "--workers", "0",
        "--device", "cpu", "--val-fraction", "0.5", "--resume", "auto",
    ]  # fmt: skip


def launcher(nodes: str, processes: int, port: int, host: bool, extra: list[str], worker: list[str]) -> list[str]:
    """One node's ``torchrun``: c10d rendezvous at 127.0.0.1:port, this node its store's host or a client."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", nodes, "--nproc-per-node", str(processes),
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "chexnet-test",
        "--rdzv-conf", f"is_host={int(host)},last_call_timeout=5,join_timeout=60", "--local-addr", "127.0.0.1",
        *extra, *worker,
    ]  # fmt: skip


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A node: its launcher in a session of its own (torchrun starts each worker in another)."""
    with open(log, "wb") as handle:
        return subprocess.Popen(
            command, cwd=REPO, env=ENV, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """End a node that is still running: torchrun ends its workers on SIGTERM (they run in sessions of their own)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def finish(process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        pytest.fail(f"a node did not finish in {timeout} s: {log.read_text()[-3000:]}")
    assert code == 0, log.read_text()[-3000:]


def parameters(path: Path) -> dict[str, torch.Tensor]:
    loaded: dict[str, torch.Tensor] = torch.load(path, weights_only=True)
    return loaded


def assert_equal_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    assert a.keys() == b.keys(), what
    for key, value in a.items():
        assert torch.equal(value, b[key]), f"{what}: {key}"


def history(out: Path) -> list[dict[str, Any]]:
    records = json.loads((out / "metrics.json").read_text())["epochs"]
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in records]


def test_two_nodes_train_what_one_node_with_two_processes_trains(squares: tuple[Path, Path], tmp_path: Path) -> None:
    runs = {name: (tmp_path / name / "run", tmp_path / name / "ranks") for name in ("two-nodes", "one-node")}
    for _out, ranks in runs.values():
        ranks.mkdir(parents=True)
    port, single_port = free_port(), free_port()

    def worker(name: str) -> list[str]:
        out, ranks = runs[name]
        return ["-m", "tests.training.rank_weights", str(ranks), *train_args(squares, out, epochs=2)]

    nodes = [
        start(launcher("2", 1, port, True, [], worker("two-nodes")), tmp_path / "node0.log"),
        start(launcher("2", 1, port, False, [], worker("two-nodes")), tmp_path / "node1.log"),
        start(launcher("1", 2, single_port, True, [], worker("one-node")), tmp_path / "single.log"),
    ]
    for process, log in zip(nodes, ("node0.log", "node1.log", "single.log"), strict=True):
        finish(process, tmp_path / log, timeout=80)

    two, one = runs["two-nodes"], runs["one-node"]
    for epoch in (1, 2):
        ranks = [parameters(two[1] / f"rank{rank}-epoch{epoch}.pt") for rank in (0, 1)]
        assert_equal_tensors(ranks[0], ranks[1], f"two nodes, epoch {epoch}: rank 0 and rank 1")
        single = parameters(one[1] / f"rank0-epoch{epoch}.pt")
        assert_equal_tensors(ranks[0], single, f"epoch {epoch}: two nodes and one node")
    for name in ("last.pt", "best.pt"):
        assert_equal_tensors(load_checkpoint(two[0] / name).state_dict, load_checkpoint(one[0] / name).state_dict, name)
    trained = load_checkpoint(two[0] / "last.pt").state_dict
    assert_equal_tensors({k: trained[k] for k in ranks[0]}, ranks[0], "last.pt and rank 0's parameters")
    assert history(two[0]) == history(one[0])
    assert [record["epoch"] for record in history(two[0])] == [1, 2]
    state = load_checkpoint(two[0] / "last.pt").training_state
    assert state is not None and state["processes"] == 2


def test_a_node_lost_mid_epoch_the_survivor_resumes_from_last_pt(squares: tuple[Path, Path], tmp_path: Path) -> None:
    out, marker, port = tmp_path / "run", tmp_path / "halted", free_port()
    args = train_args(squares, out, epochs=3)
    restarts = ["--max-restarts", "1"]
    survivor_log, lost_log = tmp_path / "survivor.log", tmp_path / "lost.log"
    # The node to be lost halts when its epoch 2 is about to hand out its first sample (tests/training/paused_train.py)
    lost = start(
        launcher(
            "1:2", 1, port, False, restarts, ["-m", "tests.training.paused_train", "sample:2:1", str(marker), *args]
        ),
        lost_log,
    )
    survivor = start(launcher("1:2", 1, port, True, restarts, ["-m", "chexnet_cli", *args]), survivor_log)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and (out / "last.pt").exists()):  # polling only waits: the halt is fixed
            assert lost.poll() is None and survivor.poll() is None, lost_log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the run did not reach epoch 2"
            time.sleep(0.1)
        done = load_checkpoint(out / "last.pt").training_state
        assert done is not None and (done["next_epoch"], done["processes"]) == (1, 2)
        os.killpg(lost.pid, signal.SIGKILL)  # the node dies: its launcher, then its worker (in its own session)
        os.kill(int(marker.read_text()), signal.SIGKILL)
        lost.wait()
        finish(survivor, survivor_log, timeout=80)
    finally:
        if marker.exists():  # the lost node's worker, whatever happened before
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(marker.read_text()), signal.SIGKILL)
        for process in (lost, survivor):
            stop(process)

    text = survivor_log.read_text()
    assert "resuming at epoch 2" in text
    assert [record["epoch"] for record in history(out)] == [1, 2, 3]
    state = load_checkpoint(out / "last.pt").training_state
    assert state is not None and (state["next_epoch"], state["processes"]) == (3, 1)  # epochs 2 and 3: alone
