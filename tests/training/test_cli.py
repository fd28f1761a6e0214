"""Every ``chexnet`` command answers --help; predict writes the CSV through the shared preprocessing."""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import chexnet_cli
import models
from chexnet_cli import build_parser, main
from models.checkpoint import load_checkpoint
from models.labels import NIH_LABELS
from models.preprocessing import eval_tensor, image_to_gray
from tests.training.synthetic import make_square_dataset
from training.data import image_cache


@pytest.mark.parametrize("command", [[], ["train"], ["evaluate"], ["calibrate"], ["predict"], ["serve"]])
def test_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: chexnet")
    if command == ["train"]:
        assert "--pos-weight" in text and "--resume" in text and "--scheduler" in text and "--image-cache" in text
    if command in (["train"], ["evaluate"], ["calibrate"]):
        assert "--specificity" in text
    if command == []:
        assert "calibrate" in text


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "import", "serve"])
def test_help_shows_every_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "%%" not in text and "(default: None)" not in text and "(default: False)" not in text
    for action in subcommand_parsers()[command]._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in text, action.dest


def test_every_subcommand_renders_its_help() -> None:
    """Help strings are %-formatted: a bare % in one (say, "95% CI") would crash --help; descriptions are not."""
    for name, parser in subcommand_parsers().items():
        assert parser.format_help().startswith(f"usage: chexnet {name}"), name


def test_train_help_names_what_imagenet_needs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "the first run needs the internet) | none (random) | PATH to a chexnet checkpoint to fine-tune "
        "(default: imagenet)" in text
    )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"chexnet {models.__version__}\n"


@pytest.mark.parametrize(
    ("argv", "level"),
    [
        (["predict", "x.png"], None),
        (["--log-level", "ERROR", "predict", "x.png"], "ERROR"),
        (["predict", "--log-level", "WARNING", "x.png"], "WARNING"),
        (["predict", "x.png", "--log-level", "DEBUG"], "DEBUG"),
        (["--log-level", "ERROR", "serve", "--log-level", "DEBUG"], "DEBUG"),  # the later one wins
    ],
)
def test_log_level_before_or_after_the_command(argv: list[str], level: str | None) -> None:
    assert build_parser().parse_args(argv).log_level == level


def test_log_level_after_the_command_sets_the_level(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    levels: list[object] = []
    monkeypatch.setattr(chexnet_cli.logging, "basicConfig", lambda **kwargs: levels.append(kwargs["level"]))
    assert main(["predict", "--log-level", "WARNING", "/nonexistent/x.png"]) == 1
    assert levels == ["WARNING"]


def test_console_script_runs() -> None:
    chexnet = Path(sys.executable).with_name("chexnet")
    result = subprocess.run([str(chexnet), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "Research use only" in " ".join(result.stdout.split())


def test_train_reports_bad_options_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--images", str(tmp_path / "nope"), "--labels", "x.csv", "--out", str(tmp_path)])
    assert code == 2
    assert "--images" in capsys.readouterr().err


def test_predict_writes_probabilities(tmp_path: Path, tiny_checkpoint: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("b.png", "a.png"):
        Image.fromarray(rng.integers(0, 256, (70, 80), dtype=np.uint8), "L").save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "preds.csv"
    # --device cpu: the reference below is CPU eager
    assert (
        main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--device", "cpu", str(folder)]) == 0
    )
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["Image Index", "path", *NIH_LABELS]
    assert [r[0] for r in rows[1:]] == ["a.png", "b.png"]
    assert [r[1] for r in rows[1:]] == [str(folder / "a.png"), str(folder / "b.png")]
    checkpoint = load_checkpoint(tiny_checkpoint)
    model = checkpoint.build_model()
    with Image.open(folder / "a.png") as image, torch.no_grad():
        expected = torch.sigmoid(model(eval_tensor(checkpoint.spec, image_to_gray(image))[None]))[0]
    assert np.allclose([float(x) for x in rows[1][2:]], expected.numpy(), atol=1e-6)


def test_predict_missing_path_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(tmp_path / "missing.png")]) == 1
    assert f"cannot read {tmp_path / 'missing.png'}: The file does not exist." in capsys.readouterr().err


def test_train_with_an_image_cache_trains_the_same_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, one_torch_thread: None
) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 12)
    cache = tmp_path / "cache"
    common = ["--labels", str(labels), "--images", str(images), "--epochs", "2", "--batch-size", "4",
              "--image-size", "32", "--weights", "none", "--workers", "0", "--val-fraction", "0.25"]  # fmt: skip
    assert main(["train", *common, "--out", str(tmp_path / "plain")]) == 0
    assert main(["train", *common, "--out", str(tmp_path / "cold"), "--image-cache", str(cache)]) == 0
    assert len(list(cache.glob("*/*/*.f32"))) == 12  # train and validation images, each stored once

    def no_decoding(*args: object) -> None:
        raise AssertionError("a warm cache decoded an image")

    monkeypatch.setattr(image_cache, "decode_image", no_decoding)
    assert main(["train", *common, "--out", str(tmp_path / "warm"), "--image-cache", str(cache)]) == 0
    plain = load_checkpoint(tmp_path / "plain" / "last.pt")
    for run in ("cold", "warm"):
        cached = load_checkpoint(tmp_path / run / "last.pt")
        assert cached.config["image_cache"] == str(cache)
        assert cached.state_dict.keys() == plain.state_dict.keys()
        assert all(torch.equal(cached.state_dict[k], plain.state_dict[k]) for k in plain.state_dict)


