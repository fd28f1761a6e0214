"""Label tables: NIH ``Data_Entry_2017`` CSVs or the seed tutorial's one-hot CSV -> one ``LabelTable``.

Two formats are detected from the header:

* NIH: ``Image Index``, ``Finding Labels`` (pipe-separated, ``No Finding`` = all zero), ``Patient ID``.
* seed: ``image_path`` plus the 14 pathology columns holding 0/1.

Labels are matched exactly in NIH's spelling (``Pleural_Thickening``), ignoring surrounding whitespace.
Every problem raises ``LabelTableError`` with the first offenders named (file line numbers count the
header as line 1), so a bad table fails before any training or evaluation starts.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.labels import NO_FINDING, PATHOLOGIES, suggest_label

logger = logging.getLogger(__name__)

NIH_IMAGE = "Image Index"
NIH_FINDINGS = "Finding Labels"
NIH_PATIENT = "Patient ID"
SEED_IMAGE = "image_path"
SEED_PATIENT_COLUMNS = ("patient_id", "Patient ID")
MAX_NAMED = 5
_NIH_FILE_NAME = re.compile(r"^(\d{8})_\d{3}\.[A-Za-z0-9]+$")
_LABEL_INDEX = {name: i for i, name in enumerate(PATHOLOGIES)}


class LabelTableError(ValueError):
    """A label table (or a list of image names) is unreadable, malformed, or does not match the images."""


@dataclass(frozen=True, eq=False)
class LabelTable:
    """One row per image: its name (relative to the image folder), its patient, and 14 targets in {0, 1}."""

    image_names: tuple[str, ...]
    patient_ids: tuple[str, ...]
    targets: np.ndarray  # (N, 14) float32, columns in PATHOLOGIES order

    def __post_init__(self) -> None:
        n = len(self.image_names)
        if len(self.patient_ids) != n or self.targets.shape != (n, len(PATHOLOGIES)):
            raise ValueError(
                f"inconsistent label table: {n} names, {len(self.patient_ids)} patient ids, "
                f"targets of shape {self.targets.shape} (expected ({n}, {len(PATHOLOGIES)}))"
            )

    def __len__(self) -> int:
        return len(self.image_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """The rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return LabelTable(
            image_names=tuple(self.image_names[i] for i in idx),
            patient_ids=tuple(self.patient_ids[i] for i in idx),
            targets=np.ascontiguousarray(self.targets[idx], dtype=np.float32),
        )

    def positives(self) -> dict[str, int]:
        """Positive count per pathology."""
        return {name: int(count) for name, count in zip(PATHOLOGIES, self.targets.sum(axis=0), strict=True)}


def _line(row: int) -> int:
    """0-based data row -> 1-based file line (the header is line 1)."""
    return row + 2


