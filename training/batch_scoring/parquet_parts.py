"""A Parquet results table: a folder ``OUT.parquet`` of part files, each batch one part written to a hidden
temporary file, synced, then renamed into place, so a part is whole or absent. Needs pyarrow (``chexnet[parquet]``
or ``chexnet[ray]``); any Parquet reader reads the folder as one table (``pyarrow.parquet.read_table(OUT)``,
``pandas.read_parquet(OUT)``). The columns are those of :class:`TableRecord`: probabilities float32, findings int8,
names and ``error`` strings; a file that could not be read has null probabilities."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from models.files import write_atomically
from training.batch_scoring.results_table import FINDING_PREFIX, ScoreRow, TableRecord, write_record
from training.exit_status import UsageError

PART_PATTERN = re.compile(r"^part-(\d{8})\.parquet$")


def require_pyarrow(what: str) -> Any:
    """The ``pyarrow`` module; UsageError naming the extra when it is not installed."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise UsageError(f"{what} needs pyarrow: pip install 'chexnet[parquet]'") from None
    return pyarrow


def arrow_table(rows: Sequence[ScoreRow], record: TableRecord) -> Any:
    """``rows`` as a pyarrow Table in ``record``'s columns."""
    pa = require_pyarrow("Parquet output")
    columns: dict[str, Any] = {
        "Image Index": pa.array([r.name for r in rows], pa.string()),
        "path": pa.array([r.key for r in rows], pa.string()),
    }
    for j, label in enumerate(record.labels):
        columns[label] = pa.array([r.probs[j] if r.probs is not None else None for r in rows], pa.float32())
    if record.operating_point:
        for j, label in enumerate(record.labels):
            values = [r.findings[j] if r.findings is not None else None for r in rows]
            columns[FINDING_PREFIX + label] = pa.array(values, pa.int8())
    columns["error"] = pa.array([r.error for r in rows], pa.string())
    return pa.table(columns, metadata={"chexnet": record.to_json()})


def rows_of_table(table: Any, record: TableRecord) -> list[ScoreRow]:
    """A pyarrow Table in ``record``'s columns -> rows (probabilities as Python floats of the stored float32)."""
    data = table.to_pydict()
    rows = []
    for i in range(table.num_rows):
        error = data["error"][i] or ""
        probs = None if error else tuple(float(data[label][i]) for label in record.labels)
        findings = (
            tuple(int(data[FINDING_PREFIX + label][i]) for label in record.labels)
            if record.operating_point and not error
            else None
        )
        rows.append(ScoreRow(data["path"][i], data["Image Index"][i], probs, findings, error))
    return rows


def part_files(folder: Path) -> list[Path]:
    """The folder's whole part files, in the order they were written."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if PART_PATTERN.match(p.name))


def read_parts(folder: Path, record: TableRecord) -> list[ScoreRow]:
    """Every row of the folder's part files."""
    parquet = require_pyarrow("a Parquet table").parquet
    rows: list[ScoreRow] = []
    for part in part_files(folder):
        rows.extend(rows_of_table(parquet.read_table(part), record))
    return rows


class ParquetParts:
    """Appends batches to a Parquet folder, one part file each (see the module docstring)."""

    def __init__(self, folder: Path, record: TableRecord) -> None:
        self.folder, self.record = folder, record
        self.parquet: ModuleType = require_pyarrow("Parquet output").parquet
        existing = part_files(folder)
        self.next_part = int(PART_PATTERN.match(existing[-1].name).group(1)) + 1 if existing else 0  # type: ignore[union-attr]

    @staticmethod
    def start(folder: Path, record: TableRecord) -> ParquetParts:
        folder.mkdir(parents=True, exist_ok=True)
        write_record(folder, record)
        return ParquetParts(folder, record)

    @staticmethod
    def resume(folder: Path, record: TableRecord) -> tuple[ParquetParts, list[ScoreRow]]:
        """The rows already written and a writer that adds parts after them; leftover temporary files are removed."""
        for leftover in folder.glob(".part-*.tmp"):
            leftover.unlink(missing_ok=True)
        rows = read_parts(folder, record)
        write_record(folder, record)
        return ParquetParts(folder, record), rows

    def append(self, rows: Sequence[ScoreRow]) -> None:
        table = arrow_table(rows, self.record)
        target = self.folder / f"part-{self.next_part:08d}.parquet"
        write_atomically(target, lambda handle: self.parquet.write_table(table, handle))
        self.next_part += 1

    def close(self) -> None:
        return None


def write_single_part(folder: Path, rows: Sequence[ScoreRow], record: TableRecord) -> None:
    """A Parquet table of ``rows`` in one part (``merge``'s output): the record, then the part."""
    writer = ParquetParts.start(folder, record)
    for stale in part_files(folder):
        stale.unlink()
    writer.next_part = 0
    writer.append(rows)
