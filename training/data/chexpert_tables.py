"""CheXpert (``train.csv`` / ``valid.csv``, v1.0 and v1.0-small) and MIMIC-CXR-JPG label tables; 14 CheXpert labels.

CheXpert: ``Path`` is ``CheXpert-v1.0[-small]/{train|valid}/patientNNNNN/studyN/viewN_{frontal|lateral}.jpg``; the
``CheXpert-v1.0[-small]/`` prefix is dropped, so ``--images`` is the folder holding ``train/`` and ``valid/``. The
patient is the ``patientNNNNN`` folder, the study ``patientNNNNN/studyN``. Views from ``Frontal/Lateral`` and ``AP/PA``.

MIMIC-CXR-JPG: the per-study labeler table (``mimic-cxr-2.0.0-chexpert.csv(.gz)`` or ``-negbio``: ``subject_id,
study_id`` + the 14 labels) joined with ``*-metadata.csv(.gz)`` (``dicom_id``, ``ViewPosition``) and
``*-split.csv(.gz)`` (``dicom_id``, ``split``) found beside it, to one row per image at
``files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg``. The patient is ``subject_id``; the study ``study_id``; the published
split is kept per row. An image without a ViewPosition is kept only by ``--views all`` (its view is unknown).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from models.labels import CHEXPERT_LABELS
from training.data.label_policies import apply_no_finding_rule, apply_policy
from training.data.label_tables import (
    LabelTable,
    LabelTableError,
    TableOptions,
    image_names_from,
    label_codes,
    line_of,
    name_some,
    read_csv_frame,
    require_columns,
)

logger = logging.getLogger(__name__)

CHEXPERT_PATH: Final = "Path"
FRONTAL_LATERAL: Final = "Frontal/Lateral"
AP_PA: Final = "AP/PA"
VIEWS: Final = ("frontal", "pa", "ap", "lateral", "all")
_PREFIX = re.compile(r"^CheXpert-v1\.0(-small)?/")
_PATIENT_STUDY = re.compile(r"(?:^|/)(patient\d+)/(study\d+)/")
MIMIC_VIEWS: Final = {"frontal": {"PA", "AP"}, "pa": {"PA"}, "ap": {"AP"}, "lateral": {"LATERAL", "LL"}}


def _keep_chexpert_view(frame: pd.DataFrame, views: str) -> np.ndarray:
    if views == "all":
        return np.ones(len(frame), dtype=bool)
    side = frame[FRONTAL_LATERAL].str.strip().str.lower().to_numpy()
    projection = frame[AP_PA].str.strip().str.upper().to_numpy()
    if views == "frontal":
        return np.asarray(side == "frontal")
    if views == "lateral":
        return np.asarray(side == "lateral")
    return np.asarray((side == "frontal") & (projection == views.upper()))


def _finish(frame: pd.DataFrame, path: Path, options: TableOptions, kind: str) -> tuple[np.ndarray, dict[str, str]]:
    codes = label_codes(frame, CHEXPERT_LABELS, path)
    apply_no_finding_rule(codes, CHEXPERT_LABELS)
    return apply_policy(codes, options.policy, kind), options.policy.describe(kind)


def parse_chexpert(frame: pd.DataFrame, path: Path, options: TableOptions) -> LabelTable:
    require_columns(
        frame, (CHEXPERT_PATH, FRONTAL_LATERAL, AP_PA, *CHEXPERT_LABELS), path, "a CheXpert train.csv / valid.csv"
    )
    if options.views not in VIEWS:
        raise LabelTableError(f"--views must be one of {', '.join(VIEWS)}, got {options.views!r}")
    raw = image_names_from(frame, CHEXPERT_PATH, path)
    patients, studies, bad = [], [], []
    for row, name in enumerate(raw):
        match = _PATIENT_STUDY.search(name)
        if match is None:
            bad.append(f"line {line_of(row)}, column {CHEXPERT_PATH!r}: {name!r}")
            continue
        patients.append(match.group(1))
        studies.append(f"{match.group(1)}/{match.group(2)}")
    if bad:
        raise LabelTableError(f"{path}: a CheXpert Path names .../patientNNNNN/studyN/viewN_*.jpg: {name_some(bad)}")
    targets, policy = _finish(frame, path, options, "chexpert")
    keep = _keep_chexpert_view(frame, options.views)
    logger.info("CheXpert views %s: kept %d of %d images", options.views, int(keep.sum()), len(raw))
    names = tuple(_PREFIX.sub("", name) for name in raw)
    table = LabelTable(
        names,
        tuple(patients),
        targets,
        CHEXPERT_LABELS,
        study_ids=tuple(studies),
        patient_source="the patientNNNNN folder of each Path",
        kind="chexpert",
        policy={**policy, "views": options.views},
    )
    return table.subset(np.flatnonzero(keep))


def _beside(path: Path, suffix: str) -> Path:
    """The one ``*-{suffix}.csv`` or ``.csv.gz`` in the labels table's folder."""
    found = sorted(p for p in path.parent.glob(f"*{suffix}.csv*") if p.name.endswith((".csv", ".csv.gz")))
    if len(found) != 1:
        raise LabelTableError(
            f"a MIMIC-CXR-JPG labels table needs exactly one *{suffix}.csv(.gz) beside it "
            f"(mimic-cxr-2.0.0{suffix}.csv.gz); found {len(found)} in {path.parent}"
        )
    return found[0]


