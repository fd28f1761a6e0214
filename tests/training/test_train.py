"""End-to-end training on a tiny synthetic task: learning, resume, checkpoints, option validation."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import training.data.run_data
import training.train
from models.checkpoint import Checkpoint, load_checkpoint
from models.labels import NIH_LABELS
from tests.training.synthetic import make_square_dataset
from training.evaluate import EvaluateOptions, run_evaluate
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.epochs import NonFiniteLossError
from training.loop.masked_loss import MaskedBCEWithLogitsLoss
from training.train import run_training


@pytest.fixture(scope="module")
def square_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 80)


def config_for(data: tuple[Path, Path], out: Path, **overrides: object) -> TrainConfig:
    images, labels = data
    base = TrainConfig(
        images=images, labels=labels, out=out, epochs=2, batch_size=16, image_size=32, lr=1e-3,
        weights="none", workers=0, val_fraction=0.25, seed=0,
    )  # fmt: skip
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_learns_the_square_task(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    best = run_training(config_for(square_data, tmp_path, epochs=5))
    history = json.loads((tmp_path / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4, 5]
    aurocs = [e["val_mean_auroc"] for e in history]
    assert max(aurocs) > 0.9
    assert history[0]["val_auroc"]["Hernia"] is None  # no positives: undefined, not NaN and not a crash
    checkpoint = load_checkpoint(best)
    assert checkpoint.metrics["val_mean_auroc"] == max(aurocs)
    assert checkpoint.training_state is None  # best.pt is for serving: no optimizer state
    assert checkpoint.spec.image_size == 32
    assert checkpoint.provenance["data"]["n_train"] + checkpoint.provenance["data"]["n_val"] == 80
    assert checkpoint.provenance["data"]["labels"] == "labels.csv"
    assert load_checkpoint(tmp_path / "last.pt").training_state is not None
    val_names = (tmp_path / "val_list.txt").read_text().split()
    train_names = (tmp_path / "train_list.txt").read_text().split()
    assert len(val_names) == checkpoint.provenance["data"]["n_val"] == 20
    assert not set(val_names) & set(train_names)
    check_operating_points(square_data, tmp_path, history, checkpoint)


def check_operating_points(
    square_data: tuple[Path, Path], tmp_path: Path, history: list[dict[str, Any]], checkpoint: Checkpoint
) -> None:
    """best.pt carries the operating points chosen on its epoch's validation predictions, as evaluate chooses."""
    record = max(history, key=lambda e: e["val_mean_auroc"])  # the first epoch with the best mean AUROC
    points = checkpoint.operating_points
    assert points is not None
    assert points.to_dict() == record["val_operating_points"]
    assert list(points.points) == ["youden", "spec90"] and points.default == "youden" and points.temperature is None
    assert points.source["epoch"] == checkpoint.metrics["epoch"] == record["epoch"]
    assert points.source["data"] == (
        "validation split of the training run: labels.csv, patients split at random per table (seed 0, validation "
        "fraction 0.25) or the table's published split"
    )
    assert points.source["images"] == 20 and points.source["positives"]["Effusion"] == 8
    assert points.unreliable == NIH_LABELS  # Effusion has 8 positives here, the others none: all under 10
    assert checkpoint.metrics["val_average_precision"] == record["val_average_precision"]
    assert record["val_mean_average_precision"] == record["val_average_precision"]["Effusion"]  # the one defined

    # chexnet evaluate of best.pt on the validation list chooses the same points from its own forward passes
    evaluation = EvaluateOptions(
        checkpoint=tmp_path / "best.pt", predictions=None, images=square_data[0], labels=square_data[1],
        split_list=tmp_path / "val_list.txt", bootstrap=0, out=tmp_path / "eval", device="cpu",
    )  # fmt: skip
    assert run_evaluate(evaluation) == 0
    chosen = json.loads((tmp_path / "eval" / "metrics.json").read_text())["operating_points"]["points"]
    for name, point in points.points.items():
        for label, entry in point.thresholds.items():
            again = chosen[name]["thresholds"][label]
            assert again["threshold"] == pytest.approx(entry.threshold, abs=1e-6)
            assert {k: v for k, v in again.items() if k != "threshold"} == {
                k: v for k, v in entry.to_dict().items() if k != "threshold"
            }


