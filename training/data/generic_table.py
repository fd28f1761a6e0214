"""A generic label table: ``--image-column NAME`` names the images; every other column is a label holding 1, 0, -1
(uncertain) or blank, except ``--patient-column`` (the patient) and ``study_id`` (kept as the study when present).

Patients come from ``--patient-column``, else from ``--patient-pattern`` (a regular expression with one group,
searched in each image name: ``'(patient\\d+)/'``), else each image is its own patient, with a loud warning.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from training.data.label_policies import apply_policy
from training.data.label_tables import (
    LabelTable,
    LabelTableError,
    TableOptions,
    checked_labels,
    image_names_from,
    label_codes,
    line_of,
    name_some,
    require_columns,
)
from training.data.nih_tables import PER_IMAGE_WARNING

logger = logging.getLogger(__name__)

STUDY_COLUMN = "study_id"


def _pattern_patients(names: tuple[str, ...], pattern: str, path: Path) -> tuple[str, ...]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise LabelTableError(f"--patient-pattern {pattern!r} is not a regular expression: {exc}") from exc
    if compiled.groups != 1:
        raise LabelTableError(f"--patient-pattern {pattern!r} must have exactly one group (the patient)")
    patients, bad = [], []
    for row, name in enumerate(names):
        match = compiled.search(name)
        if match is None:
            bad.append(f"line {line_of(row)}: {name!r}")
        else:
            patients.append(match.group(1))
    if bad:
        raise LabelTableError(f"{path}: --patient-pattern {pattern!r} finds no patient in {name_some(bad)}")
    return tuple(patients)


def parse_generic(frame: pd.DataFrame, path: Path, options: TableOptions) -> LabelTable:
    if options.image_column is None:
        raise LabelTableError("--format generic needs --image-column (the column naming each image file)")
    keys = [options.image_column] + ([options.patient_column] if options.patient_column else [])
    require_columns(frame, keys, path, "a generic table")
    names = image_names_from(frame, options.image_column, path)
    columns = [c for c in frame.columns if c not in (*keys, STUDY_COLUMN)]
    if not columns:
        raise LabelTableError(f"{path}: no label columns besides {keys}")
    labels = checked_labels(columns, path)
    targets = apply_policy(label_codes(frame, columns, path), options.policy, "generic")
    if options.patient_column is not None:
        patients = tuple(str(v).strip() for v in frame[options.patient_column].tolist())
        empty = [f"line {line_of(i)}" for i, p in enumerate(patients) if not p]
        if empty:
            raise LabelTableError(f"{path}: empty {options.patient_column!r} at {name_some(empty)}")
        source = f"the {options.patient_column!r} column"
    elif options.patient_pattern is not None:
        patients = _pattern_patients(names, options.patient_pattern, path)
        source = f"the image names, by the pattern {options.patient_pattern!r}"
    else:
        logger.warning(PER_IMAGE_WARNING, path.name)
        patients, source = names, "nowhere: one patient per image (WARNING: a patient may be on both sides of a split)"
    studies = tuple(str(v).strip() for v in frame[STUDY_COLUMN].tolist()) if STUDY_COLUMN in frame.columns else None
    return LabelTable(
        names,
        patients,
        targets,
        labels,
        study_ids=studies,
        patient_source=source,
        kind="generic",
        policy=options.policy.describe("generic"),
    )
