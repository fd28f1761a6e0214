"""``chexnet predict`` in batch mode: inputs (folder, files or list) -> this shard's -> those not yet in the table
-> scored here (the shared inference step) or on a Ray cluster -> appended batch by batch to a CSV or Parquet table.

Everything that can be refused (options, the checkpoint, a resume of another model) is refused before any image is
read. Exit status 1 when some file in the table could not be read (its row names the reason), else 0.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import load_checkpoint
from models.files import resolve_device
from training.batch_scoring.inputs import (
    WHOLE,
    ScoringInput,
    found_inputs,
    parse_shard,
    read_list_file,
    shard_inputs,
)
from training.batch_scoring.parquet_parts import require_pyarrow
from training.batch_scoring.results_table import TableRecord, inputs_digest, is_parquet
from training.batch_scoring.scoring_job import findings_function, open_table, rows_to_score, score_locally
from training.data.file_names import visible_name
from training.exit_status import EXIT_DONE, EXIT_FAILED, UsageError
from training.predict import PredictOptions, _checked_point, _report_search, inference_settings
from training.scoring.inference import check_settings
from training.scoring.precision import check_precision

logger = logging.getLogger(__name__)


def _check_options(options: PredictOptions) -> None:
    if options.out is None:
        raise UsageError("--list, --shard, --resume and --engine ray write a table: name it with --out")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {options.workers}")
    if options.actors < 1:
        raise UsageError(f"--actors must be >= 1, got {options.actors}")
    if options.list_file is not None and options.paths:
        raise UsageError("give image paths or --list FILE, not both")
    if options.list_file is None and not options.paths:
        raise UsageError("name the image files or folders to predict, or --list FILE")
    if options.address is not None and options.engine != "ray":
        raise UsageError("--address goes with --engine ray")
    if not options.out.parent.is_dir():
        raise UsageError(
            f"--out {visible_name(options.out)}: the folder {visible_name(options.out.parent)} does not exist"
        )
    if options.engine == "ray" and options.precision != "fp32":
        raise UsageError("--engine ray runs the model at fp32 (torch in its actors): leave out --precision")
    if options.engine == "ray" and not is_parquet(options.out):
        raise UsageError("--engine ray writes Parquet: name --out OUT.parquet")
    if is_parquet(options.out) or (options.list_file is not None and options.list_file.suffix.lower() == ".parquet"):
        require_pyarrow("Parquet")


def _inputs(options: PredictOptions) -> list[ScoringInput]:
    if options.list_file is not None:
        return read_list_file(options.list_file, options.root)
    inputs, found = found_inputs(options.paths, options.recursive, options.root)
    _report_search(found)
    return inputs


def run_batch_predict(options: PredictOptions) -> int:
    """Score this shard's inputs not yet in ``--out``; see the module docstring."""
    _check_options(options)
    assert options.out is not None
    shard = parse_shard(options.shard) if options.shard else WHOLE
    check_precision(options.precision, resolve_device(options.device), options.int8_model)
    checkpoint_path = Path(options.checkpoint or DEMO_CHECKPOINT)
    checkpoint = load_checkpoint(checkpoint_path)
    settings = inference_settings(options, checkpoint)
    check_settings(checkpoint, settings)
    points = _checked_point(checkpoint, options.operating_point)
    every_input = _inputs(options)
    inputs = shard_inputs(every_input, shard)
    record = TableRecord(
        model_sha256=checkpoint.sha256 or "",
        labels=checkpoint.labels,
        preprocessing=checkpoint.spec.to_dict(),
        operating_point=options.operating_point,
        shard=str(shard),
        inputs=len(inputs),
        engine=options.engine,
        precision=options.precision,
        all_inputs=len(every_input),
        inputs_sha256=inputs_digest([item.key for item in every_input]),
    )
    table = open_table(options.out, record, options.resume)
    todo = rows_to_score(inputs, table.done)
    findings = findings_function(points, options.operating_point)
    logger.info(
        "shard %s: %d inputs, %d already in the table, %d to score", shard, len(inputs), len(table.done), len(todo)
    )
    try:
        if options.engine == "ray":
            from training.batch_scoring.ray_engine import RayJob, score_on_ray

            job = RayJob(checkpoint_path, options.address, options.batch_size, options.actors, options.operating_point)
            written = score_on_ray(job, record, todo, table.writer)
        else:
            written = score_locally(checkpoint, todo, settings, table.writer, findings)
    finally:
        table.writer.close()
    failed = [row for row in (*table.done, *written) if row.error]
    for row in written:
        if row.error:
            print(f"chexnet predict: cannot read {visible_name(row.key)}: {row.error}", file=sys.stderr)
    print(
        f"shard {shard}: wrote {len(written)} rows to {visible_name(options.out)} ({len(table.done)} were already "
        f"there; {len(failed)} of {len(inputs)} files could not be read)",
        file=sys.stderr,
    )
    return EXIT_FAILED if failed else EXIT_DONE
