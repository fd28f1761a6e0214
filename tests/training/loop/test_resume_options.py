"""``--resume`` from the run folder alone, and ``--resume auto`` (what torchrun --max-restarts reruns) through every
state a killed run can leave its folder in."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from chexnet_cli import build_parser, main
from models.checkpoint import load_checkpoint
from tests.training.synthetic import make_square_dataset
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.distributed import DistContext
from training.loop.resume_options import train_config_from_options
from training.train import _check_one_run_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 16)


def train_args(data: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    images, labels = data
    return [
        "train", "--images", str(images), "--labels", str(labels), "--out", str(out), "--batch-size", "4",
        "--image-size", "32", "--lr", "1e-3", "--weights", "none", "--workers", "0", "--device", "cpu",
        "--val-fraction", "0.25", *extra,
    ]  # fmt: skip


def epochs_of(out: Path) -> list[int]:
    return [record["epoch"] for record in json.loads((out / "metrics.json").read_text())["epochs"]]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a).state_dict, load_checkpoint(b).state_dict
    assert first.keys() == second.keys()
    for key, value in first.items():
        assert torch.equal(value, second[key]), key


def test_resume_needs_only_the_run_folder(squares: tuple[Path, Path], tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(train_args(squares, straight, "--epochs", "2")) == 0
    assert main(train_args(squares, resumed, "--epochs", "1")) == 0
    # as a new user would: the data, labels, batch size, learning rate... come from the run; --epochs may grow
    assert main(["train", "--out", str(resumed), "--resume", "--epochs", "2", "--workers", "0"]) == 0
    assert epochs_of(resumed) == [1, 2]
    assert_same_weights(straight / "last.pt", resumed / "last.pt")
    assert_same_weights(straight / "best.pt", resumed / "best.pt")


def test_resume_names_every_option_that_conflicts_with_the_run(
    squares: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert main(train_args(squares, out, "--epochs", "1")) == 0
    capsys.readouterr()
    before = (out / "last.pt").read_bytes()
    assert main(["train", "--out", str(out), "--resume", "--batch-size", "8", "--lr", "1e-3", "--pos-weight"]) == 2
    assert capsys.readouterr().err == (
        f"chexnet train: --resume: the run in {out} was started with other options; conflicting: --batch-size 8 "
        "(the run has 4), --pos-weight True (the run has False). Leave them out to continue with the run's own, "
        "or start a new run in another --out\n"
    )
    # the same values given again agree; relative and absolute spellings of one path are the same path
    images, labels = squares
    again = ["--images", str(images), "--labels", os.path.relpath(labels), "--batch-size", "4"]
    assert main(["train", "--out", str(out), "--resume", "--epochs", "1", *again]) == 0
    assert capsys.readouterr().out.startswith("chexnet train: nothing to do: ")
    assert (out / "last.pt").read_bytes() == before


def test_resume_says_when_a_recorded_path_is_not_found_from_here(
    squares: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = tmp_path / "start"
    shutil.copytree(squares[0].parent, start)
    monkeypatch.chdir(start)
    out = tmp_path / "run"
    assert main(["train", "--images", "images", "--labels", "labels.csv", *train_args(squares, out)[5:]]) == 0
    assert main(["train", "--out", str(out), "--resume", "--epochs", "2"]) == 0  # from where it was started
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainConfigError) as refused:
        train_config_from_options({"out": out, "resume": True, "epochs": 3})
    assert str(refused.value) == (
        f"--images images, as recorded in {out / 'last.pt'}, does not exist from here: run the command in the "
        "folder the run was started in"
    )
    # the data moved (or is named from elsewhere): where it lies now replaces a recorded path not found from here
    moved = train_config_from_options(
        {"out": out, "resume": True, "epochs": 3, "images": start / "images", "labels": start / "labels.csv"}
    )
    assert (moved.images, moved.labels, moved.epochs) == (start / "images", start / "labels.csv", 3)
    # but another existing folder never replaces one that exists: that would be other data
    monkeypatch.chdir(start)
    copy = tmp_path / "copy"
    shutil.copytree(start / "images", copy)
    with pytest.raises(TrainConfigError, match=r"conflicting: --images .*copy \(the run has images\)"):
        train_config_from_options({"out": out, "resume": True, "images": copy})


def test_resume_auto_starts_continues_and_finishes_with_one_command(squares: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = train_args(squares, out, "--epochs", "2", "--resume", "auto")
    out.mkdir()
    (out / "train_list.txt").write_text("left by a run killed in its first epoch\n")  # no checkpoint yet
    assert main(train_args(squares, out, "--epochs", "1", "--resume", "auto")) == 0  # a new run
    assert epochs_of(out) == [1]
    (out / ".last.pt.k1ll3d.tmp").write_bytes(b"half of a last.pt")  # killed while writing last.pt
    assert main(command) == 0  # continues from last.pt
    assert epochs_of(out) == [1, 2]
    assert not (out / ".last.pt.k1ll3d.tmp").exists()
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(command) == 0  # nothing to do: any number of restarts leave the run as it is
    assert {p.name: p.read_bytes() for p in out.iterdir()} == files


def test_resume_auto_restarts_a_first_epoch_killed_between_best_and_last(
    squares: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    finished, killed = tmp_path / "finished", tmp_path / "killed"
    assert main(train_args(squares, finished, "--epochs", "1")) == 0
    killed.mkdir()
    shutil.copy(finished / "best.pt", killed / "best.pt")  # best.pt written, last.pt never
    assert main(train_args(squares, killed, "--epochs", "1", "--resume", "auto")) == 0
    assert epochs_of(killed) == [1]
    assert_same_weights(finished / "last.pt", killed / "last.pt")
    assert_same_weights(finished / "best.pt", killed / "best.pt")

    cut = tmp_path / "cut"  # what --resume and a plain rerun say about it: both point at --resume auto
    cut.mkdir()
    shutil.copy(finished / "best.pt", cut / "best.pt")
    (cut / ".last.pt.k1ll3d.tmp").write_bytes(b"half of a last.pt")
    capsys.readouterr()
    assert main(["train", "--out", str(cut), "--resume"]) == 2
    assert "the run stopped during its first epoch, after best.pt. Run the same command with --resume auto" in (
        capsys.readouterr().err
    )
    assert main(train_args(squares, cut, "--epochs", "1")) == 2
    assert "continue it with --resume auto (it starts again over a first epoch cut short)" in capsys.readouterr().err
    assert main(train_args(squares, cut, "--epochs", "1", "--resume", "auto")) == 0
    assert not (cut / ".last.pt.k1ll3d.tmp").exists()

    other = tmp_path / "other"  # a best.pt of another run (other options) is never replaced
    other.mkdir()
    shutil.copy(finished / "best.pt", other / "best.pt")
    capsys.readouterr()
    assert main(train_args(squares, other, "--epochs", "1", "--seed", "1", "--resume", "auto")) == 2
    assert "already holds a run (best.pt)" in capsys.readouterr().err
    assert (other / "best.pt").read_bytes() == (finished / "best.pt").read_bytes()


def test_resume_takes_auto_or_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", "run", "--resume", "yes"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'yes' (--resume alone, or --resume auto)" in capsys.readouterr().err


def test_processes_that_see_different_runs_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("training.train.gather_objects", lambda ctx, obj: [obj, None])
    config = train_config_from_options({"out": tmp_path, "images": tmp_path, "labels": tmp_path / "x.csv"})
    with pytest.raises(TrainConfigError) as refused:
        _check_one_run_folder(config, three_epochs_done(), DistContext(rank=0, world=2))  # type: ignore[arg-type]
    assert str(refused.value) == (
        f"--out {tmp_path} holds different runs for different processes (rank 0: 3 epochs, rank 1: no last.pt): "
        "under torchrun on several nodes --out must be a folder every node shares"
    )


def three_epochs_done() -> object:
    """A stand-in for a last.pt with 3 epochs done (only its training state is read)."""
    return SimpleNamespace(training_state={"next_epoch": 3})


def test_resume_of_a_folder_without_a_run_says_so_before_asking_for_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--out", str(tmp_path), "--resume"]) == 2
    assert capsys.readouterr().err == (
        f"chexnet train: --resume needs {tmp_path / 'last.pt'}, which does not exist (no epoch has finished there: "
        "run the command again without --resume, or with --resume auto)\n"
    )


def test_train_help_shows_the_defaults_a_run_gets() -> None:
    """Options not given are left out of the parsed arguments (so --resume can tell them from given ones), and a
    new run takes TrainConfig's defaults: the help must show those."""
    parser = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    defaults = {f.name: f.default for f in fields(TrainConfig) if f.name != "out"}  # --out: no default
    shown = 0
    for action in parser._actions:
        if not action.option_strings or action.dest not in defaults:
            continue
        assert action.default == argparse.SUPPRESS, action.dest
        default = defaults[action.dest]
        if default is not None and default is not False and default != ():
            assert (action.help or "").endswith(f"(default: {default})"), action.dest
            shown += 1
    assert shown == 19
