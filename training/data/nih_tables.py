"""NIH ChestX-ray14 tables: ``Data_Entry_2017`` and the seed tutorial's one-hot CSV; both use NIH's 14 labels.

* NIH: ``Image Index``, ``Finding Labels`` (pipe-separated, ``No Finding`` = all zero), ``Patient ID``. Every entry
  is known: a finding the text-mined labels do not list is 0.
* one-hot: ``image_path`` plus the 14 columns in NIH's spelling holding 1, 0, -1 (uncertain) or blank; patients from
  ``patient_id`` / ``Patient ID`` when present, else from NIH file names (``00000075_000.png``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from models.labels import NIH_LABELS, NO_FINDING, suggest_label
from training.data.label_policies import apply_policy
from training.data.label_tables import (
    LabelTable,
    LabelTableError,
    TableOptions,
    image_names_from,
    label_codes,
    line_of,
    name_some,
    require_columns,
)

logger = logging.getLogger(__name__)

NIH_IMAGE = "Image Index"
NIH_FINDINGS = "Finding Labels"
NIH_PATIENT = "Patient ID"
SEED_IMAGE = "image_path"
SEED_PATIENT_COLUMNS = ("patient_id", "Patient ID")
_NIH_FILE_NAME = re.compile(r"^(\d{8})_\d{3}\.[A-Za-z0-9]+$")
_LABEL_INDEX = {name: i for i, name in enumerate(NIH_LABELS)}
PER_IMAGE_WARNING = (
    "%s: no patient source (no patient column, and the file names are not NIH's): every image is its own patient, "
    "so one patient's images CAN END UP ON BOTH SIDES of the split; give a patient column"
)


def _suggest(label: str) -> str:
    close = suggest_label(label, (*NIH_LABELS, NO_FINDING))
    return f" (did you mean {close!r}?)" if close else ""


def patient_from_name(image_name: str) -> str:
    """NIH file names carry the patient: ``00000075_000.png`` -> ``00000075``; other names stand for themselves."""
    match = _NIH_FILE_NAME.match(Path(image_name).name)
    return match.group(1) if match else image_name


def _patients(
    frame: pd.DataFrame, column: str | None, names: tuple[str, ...], path: Path
) -> tuple[tuple[str, ...], str]:
    """Patient ids and where they came from: the column (blank cells from the file name), else the file names."""
    if column is not None:
        raw = [str(value).strip() for value in frame[column].tolist()]
        return tuple(p or patient_from_name(n) for p, n in zip(raw, names, strict=True)), f"the {column!r} column"
    patients = tuple(patient_from_name(name) for name in names)
    alone = sum(not _NIH_FILE_NAME.match(Path(name).name) for name in names)
    if not alone:
        return patients, "NIH file names (PPPPPPPP_NNN.png)"
    logger.warning(PER_IMAGE_WARNING, f"{path.name} ({alone} of {len(names)} images)")
    return patients, "NIH file names where they are NIH's, else one patient per image (WARNING: see the log)"


def parse_nih(frame: pd.DataFrame, path: Path, options: TableOptions) -> LabelTable:
    require_columns(frame, (NIH_IMAGE, NIH_FINDINGS), path, "an NIH Data_Entry_2017 table")
    names = image_names_from(frame, NIH_IMAGE, path)
    targets = np.zeros((len(names), len(NIH_LABELS)), dtype=np.float32)
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
                    row_problems.append(f"{NO_FINDING!r} together with other labels at line {line_of(row)}")
            else:
                row_problems.append(f"unknown label {label!r} at line {line_of(row)}{_suggest(label)}")
        if row_problems:
            n_problem_rows += 1
            problems.extend(row_problems)
    if problems:
        raise LabelTableError(
            f"{path}: bad {NIH_FINDINGS!r} (column) in {n_problem_rows} row(s): {name_some(problems)}. "
            f"Labels are pipe-separated, spelled as NIH does: {', '.join(NIH_LABELS)}, or {NO_FINDING!r}"
        )
    column = NIH_PATIENT if NIH_PATIENT in frame.columns else None
    patients, source = _patients(frame, column, names, path)
    return LabelTable(names, patients, targets, NIH_LABELS, patient_source=source, kind="nih", policy={})


def parse_onehot(frame: pd.DataFrame, path: Path, options: TableOptions) -> LabelTable:
    require_columns(
        frame, (SEED_IMAGE, *NIH_LABELS), path, f"a one-hot (seed format) table ({SEED_IMAGE!r} + the 14 NIH labels)"
    )
    names = image_names_from(frame, SEED_IMAGE, path)
    codes = label_codes(frame, NIH_LABELS, path)
    targets = apply_policy(codes, options.policy, "onehot")
    column = next((c for c in SEED_PATIENT_COLUMNS if c in frame.columns), None)
    patients, source = _patients(frame, column, names, path)
    return LabelTable(
        names,
        patients,
        targets,
        NIH_LABELS,
        patient_source=source,
        kind="onehot",
        policy=options.policy.describe("onehot"),
    )
