"""``chexnet predict --engine ray`` on a two-node local Ray cluster inside a network namespace of its own (only
loopback up, so Ray cannot bind the machine's address): the table equals one process's within 1e-6, and after the
worker node is killed mid-job every input appears exactly once."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chexnet_cli import main
from models.labels import NIH_LABELS
from tests.conftest import REPO
from tests.training.batch_scoring.test_batch_predict import TRUNCATED, make_images

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("ray") is None, reason="ray is not installed (pip install 'chexnet[ray]')"
    ),
]

SCRIPT = Path(__file__).with_name("ray_two_nodes.py")


def namespace_works() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "-rn", "sh", "-c", "ip link set lo up"], capture_output=True, check=False)
    return probe.returncode == 0


def test_two_nodes_with_one_lost_score_every_input_once_as_one_process(tmp_path: Path, tiny_checkpoint: Path) -> None:
    if not namespace_works():
        pytest.skip("cannot create a network namespace here (unshare -rn); Ray must not bind the machine's address")
    pq = pytest.importorskip("pyarrow.parquet")
    images = tmp_path / "images"
    keys = make_images(images, 24, broken=2)
    reference = tmp_path / "reference.csv"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--device", "cpu", "-r", "--resume", "--out",
                 str(reference), str(images)]) == 1  # fmt: skip
    expected = {row[1]: row for row in list(csv.reader(reference.open()))[1:]}
    out = tmp_path / "ray.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DISABLE_USAGE_STATS": "1", "OMP_NUM_THREADS": "1"}
    inner = f"ip link set lo up && exec {sys.executable} {SCRIPT} {tiny_checkpoint} {images} {out}"
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", inner], env=env, capture_output=True, text=True, timeout=170, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["status"] == 1, result["stderr_tail"]  # 1: two files could not be read
    assert 1 <= result["parts_at_kill"] < len(keys), "the worker node was not killed in the middle of the job"
    table = pq.read_table(out).to_pydict()
    assert sorted(table["path"]) == sorted(keys) and len(table["path"]) == len(keys)
    for i, key in enumerate(table["path"]):
        want = expected[key]
        assert table["error"][i] == want[-1]
        if want[-1]:
            assert want[-1] == TRUNCATED and all(table[label][i] is None for label in NIH_LABELS)
            continue
        for j, label in enumerate(NIH_LABELS):
            assert abs(table[label][i] - float(want[2 + j])) <= 1e-6
