"""Names from real archives: a BOM in a list file, invisible characters in messages, bytes that are not UTF-8."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chexnet_cli import main
from tests.training.synthetic import make_square_dataset
from training.data.file_names import csv_file_name, original_file_name, visible_name
from training.data.label_tables import LabelTableError, read_label_table
from training.data.splits import indices_of, read_name_list


@pytest.mark.parametrize(
    ("name", "visible", "in_csv"),
    [
        ("00000001_000.png", "00000001_000.png", "00000001_000.png"),
        ("\ufeff00000001_000.png", "\\ufeff00000001_000.png", "\ufeff00000001_000.png"),
        ("a\u200bb\tc.png", "a\\u200bb\\tc.png", "a\u200bb\tc.png"),
        ("dir\\file.png", "dir\\\\file.png", "dir\\\\file.png"),
        (os.fsdecode(b"r\xf6ntgen.png"), "r\\xf6ntgen.png", "r\\xf6ntgen.png"),
        ("röntgen.png", "röntgen.png", "röntgen.png"),
    ],
)
def test_names_shown_and_written(name: str, visible: str, in_csv: str) -> None:
    assert visible_name(name) == visible
    assert csv_file_name(name) == in_csv
    in_csv.encode("utf-8")  # always valid UTF-8
    assert original_file_name(in_csv) == name
    assert os.fsencode(original_file_name(in_csv)) == os.fsencode(name)


def test_a_list_saved_with_a_bom_reads_its_first_name(tmp_path: Path) -> None:
    _, labels = make_square_dataset(tmp_path, 3, side=32)
    table = read_label_table(labels)
    listed = tmp_path / "test_list.txt"
    listed.write_bytes(b"\xef\xbb\xbf00000001_000.png\r\n00000002_000.png\r\n")  # as Notepad saves it
    assert read_name_list(listed) == ["00000001_000.png", "00000002_000.png"]
    assert indices_of(table, read_name_list(listed), listed).tolist() == [1, 2]


def test_an_unknown_name_shows_its_invisible_characters(tmp_path: Path) -> None:
    _, labels = make_square_dataset(tmp_path, 2, side=32)
    listed = tmp_path / "list.txt"
    with pytest.raises(LabelTableError) as refused:
        indices_of(read_label_table(labels), ["00000001_000.png\u200b"], listed)
    assert str(refused.value) == (f"1 image name(s) in {listed} are not in the label table: 00000001_000.png\\u200b")


def test_evaluate_with_a_bom_split_list(tmp_path: Path, tiny_checkpoint: Path) -> None:
    images, labels = make_square_dataset(tmp_path / "data", 4, side=64)
    split = tmp_path / "test_list.txt"
    split.write_bytes("\ufeff00000000_000.png\n00000001_000.png\n".encode())
    args = ["evaluate", "--checkpoint", str(tiny_checkpoint), "--images", str(images), "--labels", str(labels)]
    assert main([*args, "--split-list", str(split), "--bootstrap", "0", "--out", str(tmp_path / "eval")]) == 0
    rows = (tmp_path / "eval" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["00000000_000.png", "00000001_000.png"]
