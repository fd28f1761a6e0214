"""NIH's box file: the header with empty trailing columns, gzip, folders, label alignment, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from models.labels import NIH_LABELS
from training.data.boxes import BoxFileError, BoxRecord, align_box_labels, patient_of, read_boxes

HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
ROWS = "00013118_008.png,Atelectasis,225.5,547.0,86.0,79.0\n00000032_037.png,Infiltrate,512,256,128,64\n"


def test_reads_nih_rows_plain_and_gzip(tmp_path: Path) -> None:
    plain = tmp_path / "a.csv"
    plain.write_text(HEADER + ROWS + ",,,,,\n")
    zipped = tmp_path / "b.csv.gz"
    zipped.write_bytes(gzip.compress((HEADER + ROWS).encode()))
    expected = [
        BoxRecord("00013118_008.png", "Atelectasis", 225.5, 547.0, 86.0, 79.0),
        BoxRecord("00000032_037.png", "Infiltrate", 512.0, 256.0, 128.0, 64.0),
    ]
    assert read_boxes(plain) == expected
    assert read_boxes(zipped) == expected
    assert read_boxes(tmp_path) == expected + expected  # a folder: every .csv and .csv.gz, sorted by name


def test_boxes_rescale_from_1024_to_the_image() -> None:
    record = BoxRecord("x.png", "Mass", 512.0, 256.0, 128.0, 64.0)
    assert record.scaled(256, 256) == (128.0, 64.0, 160.0, 80.0)
    assert record.scaled(512, 2048) == (1024.0, 128.0, 1280.0, 160.0)  # width and height scale apart


def test_labels_align_by_key_and_unknown_ones_are_listed() -> None:
    records = [
        BoxRecord("a.png", "Infiltrate", 0, 0, 1, 1),
        BoxRecord("a.png", "Pneumothorax", 0, 0, 1, 1),
        BoxRecord("b.png", "Fracture", 0, 0, 1, 1),
    ]
    assert align_box_labels(records, NIH_LABELS) == (
        {"Infiltrate": "Infiltration", "Pneumothorax": "Pneumothorax"},
        ["Fracture"],
    )
    assert align_box_labels(records, ("Pneumothorax", "Fracture")) == (
        {"Pneumothorax": "Pneumothorax", "Fracture": "Fracture"},
        ["Infiltrate"],
    )


def test_patient_of_nih_names() -> None:
    assert patient_of("00013118_008.png") == "00013118"
    assert patient_of("scan.png") == "scan.png"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n", "not an NIH box file"),
        (HEADER + "x.png,Mass,1,2,three,4\n", "line 2: x, y, w, h must be four numbers"),
        (HEADER + ROWS + "x.png,Mass,1,2,0,4\n", "line 4: a box needs an image, a label and positive w and h"),
    ],
)
def test_malformed_files_name_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(BoxFileError, match=message):
        read_boxes(path)


def test_a_folder_without_box_files(tmp_path: Path) -> None:
    with pytest.raises(BoxFileError, match=r"no \.csv or \.csv\.gz box files"):
        read_boxes(tmp_path)