def _name_some(items: Sequence[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" (and {total - MAX_NAMED} more; {total} in all)" if total > MAX_NAMED else "")


def _suggest(label: str) -> str:
    """' (did you mean 'X'?)' for a near miss of a known label, else ''."""
    close = suggest_label(label, (*PATHOLOGIES, NO_FINDING))
    return f" (did you mean {close!r}?)" if close else ""


def patient_from_name(image_name: str) -> str:
    """NIH file names carry the patient: ``00000075_000.png`` -> ``00000075``; other names stand for themselves."""
    match = _NIH_FILE_NAME.match(Path(image_name).name)
    return match.group(1) if match else image_name


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise LabelTableError(f"label table not found: {path}")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise LabelTableError(f"label table {path} is empty (no header, no rows)") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise LabelTableError(f"label table {path} could not be read as CSV: {exc}") from exc
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _image_names(frame: pd.DataFrame, column: str, path: Path) -> tuple[str, ...]:
    names = tuple(str(value).strip() for value in frame[column].tolist())
    empty = [f"line {_line(i)}" for i, name in enumerate(names) if not name]
    if empty:
        raise LabelTableError(f"{path}: empty {column!r} at {_name_some(empty)}")
    first_row: dict[str, int] = {}
    duplicates: list[str] = []
    for row, name in enumerate(names):
        if name in first_row:
            duplicates.append(f"{name!r} at line {_line(row)} (first at line {_line(first_row[name])})")
        else:
            first_row[name] = row
    if duplicates:
        raise LabelTableError(f"{path}: duplicate image names in {column!r}: {_name_some(duplicates)}")
    return names


def _parse_nih(frame: pd.DataFrame, path: Path) -> LabelTable:
    missing = [column for column in (NIH_IMAGE, NIH_FINDINGS) if column not in frame.columns]
    if missing:
        raise LabelTableError(
            f"{path} looks like an NIH Data_Entry_2017 table but lacks column(s) {missing}; "
            f"the NIH format needs {[NIH_IMAGE, NIH_FINDINGS, NIH_PATIENT]}"
        )
    names = _image_names(frame, NIH_IMAGE, path)
    targets = np.zeros((len(names), len(PATHOLOGIES)), dtype=np.float32)
    problems: list[str] = []
    n_problem_rows = 0
    for row, cell in enumerate(frame[NIH_FINDINGS].tolist()):
        labels = [token.strip() for token in str(cell).split("|")]
        row_problems: list[str] = []
        for label in labels:
            index = _LABEL_INDEX.get(label)
            if index is not None:
                targets[row, index] = 1.0
            elif label == NO_FINDING:
                if len(labels) > 1:
                    row_problems.append(f"{NO_FINDING!r} together with other labels at line {_line(row)}")
            else:
                row_problems.append(f"unknown label {label!r} at line {_line(row)}{_suggest(label)}")
        if row_problems:
            n_problem_rows += 1
            problems.extend(row_problems)
    if problems:
        raise LabelTableError(
            f"{path}: bad {NIH_FINDINGS!r} in {n_problem_rows} row(s): {_name_some(problems)}. "
            f"Labels are pipe-separated, spelled as NIH does: {', '.join(PATHOLOGIES)}, or {NO_FINDING!r}"
        )
    if NIH_PATIENT in frame.columns:
        raw = [str(value).strip() for value in frame[NIH_PATIENT].tolist()]
        patients = tuple(pid if pid else patient_from_name(name) for pid, name in zip(raw, names, strict=True))
    else:
        logger.warning("%s has no %r column; patients are taken from the NIH file names", path, NIH_PATIENT)
        patients = tuple(patient_from_name(name) for name in names)
    return LabelTable(image_names=names, patient_ids=patients, targets=targets)


def _parse_seed(frame: pd.DataFrame, path: Path) -> LabelTable:
    missing = [column for column in (SEED_IMAGE, *PATHOLOGIES) if column not in frame.columns]
    if missing:
        raise LabelTableError(
            f"{path} looks like a one-hot (seed format) table but lacks column(s) {missing}; "
            f"the one-hot format needs {SEED_IMAGE!r} and the 14 columns {list(PATHOLOGIES)} holding 0/1"
        )
    names = _image_names(frame, SEED_IMAGE, path)
    targets = np.zeros((len(names), len(PATHOLOGIES)), dtype=np.float32)
    bad: list[str] = []
    for col, pathology in enumerate(PATHOLOGIES):
        raw = frame[pathology].astype(str).str.strip()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        ok = (values == 0.0) | (values == 1.0)
        for row in np.flatnonzero(~ok)[:MAX_NAMED]:
            bad.append(f"{pathology}={raw.iloc[row]!r} at line {_line(int(row))}")
        targets[:, col] = np.where(ok, values, 0.0)
    if bad:
        raise LabelTableError(f"{path}: one-hot label values must be 0 or 1: {_name_some(bad)}")
    patient_column = next((c for c in SEED_PATIENT_COLUMNS if c in frame.columns), None)
    if patient_column is not None:
        raw_ids = [str(value).strip() for value in frame[patient_column].tolist()]
        patients = tuple(pid if pid else patient_from_name(name) for pid, name in zip(raw_ids, names, strict=True))
    else:
        patients = tuple(patient_from_name(name) for name in names)
    return LabelTable(image_names=names, patient_ids=patients, targets=targets)


def read_label_table(path: str | Path) -> LabelTable:
    """Read an NIH ``Data_Entry_2017`` or seed one-hot CSV (optionally gzipped) into a ``LabelTable``."""
    path = Path(path)
    frame = _read_csv(path)
    columns = set(frame.columns)
    if NIH_FINDINGS in columns or (NIH_IMAGE in columns and SEED_IMAGE not in columns):
        table = _parse_nih(frame, path)
        kind = "NIH"
    elif SEED_IMAGE in columns or columns & set(PATHOLOGIES):
        table = _parse_seed(frame, path)
        kind = "one-hot"
    else:
        raise LabelTableError(
            f"{path} is in neither known format: expected NIH columns {[NIH_IMAGE, NIH_FINDINGS, NIH_PATIENT]} "
            f"or one-hot columns [{SEED_IMAGE!r}, <the 14 pathologies>]; found {sorted(columns)[:20]}"
        )
    if len(table) == 0:
        raise LabelTableError(f"label table {path} has a header but no rows")
    logger.info(
        "read %d labelled images of %d patients from %s (%s format)",
        len(table),
        len(set(table.patient_ids)),
        path,
        kind,
    )
    return table


def check_images_exist(table: LabelTable, image_dir: Path) -> None:
    """Raise ``LabelTableError`` naming the first missing image files (and how many are missing)."""
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise LabelTableError(f"image folder not found: {image_dir}")
    missing = [name for name in table.image_names if not (image_dir / name).is_file()]
    if missing:
        raise LabelTableError(
            f"{len(missing)} of {len(table)} labelled images are missing from {image_dir}: {_name_some(missing)}"
        )
