"""``chexnet import`` on the command line: exit 0 with a summary, 1 for a file it cannot import, 2 for usage;
and an imported torchxrayvision model is refused as a starting point for training."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import torch

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from tests.training.import_sources import arnoweng_network, write_arnoweng_file, xrv_network
from tests.training.synthetic import make_square_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def arnoweng_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_arnoweng_file(tmp_path_factory.mktemp("aw") / "model.pth.tar", arnoweng_network(seed=1))


@pytest.fixture(scope="module")
def xrv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xrv") / "export.pt"
    torch.save(xrv_network(seed=1).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def imported_xrv(xrv_file: Path) -> Path:
    out = xrv_file.with_name("imported.pt")
    assert main(["import", "--from", "torchxrayvision", str(xrv_file), "--out", str(out), "--xrv-weights", "all"]) == 0
    return out


def test_help_names_the_sources(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "{arnoweng,torchxrayvision}" in text and "--xrv-weights" in text and "--model-version" in text


def test_import_writes_a_checkpoint_and_says_how_to_serve_it(
    arnoweng_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "chexnet-aw.pt"
    args = ["import", "--from", "arnoweng", str(arnoweng_file), "--out", str(out), "--name", "aw"]
    monkeypatch.setattr(sys, "argv", ["chexnet", *args])  # as typed: the provenance records the command line
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"wrote {out}: aw from model.pth.tar (sha256 ")
    assert (
        printed[1]
        == "  input: shorter side 256, centre crop 224 px, mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225]"
    )
    assert printed[-1] == f"  serve it: chexnet serve --checkpoint {out}"
    checkpoint = load_checkpoint(out)
    assert checkpoint.provenance["model_name"] == "aw"
    assert checkpoint.provenance["command"] == shlex.join(["chexnet", *args])
    assert torch.load(out, weights_only=True)["format_version"] == 1  # readable by older chexnet versions too


def test_a_file_of_the_other_layout_exits_1_saying_what_it_holds(
    xrv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.pt"
    assert main(["import", "--from", "arnoweng", str(xrv_file), "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("chexnet import: not arnoweng/CheXNet's layout (a dict with a 'state_dict'): a state dict")
    assert "first convolution 64x1x7x7 (1 input channel)" in error
    assert not out.exists()


def test_import_prints_the_labels_kept_and_the_outputs_dropped(
    xrv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["import", "--from", "torchxrayvision", str(xrv_file), "--out", str(tmp_path / "x.pt")]
    assert main([*args, "--xrv-weights", "rsna"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[3] == "  labels kept (2): Pneumonia, Lung Opacity"
    assert printed[4] == (
        "  outputs dropped, never trained: Atelectasis (output 0), Consolidation (output 1), Infiltration (output 2), "
        "Pneumothorax (output 3), Edema (output 4), Emphysema (output 5), Fibrosis (output 6), Effusion (output 7), "
        "Pleural_Thickening (output 9), Cardiomegaly (output 10), Nodule (output 11), Mass (output 12), "
        "Hernia (output 13), Lung Lesion (output 14), Fracture (output 15), Enlarged Cardiomediastinum (output 17)"
    )
    assert load_checkpoint(tmp_path / "x.pt").labels == ("Pneumonia", "Lung Opacity")
    assert main([*args, "--overwrite"]) == 1  # an exported state dict's name does not say which weights it holds
    assert "pass --xrv-weights" in capsys.readouterr().err


def test_usage_errors_exit_2(arnoweng_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    existing = tmp_path / "taken.pt"
    existing.write_bytes(b"someone's file")
    assert main(["import", "--from", "arnoweng", str(arnoweng_file), "--out", str(existing)]) == 2
    assert "exists (pass --overwrite" in capsys.readouterr().err
    assert existing.read_bytes() == b"someone's file"
    args = ["import", "--from", "arnoweng", str(arnoweng_file), "--out", str(tmp_path / "new.pt")]
    assert main([*args, "--xrv-weights", "all"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["import", "--from", "timm", str(arnoweng_file), "--out", str(tmp_path / "new.pt")])
    assert exit_info.value.code == 2


def test_training_from_an_imported_xrv_model_is_refused_before_reading_data(
    imported_xrv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels.csv"
    images.mkdir()
    labels.write_text("not read: the refusal comes first\n")
    code = main(["train", "--images", str(images), "--labels", str(labels), "--out", str(tmp_path / "run"),
                 "--weights", str(imported_xrv), "--epochs", "1", "--workers", "0"])  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert "that model expects other inputs (mean [0.5, 0.5, 0.5], std [0.00048828125" in error
    assert "fine-tuning an imported torchxrayvision model is not supported" in error


def test_ten_crop_evaluation_of_a_crop_first_model_is_refused(
    imported_xrv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 4, side=64)
    args = ["evaluate", "--checkpoint", str(imported_xrv), "--images", str(images), "--labels", str(labels)]
    assert main([*args, "--out", str(tmp_path / "eval"), "--tta", "tencrop", "--bootstrap", "0"]) == 1
    assert capsys.readouterr().err.strip() == (
        "chexnet evaluate: --tta tencrop: this model's input is the whole centred square, which has no ten crops"
    )
