"""Label tables: one ``LabelTable`` from any known format, detected from the header or named with ``format``.

A table carries its own label tuple (born here, carried by the checkpoint), image names relative to the image
folder, patient ids (and study ids where the format knows them), and targets (N, K) float32 holding 1, 0 or NaN
(unknown). Formats (each documented in docs/datasets.md):

* ``nih``: ``Data_Entry_2017`` (``Image Index``, ``Finding Labels``, ``Patient ID``); NIH's 14 labels.
* ``onehot``: the seed tutorial's CSV, ``image_path`` plus the 14 NIH columns holding 1, 0, -1 or blank.
* ``chexpert``: CheXpert ``train.csv`` / ``valid.csv`` (v1.0 and v1.0-small).
* ``mimic``: MIMIC-CXR-JPG's per-study ``-chexpert`` or ``-negbio`` table, joined with its metadata and split tables.
* ``generic``: one column per label holding 1, 0, -1 or blank, with a named image column.

Every problem raises ``LabelTableError`` naming the file line (the header is line 1) and column, so a bad table
fails before any training or evaluation starts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from models.labels import LabelSetError, validate_labels
from training.data.label_policies import LabelPolicy

logger = logging.getLogger(__name__)

MAX_NAMED = 5
FORMATS = ("nih", "onehot", "chexpert", "mimic", "generic")


class LabelTableError(ValueError):
    """A label table (or a list of image names) is unreadable, malformed, or does not match the images."""


@dataclass(frozen=True, eq=False)
class LabelTable:
    """One row per image: its name (relative to the image folder), its patient, and K targets in {1, 0, NaN}.

    ``labels`` names the K target columns; ``study_ids`` is set where the format knows studies (CheXpert,
    MIMIC-CXR); ``splits`` holds a published split per row ("train", "validate", "test") where there is one;
    ``patient_source`` says in words where the patient ids came from; ``kind`` is the format's name.
    """

    image_names: tuple[str, ...]
    patient_ids: tuple[str, ...]
    targets: np.ndarray  # (N, K) float32: 1 positive, 0 negative, NaN unknown
    labels: tuple[str, ...]
    study_ids: tuple[str, ...] | None = None
    splits: tuple[str, ...] | None = None
    patient_source: str = "a patient column"
    kind: str = "nih"
    policy: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, k = len(self.image_names), len(self.labels)
        if len(self.patient_ids) != n or self.targets.shape != (n, k):
            raise ValueError(
                f"inconsistent label table: {n} names, {len(self.patient_ids)} patient ids, "
                f"targets of shape {self.targets.shape} (expected ({n}, {k}))"
            )
        for extra in (self.study_ids, self.splits):
            if extra is not None and len(extra) != n:
                raise ValueError(f"inconsistent label table: {n} names but {len(extra)} study ids or splits")

    def __len__(self) -> int:
        return len(self.image_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """The rows at ``indices``, in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)

        def pick(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
            return None if values is None else tuple(values[i] for i in idx)

        return replace(
            self,
            image_names=tuple(self.image_names[i] for i in idx),
            patient_ids=tuple(self.patient_ids[i] for i in idx),
            targets=np.ascontiguousarray(self.targets[idx], dtype=np.float32),
            study_ids=pick(self.study_ids),
            splits=pick(self.splits),
        )

    def positives(self) -> dict[str, int]:
        """Known positive count per label."""
        return {name: int(count) for name, count in zip(self.labels, np.nansum(self.targets, axis=0), strict=True)}

    def known(self) -> dict[str, int]:
        """Known (non-NaN) entries per label."""
        counts = np.isfinite(self.targets).sum(axis=0)
        return {name: int(count) for name, count in zip(self.labels, counts, strict=True)}


@dataclass(frozen=True)
class TableOptions:
    """How to read a table: its format (``None``: detect), the views kept, the label policy, and for the generic
    format the image, patient and study columns or a patient pattern (a regex with one group over the path)."""

    format: str | None = None
    views: str = "frontal"
    policy: LabelPolicy = field(default_factory=LabelPolicy)
    image_column: str | None = None
    patient_column: str | None = None
    patient_pattern: str | None = None


def line_of(row: int) -> int:
    """0-based data row -> 1-based file line (the header is line 1)."""
    return row + 2


def name_some(items: Sequence[str], total: int | None = None) -> str:
    total = len(items) if total is None else total
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" (and {total - MAX_NAMED} more; {total} in all)" if total > MAX_NAMED else "")


_name_some = name_some


def read_csv_frame(path: Path) -> pd.DataFrame:
    """A CSV (optionally gzipped) as strings, blanks kept as ''; header names stripped."""
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


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path, what: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise LabelTableError(f"{path} looks like {what} but lacks column(s) {missing}; {what} needs {list(columns)}")


