"""CheXpert, MIMIC-CXR-JPG and generic tables: prefixes, views, the No Finding rule, policies, joins, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from models.labels import CHEXPERT_LABELS, NIH_LABELS
from tests.training.data.formats import chexpert_row, mimic_label_row, write_chexpert, write_mimic
from training.data.label_policies import LabelPolicy, PolicyError
from training.data.label_tables import LabelTable, LabelTableError, TableOptions, read_label_table
from training.data.sources import DataOptionError, aligned_targets, parse_data_option, resolve_label_set, union_labels

NAN = np.nan
COL = {name: k for k, name in enumerate(CHEXPERT_LABELS)}


def chexpert_table(tmp_path: Path) -> Path:
    return write_chexpert(
        tmp_path,
        [
            chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg", "Frontal", "AP",
                         {"No Finding": "1.0", "Pneumothorax": "0.0", "Support Devices": "1.0"}),
            chexpert_row("CheXpert-v1.0-small/train/patient00002/study2/view1_frontal.jpg", "Frontal", "PA",
                         {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Edema": "-1.0"}),
            chexpert_row("CheXpert-v1.0-small/train/patient00002/study2/view2_lateral.jpg", "Lateral", "",
                         {"Cardiomegaly": "-1.0", "Lung Opacity": "1.0", "Edema": "-1.0"}),
            chexpert_row("CheXpert-v1.0/train/patient00003/study1/view1_frontal.jpg", "Frontal", "AP",
                         {"Pleural Effusion": "1.0"}),
        ],
    )  # fmt: skip


def test_chexpert_prefix_patient_study_and_frontal_default(tmp_path: Path) -> None:
    table = read_label_table(chexpert_table(tmp_path))
    assert table.kind == "chexpert" and table.labels == CHEXPERT_LABELS
    assert table.image_names == (
        "train/patient00001/study1/view1_frontal.jpg",
        "train/patient00002/study2/view1_frontal.jpg",
        "train/patient00003/study1/view1_frontal.jpg",
    )  # both prefixes dropped; the lateral view left out
    assert table.patient_ids == ("patient00001", "patient00002", "patient00003")
    assert table.study_ids == ("patient00001/study1", "patient00002/study2", "patient00003/study1")
    assert table.policy == {"uncertain": "ignore", "blank": "zeros", "views": "frontal"}


@pytest.mark.parametrize(
    ("views", "kept"),
    [("pa", ["patient00002/study2/view1_frontal.jpg"]), ("lateral", ["patient00002/study2/view2_lateral.jpg"]),
     ("ap", ["patient00001/study1/view1_frontal.jpg", "patient00003/study1/view1_frontal.jpg"])],
)  # fmt: skip
def test_chexpert_view_filter(tmp_path: Path, views: str, kept: list[str]) -> None:
    table = read_label_table(chexpert_table(tmp_path), TableOptions(views=views))
    assert [name.removeprefix("train/") for name in table.image_names] == kept
    assert len(read_label_table(chexpert_table(tmp_path), TableOptions(views="all"))) == 4


def test_no_finding_rule_makes_every_pathology_but_support_devices_negative(tmp_path: Path) -> None:
    table = read_label_table(chexpert_table(tmp_path), TableOptions(policy=LabelPolicy("ignore", "ignore")))
    first = table.targets[0]
    assert first[COL["No Finding"]] == 1.0 and first[COL["Support Devices"]] == 1.0
    others = [COL[name] for name in CHEXPERT_LABELS if name not in ("No Finding", "Support Devices")]
    np.testing.assert_array_equal(first[others], np.zeros(len(others)))  # known negatives even under --blank ignore
    second = table.targets[1]
    assert np.isnan(second[COL["No Finding"]]) and np.isnan(second[COL["Fracture"]])  # blank stays unknown there


@pytest.mark.parametrize(("policy", "value"), [("ignore", NAN), ("zeros", 0.0), ("ones", 1.0)])
def test_uncertainty_policies(tmp_path: Path, policy: str, value: float) -> None:
    table = read_label_table(chexpert_table(tmp_path), TableOptions(policy=LabelPolicy(policy)))
    row = table.targets[1]
    np.testing.assert_array_equal(row[[COL["Cardiomegaly"], COL["Edema"]]], [value, value])
    assert row[COL["Lung Opacity"]] == 1.0
    assert row[COL["Fracture"]] == 0.0  # blank: the CheXpert default, zeros


def test_blank_policy(tmp_path: Path) -> None:
    zeros = read_label_table(chexpert_table(tmp_path)).targets
    ignore = read_label_table(chexpert_table(tmp_path), TableOptions(policy=LabelPolicy(blank="ignore"))).targets
    third = COL["Atelectasis"]
    assert zeros[2, third] == 0.0 and np.isnan(ignore[2, third])
    assert zeros[2, COL["Pleural Effusion"]] == ignore[2, COL["Pleural Effusion"]] == 1.0
    with pytest.raises(PolicyError, match="--blank must be one of ignore, zeros"):
        LabelPolicy(blank="ones")


def test_chexpert_malformed_value_and_path_name_line_and_column(tmp_path: Path) -> None:
    bad = write_chexpert(tmp_path, [chexpert_row("CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg",
                                                 "Frontal", "AP", {"Edema": "2.0"})])  # fmt: skip
    with pytest.raises(LabelTableError, match=r"line 2, column 'Edema': '2.0'"):
        read_label_table(bad)
    path = write_chexpert(tmp_path, [chexpert_row("CheXpert-v1.0-small/train/view1.jpg", "Frontal", "AP", {})])
    with pytest.raises(LabelTableError, match=r"line 2, column 'Path': 'CheXpert-v1.0-small/train/view1.jpg'"):
        read_label_table(path)


def mimic_fixture(folder: Path, kind: str = "chexpert") -> Path:
    labels = [
        mimic_label_row("10000032", "50414267", {"Edema": "1.0", "Cardiomegaly": "-1.0"}),
        mimic_label_row("10000764", "57375967", {"No Finding": "1.0"}),
    ]
    images = [
        ("02aa804e-bde0afdd", "10000032", "50414267", "PA", "train"),
        ("174413ec-4ec4c1f7", "10000032", "50414267", "LATERAL", "train"),
        ("2a2277a9-b0ded155", "10000764", "57375967", "AP", "validate"),
        ("96af5bf6-85d1a1a4", "10000764", "57375967", "", "test"),  # no ViewPosition
        ("e084de3b-be89b11e", "10000999", "59999999", "PA", "train"),  # a study without labels
    ]
    return write_mimic(folder, labels, images, kind)


@pytest.mark.parametrize("kind", ["chexpert", "negbio"])
def test_mimic_three_table_join(tmp_path: Path, kind: str) -> None:
    table = read_label_table(mimic_fixture(tmp_path, kind))
    assert table.kind == "mimic" and table.labels == CHEXPERT_LABELS  # reordered from the file's alphabetical order
    assert table.image_names == (
        "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg",
        "files/p10/p10000764/s57375967/2a2277a9-b0ded155.jpg",
    )
    assert table.patient_ids == ("10000032", "10000764")
    assert table.study_ids == ("50414267", "57375967")
    assert table.splits == ("train", "validate")
    assert table.targets[0, COL["Edema"]] == 1.0 and np.isnan(table.targets[0, COL["Cardiomegaly"]])
    assert table.targets[1, COL["Pneumonia"]] == 0.0
    every = read_label_table(mimic_fixture(tmp_path, kind), TableOptions(views="all"))
    assert len(every) == 4  # the image without a ViewPosition is kept only by --views all
    assert every.splits == ("train", "train", "validate", "test")


def test_mimic_needs_its_metadata_and_split_tables(tmp_path: Path) -> None:
    path = mimic_fixture(tmp_path)
    (tmp_path / "mimic-cxr-2.0.0-split.csv.gz").unlink()
    with pytest.raises(LabelTableError, match=r"exactly one \*-split.csv\(.gz\) beside it"):
        read_label_table(path)


def test_mimic_malformed_label_names_line_and_column(tmp_path: Path) -> None:
    path = write_mimic(tmp_path, [mimic_label_row("10000032", "50414267", {"Edema": "yes"})],
                       [("a", "10000032", "50414267", "PA", "train")])  # fmt: skip
    with pytest.raises(LabelTableError, match=r"line 2, column 'Edema': 'yes'"):
        read_label_table(path)


def generic_csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "generic.csv"
    path.write_text(body)
    return path


def test_generic_table_with_patient_column_and_pattern(tmp_path: Path) -> None:
    path = generic_csv(tmp_path, "file,who,Pneumonia,Nodule\np1/a.png,p1,1,\np1/b.png,p1,-1,0\np2/c.png,p2,0,1\n")
    table = read_label_table(path, TableOptions(format="generic", image_column="file", patient_column="who"))
    assert table.labels == ("Pneumonia", "Nodule") and table.patient_ids == ("p1", "p1", "p2")
    np.testing.assert_array_equal(table.targets, [[1, NAN], [NAN, 0], [0, 1]])  # blank and -1: unknown by default
    bare = generic_csv(tmp_path, "file,Pneumonia\np1/a.png,1\np1/b.png,0\np2/c.png,0\n")
    pattern = TableOptions(image_column="file", patient_pattern=r"^(p\d+)/")
    assert read_label_table(bare, pattern).patient_ids == ("p1", "p1", "p2")


def test_generic_table_without_patients_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = generic_csv(tmp_path, "file,Mass\na.png,1\nb.png,0\n")
    with caplog.at_level(logging.WARNING):
        table = read_label_table(path, TableOptions(image_column="file"))
    assert table.patient_ids == ("a.png", "b.png")
    assert "CAN END UP ON BOTH SIDES" in caplog.text
    bad = generic_csv(tmp_path, "file,Mass\na.png,1\nb.png,maybe\n")
    with pytest.raises(LabelTableError, match=r"line 3, column 'Mass': 'maybe'"):
        read_label_table(bad, TableOptions(image_column="file"))


def test_onehot_accepts_uncertain_and_blank(tmp_path: Path) -> None:
    path = tmp_path / "onehot.csv"
    cells = ["1", "-1", ""] + ["0"] * 11
    path.write_text(",".join(["image_path", *NIH_LABELS]) + "\n00000001_000.png," + ",".join(cells) + "\n")
    table = read_label_table(path)
    np.testing.assert_array_equal(table.targets[0, :4], [1, NAN, NAN, 0])
    zeros = read_label_table(path, TableOptions(policy=LabelPolicy("ones", "zeros")))
    np.testing.assert_array_equal(zeros.targets[0, :4], [1, 1, 0, 0])


def test_unknown_format_names_what_was_found(tmp_path: Path) -> None:
    path = generic_csv(tmp_path, "file,Mass\na.png,1\n")
    with pytest.raises(LabelTableError, match=r"found columns 'file', 'Mass'.*generic \(--format generic"):
        read_label_table(path)


def tiny(labels: tuple[str, ...], rows: list[list[float]]) -> LabelTable:
    names = tuple(f"{i}.png" for i in range(len(rows)))
    return LabelTable(names, names, np.asarray(rows, dtype=np.float32), labels)


def test_synonym_table_aligns_datasets_by_label_key() -> None:
    nih = tiny(("Effusion", "Pleural_Thickening", "Infiltration"), [[1, 0, 1]])
    chexpert = tiny(("Pleural Effusion", "Edema"), [[0, 1]])
    union = union_labels([nih, chexpert])
    assert union == ("Effusion", "Pleural_Thickening", "Infiltration", "Edema")
    np.testing.assert_array_equal(aligned_targets(chexpert, union), [[0, NAN, NAN, 1]])
    np.testing.assert_array_equal(aligned_targets(nih, ("Pleural Effusion", "Pleural Thickening", "Infiltrate")),
                                  [[1, 0, 1]])  # fmt: skip
    assert resolve_label_set("chexpert", [nih, chexpert]) == CHEXPERT_LABELS
    with pytest.raises(DataOptionError, match="neither a known set"):
        resolve_label_set("nope", [nih])
    assert parse_data_option("chexpert:a/train.csv:imgs").kind == "chexpert"
    with pytest.raises(DataOptionError, match="KIND:LABELS:IMAGES"):
        parse_data_option("train.csv")
