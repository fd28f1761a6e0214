"""Patient-level splits and list-file splits."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from models.labels import NIH_LABELS
from training.data.label_tables import LabelTable, LabelTableError
from training.data.splits import split_by_patient, split_from_lists, split_official, split_three_ways


def make_table(images_per_patient: list[int]) -> LabelTable:
    names, patients = [], []
    for patient, count in enumerate(images_per_patient):
        for k in range(count):
            names.append(f"{patient:08d}_{k:03d}.png")
            patients.append(str(patient))
    return LabelTable(tuple(names), tuple(patients), np.zeros((len(names), 14), dtype=np.float32), NIH_LABELS)


def test_patient_split_no_leakage_and_sizes() -> None:
    rng = np.random.default_rng(1)
    table = make_table(list(rng.integers(1, 5, size=40)))
    train, val = split_by_patient(table, 0.25, seed=3)
    assert np.all(np.diff(train) > 0)
    assert np.all(np.diff(val) > 0)
    assert sorted([*train, *val]) == list(range(len(table)))
    train_patients = {table.patient_ids[i] for i in train}
    val_patients = {table.patient_ids[i] for i in val}
    assert not train_patients & val_patients
    assert len(val_patients) == 10
    assert len(train_patients) == 30


def test_patient_split_deterministic_and_seed_dependent() -> None:
    table = make_table([2] * 50)
    first_train, first_val = split_by_patient(table, 0.2, seed=7)
    again_train, again_val = split_by_patient(table, 0.2, seed=7)
    np.testing.assert_array_equal(first_train, again_train)
    np.testing.assert_array_equal(first_val, again_val)
    _, other_val = split_by_patient(table, 0.2, seed=8)
    assert not np.array_equal(first_val, other_val)
    assert len(other_val) == len(first_val)


def test_patient_split_keeps_one_patient_each_side() -> None:
    table = make_table([3, 1])
    train, val = split_by_patient(table, 0.01, seed=0)
    assert len({table.patient_ids[i] for i in val}) == 1
    train, val = split_by_patient(table, 0.99, seed=0)
    assert len({table.patient_ids[i] for i in train}) == 1
    with pytest.raises(LabelTableError, match="need >= 2"):
        split_by_patient(make_table([4]), 0.5, seed=0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        split_by_patient(table, 1.0, seed=0)


def test_split_from_lists(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    table = make_table([1, 1, 1, 1, 1])
    train_list, val_list = tmp_path / "train_val_list.txt", tmp_path / "test_list.txt"
    train_list.write_text("00000003_000.png\n00000000_000.png\n\n")
    val_list.write_text("  00000001_000.png  \n")
    with caplog.at_level(logging.INFO, logger="training.data.splits"):
        train, val = split_from_lists(table, train_list, val_list)
    assert train.tolist() == [0, 3]
    assert val.tolist() == [1]
    assert "2 labelled image(s) are in neither list" in caplog.text


def test_split_from_lists_errors(tmp_path: Path) -> None:
    table = make_table([1, 1, 1])
    train_list, val_list = tmp_path / "train.txt", tmp_path / "val.txt"
    train_list.write_text("00000000_000.png\nghost.png\n")
    val_list.write_text("00000001_000.png\n")
    with pytest.raises(
        LabelTableError, match=r"1 image name\(s\) in .*train.txt are not in the label table: ghost.png"
    ):
        split_from_lists(table, train_list, val_list)
    train_list.write_text("00000000_000.png\n00000001_000.png\n")
    with pytest.raises(LabelTableError, match=r"in both .*: 00000001_000.png"):
        split_from_lists(table, train_list, val_list)
    with pytest.raises(LabelTableError, match="not found"):
        split_from_lists(table, train_list, tmp_path / "missing.txt")


def test_three_way_split_holds_out_test_patients_first() -> None:
    rng = np.random.default_rng(2)
    table = make_table(list(rng.integers(1, 4, size=40)))
    train, val, test = split_three_ways(table, 0.25, 0.1, seed=5)
    patients = [{table.patient_ids[i] for i in rows} for rows in (train, val, test)]
    assert [len(p) for p in patients] == [27, 9, 4]  # 10% of 40 for test, then 25% of the other 36 for val
    assert not (patients[0] & patients[1]) and not (patients[0] & patients[2]) and not (patients[1] & patients[2])
    assert len(train) + len(val) + len(test) == len(table)
    train2, val2, test2 = split_three_ways(table, 0.25, 0.0, seed=5)
    assert len(test2) == 0
    np.testing.assert_array_equal(np.concatenate([train2, val2]).size, len(table))


def test_official_split_follows_the_published_column() -> None:
    table = make_table([1, 1, 1, 1])
    table = LabelTable(table.image_names, table.patient_ids, table.targets, NIH_LABELS,
                       splits=("train", "validate", "test", "train"))  # fmt: skip
    train, val, test = split_official(table)
    assert (train.tolist(), val.tolist(), test.tolist()) == ([0, 3], [1], [2])
    with pytest.raises(LabelTableError, match="no published split"):
        split_official(make_table([1, 1]))