def image_names_from(frame: pd.DataFrame, column: str, path: Path) -> tuple[str, ...]:
    """The column's stripped values; an empty or repeated name raises, naming its line."""
    names = tuple(str(value).strip() for value in frame[column].tolist())
    empty = [f"line {line_of(i)}" for i, name in enumerate(names) if not name]
    if empty:
        raise LabelTableError(f"{path}: empty {column!r} at {name_some(empty)}")
    first_row: dict[str, int] = {}
    duplicates: list[str] = []
    for row, name in enumerate(names):
        if name in first_row:
            duplicates.append(f"{name!r} at line {line_of(row)} (first at line {line_of(first_row[name])})")
        else:
            first_row[name] = row
    if duplicates:
        raise LabelTableError(f"{path}: duplicate image names in {column!r}: {name_some(duplicates)}")
    return names


def label_codes(frame: pd.DataFrame, columns: Sequence[str], path: Path, allow_uncertain: bool = True) -> np.ndarray:
    """The label cells as (N, K) float64 codes: 1, 0, -1 (uncertain) or NaN (blank). ``1``, ``1.0``, ``0``, ``-1.0``
    are accepted; anything else raises naming line, column and value."""
    codes = np.empty((len(frame), len(columns)), dtype=np.float64)
    bad: list[str] = []
    allowed = (1.0, 0.0, -1.0) if allow_uncertain else (1.0, 0.0)
    for k, column in enumerate(columns):
        raw = frame[column].astype(str).str.strip()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        blank = (raw == "").to_numpy()
        ok = blank | np.isin(values, allowed)
        for row in np.flatnonzero(~ok)[:MAX_NAMED]:
            bad.append(f"line {line_of(int(row))}, column {column!r}: {raw.iloc[row]!r}")
        codes[:, k] = np.where(blank, np.nan, values)
    if bad:
        words = "1, 0, -1 or blank" if allow_uncertain else "1 or 0"
        raise LabelTableError(f"{path}: label values must be {words}: {name_some(bad)}")
    return codes


def checked_labels(names: Sequence[str], path: Path) -> tuple[str, ...]:
    try:
        return validate_labels(list(names))
    except LabelSetError as exc:
        raise LabelTableError(f"{path}: its label columns cannot be a model's labels: {exc}") from exc


def detect_format(columns: Sequence[str], options: TableOptions) -> str | None:
    """The format a header belongs to, or None. Generic is never guessed: it needs ``--image-column``."""
    from training.data import chexpert_tables, nih_tables

    present = set(columns)
    if options.image_column is not None:
        return "generic"
    if nih_tables.NIH_FINDINGS in present:
        return "nih"
    if chexpert_tables.CHEXPERT_PATH in present:
        return "chexpert"
    if {"subject_id", "study_id"} <= present and "dicom_id" not in present:
        return "mimic"
    if nih_tables.SEED_IMAGE in present:
        return "onehot"
    if nih_tables.NIH_IMAGE in present:
        return "nih"
    return None


def read_label_table(path: str | Path, options: TableOptions | None = None) -> LabelTable:
    """Read a label table (optionally gzipped) in any known format into a ``LabelTable``.

    Raises ``LabelTableError`` for a table that matches no format (naming what was found and the formats known),
    or a malformed one (naming line and column).
    """
    from training.data import chexpert_tables, generic_table, nih_tables

    path = Path(path)
    options = options or TableOptions()
    frame = read_csv_frame(path)
    kind = options.format or detect_format(list(frame.columns), options)
    readers = {
        "nih": nih_tables.parse_nih,
        "onehot": nih_tables.parse_onehot,
        "chexpert": chexpert_tables.parse_chexpert,
        "mimic": chexpert_tables.parse_mimic,
        "generic": generic_table.parse_generic,
    }
    if kind not in readers:
        shown = ", ".join(repr(c) for c in list(frame.columns)[:12])
        raise LabelTableError(
            f"{path} matches no known label table format (found columns {shown}); formats known: "
            "nih (Image Index, Finding Labels, Patient ID), onehot (image_path + the 14 NIH labels), "
            "chexpert (Path, Frontal/Lateral, AP/PA, 14 CheXpert labels), mimic (subject_id, study_id, 14 CheXpert "
            "labels), generic (--format generic --image-column NAME: one column per label)"
        )
    table = readers[kind](frame, path, options)
    if len(table) == 0:
        raise LabelTableError(f"label table {path} has a header but no rows (or none left after the view filter)")
    logger.info(
        "read %d labelled images of %d patients (%s format; patients from %s)",
        len(table),
        len(set(table.patient_ids)),
        kind,
        table.patient_source,
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
            f"{len(missing)} of {len(table)} labelled images are missing from {image_dir}: {name_some(missing)}"
        )