def test_train_refuses_an_image_cache_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 4)
    (tmp_path / "cache").write_text("")
    args = ["--images", str(images), "--labels", str(labels), "--out", str(tmp_path / "out")]
    assert main(["train", *args, "--image-cache", str(tmp_path / "cache")]) == 2
    assert f"--image-cache {tmp_path / 'cache'} is not a folder" in capsys.readouterr().err


def small_run(tmp_path: Path) -> list[str]:
    images, labels = make_square_dataset(tmp_path / "data", 8)
    return ["train", "--images", str(images), "--labels", str(labels), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--batch-size", "4", "--image-size", "32", "--weights", "none", "--workers", "0",
            "--val-fraction", "0.25", "--device", "cpu"]  # fmt: skip


def test_train_refuses_a_folder_that_holds_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = small_run(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    (tmp_path / "run" / "best.pt").write_bytes(b"someone's model")
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"chexnet train: --out {tmp_path / 'run'} already holds a run (best.pt, metrics.json): continue it with "
        "--resume, replace it with --overwrite, or choose another --out\n"
    )
    assert (tmp_path / "run" / "best.pt").read_bytes() == b"someone's model"


@pytest.mark.parametrize("where", ["run", "run/sub"])
def test_train_refuses_an_out_that_is_or_lies_under_a_file(
    tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = small_run(tmp_path)
    (tmp_path / "run").write_text("the labels, say")
    args[args.index("--out") + 1] = str(tmp_path / where)
    assert main([*args, "--overwrite"]) == 2
    assert (
        capsys.readouterr().err
        == f"chexnet train: --out {tmp_path / where}: {tmp_path / 'run'} is a file, not a folder\n"
    )
    assert (tmp_path / "run").read_text() == "the labels, say"


def test_resume_and_overwrite_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*small_run(tmp_path), "--resume", "--overwrite"])
    assert exit_info.value.code == 2
    assert "argument --overwrite: not allowed with argument --resume" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [("--name", ""), ("--version", "x" * 129), ("--name", "a\nb")])
def test_train_refuses_a_bad_model_name_or_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    assert main([*small_run(tmp_path), flag, value]) == 2
    assert capsys.readouterr().err == f"chexnet train: {flag} must be 1 to 128 printable characters\n"


def test_tensorboard_without_the_package_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real_find_spec(name, *a)
    )
    assert main([*small_run(tmp_path), "--tensorboard"]) == 2
    assert capsys.readouterr().err.startswith(
        "chexnet train: --tensorboard needs the tensorboard package, which is not installed: pip install tensorboard"
    )
    assert not (tmp_path / "run").exists()


def test_train_names_the_model_writes_curves_and_resumes_or_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], one_torch_thread: None
) -> None:
    args, out = small_run(tmp_path), tmp_path / "run"
    assert main([*args, "--name", "cxr-squares", "--version", "2.1.0", "--tensorboard"]) == 0
    provenance = load_checkpoint(out / "best.pt").provenance
    assert (provenance["model_name"], provenance["model_version"]) == ("cxr-squares", "2.1.0")
    history = json.loads((out / "metrics.json").read_text())["epochs"]
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1"]
    assert float(rows[0]["val_loss"]) == history[0]["val_loss"]
    assert float(rows[0]["seconds"]) == history[0]["seconds"] > 0
    with Image.open(out / "curves.png") as image:
        assert image.size == (1200, 450)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("loss/validation")] == [1]
    capsys.readouterr()

    assert main([*args, "--resume"]) == 0
    assert capsys.readouterr().out == (
        f"chexnet train: nothing to do: the run in {out} has finished 1 epoch (--epochs 1); a larger --epochs "
        f"trains on; best checkpoint: {out / 'best.pt'}\n"
    )

    (out / "metrics.csv").write_text("stale")
    assert main([*args, "--overwrite"]) == 0
    assert load_checkpoint(out / "best.pt").provenance.keys().isdisjoint({"model_name", "model_version"})
    assert [row["epoch"] for row in csv.DictReader((out / "metrics.csv").open())] == ["1"]
    assert not list((out / "tensorboard").glob("events.*"))  # the old run's events went with it
