"""Training data from one or several label tables: the ``--data KIND:LABELS:IMAGES`` option, the run's label set
(the union of the tables' labels aligned by ``models.labels.label_key``, or ``--label-set NAME|FILE``), and each
table's targets aligned to it (NaN, unknown, where a table lacks a label).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.labels import KNOWN_LABEL_SETS, LabelSetError, align_labels, label_key, validate_labels
from training.data.label_tables import FORMATS, LabelTable, LabelTableError


class DataOptionError(ValueError):
    """A ``--data`` or ``--label-set`` value cannot be used; the message says which and why."""


@dataclass(frozen=True)
class DataSource:
    """One label table and its image folder; ``kind`` None means the format is detected from the header."""

    kind: str | None
    labels: Path
    images: Path

    def describe(self) -> str:
        return f"{self.kind or 'auto'}:{self.labels.name}:{self.images.name}"


def parse_data_option(text: str) -> DataSource:
    """``KIND:LABELS:IMAGES`` (KIND one of ``FORMATS`` or ``auto``) -> a ``DataSource``; raises DataOptionError."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise DataOptionError(f"--data {text!r}: expected KIND:LABELS:IMAGES, e.g. chexpert:train.csv:CheXpert-v1.0")
    kind, labels, images = parts
    if kind not in (*FORMATS, "auto"):
        raise DataOptionError(f"--data {text!r}: KIND must be one of auto, {', '.join(FORMATS)}")
    return DataSource(None if kind == "auto" else kind, Path(labels), Path(images))


def dataset_names(sources: Sequence[DataSource], kinds: Sequence[str]) -> tuple[str, ...]:
    """A short unique name per source for metrics.csv columns and folders: its format, numbered when repeated."""
    names = []
    for index, kind in enumerate(kinds):
        repeated = sum(k == kind for k in kinds) > 1
        names.append(f"{kind}{index + 1}" if repeated else kind)
    return tuple(names)


def union_labels(tables: Sequence[LabelTable]) -> tuple[str, ...]:
    """Every table's labels, in order of first appearance, one per ``label_key`` (the first spelling wins)."""
    seen: dict[str, str] = {}
    for table in tables:
        for name in table.labels:
            seen.setdefault(label_key(name), name)
    return validate_labels(list(seen.values()))


def resolve_label_set(spec: str | None, tables: Sequence[LabelTable]) -> tuple[str, ...]:
    """``--label-set``: None -> the union; a known set's name (``nih``, ``chexpert``, ``mimic``); or a file with one
    label a line. Raises DataOptionError for an invalid set or one no table has any label of."""
    if spec is None:
        return union_labels(tables)
    if spec in KNOWN_LABEL_SETS:
        labels = KNOWN_LABEL_SETS[spec]
    else:
        path = Path(spec)
        if not path.is_file():
            raise DataOptionError(
                f"--label-set {spec!r} is neither a known set ({', '.join(KNOWN_LABEL_SETS)}) nor a file"
            )
        labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    try:
        labels = validate_labels(list(labels))
    except LabelSetError as exc:
        raise DataOptionError(f"--label-set {spec}: {exc}") from exc
    covered = set().union(*(align_labels(t.labels, labels) for t in tables)) if tables else set()
    if not covered:
        raise DataOptionError(f"--label-set {spec}: no table has any of its labels")
    return labels


def aligned_targets(table: LabelTable, labels: Sequence[str]) -> np.ndarray:
    """(N, len(labels)) float32: the table's column for each label it names (by ``label_key``), NaN elsewhere."""
    try:
        mapping = align_labels(table.labels, labels)
    except LabelSetError as exc:
        raise LabelTableError(f"the {table.kind} table's labels cannot be aligned: {exc}") from exc
    out = np.full((len(table), len(labels)), np.nan, dtype=np.float32)
    for target, source in mapping.items():
        out[:, target] = table.targets[:, source]
    return out
