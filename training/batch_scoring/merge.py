"""``chexnet predict merge``: shard tables -> one table, refusing what would hide a lost or doubled row.

Refused with a message (:class:`ShardMergeError`, exit status 1): tables made with different models, labels,
preprocessing or operating points; shards of different counts N; the same shard twice; a missing shard; a shard
whose table holds fewer rows than the inputs its record counts (a job that has not finished: resume it); a key in
two tables. The merged table is sorted by ``path`` and written atomically (CSV) or as one part (Parquet), with a
record whose shard is ``1/1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from models.files import write_bytes_atomically
from training.batch_scoring.inputs import parse_shard
from training.batch_scoring.parquet_parts import read_parts, write_single_part
from training.batch_scoring.results_table import (
    ScoreRow,
    TableRecord,
    csv_bytes,
    is_parquet,
    read_csv_rows,
    read_record,
    write_record,
)
from training.data.file_names import visible_name
from training.exit_status import UsageError


class ShardMergeError(ValueError):
    """Shard tables that cannot be merged into one without losing or doubling a row; the text says which."""


def read_table(out: Path) -> tuple[TableRecord, list[ScoreRow]]:
    """A results table's record and rows (CSV file or Parquet folder)."""
    record = read_record(out)
    if is_parquet(out):
        return record, read_parts(out, record)
    rows, _ = read_csv_rows(out, record)
    return record, rows


def _check_shards(tables: Sequence[tuple[Path, TableRecord, list[ScoreRow]]]) -> None:
    first_path, first, _ = tables[0]
    by_index: dict[int, Path] = {}
    counts = {parse_shard(record.shard).count for _, record, _ in tables}
    if len(counts) > 1:
        split = ", ".join(f"{visible_name(path)} is shard {record.shard}" for path, record, _ in tables)
        raise ShardMergeError(f"the tables are shards of different splits: {split}")
    for path, record, rows in tables:
        differences = first.model_differences(record)
        if (record.all_inputs, record.inputs_sha256) != (first.all_inputs, first.inputs_sha256):
            differences.append(
                f"input list ({record.all_inputs} inputs in all, against {first.all_inputs}: a list changed between "
                "the shards' jobs; resume every shard with the same list)"
            )
        if differences:
            raise ShardMergeError(
                f"{visible_name(path)} and {visible_name(first_path)} differ in {', '.join(differences)}"
            )
        shard = parse_shard(record.shard)
        if shard.index in by_index:
            raise ShardMergeError(
                f"shard {shard} is given twice: {visible_name(by_index[shard.index])} and {visible_name(path)}"
            )
        by_index[shard.index] = path
        if len(rows) < record.inputs:
            raise ShardMergeError(
                f"{visible_name(path)} (shard {shard}) holds {len(rows)} of its {record.inputs} inputs: "
                "run its job again with --resume"
            )
    count = counts.pop()
    missing = [str(k) for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise ShardMergeError(f"shards {', '.join(missing)} of {count} are missing")


def merge_tables(out: Path, shards: Sequence[Path]) -> int:
    """Merge ``shards`` into ``out``; returns the number of rows. Raises :class:`ShardMergeError`."""
    if not shards:
        raise UsageError("predict merge: name the shard tables to merge")
    if out.exists():
        raise UsageError(f"--out {visible_name(out)} exists; name a new table")
    for path in shards:
        if not path.exists():
            raise UsageError(f"predict merge: {visible_name(path)}: no such table")
        if path.resolve() == out.resolve():
            raise UsageError(f"predict merge: OUT {visible_name(out)} is also named as a shard")
    tables = [(path, *read_table(path)) for path in shards]
    _check_shards(tables)
    merged: dict[str, ScoreRow] = {}
    owner: dict[str, Path] = {}
    for path, _, rows in tables:
        for row in rows:
            if row.key in merged:
                raise ShardMergeError(
                    f"{visible_name(row.key)} is in both {visible_name(owner[row.key])} and {visible_name(path)}"
                )
            merged[row.key], owner[row.key] = row, path
    rows = [merged[key] for key in sorted(merged)]
    first = tables[0][1]
    if first.all_inputs and len(rows) != first.all_inputs:
        raise ShardMergeError(f"the shards hold {len(rows)} rows, but their job had {first.all_inputs} inputs")
    record = replace(first, shard="1/1", inputs=len(rows), engine="merge")
    if is_parquet(out):
        write_single_part(out, rows, record)
    else:
        write_record(out, record)
        write_bytes_atomically(out, csv_bytes(rows, record, header=True))
    return len(rows)
