"""Label tables: NIH and one-hot formats, their errors, and the real NIH tables when they are present."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from models.labels import NIH_LABELS
from tests.conftest import SHARED_DATA
from training.data.label_tables import LabelTable, LabelTableError, check_images_exist, read_label_table

SAMPLE_CSV = SHARED_DATA / "nih-sample" / "Data_Entry_sample.csv"
FULL_CSV = SHARED_DATA / "nih-labels" / "Data_Entry_2017_v2020.csv.gz"

NIH_HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def nih_csv(tmp_path: Path, rows: list[tuple[str, str, str]], name: str = "labels.csv") -> Path:
    path = tmp_path / name
    body = "".join(f"{image},{labels},0,{patient},50,M,PA\n" for image, labels, patient in rows)
    path.write_text(NIH_HEADER + body)
    return path


def onehot_csv(tmp_path: Path, rows: list[tuple[str, list[int]]], extra_header: str = "") -> Path:
    path = tmp_path / "onehot.csv"
    lines = [",".join(["image_path", *NIH_LABELS]) + extra_header]
    lines += [",".join([image, *map(str, values)]) for image, values in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_hot(*names: str) -> list[int]:
    return [int(p in names) for p in NIH_LABELS]


def test_nih_format_no_finding_and_multilabel(tmp_path: Path) -> None:
    path = nih_csv(
        tmp_path,
        [
            ("00000001_000.png", "No Finding", "1"),
            ("00000001_001.png", "Atelectasis|Effusion", "1"),
            ("00000002_000.png", " Hernia | Pleural_Thickening ", "2"),
        ],
    )
    table = read_label_table(path)
    assert len(table) == 3
    assert table.image_names == ("00000001_000.png", "00000001_001.png", "00000002_000.png")
    assert table.patient_ids == ("1", "1", "2")
    assert table.targets.dtype == np.float32
    assert table.targets.shape == (3, 14)
    np.testing.assert_array_equal(table.targets[0], np.zeros(14))
    np.testing.assert_array_equal(table.targets[1], one_hot("Atelectasis", "Effusion"))
    np.testing.assert_array_equal(table.targets[2], one_hot("Hernia", "Pleural_Thickening"))


def test_nih_format_gzipped(tmp_path: Path) -> None:
    plain = nih_csv(tmp_path, [("00000001_000.png", "Mass", "1")])
    gz = tmp_path / "labels.csv.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    table = read_label_table(gz)
    np.testing.assert_array_equal(table.targets[0], one_hot("Mass"))


@pytest.mark.parametrize(
    ("label", "line", "hint"),
    [("Pleural Thickening", 3, "Pleural_Thickening"), ("Pneumonnia", 3, "Pneumonia")],
)
def test_unknown_label_names_label_and_line(tmp_path: Path, label: str, line: int, hint: str) -> None:
    path = nih_csv(tmp_path, [("00000001_000.png", "Mass", "1"), ("00000002_000.png", f"Effusion|{label}", "2")])
    with pytest.raises(LabelTableError) as info:
        read_label_table(path)
    message = str(info.value)
    assert f"unknown label '{label}' at line {line}" in message
    assert f"did you mean '{hint}'" in message


def test_unknown_labels_first_five_named(tmp_path: Path) -> None:
    rows = [(f"0000000{i}_000.png", f"Bad{i}", str(i)) for i in range(1, 8)]
    with pytest.raises(LabelTableError) as info:
        read_label_table(nih_csv(tmp_path, rows))
    message = str(info.value)
    assert "'Bad5' at line 6" in message
    assert "Bad6" not in message
    assert "7 in all" in message


def test_no_finding_with_other_labels_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(LabelTableError, match="'No Finding' together with other labels at line 2"):
        read_label_table(nih_csv(tmp_path, [("00000001_000.png", "No Finding|Mass", "1")]))


def test_missing_nih_column(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("Finding Labels,Patient ID\nMass,1\n")
    with pytest.raises(LabelTableError, match=r"NIH.*lacks column\(s\) \['Image Index'\]"):
        read_label_table(path)


def test_missing_onehot_columns(tmp_path: Path) -> None:
    path = tmp_path / "onehot.csv"
    path.write_text("image_path,Atelectasis,Cardiomegaly\na.png,0,1\n")
    with pytest.raises(LabelTableError) as info:
        read_label_table(path)
    message = str(info.value)
    assert "one-hot" in message
    assert "'Effusion'" in message
    assert "'Hernia'" in message
    assert "'Atelectasis', " not in message.split("lacks column(s)")[1].split(";")[0]


def test_neither_format(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("file,label\na.png,Mass\n")
    with pytest.raises(
        LabelTableError,
        match=r"matches no known label table format \(found columns 'file', 'label'\); formats known: nih",
    ):
        read_label_table(path)


def test_duplicate_image_names(tmp_path: Path) -> None:
    path = nih_csv(
        tmp_path,
        [("00000001_000.png", "Mass", "1"), ("00000002_000.png", "Mass", "2"), ("00000001_000.png", "Edema", "1")],
    )
    with pytest.raises(
        LabelTableError, match=r"duplicate image names.*'00000001_000.png' at line 4 \(first at line 2\)"
    ):
        read_label_table(path)


def test_empty_table(tmp_path: Path) -> None:
    path = nih_csv(tmp_path, [])
    with pytest.raises(LabelTableError, match="no rows"):
        read_label_table(path)
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    with pytest.raises(LabelTableError, match="empty"):
        read_label_table(blank)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LabelTableError, match="not found"):
        read_label_table(tmp_path / "nope.csv")


def test_onehot_format_and_patients(tmp_path: Path) -> None:
    path = onehot_csv(
        tmp_path,
        [
            ("images/00000075_000.png", one_hot("Cardiomegaly")),
            ("00000075_001.png", one_hot()),
            ("scan-a.png", one_hot("Edema", "Hernia")),
        ],
    )
    table = read_label_table(path)
    assert table.image_names == ("images/00000075_000.png", "00000075_001.png", "scan-a.png")
    assert table.patient_ids == ("00000075", "00000075", "scan-a.png")
    np.testing.assert_array_equal(table.targets, [one_hot("Cardiomegaly"), one_hot(), one_hot("Edema", "Hernia")])


def test_onehot_patient_column_is_used(tmp_path: Path) -> None:
    path = tmp_path / "onehot.csv"
    path.write_text(",".join(["image_path", "patient_id", *NIH_LABELS]) + "\n" + "x.png,p7," + ",".join("0" * 14))
    assert read_label_table(path).patient_ids == ("p7",)


def test_onehot_values_must_be_1_0_minus_1_or_blank(tmp_path: Path) -> None:
    bad = one_hot("Mass")
    bad[NIH_LABELS.index("Edema")] = 2
    path = onehot_csv(tmp_path, [("a.png", one_hot()), ("b.png", bad)])
    with pytest.raises(LabelTableError, match=r"1, 0, -1 or blank: line 3, column 'Edema': '2'"):
        read_label_table(path)


def test_subset_and_check_images(tmp_path: Path) -> None:
    table = read_label_table(
        nih_csv(tmp_path, [(f"0000000{i}_000.png", "Mass" if i % 2 else "No Finding", str(i)) for i in range(1, 8)])
    )
    sub = table.subset([4, 0])
    assert isinstance(sub, LabelTable)
    assert sub.image_names == ("00000005_000.png", "00000001_000.png")
    assert sub.patient_ids == ("5", "1")
    np.testing.assert_array_equal(sub.targets, table.targets[[4, 0]])
    images = tmp_path / "images"
    images.mkdir()
    (images / "00000001_000.png").write_bytes(b"x")
    with pytest.raises(LabelTableError) as info:
        check_images_exist(table, images)
    message = str(info.value)
    assert "6 of 7" in message
    assert "00000002_000.png" in message
    assert "00000006_000.png" in message  # the 5th missing one is named ...
    assert "00000007_000.png" not in message  # ... the 6th is only counted
    check_images_exist(table.subset([0]), images)


@pytest.mark.skipif(not SAMPLE_CSV.is_file(), reason=f"NIH sample not present at {SAMPLE_CSV}")
def test_real_nih_sample() -> None:
    table = read_label_table(SAMPLE_CSV)
    assert len(table) == 500
    positives = table.targets.sum(axis=0)
    assert (positives >= 12).all(), dict(zip(NIH_LABELS, positives, strict=True))
    assert int((table.targets.sum(axis=1) == 0).sum()) == 75  # "No Finding"
    images = SAMPLE_CSV.parent / "images"
    if images.is_dir():
        check_images_exist(table, images)


@pytest.mark.skipif(not FULL_CSV.is_file(), reason=f"full NIH label table not present at {FULL_CSV}")
def test_real_full_nih_table() -> None:
    table = read_label_table(FULL_CSV)
    assert len(table) == 112_120
    assert int(table.targets[:, NIH_LABELS.index("Hernia")].sum()) > 100
    assert len(set(table.patient_ids)) == 30_805
