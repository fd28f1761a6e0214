"""chexnet evaluate --precision P --against fp32: the chosen precision's metrics, with its fidelity against fp32."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import chexnet_cli
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("data"), n=8, side=64)


def test_bf16_against_fp32_writes_its_fidelity(
    tiny_checkpoint: Path, dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = dataset
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(labels)]
    argv += ["--precision", "bf16", "--against", "fp32", "--bootstrap", "0", "--device", "cpu"]
    assert chexnet_cli.main([*argv, "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["precision"] == "bf16"
    fidelity = metrics["fidelity_against_fp32"]
    assert fidelity["images"] == 8
    assert 0 < fidelity["max_abs_dp"] < 0.1  # bf16 moves probabilities, a little
    assert fidelity["auroc_reference"]["Effusion"] is not None
    assert "AUROC bf16" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "fp16"], "fp16 runs on CUDA only"),
        (["--precision", "int8"], "int8 needs --int8-model"),
        (["--int8-model", "x"], "--int8-model goes with --precision int8"),
    ],
)
def test_precisions_this_machine_cannot_run_are_usage_errors(
    tiny_checkpoint: Path,
    dataset: tuple[Path, Path],
    tmp_path: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    images, labels = dataset
    argv = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(labels)]
    assert chexnet_cli.main([*argv, "--device", "cpu", *extra, "--out", str(tmp_path / "eval")]) == 2
    assert message in capsys.readouterr().err
