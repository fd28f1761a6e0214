"""The results table of a batch scoring job: its rows, what it was made with, and the CSV journal.

Columns: ``Image Index`` (the file name), ``path`` (the input's key, see :mod:`training.batch_scoring.inputs`), one
probability per label, with an operating point one ``finding_LABEL`` per label (0/1), and ``error`` (empty, or the
decoder's reason the file could not be read: its probabilities are then empty). Beside the table, a JSON record of
what made it (:class:`TableRecord`): the model's SHA-256, labels and preprocessing, the operating point, the shard
and how many inputs it holds. A resume or a merge compares these before it reads a row.

The CSV journal is appended one batch at a time, each batch one ``write`` followed by ``fsync``, so that a crash
loses at most the batch in flight; a torn last record (a kill in the middle of a write) is found and cut when the
job is resumed (:func:`read_csv_rows`). Anything else that is not a row (a damaged header, a line changed in the
middle) is refused, never cut.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.files import write_bytes_atomically
from training.data.file_names import csv_file_name, original_file_name, visible_name

FORMAT = "chexnet-scores/1"
FINDING_PREFIX = "finding_"
RECORD_SUFFIX = ".chexnet.json"
FOLDER_RECORD = "_chexnet.json"  # a leading underscore: Parquet readers pass it over in a dataset folder


class ResultsTableError(ValueError):
    """A results table that cannot be resumed or merged; the text says why and what to do."""


@dataclass(frozen=True)
class TableRecord:
    """What made a results table: ``model_sha256``, ``labels`` (K), ``preprocessing`` (the checkpoint's spec as a
    dict), ``operating_point`` (or None), ``shard`` ("K/N"), ``inputs`` (files the shard holds), ``engine`` and the
    inference ``precision`` (fp32, bf16, fp16 or int8: ``chexnet predict --precision``); ``all_inputs`` and
    ``inputs_sha256`` describe the whole job's input list, so that a merge can refuse shards of different lists."""

    model_sha256: str
    labels: tuple[str, ...]
    preprocessing: dict[str, Any]
    operating_point: str | None
    shard: str
    inputs: int
    engine: str = "local"
    format: str = FORMAT
    precision: str = "fp32"
    all_inputs: int = 0  # inputs of the whole job, before sharding
    inputs_sha256: str = ""  # of the whole job's input keys (inputs_digest): shards of one job agree on it

    def columns(self) -> list[str]:
        findings = [FINDING_PREFIX + label for label in self.labels] if self.operating_point else []
        return ["Image Index", "path", *self.labels, *findings, "error"]

    def model_differences(self, other: TableRecord) -> list[str]:
        """The names of what differs in how the two tables' scores were made (empty: the same model and inputs)."""
        checks = {
            "model (sha256)": self.model_sha256 == other.model_sha256,
            "labels": self.labels == other.labels,
            "preprocessing": self.preprocessing == other.preprocessing,
            "operating point": self.operating_point == other.operating_point,
            "precision": self.precision == other.precision,
            "table format": self.format == other.format,
        }
        return [name for name, same in checks.items() if not same]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "labels": list(self.labels)}, indent=1, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> TableRecord:
        data = json.loads(text)
        data["labels"] = tuple(data["labels"])
        return TableRecord(**data)


@dataclass(frozen=True)
class ScoreRow:
    """One input's result: ``probs`` (K,) and ``findings`` (K,) or None; ``error`` empty when it was scored."""

    key: str
    name: str
    probs: tuple[float, ...] | None
    findings: tuple[int, ...] | None
    error: str = ""


def is_parquet(out: Path) -> bool:
    """Whether ``out`` names a Parquet table (a folder of part files: its name ends in ``.parquet``)."""
    return out.suffix.lower() == ".parquet"


def inputs_digest(keys: Sequence[str]) -> str:
    """SHA-256 (hex) of the sorted input keys, one per line, UTF-8 (surrogate escapes kept): the job's list, in any
    order."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def record_path(out: Path) -> Path:
    """Where the record of ``out`` lives: ``OUT/_chexnet.json`` in a Parquet folder, ``OUT.chexnet.json`` beside a
    CSV file."""
    if is_parquet(out):
        return out / FOLDER_RECORD
    return out.with_name(out.name + RECORD_SUFFIX)


def read_record(out: Path) -> TableRecord:
    """The record beside ``out``; ResultsTableError when there is none or it cannot be read."""
    path = record_path(out)
    try:
        return TableRecord.from_json(path.read_text("utf-8"))
    except FileNotFoundError:
        raise ResultsTableError(
            f"{visible_name(out)} has no {path.name} beside it: it was not written by chexnet predict's batch mode"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ResultsTableError(f"cannot read {visible_name(path)} ({type(exc).__name__})") from None


def write_record(out: Path, record: TableRecord) -> None:
    write_bytes_atomically(record_path(out), record.to_json().encode("utf-8"))


def _number(value: float) -> str:
    return f"{value:.6f}"


def _csv_row(row: ScoreRow, record: TableRecord) -> list[str]:
    k = len(record.labels)
    probs = [_number(p) for p in row.probs] if row.probs is not None else [""] * k
    findings = [str(f) for f in row.findings] if row.findings is not None else [""] * k
    return [
        csv_file_name(row.name),
        csv_file_name(row.key),
        *probs,
        *(findings if record.operating_point else []),
        row.error,
    ]


def csv_bytes(rows: Sequence[ScoreRow], record: TableRecord, header: bool = False) -> bytes:
    """The CSV text of ``rows`` in ``record``'s columns, as UTF-8 bytes, after the header when ``header``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(record.columns())
    writer.writerows(_csv_row(row, record) for row in rows)
    return buffer.getvalue().encode("utf-8")


