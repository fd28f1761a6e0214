"""--resume needs nothing but OUT/last.pt: not the starting weights, not the same device."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import models.network
from models.checkpoint import load_checkpoint, save_checkpoint
from models.errors import WeightsUnavailableError
from models.labels import NIH_LABELS
from models.network import CheXNet
from tests.training.synthetic import make_square_dataset
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.resume import RunAlreadyFinishedError, restore_scaler
from training.reports.run_files import remove_interrupted_writes
from training.train import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 32)


def config_for(data: tuple[Path, Path], out: Path, **overrides: object) -> TrainConfig:
    images, labels = data
    base = TrainConfig(
        images=images, labels=labels, out=out, epochs=2, batch_size=8, image_size=32, lr=1e-3,
        weights="none", workers=0, val_fraction=0.25, seed=0, device="cpu",
    )  # fmt: skip
    return replace(base, **overrides)  # type: ignore[arg-type]


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = load_checkpoint(a), load_checkpoint(b)
    assert first.state_dict.keys() == second.state_dict.keys()
    for key, value in first.state_dict.items():
        assert torch.equal(value, second.state_dict[key]), key
    assert first.metrics == second.metrics


def test_resume_does_not_need_the_checkpoint_it_started_from(
    squares: tuple[Path, Path], tmp_path: Path, tiny_checkpoint: Path
) -> None:
    start = tmp_path / "start.pt"
    shutil.copy(tiny_checkpoint, start)
    run_training(config_for(squares, tmp_path / "straight", weights=str(start)))
    run_training(config_for(squares, tmp_path / "resumed", weights=str(start), epochs=1))
    start.unlink()
    with pytest.raises(TrainConfigError, match="--weights"):  # a new run does need it
        run_training(config_for(squares, tmp_path / "new", weights=str(start)))
    run_training(config_for(squares, tmp_path / "resumed", weights=str(start), resume=True))
    assert_same_weights(tmp_path / "straight" / "last.pt", tmp_path / "resumed" / "last.pt")
    assert_same_weights(tmp_path / "straight" / "best.pt", tmp_path / "resumed" / "best.pt")


def test_resume_of_an_imagenet_run_works_offline(
    squares: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(7)
    backbone = {k: v for k, v in CheXNet(len(NIH_LABELS)).state_dict().items() if not k.startswith("classifier.")}
    monkeypatch.setattr(models.network, "imagenet_backbone_state", lambda: backbone)
    run_training(config_for(squares, tmp_path / "run", weights="imagenet", epochs=1))

    def offline() -> dict[str, torch.Tensor]:
        raise WeightsUnavailableError("offline")

    monkeypatch.setattr(models.network, "imagenet_backbone_state", offline)
    with pytest.raises(WeightsUnavailableError):  # a new run does need them
        run_training(config_for(squares, tmp_path / "new", weights="imagenet", epochs=1))
    run_training(config_for(squares, tmp_path / "run", weights="imagenet", resume=True))
    state = load_checkpoint(tmp_path / "run" / "last.pt").training_state
    assert state is not None and state["next_epoch"] == 2


def test_a_run_moved_from_cuda_to_the_cpu_resumes_with_a_warning(
    squares: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_training(config_for(squares, tmp_path, epochs=1))
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    state = checkpoint.training_state
    assert state is not None and state["device"] == "cpu" and state["processes"] == 1
    assert state["scaler"] == {}  # a disabled scaler's state: what crashed a resume on CUDA
    # last.pt as a CUDA run writes it: an enabled AMP scaler's state
    state["device"], state["scaler"] = "cuda", torch.amp.GradScaler("cpu", enabled=True).state_dict()
    save_checkpoint(checkpoint, tmp_path / "last.pt")
    caplog.clear()  # only what the resume logs
    with caplog.at_level(logging.WARNING, logger="training.loop.resume"):
        run_training(config_for(squares, tmp_path, resume=True))
    assert caplog.messages == [
        "last.pt was written by a run on cuda with 1 process(es); continuing on cpu with 1. Training goes on "
        "correctly, but does not repeat an uninterrupted run bit for bit"
    ]
    resumed = load_checkpoint(tmp_path / "last.pt").training_state
    assert resumed is not None and resumed["next_epoch"] == 2 and resumed["device"] == "cpu"


def test_an_enabled_scaler_starts_afresh_from_a_cpu_runs_empty_state() -> None:
    scaler = torch.amp.GradScaler("cpu", enabled=True)  # enabled, as on CUDA
    with pytest.raises(RuntimeError, match="empty"):
        scaler.load_state_dict({})  # the crash of a CPU last.pt resumed on CUDA
    restore_scaler(scaler, {})
    assert scaler.state_dict()["scale"] == 65536.0
    saved = {**scaler.state_dict(), "scale": 1024.0}
    restore_scaler(scaler, saved)
    assert scaler.state_dict() == saved
    disabled = torch.amp.GradScaler("cpu", enabled=False)  # a CUDA run's state resumed on the CPU
    restore_scaler(disabled, saved)
    assert disabled.state_dict() == {}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_across_cpu_and_cuda(squares: tuple[Path, Path], tmp_path: Path) -> None:
    run_training(config_for(squares, tmp_path / "up", epochs=1, device="cpu"))
    run_training(config_for(squares, tmp_path / "up", epochs=2, device="cuda", resume=True))
    run_training(config_for(squares, tmp_path / "down", epochs=1, device="cuda"))
    run_training(config_for(squares, tmp_path / "down", epochs=2, device="cpu", resume=True))
    for name in ("up", "down"):
        state = load_checkpoint(tmp_path / name / "last.pt").training_state
        assert state is not None and state["next_epoch"] == 2


def test_resume_of_a_finished_run_rewrites_its_metrics_and_says_there_is_nothing_to_do(
    squares: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_training(config_for(squares, tmp_path, epochs=1))
    expected = {name: (tmp_path / name).read_bytes() for name in ("metrics.json", "metrics.csv", "curves.png")}
    (tmp_path / "metrics.json").write_text('{"epochs": []}\n')  # killed after last.pt, before metrics.json
    (tmp_path / "metrics.csv").unlink()
    (tmp_path / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # killed while writing last.pt
    caplog.clear()  # the first run's own records are not the resume's
    with caplog.at_level(logging.INFO), pytest.raises(RunAlreadyFinishedError) as finished:
        run_training(config_for(squares, tmp_path, epochs=1, resume=True))
    assert str(finished.value) == (
        f"nothing to do: the run in {tmp_path} has finished 1 epoch (--epochs 1); a larger --epochs trains on; "
        f"best checkpoint: {tmp_path / 'best.pt'}"
    )
    assert not [m for m in caplog.messages if "resuming" in m or "training on" in m]  # no data was read
    assert {name: (tmp_path / name).read_bytes() for name in expected} == expected
    assert json.loads(expected["metrics.json"])["epochs"][0]["epoch"] == 1
    assert not (tmp_path / ".last.pt.abc123.tmp").exists()


def test_remove_interrupted_writes_touches_only_the_runs_temporary_files(tmp_path: Path) -> None:
    names = [".best.pt.x1.tmp", ".last.pt.x2.tmp", ".metrics.json.x3.tmp", ".notes.txt.x4.tmp", "last.pt"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert remove_interrupted_writes(tmp_path) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [".notes.txt.x4.tmp", "last.pt"]


def test_resume_without_last_pt_says_to_run_again(squares: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(TrainConfigError, match="no epoch has finished there: run the command again without --resume"):
        run_training(config_for(squares, tmp_path, resume=True))
