"""Every recipe option at once resumes exactly, is recorded in the checkpoint, and is checked before any data.

The run uses the plateau scheduler: a cosine's length is fixed, so "1 epoch, then resume to 2" needs plateau; a
cosine warm-up's exact restore is tested in test_optimizers.py.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from chexnet_cli import build_parser
from models.checkpoint import load_checkpoint
from tests.training.synthetic import make_square_dataset
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.resume_options import train_config_from_options
from training.train import run_training

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPE = {"optimizer": "adamw", "weight_decay": 0.05, "warmup_epochs": 1, "ema": 0.9,
          "augment": "cxr", "precision": "bf16", "channels_last": True}  # fmt: skip


def config_for(data: tuple[Path, Path], out: Path, **overrides: object) -> TrainConfig:
    images, labels = data
    base = TrainConfig(
        images=images, labels=labels, out=out, epochs=2, batch_size=4, image_size=32, lr=1e-3,
        weights="none", workers=0, val_fraction=0.25, seed=0, device="cpu", **RECIPE,  # type: ignore[arg-type]
    )  # fmt: skip
    return replace(base, **overrides)  # type: ignore[arg-type]


def assert_equal_tree(first: Any, second: Any, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(first, torch.Tensor):
        assert torch.equal(first, second), where
    elif isinstance(first, dict):
        assert first.keys() == second.keys(), where
        for key in first:
            assert_equal_tree(first[key], second[key], f"{where}/{key}")
    elif isinstance(first, list | tuple):
        assert len(first) == len(second), where
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            assert_equal_tree(a, b, f"{where}/{i}")
    else:
        assert first == second, where


def test_all_options_resume_bit_for_bit_and_are_recorded(tmp_path: Path) -> None:
    data = make_square_dataset(tmp_path / "squares", 16)
    run_training(config_for(data, tmp_path / "straight"))
    run_training(config_for(data, tmp_path / "resumed", epochs=1))
    first_best, first_last = (load_checkpoint(tmp_path / "resumed" / name) for name in ("best.pt", "last.pt"))
    assert first_last.training_state is not None
    assert_equal_tree(first_best.state_dict, first_last.training_state["ema"]["weights"], "best is the average")
    assert not all(torch.equal(v, first_last.state_dict[k]) for k, v in first_best.state_dict.items())
    with pytest.raises(TrainConfigError, match=r"--ema \(was 0.9, now 0.99\)"):
        run_training(config_for(data, tmp_path / "resumed", ema=0.99, resume=True))
    run_training(config_for(data, tmp_path / "resumed", resume=True))
    straight, resumed = (load_checkpoint(tmp_path / run / "last.pt") for run in ("straight", "resumed"))
    assert_equal_tree(straight.state_dict, resumed.state_dict, "weights")
    assert straight.training_state is not None and resumed.training_state is not None
    for part in ("optimizer", "scheduler", "ema", "next_epoch"):
        assert_equal_tree(straight.training_state[part], resumed.training_state[part], part)
    assert straight.metrics == resumed.metrics
    assert straight.training_state["ema"]["updates"] == 6  # 12 training images / 4 per step, 2 epochs
    assert straight.training_state["scheduler"]["epochs_done"] == 2
    assert [g["weight_decay"] for g in straight.training_state["optimizer"]["param_groups"]] == [0.05, 0.0]

    best = load_checkpoint(tmp_path / "straight" / "best.pt")
    assert {k: best.config[k] for k in RECIPE} == RECIPE
    recipe = best.provenance["recipe"]
    assert (recipe["autocast"], recipe["memory_format"], recipe["best_weights"]) == (
        "bfloat16", "channels_last", "exponential moving average"
    )  # fmt: skip
    assert recipe["augment_ranges"]["rotation_deg"] == 7.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"optimizer": "sgd"}, "--optimizer"),
        ({"weight_decay": -0.1}, "--weight-decay"),
        ({"warmup_epochs": 2, "scheduler": "cosine"}, r"--warmup-epochs \(2\) must be fewer than --epochs \(2\)"),
        ({"ema": 1.0}, "--ema is the averaging decay"),
        ({"augment": "mixup"}, "--augment"),
        ({"precision": "fp16"}, "--precision fp16 needs CUDA"),
    ],
)
def test_bad_recipe_options_are_refused_before_any_data(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("not read\n")
    config = replace(config_for((tmp_path, labels), tmp_path / "out"), **overrides)  # type: ignore[arg-type]
    with pytest.raises(TrainConfigError, match=message):
        config.validate()


def test_the_flags_reach_the_config() -> None:
    args = build_parser().parse_args(
        ["train", "--images", "i", "--labels", "l.csv", "--out", "o", "--optimizer", "adamw", "--weight-decay",
         "0.05", "--warmup-epochs", "2", "--ema", "0.999", "--augment", "cxr", "--precision", "bf16",
         "--channels-last"]
    )  # fmt: skip
    assert (args.optimizer, args.weight_decay, args.warmup_epochs, args.ema) == ("adamw", 0.05, 2, 0.999)
    assert (args.augment, args.precision, args.channels_last) == ("cxr", "bf16", True)
    # options not given are left out (so --resume can tell them from given ones): TrainConfig's defaults apply
    defaults = build_parser().parse_args(["train", "--images", "i", "--labels", "l.csv", "--out", "o"])
    for name in ("optimizer", "weight_decay", "warmup_epochs", "ema", "augment", "precision", "channels_last"):
        assert not hasattr(defaults, name), name
    given = {k: v for k, v in vars(defaults).items() if k not in ("run", "command", "log_level")}
    assert train_config_from_options(given) == TrainConfig(images=Path("i"), labels=Path("l.csv"), out=Path("o"))