def _lines_with_offsets(data: bytes) -> Iterator[tuple[str, int]]:
    position = 0
    for line in data.splitlines(keepends=True):
        position += len(line)
        yield line.decode("utf-8", "surrogateescape"), position


def read_csv_rows(path: Path, record: TableRecord) -> tuple[list[ScoreRow], int]:
    """The whole records of a CSV journal and the byte length they fill.

    Only a torn *last* record is passed over (a kill during a batch's one ``write``: the bytes run to the end of the
    file without forming a whole record); it is not a row. Raises :class:`ResultsTableError` when the header is not
    ``record``'s columns, or when any earlier line is not a row of this table (the file was changed by something
    else): nothing is cut then, and the message names the line."""
    data = path.read_bytes()
    fed: list[int] = [0]

    def lines() -> Iterator[str]:
        for line, end in _lines_with_offsets(data):
            fed[0] = end
            yield line

    reader = csv.reader(lines(), strict=True)
    columns = record.columns()
    try:
        header = next(reader)
    except (StopIteration, csv.Error):
        header = []
    if header != columns or not data[: fed[0]].endswith(b"\n"):
        raise ResultsTableError(
            f"{visible_name(path)}: its first line is not the header of its record's columns; it was not written "
            "(or was changed since) by chexnet predict: write the job to a new --out"
        )
    rows: list[ScoreRow] = []
    whole, number = fed[0], 1
    while True:
        number += 1
        try:
            fields = next(reader)
        except StopIteration:
            return rows, whole
        except csv.Error:
            fields = None
        at_end = fed[0] == len(data)
        try:
            if fields is None or len(fields) != len(columns) or not data[: fed[0]].endswith(b"\n"):
                raise ValueError("not a whole row")
            rows.append(_score_row(fields, record))
            whole = fed[0]
        except ValueError:
            if at_end:  # the torn last record of a killed write
                return rows, whole
            raise ResultsTableError(
                f"{visible_name(path)}: record {number} is not a row of this table, and rows follow it: the file was "
                "changed by something other than chexnet predict; nothing was cut. Repair or remove that record, or "
                "write the job to a new --out"
            ) from None


def _score_row(fields: list[str], record: TableRecord) -> ScoreRow:
    k = len(record.labels)
    error = fields[-1]
    probs = None if error else tuple(float(v) for v in fields[2 : 2 + k])
    findings = tuple(int(v) for v in fields[2 + k : 2 + 2 * k]) if record.operating_point and not error else None
    return ScoreRow(original_file_name(fields[1]), original_file_name(fields[0]), probs, findings, error)


class CsvJournal:
    """A CSV results table appended one batch at a time: each batch one ``write`` + ``fsync`` (see the module)."""

    def __init__(self, path: Path, record: TableRecord) -> None:
        self.path, self.record = path, record
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    @staticmethod
    def start(path: Path, record: TableRecord) -> CsvJournal:
        """A new table: the record, then the header, each written atomically."""
        write_record(path, record)
        write_bytes_atomically(path, csv_bytes([], record, header=True))
        return CsvJournal(path, record)

    @staticmethod
    def resume(path: Path, record: TableRecord) -> tuple[CsvJournal, list[ScoreRow]]:
        """The table's whole rows, and a journal that appends after them (a torn last record is cut first)."""
        rows, whole = read_csv_rows(path, record)
        if whole < path.stat().st_size:
            os.truncate(path, whole)
        write_record(path, record)
        return CsvJournal(path, record), rows

    def append(self, rows: Sequence[ScoreRow]) -> None:
        data = memoryview(csv_bytes(rows, self.record))
        while data:
            written = os.write(self._fd, data)
            data = data[written:]
        os.fsync(self._fd)

    def close(self) -> None:
        os.close(self._fd)
