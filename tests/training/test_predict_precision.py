"""``chexnet predict --precision``: the offline scores at the precision the service would answer with, fp32's
within the precision's measured error, refused before any file is read when the device cannot run it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

import chexnet_cli
from tests.training.synthetic import make_square_dataset

pytest.importorskip("openvino")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder, _ = make_square_dataset(tmp_path_factory.mktemp("data"), n=6, side=64)
    return folder


def scores(path: Path) -> dict[str, np.ndarray]:
    rows = list(csv.reader(path.open()))
    return {row[1]: np.array([float(v) for v in row[2:]]) for row in rows[1:]}


def predict(checkpoint: Path, images: Path, out: Path, *extra: str) -> int:
    argv = ["predict", "--checkpoint", str(checkpoint), "--device", "cpu", "--out", str(out), str(images)]
    return chexnet_cli.main([*argv, *extra])


def test_bf16_scores_the_same_files_within_bf16s_error(tiny_checkpoint: Path, images: Path, tmp_path: Path) -> None:
    assert predict(tiny_checkpoint, images, tmp_path / "fp32.csv") == 0
    assert predict(tiny_checkpoint, images, tmp_path / "bf16.csv", "--precision", "bf16") == 0
    fp32, bf16 = scores(tmp_path / "fp32.csv"), scores(tmp_path / "bf16.csv")
    assert sorted(fp32) == sorted(bf16) and len(fp32) == 6
    largest = max(float(np.abs(fp32[name] - bf16[name]).max()) for name in fp32)
    assert 0 < largest < 0.02  # it did run at another precision, and bf16 keeps about 3 significant digits


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "int8"], "int8 needs --int8-model"),
        (["--int8-model", "somewhere"], "--int8-model goes with --precision int8"),
        (["--precision", "fp16"], "fp16 runs on CUDA only"),
    ],
)
def test_a_precision_that_cannot_run_is_refused_before_any_file_is_read(
    tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert predict(tiny_checkpoint, tmp_path / "no-such-folder", tmp_path / "out.csv", *extra) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_a_resumed_table_refuses_another_precision(
    tiny_checkpoint: Path, images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = tmp_path / "scores.csv"
    assert predict(tiny_checkpoint, images, table, "--resume") == 0
    assert predict(tiny_checkpoint, images, table, "--resume", "--precision", "bf16") == 2
    assert "precision" in capsys.readouterr().err


def test_int8_scores_with_the_folder_quantize_wrote(tiny_checkpoint: Path, images: Path, tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    int8 = tmp_path / "int8"
    argv = ["quantize", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--out", str(int8)]
    assert chexnet_cli.main(argv) == 0
    assert predict(tiny_checkpoint, images, tmp_path / "fp32.csv") == 0
    int8_options = ["--precision", "int8", "--int8-model", str(int8)]
    assert predict(tiny_checkpoint, images, tmp_path / "int8.csv", *int8_options) == 0
    fp32, quantized = scores(tmp_path / "fp32.csv"), scores(tmp_path / "int8.csv")
    assert sorted(fp32) == sorted(quantized)
    largest = max(float(np.abs(fp32[name] - quantized[name]).max()) for name in fp32)
    assert 0 < largest < 0.25  # the service's start-up probe bound for an int8 folder of this network