def test_resume_is_bit_identical_to_an_uninterrupted_run(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    run_training(config_for(square_data, tmp_path / "straight", epochs=2))
    run_training(config_for(square_data, tmp_path / "resumed", epochs=1))
    run_training(config_for(square_data, tmp_path / "resumed", epochs=2, resume=True))
    straight = load_checkpoint(tmp_path / "straight" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "last.pt")
    assert straight.state_dict.keys() == resumed.state_dict.keys()
    for key, value in straight.state_dict.items():
        assert torch.equal(value, resumed.state_dict[key]), key
    assert straight.metrics == resumed.metrics
    history = json.loads((tmp_path / "resumed" / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in history] == [1, 2]


def test_resume_refuses_changed_options(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    run_training(config_for(square_data, tmp_path, epochs=1, scheduler="cosine"))
    with pytest.raises(TrainConfigError, match=r"--epochs \(was 1, now 2\)"):
        run_training(config_for(square_data, tmp_path, epochs=2, scheduler="cosine", resume=True))
    with pytest.raises(TrainConfigError, match=r"--lr \(was 0.001, now 0.01\)"):
        run_training(config_for(square_data, tmp_path, epochs=1, scheduler="cosine", lr=1e-2, resume=True))


def test_non_finite_loss_stops_without_a_checkpoint(
    square_data: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class NanLoss(nn.Module):
        def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return (logits * float("nan")).mean()

    monkeypatch.setattr(training.train, "make_criterion", lambda *args: NanLoss())
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 1"):
        run_training(config_for(square_data, tmp_path))
    assert not (tmp_path / "last.pt").exists()
    assert not (tmp_path / "best.pt").exists()


def test_pos_weight_is_known_negatives_over_known_positives(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    config = config_for(square_data, tmp_path, pos_weight=True)
    data = training.train.load_run_data(config, listing_allowed=False)
    _, targets, _ = data.part("train")
    criterion = training.train.make_criterion(config, targets, torch.device("cpu"))
    assert isinstance(criterion, MaskedBCEWithLogitsLoss)
    positives = float(targets[:, 2].sum())
    assert criterion.pos_weight is not None
    assert criterion.pos_weight[2].item() == pytest.approx((len(targets) - positives) / positives)
    assert criterion.pos_weight[0].item() == pytest.approx(len(targets))  # no positives: divided by 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"image_size": 16}, "--image-size"),
        ({"lr": 0.0}, "--lr"),
        ({"weights": "nowhere.pt"}, "--weights"),
        ({"val_fraction": 1.0}, "--val-fraction"),
        ({"train_list": Path("a.txt")}, "--train-list and --val-list go together"),
        ({"scheduler": "step"}, "--scheduler"),
        ({"workers": -1}, "--workers"),
        ({"resume": True}, "--resume"),
    ],
)
def test_options_are_rejected_before_any_data_is_read(
    square_data: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, object],
    message: str,
) -> None:
    def no_reading(*args: object) -> None:
        raise AssertionError("data was read before the options were validated")

    monkeypatch.setattr(training.data.run_data, "read_label_table", no_reading)
    with pytest.raises(TrainConfigError, match=message):
        run_training(config_for(square_data, tmp_path / "out", **overrides))


def test_missing_images_are_named_before_training(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    images, labels = square_data
    rows = labels.read_text().splitlines()
    broken = tmp_path / "labels.csv"
    broken.write_text("\n".join([*rows, "99999999_000.png,Effusion,0,999,50,M,PA,40,40,0.14,0.14"]) + "\n")
    with pytest.raises(ValueError, match=r"99999999_000\.png"):
        run_training(config_for((images, broken), tmp_path / "out"))
    assert not (tmp_path / "out" / "last.pt").exists()


@pytest.mark.cuda
def test_on_cuda_training_runs_with_amp(square_data: tuple[Path, Path], tmp_path: Path) -> None:
    # that it learns is test_learns_the_square_task's, which runs on CUDA where there is one (device auto)
    run_training(config_for(square_data, tmp_path, epochs=1, device="cuda"))
    history = json.loads((tmp_path / "metrics.json").read_text())["epochs"]
    assert torch.isfinite(torch.tensor(history[0]["train_loss"]))
    scaler = load_checkpoint(tmp_path / "last.pt").training_state["scaler"]  # type: ignore[index]
    assert scaler["scale"] > 0  # an enabled GradScaler saves its scale; a disabled one (CPU) saves {}
