"""``chexnet predict``: image files or folders -> CSV of ``Image Index``, ``path``, one probability per label
[+ one finding per label at an operating point].

paths -> the files to predict (``training.data.image_files``: folders searched by content; a file named like an
image that holds none is kept, so it is named with the reason) -> the shared inference step
(``training.scoring.inference``) -> CSV. A file that cannot be read is named on stderr with its reason and the
others are still predicted (exit status 1). Everything that can be refused is refused before the model runs.
"""

from __future__ import annotations

import csv
import io
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import Checkpoint, load_checkpoint
from models.files import resolve_device, write_bytes_atomically
from models.operating_points import OperatingPoints
from training.data.dataset import DecodeFailure
from training.data.file_names import csv_file_name, visible_name
from training.data.image_files import FoundImages, collect_images
from training.exit_status import EXIT_DONE, EXIT_FAILED, UsageError
from training.scoring.inference import InferenceSettings, check_settings, infer_probabilities
from training.scoring.precision import check_precision, probability_fn

logger = logging.getLogger(__name__)

FINDING_PREFIX = "finding_"


@dataclass
class PredictOptions:
    paths: list[Path]
    recursive: bool = False
    checkpoint: Path | None = None
    out: Path | None = None
    batch_size: int = 16
    workers: int = 0
    device: str = "auto"
    operating_point: str | None = None
    list_file: Path | None = None
    root: Path | None = None
    shard: str | None = None
    resume: bool = False
    engine: str = "local"
    address: str | None = None
    actors: int = 1
    precision: str = "fp32"  # fp32 | bf16 | fp16 | int8: as chexnet evaluate --precision
    int8_model: Path | None = None  # with precision int8: the folder chexnet quantize wrote

    def batch_mode(self) -> bool:
        """Whether this run writes a resumable results table (see :mod:`training.batch_scoring`)."""
        parquet = self.out is not None and self.out.suffix.lower() == ".parquet"
        return bool(self.list_file or self.shard or self.resume or parquet or self.engine != "local")


@dataclass(frozen=True)
class Predictions:
    """``probs`` (N, K) for ``paths`` (the readable files, in input order), K = ``labels``; ``failures`` for the
    others, in input order."""

    paths: list[Path]
    probs: np.ndarray
    labels: tuple[str, ...]
    failures: list[DecodeFailure]


def predict_files(
    checkpoint_path: Path, images: Sequence[Path], batch_size: int, workers: int, device: torch.device
) -> Predictions:
    """Probabilities for every readable file of ``images``, through the checkpoint's own preprocessing."""
    checkpoint = load_checkpoint(checkpoint_path)
    return _predict(checkpoint, images, InferenceSettings(device, batch_size, workers))


def inference_settings(options: PredictOptions, checkpoint: Checkpoint) -> InferenceSettings:
    """How ``--device``, ``--batch-size``, ``--workers`` and ``--precision`` run ``checkpoint``.

    fp32 is eager PyTorch; bf16 and int8 on the CPU run through OpenVINO as the service runs them
    (:mod:`training.scoring.precision`). Raises :class:`~training.scoring.precision.PrecisionError` for a
    precision the device cannot run, and ``QuantizedModelError`` for an int8 folder of another checkpoint."""
    device = resolve_device(options.device)
    forward = None
    if options.precision != "fp32":
        forward = probability_fn(checkpoint, options.precision, device, options.int8_model)
    return InferenceSettings(device, options.batch_size, options.workers, forward=forward)


def _predict(checkpoint: Checkpoint, images: Sequence[Path], settings: InferenceSettings) -> Predictions:
    result = infer_probabilities(checkpoint, list(images), settings)
    return Predictions([images[i] for i in result.indices], result.probs, checkpoint.labels, result.failures)


def findings_at(points: OperatingPoints, name: str, probs: np.ndarray) -> np.ndarray:
    """(N, K) 0/1: probability (after the checkpoint's temperature) at or above the point's threshold, per class,
    exactly as the service decides (:meth:`OperatingPoints.decide`)."""
    return np.array(
        [[int(d.above) for d in points.decide(row, name).values()] for row in probs], dtype=np.int64
    ).reshape(len(probs), -1)