def _ids(frame: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = frame[column].astype(str).str.strip()
    wrong = np.flatnonzero(~values.str.fullmatch(r"\d+").to_numpy())
    bad = [f"line {line_of(int(i))}, column {column!r}: {values.iloc[i]!r}" for i in wrong]
    if bad:
        raise LabelTableError(f"{path}: {column} must be a number: {name_some(bad)}")
    return values


def parse_mimic(frame: pd.DataFrame, path: Path, options: TableOptions) -> LabelTable:
    require_columns(frame, ("subject_id", "study_id", *CHEXPERT_LABELS), path, "a MIMIC-CXR-JPG labeler table")
    if options.views not in VIEWS:
        raise LabelTableError(f"--views must be one of {', '.join(VIEWS)}, got {options.views!r}")
    label_codes(frame, CHEXPERT_LABELS, path)  # a malformed cell is named by its line in this file, before the join
    meta_path, split_path = _beside(path, "-metadata"), _beside(path, "-split")
    meta, split = read_csv_frame(meta_path), read_csv_frame(split_path)
    require_columns(meta, ("dicom_id", "subject_id", "study_id", "ViewPosition"), meta_path, "MIMIC-CXR metadata")
    require_columns(split, ("dicom_id", "split"), split_path, "a MIMIC-CXR split table")
    labels = frame.assign(subject_id=_ids(frame, "subject_id", path), study_id=_ids(frame, "study_id", path))
    repeated = labels.duplicated(["subject_id", "study_id"])
    if repeated.any():
        rows = [f"line {line_of(int(i))}" for i in np.flatnonzero(repeated.to_numpy())]
        raise LabelTableError(f"{path}: a study is listed twice, at {name_some(rows)}")
    meta = meta.assign(subject_id=_ids(meta, "subject_id", meta_path), study_id=_ids(meta, "study_id", meta_path))
    images = meta.merge(split[["dicom_id", "split"]].drop_duplicates("dicom_id"), on="dicom_id", how="left")
    no_split = int((images["split"].isna()).sum())
    joined = images.merge(labels, on=["subject_id", "study_id"], how="inner")
    unlabelled = len(images) - len(joined)
    view = joined["ViewPosition"].str.strip().str.upper()
    keep = np.ones(len(joined), dtype=bool) if options.views == "all" else view.isin(MIMIC_VIEWS[options.views])
    logger.info(
        "MIMIC-CXR: %d images in the metadata, %d without a labelled study, %d without a split entry, %d without a "
        "ViewPosition (kept only by --views all); views %s kept %d",
        len(images),
        unlabelled,
        no_split,
        int((view == "").sum()),
        options.views,
        int(np.sum(keep)),
    )
    joined = joined[np.asarray(keep)].reset_index(drop=True)
    joined["split"] = joined["split"].fillna("")
    names = tuple(
        f"files/p{s[:2]}/p{s}/s{t}/{d.strip()}.jpg"
        for s, t, d in zip(joined["subject_id"], joined["study_id"], joined["dicom_id"], strict=True)
    )
    codes = label_codes(joined, CHEXPERT_LABELS, path)
    apply_no_finding_rule(codes, CHEXPERT_LABELS)
    return LabelTable(
        names,
        tuple(joined["subject_id"]),
        apply_policy(codes, options.policy, "mimic"),
        CHEXPERT_LABELS,
        study_ids=tuple(joined["study_id"]),
        splits=tuple(joined["split"]),
        patient_source="subject_id (pSUBJECT folder)",
        kind="mimic",
        policy={**options.policy.describe("mimic"), "views": options.views},
    )
