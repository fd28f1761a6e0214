"""The README's quick start, walked as a new user would: its commands, parsed from README.md, run from a clean copy
of the repository on ChestX-ray14-shaped data outside it (a slice of the NIH sample in a temporary folder, laid
out as NIH publishes the full set). Only sizes change: 1 epoch at 32 px, random weights, few bootstrap rounds."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, shared_or_skip
from tests.server_process import free_port

pytestmark = pytest.mark.slow

CHEXNET = Path(sys.executable).with_name("chexnet")
# What a quick test changes in each command; argparse keeps the last value given for an option.
SMALLER = {
    "train": ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--weights", "none", "--workers", "0"],
    "evaluate": ["--bootstrap", "20", "--workers", "0", "--device", "cpu"],
    "calibrate": ["--workers", "0", "--device", "cpu"],
}


def quickstart_commands(readme: str) -> list[str]:
    """The commands of README's marked quick-start block, one a line, comments and blanks left out."""
    block = re.search(r"<!-- quickstart: train -->\n```bash\n(.*?)```\n<!-- /quickstart -->", readme, re.S)
    assert block, "README.md has no <!-- quickstart: train --> block"
    return [line for line in block[1].splitlines() if line.strip() and not line.lstrip().startswith("#")]


def curl_commands(readme: str) -> list[str]:
    """The ``$ curl`` lines shown in README's quick start (before its section 2)."""
    quickstart = readme[readme.index("## Quick start") : readme.index("### 2.")]
    return [line[2:] for line in quickstart.splitlines() if line.startswith("$ curl ")]


def clean_copy(destination: Path) -> Path:
    """The repository's tracked and unignored files, as a fresh clone (plus uncommitted edits) would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell the repository's own files from build outputs")
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def nih_layout(sample: Path, data: Path, images: int = 80) -> tuple[list[str], list[str]]:
    """A slice of the NIH sample laid out as NIH publishes ChestX-ray14; returns (train_val, test) image names."""
    with (sample / "Data_Entry_sample.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, sorted(reader, key=lambda row: row["Image Index"])[:images]
    assert fields is not None
    patients = sorted({row["Patient ID"] for row in rows})
    test_patients = set(patients[:: len(patients) // 16 or 1])  # about 16 patients held out, as NIH holds out its own
    (data / "images").mkdir(parents=True)
    for row in rows:
        shutil.copy2(sample / "images" / row["Image Index"], data / "images" / row["Image Index"])
    with (data / "Data_Entry_2017_v2020.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    test = [row["Image Index"] for row in rows if row["Patient ID"] in test_patients]
    train_val = [row["Image Index"] for row in rows if row["Patient ID"] not in test_patients]
    (data / "test_list.txt").write_text("".join(f"{name}\n" for name in test))
    (data / "train_val_list.txt").write_text("".join(f"{name}\n" for name in train_val))
    return train_val, test


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


def test_the_readme_quick_start_works_on_data_outside_the_repository(tmp_path: Path) -> None:
    sample = shared_or_skip("nih-sample", "Data_Entry_sample.csv").parent
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands, curls = quickstart_commands(readme), curl_commands(readme)
    repo = clean_copy(tmp_path / "chexnet")
    data = tmp_path / "downloads" / "chestxray14"
    train_val, test = nih_layout(sample, data)
    env = {**os.environ, "DATA": str(data), "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}

    assert commands[0].startswith("DATA="), "the quick start begins by naming the data folder"
    serve = None
    for command in commands[1:]:
        words = shlex.split(command)
        if words[0] == "make":
            serve = words
            continue
        if words[0] == ".venv/bin/chexnet":
            command = " ".join([str(CHEXNET), command.split(" ", 1)[1], *SMALLER.get(words[1], [])])
        run(command, repo, env)

    labels = (repo / "runs" / "train_val_labels.csv").read_text().splitlines()
    assert len(labels) == 1 + len(train_val)  # the header, and no test image
    assert not set(test) & {line.split(",")[0] for line in labels}
    metrics = json.loads((repo / "runs" / "mine-test" / "metrics.json").read_text())
    assert metrics["n"] == len(test)
    calibrated = repo / "runs" / "mine" / "calibrated.pt"
    assert calibrated.is_file() and (repo / "runs" / "mine" / "best.pt").is_file()

    # make serve CHECKPOINT=X runs chexnet serve --checkpoint X (checked with make -n), which is run here directly
    assert serve is not None and serve[:2] == ["make", "serve"]
    checkpoint = dict(word.split("=", 1) for word in serve[2:])["CHECKPOINT"]
    assert (repo / checkpoint).resolve() == calibrated.resolve()
    if shutil.which("make"):
        # Run under `make test`, the outer make's MAKELEVEL/MAKEFLAGS would make this one print its directory.
        quiet = {k: v for k, v in env.items() if k not in {"MAKELEVEL", "MAKEFLAGS", "MFLAGS"}}
        dry = run(f"make --no-print-directory -n {shlex.join(serve[1:])} PORT=8123", repo, quiet).stdout
        dry = dry.strip().splitlines()[-1]
        assert dry.split() == [".venv/bin/chexnet", "serve", "--port", "8123", "--checkpoint", checkpoint]
    port, log = free_port(), (tmp_path / "serve.log").open("w")
    # Eager torch: the OpenVINO export would add its one-off compile time here; tests/app/backends covers that path.
    server = subprocess.Popen(
        [str(CHEXNET), "serve", "--checkpoint", checkpoint, "--port", str(port)],
        cwd=repo, env={**env, "CHEXNET_BACKEND": "torch"}, stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while not ready(url):
            assert server.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, "chexnet serve did not become ready in 180 s"
            time.sleep(0.2)
        assert len(curls) >= 3
        outputs = []
        for curl in curls:
            if "| jq" in curl and not shutil.which("jq"):
                curl = curl.split(" | jq")[0]
            outputs.append(run(curl.replace("http://127.0.0.1:8000", url), repo, env).stdout)
    finally:
        server.kill()
        server.wait(timeout=10)
        log.close()
    answer = json.loads(outputs[0])
    assert answer["model"]["name"] == "mine"  # train --name mine
    assert answer["model"]["sha256"] == hashlib.sha256(calibrated.read_bytes()).hexdigest()
    assert answer["operating_point"]["available"] == ["youden", "spec90"]
    assert (repo / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
