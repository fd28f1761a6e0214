"""Label tables in the published formats, written by the tests (no dataset file is committed).

Headers are CheXpert's train.csv (v1.0-small) and MIMIC-CXR-JPG 2.0.0's labeler, metadata and split tables
exactly as published (see docs/datasets.md).
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

from models.labels import CHEXPERT_LABELS

CHEXPERT_HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(CHEXPERT_LABELS)
MIMIC_LABELS_SORTED = sorted(CHEXPERT_LABELS)
MIMIC_LABEL_HEADER = "subject_id,study_id," + ",".join(MIMIC_LABELS_SORTED)
MIMIC_METADATA_HEADER = (
    "dicom_id,subject_id,study_id,PerformedProcedureStepDescription,ViewPosition,Rows,Columns,StudyDate,StudyTime,"
    "ProcedureCodeSequence_CodeMeaning,ViewCodeSequence_CodeMeaning,PatientOrientationCodeSequence_CodeMeaning"
)
MIMIC_SPLIT_HEADER = "dicom_id,study_id,subject_id,split"


def chexpert_row(path: str, side: str, projection: str, values: dict[str, str]) -> str:
    """One train.csv row; ``values`` maps label -> cell text ("1.0", "0.0", "-1.0"), others blank."""
    return ",".join([path, "Female", "68", side, projection, *(values.get(name, "") for name in CHEXPERT_LABELS)])


def write_chexpert(folder: Path, rows: Sequence[str], name: str = "train.csv") -> Path:
    path = folder / name
    path.write_text(CHEXPERT_HEADER + "\n" + "".join(row + "\n" for row in rows))
    return path


def mimic_label_row(subject: str, study: str, values: dict[str, str]) -> str:
    return ",".join([subject, study, *(values.get(name, "") for name in MIMIC_LABELS_SORTED)])


def write_gz(path: Path, header: str, rows: Sequence[str]) -> Path:
    with gzip.open(path, "wt") as handle:
        handle.write(header + "\n" + "".join(row + "\n" for row in rows))
    return path


def write_mimic(
    folder: Path,
    labels: Sequence[str],
    images: Sequence[tuple[str, str, str, str, str]],
    kind: str = "chexpert",
) -> Path:
    """``images``: (dicom_id, subject, study, ViewPosition, split); returns the labeler table's path."""
    folder.mkdir(parents=True, exist_ok=True)
    metadata = [f"{d},{s},{t},CHEST (PA AND LAT),{v},3056,2544,21800506,213014.531,Chest,postero-anterior,Erect"
                for d, s, t, v, _ in images]  # fmt: skip
    write_gz(folder / "mimic-cxr-2.0.0-metadata.csv.gz", MIMIC_METADATA_HEADER, metadata)
    write_gz(
        folder / "mimic-cxr-2.0.0-split.csv.gz", MIMIC_SPLIT_HEADER, [f"{d},{t},{s},{p}" for d, s, t, _, p in images]
    )
    return write_gz(folder / f"mimic-cxr-2.0.0-{kind}.csv.gz", MIMIC_LABEL_HEADER, labels)
