"""Every ``chexnet`` command answers --help; predict writes the CSV through the shared preprocessing."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from models.labels import PATHOLOGIES
from models.preprocessing import eval_tensor, image_to_gray
from tests.training.synthetic import make_square_dataset
from training import image_cache


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
    assert rows[0] == ["Image Index", "path", *PATHOLOGIES]
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
