"""chexnet quantize: options checked before any image is read; an int8 folder calibrated and measured on the
user's images; refused, with nothing written, when it loses more mean AUROC than allowed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import chexnet_cli
from models.checkpoint import load_checkpoint
from models.openvino_ir import read_int8_manifest
from tests.training.synthetic import make_square_dataset
from training import quantize
from training.quantize import QuantizeOptions, QuantizeOptionsError, validate_options
from training.scoring.fidelity import Fidelity

pytest.importorskip("nncf")
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    images, labels = make_square_dataset(tmp_path_factory.mktemp("data"), n=8, side=64)
    (images / "notes.png").write_text("not an image")  # named as one, and counted as unreadable
    return images, labels


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"images": Path("nowhere")}, "--images: no such folder"),
        ({"checkpoint": Path("none.pt")}, "--checkpoint: no such file"),
        ({"split_list": Path("list.txt")}, "--split-list"),
        ({"max_images": 0}, "--max-images"),
        ({"max_auroc_drop": 2.0}, "--max-auroc-drop"),
    ],
)
def test_options_are_refused_before_any_image_is_read(
    tiny_checkpoint: Path, tmp_path: Path, change: dict[str, object], message: str
) -> None:
    options = QuantizeOptions(checkpoint=tiny_checkpoint, images=tmp_path, out=tmp_path / "out")
    with pytest.raises(QuantizeOptionsError, match=message):
        validate_options(QuantizeOptions(**{**options.__dict__, **change}))  # type: ignore[arg-type]


def test_an_existing_out_needs_overwrite(tiny_checkpoint: Path, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    assert (
        chexnet_cli.main(
            [
                "quantize",
                "--checkpoint",
                str(tiny_checkpoint),
                "--images",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )


def test_quantize_writes_a_measured_int8_folder(
    tiny_checkpoint: Path, dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = dataset
    out = tmp_path / "int8"
    argv = ["quantize", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(labels)]
    assert chexnet_cli.main([*argv, "--out", str(out), "--max-auroc-drop", "1"]) == 0
    manifest = read_int8_manifest(out)
    checkpoint = load_checkpoint(tiny_checkpoint)
    assert manifest["checkpoint_sha256"] == checkpoint.sha256
    assert manifest["calibration"]["images"] == 8
    fidelity = manifest["fidelity"]
    assert fidelity["images"] == 8
    assert 0 < fidelity["max_abs_dp"] < 0.25
    # only Effusion has both classes in this table: the other labels' AUROC is undefined, never NaN
    assert fidelity["auroc_reference"]["Effusion"] is not None
    assert fidelity["auroc_reference"]["Mass"] is None
    assert json.loads(json.dumps(fidelity)) == fidelity
    printed = capsys.readouterr()
    assert "AUROC int8" in printed.out and "Effusion" in printed.out


def test_without_labels_every_image_file_calibrates_and_unreadable_ones_are_counted(
    tiny_checkpoint: Path, dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, _ = dataset
    out = tmp_path / "int8"
    argv = ["quantize", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--out", str(out)]
    assert chexnet_cli.main([*argv, "--max-images", "5"]) == 0
    manifest = read_int8_manifest(out)
    assert manifest["fidelity"]["mean_auroc_drop"] is None
    err = capsys.readouterr().err
    assert "not measured" in err
    assert manifest["calibration"]["images"] + err.count("passed over 1 unreadable") == 5


def test_a_model_that_loses_too_much_auroc_is_refused_and_nothing_is_written(
    tiny_checkpoint: Path, dataset: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = ("A",)
    lossy = Fidelity(
        labels=labels,
        max_abs_dp=0.2,
        max_abs_dp_per_class={"A": 0.2},
        auroc_reference={"A": 0.9},
        auroc_other={"A": 0.89},
        flips={},
        images=8,
    )
    monkeypatch.setattr(quantize, "quantize_and_measure", lambda *args: (None, lossy))
    images, table = dataset
    out = tmp_path / "int8"
    argv = ["quantize", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(table)]
    assert chexnet_cli.main([*argv, "--out", str(out)]) == quantize.EXIT_REFUSED  # 0.01 > the default 0.005
    assert not out.exists()
    assert lossy.mean_auroc_drop == pytest.approx(0.01)
    assert not np.isnan(lossy.mean_auroc_drop)
