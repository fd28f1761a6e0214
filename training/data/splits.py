"""Train/validation splits that never put one patient on both sides.

``split_by_patient`` draws whole patients at random (seeded); ``split_from_lists`` follows NIH's
``train_val_list.txt`` / ``test_list.txt`` style files (one image name per line).

``python -m training.data.splits --labels CSV --val-fraction F --seed S --out DIR`` writes the lists that ``chexnet
train`` with those options writes (``DIR/train_list.txt``, ``DIR/val_list.txt``), without training: for
``chexnet evaluate`` or ``calibrate`` on a run's validation split when the run folder is gone.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from training.data.file_names import visible_name
from training.data.label_tables import MAX_NAMED, LabelTable, LabelTableError, read_label_table

logger = logging.getLogger(__name__)


def split_by_patient(table: LabelTable, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) row indices; ``round(val_fraction * n_patients)`` patients (>= 1, < all) go to val."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    patients, inverse = np.unique(np.asarray(table.patient_ids, dtype=object).astype(str), return_inverse=True)
    n_patients = len(patients)
    if n_patients < 2:
        raise LabelTableError(f"cannot split {len(table)} images of {n_patients} patient(s) by patient: need >= 2")
    n_val = min(max(round(val_fraction * n_patients), 1), n_patients - 1)
    order = np.random.default_rng(seed).permutation(n_patients)
    is_val_patient = np.zeros(n_patients, dtype=bool)
    is_val_patient[order[:n_val]] = True
    is_val = is_val_patient[inverse.reshape(-1)]
    train, val = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    logger.info(
        "patient split (seed %d): %d train images / %d patients, %d val images / %d patients",
        seed,
        len(train),
        n_patients - n_val,
        len(val),
        n_val,
    )
    return train.astype(np.int64), val.astype(np.int64)


def read_name_list(path: Path) -> list[str]:
    """Image names, one a line; a UTF-8 byte-order mark (as Windows editors save) ignored, blank lines skipped,
    surrounding whitespace ignored, repeats dropped."""
    path = Path(path)
    if not path.is_file():
        raise LabelTableError(f"image list not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelTableError(f"image list {path} could not be read: {exc}") from exc
    names = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if not names:
        raise LabelTableError(f"image list {path} names no images")
    return names


def indices_of(table: LabelTable, names: list[str], source: Path) -> np.ndarray:
    """Sorted row indices of ``names`` in ``table``; names the table lacks raise ``LabelTableError``."""
    position = {name: i for i, name in enumerate(table.image_names)}
    missing = [name for name in names if name not in position]
    if missing:
        shown = ", ".join(visible_name(name) for name in missing[:MAX_NAMED])  # a stray mark shows as \ufeff
        raise LabelTableError(
            f"{len(missing)} image name(s) in {source} are not in the label table: {shown}"
            + (" ..." if len(missing) > MAX_NAMED else "")
        )
    return np.sort(np.fromiter((position[name] for name in names), dtype=np.int64, count=len(names)))


def split_from_lists(table: LabelTable, train_list: Path, val_list: Path) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) row indices from two name lists; a name in both, or unknown to the table, is an error."""
    train_names, val_names = read_name_list(train_list), read_name_list(val_list)
    both = sorted(set(train_names) & set(val_names))
    if both:
        raise LabelTableError(
            f"{len(both)} image name(s) are in both {train_list} and {val_list}: {', '.join(both[:MAX_NAMED])}"
        )
    train, val = indices_of(table, train_names, train_list), indices_of(table, val_names, val_list)
    left_out = len(table) - len(train) - len(val)
    if left_out:
        logger.info("%d labelled image(s) are in neither list and are left out", left_out)
    train_patients = {table.patient_ids[i] for i in train}
    shared = sorted(train_patients & {table.patient_ids[i] for i in val})
    if shared:
        logger.warning(
            "%d patient(s) have images in both lists (e.g. %s): validation is not patient-disjoint",
            len(shared),
            ", ".join(shared[:MAX_NAMED]),
        )
    logger.info("list split: %d train images, %d val images", len(train), len(val))
    return train, val


def split_three_ways(
    table: LabelTable, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, val, test) row indices by patient: ``round(test_fraction * n_patients)`` patients (>= 1 when
    the fraction is > 0) are held out first for test, then :func:`split_by_patient` splits the rest. A fraction of
    0 gives an empty test split."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    if test_fraction == 0.0:
        train, val = split_by_patient(table, val_fraction, seed)
        return train, val, np.empty(0, dtype=np.int64)
    patients, inverse = np.unique(np.asarray(table.patient_ids, dtype=object).astype(str), return_inverse=True)
    if len(patients) < 3:
        raise LabelTableError(f"cannot split {len(patients)} patient(s) three ways by patient: need >= 3")
    n_test = min(max(round(test_fraction * len(patients)), 1), len(patients) - 2)
    order = np.random.default_rng([seed, 1]).permutation(len(patients))
    is_test = np.isin(inverse.reshape(-1), order[:n_test])
    rest = np.flatnonzero(~is_test)
    train, val = split_by_patient(table.subset(rest), val_fraction, seed)
    logger.info(
        "test split: %d images of %d patients, never used for model or threshold selection", int(is_test.sum()), n_test
    )
    return rest[train], rest[val], np.flatnonzero(is_test).astype(np.int64)


def split_official(table: LabelTable) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted (train, val, test) row indices from a table's published split ("train", "validate", "test")."""
    if table.splits is None:
        raise LabelTableError(f"the {table.kind} table has no published split")
    splits = np.asarray(table.splits, dtype=object)
    parts = tuple(np.flatnonzero(splits == name).astype(np.int64) for name in ("train", "validate", "test"))
    if not len(parts[0]) or not len(parts[1]):
        raise LabelTableError("the published split leaves the training or the validation split empty")
    logger.info("published split: %d train, %d validate, %d test images", *(len(p) for p in parts))
    return parts[0], parts[1], parts[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="write the patient split that chexnet train would use")
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="folder for train_list.txt and val_list.txt")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    table = read_label_table(args.labels)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rows in zip(
        ("train_list.txt", "val_list.txt"), split_by_patient(table, args.val_fraction, args.seed), strict=True
    ):
        (args.out / name).write_text("".join(f"{table.image_names[i]}\n" for i in rows))


if __name__ == "__main__":
    main()