def predictions_csv(predictions: Predictions, findings: np.ndarray | None) -> str:
    """The CSV text: ``Image Index`` (the file name, NIH's identifier), ``path`` (as given), one column per label
    (6 decimals), and with ``findings`` one ``finding_LABEL`` column per label (0/1). Names are written with
    :func:`training.data.file_names.csv_file_name` (lossless, valid UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    labels = list(predictions.labels)
    writer.writerow(
        ["Image Index", "path", *labels, *([FINDING_PREFIX + n for n in labels] if findings is not None else [])]
    )
    for i, (path, row) in enumerate(zip(predictions.paths, predictions.probs, strict=True)):
        decided = [str(v) for v in findings[i]] if findings is not None else []
        writer.writerow([csv_file_name(path.name), csv_file_name(path), *(f"{p:.6f}" for p in row), *decided])
    return buffer.getvalue()


def _checked_point(checkpoint: Checkpoint, name: str | None) -> OperatingPoints | None:
    """The checkpoint's operating points when ``--operating-point`` names one of them; UsageError otherwise."""
    if name is None:
        return None
    points = checkpoint.operating_points
    if points is None:
        raise UsageError(
            f"--operating-point {name}: this checkpoint has no operating points (chexnet calibrate writes them)"
        )
    if name not in points.points:
        raise UsageError(f"--operating-point {name}: this checkpoint has {', '.join(sorted(points.points))}")
    return points


def _check_out(out: Path | None) -> None:
    if out is not None and not out.parent.is_dir():
        raise UsageError(f"--out {visible_name(out)}: the folder {visible_name(out.parent)} does not exist")
    if out is not None and out.is_dir():
        raise UsageError(f"--out {visible_name(out)} is a folder; name the CSV file to write")
    from training.batch_scoring.results_table import record_path

    if out is not None and record_path(out).exists():
        raise UsageError(
            f"--out {visible_name(out)} is a batch results table (its record {record_path(out).name} lies beside it): "
            "continue it with --resume, or name another file"
        )


def _report_search(found: FoundImages) -> None:
    if found.skipped:
        archive = (
            f" ({found.without_pixels} of them DICOM files without pixel data: DICOMDIR, reports, presentation states)"
            if found.without_pixels
            else ""
        )
        print(
            f"chexnet predict: passed over {found.skipped} folder entries that are not PNG, JPEG or DICOM files"
            f"{archive}",
            file=sys.stderr,
        )
    if found.subfolders:
        print(f"chexnet predict: did not search {found.subfolders} subfolders (use --recursive)", file=sys.stderr)
    for folder, message in found.unlistable:
        print(f"chexnet predict: cannot read {visible_name(folder)}: {message}", file=sys.stderr)


def run_predict(options: PredictOptions) -> int:
    """Predict, write the CSV (to ``--out`` atomically, or stdout); returns 1 when some file could not be read.

    With ``--list``, ``--shard``, ``--resume``, a ``.parquet`` ``--out`` or ``--engine ray`` it writes a resumable
    results table instead (:func:`training.batch_scoring.batch_predict.run_batch_predict`)."""
    if options.paths and options.paths[0] == Path("merge"):
        return _run_merge(options)
    if options.batch_mode():
        from training.batch_scoring.batch_predict import run_batch_predict

        return run_batch_predict(options)
    if not options.paths:
        raise UsageError("name the image files or folders to predict (or --list FILE)")
    if options.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.workers < 0:
        raise UsageError(f"--workers must be >= 0, got {options.workers}")
    _check_out(options.out)
    check_precision(options.precision, resolve_device(options.device), options.int8_model)
    checkpoint = load_checkpoint(options.checkpoint or DEMO_CHECKPOINT)
    settings = inference_settings(options, checkpoint)
    check_settings(checkpoint, settings)
    points = _checked_point(checkpoint, options.operating_point)
    found = collect_images(options.paths, options.recursive)
    predictions = _predict(checkpoint, found.paths, settings)
    _report_search(found)
    for failure in predictions.failures:
        print(f"chexnet predict: cannot read {visible_name(failure.path)}: {failure.message}", file=sys.stderr)
    findings = None
    if points is not None and options.operating_point is not None:
        findings = findings_at(points, options.operating_point, predictions.probs)
    text = predictions_csv(predictions, findings)
    if options.out is None:
        sys.stdout.write(text)
    else:
        write_bytes_atomically(options.out, text.encode("utf-8"))
        print(f"wrote {len(predictions.paths)} rows to {visible_name(options.out)}", file=sys.stderr)
    if predictions.failures:
        print(
            f"chexnet predict: {len(predictions.failures)} of {len(found.paths)} files could not be read",
            file=sys.stderr,
        )
    return EXIT_FAILED if predictions.failures or found.unlistable else EXIT_DONE


def _run_merge(options: PredictOptions) -> int:
    """``chexnet predict merge OUT SHARD...``: the shard tables joined into one."""
    from training.batch_scoring.merge import merge_tables

    if len(options.paths) < 3 or options.out is not None:
        raise UsageError(
            "predict merge OUT SHARD...: OUT (.csv, or .parquet for a Parquet folder) and the shard tables"
        )
    out, shards = options.paths[1], options.paths[2:]
    rows = merge_tables(out, shards)
    print(f"wrote {rows} rows from {len(shards)} shards to {visible_name(out)}", file=sys.stderr)
    return EXIT_DONE
