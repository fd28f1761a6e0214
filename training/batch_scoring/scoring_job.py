"""One batch scoring job: its table opened (new, or resumed after the rows already in it), the inputs not yet
scored, each batch written whole as it is done.

A resume compares the table's record with this job's before it reads a row: another model (SHA-256), other labels,
preprocessing, operating point or shard is refused with a message (:class:`ResumeRefusedError`, exit status 2).
Rows already in the table are never rewritten; a row whose file could not be read counts as done (its ``error``
says why), so that a resume does not retry an archive's broken files for ever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from models.checkpoint import Checkpoint
from models.operating_points import OperatingPoints
from training.batch_scoring.inputs import ScoringInput
from training.batch_scoring.parquet_parts import ParquetParts
from training.batch_scoring.results_table import (
    CsvJournal,
    ScoreRow,
    TableRecord,
    is_parquet,
    read_record,
)
from training.data.dataset import DecodeFailure
from training.data.file_names import visible_name
from training.exit_status import UsageError
from training.scoring.inference import InferenceSettings, infer_probabilities

logger = logging.getLogger(__name__)


class ResumeRefusedError(UsageError):
    """``--resume`` of a table made another way (model, labels, preprocessing, operating point, shard)."""


class TableWriter(Protocol):
    def append(self, rows: Sequence[ScoreRow]) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OpenTable:
    """The writer of a job's table and the rows it already held (none for a new table)."""

    writer: TableWriter
    done: list[ScoreRow]


def open_table(out: Path, record: TableRecord, resume: bool) -> OpenTable:
    """Start ``out`` (which must not exist without ``resume``), or resume it after checking its record."""
    if not out.exists():
        writer: TableWriter = ParquetParts.start(out, record) if is_parquet(out) else CsvJournal.start(out, record)
        return OpenTable(writer, [])
    if not resume:
        raise UsageError(
            f"--out {visible_name(out)} exists: --resume continues it (rows already in it are kept), "
            "or remove it to start again"
        )
    before = read_record(out)
    differences = before.model_differences(record)
    if before.shard != record.shard:
        differences.append(f"shard ({before.shard}, now {record.shard})")
    if differences:
        raise ResumeRefusedError(
            f"--resume {visible_name(out)}: it was scored with another {', '.join(differences)}; "
            "write this job to a new --out"
        )
    if is_parquet(out):
        parts, rows = ParquetParts.resume(out, record)
        return OpenTable(parts, rows)
    journal, rows = CsvJournal.resume(out, record)
    return OpenTable(journal, rows)


def rows_to_score(inputs: Sequence[ScoringInput], done: Sequence[ScoreRow]) -> list[ScoringInput]:
    """The inputs whose key is not yet in the table, in their order."""
    keys = {row.key for row in done}
    return [item for item in inputs if item.key not in keys]


FindingsOf = Callable[[np.ndarray], np.ndarray]


def findings_function(points: OperatingPoints | None, name: str | None) -> FindingsOf | None:
    """(N, K) probabilities -> (N, K) 0/1 findings at the operating point ``name``, or None without one."""
    if points is None or name is None:
        return None

    def decide(probs: np.ndarray) -> np.ndarray:
        return np.array(
            [[int(d.above) for d in points.decide(row, name).values()] for row in probs], dtype=np.int64
        ).reshape(len(probs), -1)

    return decide


def batch_rows(
    items: Sequence[ScoringInput],
    positions: np.ndarray,
    probs: np.ndarray,
    failures: Sequence[DecodeFailure],
    findings: FindingsOf | None,
) -> list[ScoreRow]:
    """One batch's rows, in input order: ``probs`` (B, K) of the inputs at ``positions``, then the failures."""
    decided = findings(probs) if findings is not None and len(probs) else None
    rows = [
        ScoreRow(
            items[i].key,
            items[i].path.name,
            tuple(float(p) for p in probs[j]),
            tuple(int(v) for v in decided[j]) if decided is not None else None,
        )
        for j, i in enumerate(positions.tolist())
    ]
    rows.extend(ScoreRow(items[f.index].key, items[f.index].path.name, None, None, f.message) for f in failures)
    order = {item.key: n for n, item in enumerate(items)}
    return sorted(rows, key=lambda row: order[row.key])


def score_locally(
    checkpoint: Checkpoint,
    items: Sequence[ScoringInput],
    settings: InferenceSettings,
    writer: TableWriter,
    findings: FindingsOf | None,
) -> list[ScoreRow]:
    """Score ``items`` in this process through the shared inference step, writing each batch as it is done."""
    written: list[ScoreRow] = []

    def write(positions: np.ndarray, probs: np.ndarray, failures: list[DecodeFailure]) -> None:
        rows = batch_rows(items, positions, probs, failures, findings)
        if rows:
            writer.append(rows)
            written.extend(rows)

    if items:
        infer_probabilities(checkpoint, [item.path for item in items], settings, on_batch=write)
    return written
