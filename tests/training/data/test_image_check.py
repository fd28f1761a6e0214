"""Unreadable images in training and evaluation: checked before epoch 1, named in one line, skippable."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from models.imaging.errors import UnsupportedFormatError
from tests.models.imaging.test_decoder import png_claiming_size
from tests.training.synthetic import make_square_dataset
from training.data.image_check import UnreadableImage, find_unreadable

TRAIN_ARGS = ["--weights", "none", "--image-size", "32", "--epochs", "1", "--batch-size", "8", "--seed", "0"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def corrupt_idat(data: bytes) -> bytes:
    """The same PNG with its compressed pixel data scrambled: the header and IEND still look fine."""
    start = data.index(b"IDAT") + 4
    body = bytearray(data)
    body[start + 2 : start + 40] = bytes(range(38))
    return bytes(body)


def png_bytes(side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (side, side), dtype=np.uint8), "L").save(buffer, "PNG")
    return buffer.getvalue()


def test_find_unreadable_names_each_kind(tmp_path: Path) -> None:
    good = png_bytes()
    files = {
        "good.png": good,
        "truncated.png": good[: len(good) // 2],
        "small.png": png_bytes(32),
        "bomb.png": png_claiming_size(14_000, 14_000),
        "notes.png": b"hello, not an image",
        "empty.png": b"",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [tmp_path / name for name in files] + [tmp_path / "missing.png"]
    failures = find_unreadable(paths, threads=3)
    assert [(f.path.name, f.code) for f in failures] == [
        ("truncated.png", "invalid_image"),
        ("small.png", "image_too_small"),
        ("bomb.png", "decompression_bomb"),
        ("notes.png", "unsupported_format"),
        ("empty.png", "invalid_image"),
        ("missing.png", "unreadable_file"),
    ]
    assert failures[0] == UnreadableImage(
        tmp_path / "truncated.png", "invalid_image", "The PNG file is truncated: it ends before its IEND chunk."
    )


@pytest.fixture
def squares(tmp_path: Path) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path / "data", 16)


def train_args(squares: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    images, labels = squares
    return ["train", "--images", str(images), "--labels", str(labels), "--out", str(out), *TRAIN_ARGS, *extra]


def test_train_stops_before_epoch_one_naming_the_file(
    squares: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, _ = squares
    bad = images / "00000003_000.png"
    bad.write_bytes(bad.read_bytes()[:200])
    assert main(train_args(squares, tmp_path / "run", "--workers", "0")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "chexnet train: 1 of 16 images cannot be read (fix or remove them, or pass --skip-unreadable to leave them "
        f"out): {bad}: The PNG file is truncated: it ends before its IEND chunk."
    ]
    assert not (tmp_path / "run" / "last.pt").exists()


def test_skip_unreadable_trains_on_the_rest_and_lists_what_it_left_out(
    squares: tuple[Path, Path], tmp_path: Path
) -> None:
    images, _ = squares
    bad = images / "00000003_000.png"
    bad.write_bytes(b"not an image at all")
    out = tmp_path / "run"
    assert main(train_args(squares, out, "--workers", "0", "--skip-unreadable")) == 0
    with (out / "unreadable.csv").open() as handle:
        assert list(csv.reader(handle)) == [
            ["path", "code", "reason"],
            [str(bad), "unsupported_format", UnsupportedFormatError.default_message],
        ]  # fmt: skip
    data = load_checkpoint(out / "best.pt").provenance["data"]
    assert data["n_train"] + data["n_val"] == 15
    names = (out / "train_list.txt").read_text().split() + (out / "val_list.txt").read_text().split()
    assert bad.name not in names


def test_decode_failure_in_a_worker_stops_in_one_line_and_the_run_resumes(
    squares: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, _ = squares
    out = tmp_path / "run"
    assert main(train_args(squares, out, "--workers", "0")) == 0
    after_one = load_checkpoint(out / "last.pt").state_dict
    bad = images / "00000005_000.png"
    original = bad.read_bytes()
    bad.write_bytes(corrupt_idat(original))  # passes the header check, fails to decode
    capsys.readouterr()
    resume = [*train_args(squares, out, "--resume"), "--epochs", "2"]
    assert main([*resume, "--workers", "1"]) == 1  # the failure crosses a DataLoader worker process
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"chexnet train: cannot read image {bad}: The image could not be decoded; the file may be empty, corrupt or "
        "truncated; stopped (fix it, then continue with --resume)"
    ]
    unchanged = load_checkpoint(out / "last.pt")
    assert unchanged.training_state is not None and unchanged.training_state["next_epoch"] == 1
    assert all(np.array_equal(after_one[k], unchanged.state_dict[k]) for k in after_one)
    bad.write_bytes(original)
    assert main([*resume, "--workers", "0"]) == 0
    assert load_checkpoint(out / "last.pt").training_state["next_epoch"] == 2  # type: ignore[index]


def test_a_failure_in_the_first_epoch_says_to_run_again_not_to_resume(
    squares: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images, _ = squares
    bad = images / "00000005_000.png"
    bad.write_bytes(corrupt_idat(bad.read_bytes()))
    assert main(train_args(squares, tmp_path / "run", "--workers", "0")) == 1
    assert capsys.readouterr().err.strip().endswith("; stopped (fix it, then run the command again)")
