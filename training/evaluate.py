"""``chexnet evaluate``: per-class AUROC with patient-level bootstrap CIs, PR-AUC and operating points, from a
checkpoint or a predictions CSV.

With a checkpoint, the images go through the shared inference step (``training.scoring.inference``: the eval
preprocessing, or ``--tta tencrop`` averaging the 10 crops' sigmoid probabilities). Writes ``metrics.json``,
``predictions.csv`` and ``roc.png`` to the output folder and prints a per-class table, then the operating points
chosen on this data (``training.scoring.thresholds``), and, for a checkpoint that carries operating points, how its
stored thresholds do here.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.checkpoint import Checkpoint, load_checkpoint
from models.files import resolve_device
from models.operating_points import (
    DEFAULT_SPECIFICITY,
    OperatingPoints,
    apply_temperature,
    specificity_point_name,
)
from training.data.image_check import UNREADABLE_LIST
from training.data.label_tables import MAX_NAMED, LabelTable, LabelTableError, TableOptions
from training.data.sources import aligned_targets
from training.reports.evaluation import fmt, metrics_document, print_report, write_predictions
from training.reports.fidelity import format_fidelity
from training.reports.point_table import print_chosen_points, print_point_table
from training.reports.provenance import command_line
from training.reports.roc_plot import draw_roc_curves
from training.scoring.fidelity import Fidelity, measure_fidelity
from training.scoring.inference import InferenceSettings, check_settings
from training.scoring.labelled_images import (
    check_labelled_inputs,
    describe_data,
    labelled_probabilities,
    load_labelled_table,
    table_options_of,
)
from training.scoring.metrics import auroc_report, mean_auroc, per_class_average_precision
from training.scoring.precision import check_precision, probability_fn
from training.scoring.study_level import (
    ScoringError,
    SharedLabels,
    competition_mean,
    parse_per,
    per_study,
    shared_labels,
)
from training.scoring.thresholds import choose_operating_points, stored_points_on

logger = logging.getLogger(__name__)

TTA_CHOICES = ("none", "tencrop")
PREDICTION_NAME_COLUMNS = ("Image Index", "image_path")
PROB_PREFIX = "prob_"


@dataclass
class EvaluateOptions:
    checkpoint: Path | None
    predictions: Path | None
    images: Path | None
    labels: Path
    split_list: Path | None
    tta: str = "none"
    bootstrap: int = 1000
    out: Path = Path("eval")
    batch_size: int = 32
    workers: int = 0
    device: str = "auto"
    seed: int = 0
    skip_unreadable: bool = False
    specificity: float = DEFAULT_SPECIFICITY
    table_format: str | None = None  # the label table's --format, --views, --uncertain, --blank, ... as for train
    views: str = "frontal"
    uncertain: str = "ignore"
    blank: str | None = None
    image_column: str | None = None
    patient_column: str | None = None
    patient_pattern: str | None = None
    per: str | None = None  # --per image | study:max | study:mean
    precision: str = "fp32"  # fp32 | bf16 | fp16 | int8: run the checkpoint as the service runs it at that precision
    int8_model: Path | None = None  # with precision int8: the folder chexnet quantize wrote
    against: str | None = None  # "fp32": also run fp32 and report the precision's fidelity against it

    def table_options(self) -> TableOptions:
        return table_options_of(self)


def validate_options(options: EvaluateOptions) -> None:
    """Check the options before any data is read; raises ValueError / LabelTableError saying what to fix."""
    if (options.checkpoint is None) == (options.predictions is None):
        raise ValueError("give exactly one of --checkpoint (run a model) or --predictions (score a CSV)")
    if options.tta not in TTA_CHOICES:
        raise ValueError(f"--tta must be one of {', '.join(TTA_CHOICES)}, got {options.tta!r}")
    if options.bootstrap < 0:
        raise ValueError(f"--bootstrap must be >= 0 (0 turns confidence intervals off), got {options.bootstrap}")
    if options.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {options.workers}")
    try:
        specificity_point_name(options.specificity)
    except ValueError as exc:
        raise ValueError(f"--specificity: {exc}") from None
    check_labelled_inputs(options.labels, options.split_list, None)
    parse_per(options.per)
    options.table_options()  # an unknown policy raises here
    if options.against not in (None, "fp32"):
        raise ValueError(f"--against {options.against}: the reference is fp32")
    if options.checkpoint is None and (options.precision != "fp32" or options.against is not None):
        raise ValueError("--precision and --against run a checkpoint: give --checkpoint")
    if options.checkpoint is not None:
        check_precision(options.precision, resolve_device(options.device), options.int8_model)
    if options.checkpoint is not None:
        if options.images is None:
            raise ValueError("--images (the image folder) is required with --checkpoint")
        check_labelled_inputs(options.labels, None, options.images)
        if not Path(options.checkpoint).is_file():
            raise ValueError(f"checkpoint not found: {options.checkpoint}")
        resolve_device(options.device)
    else:
        if options.tta != "none":
            raise ValueError("--tta applies only with --checkpoint; predictions are scored as given")
        if not Path(str(options.predictions)).is_file():
            raise ValueError(f"predictions file not found: {options.predictions}")


def _prediction_columns(columns: list[str], path: Path, labels: tuple[str, ...]) -> dict[str, str]:
    """Label -> column of the predictions CSV (``Name`` or ``prob_Name``)."""
    chosen: dict[str, str] = {}
    missing, ambiguous = [], []
    for name in labels:
        found = [c for c in (name, PROB_PREFIX + name) if c in columns]
        if not found:
            missing.append(name)
        elif len(found) > 1:
            ambiguous.append(name)
        else:
            chosen[name] = found[0]
    if missing:
        raise LabelTableError(
            f"predictions {path} lacks a column for {missing} (name each column after the pathology, "
            f"optionally prefixed {PROB_PREFIX!r})"
        )
    if ambiguous:
        raise LabelTableError(f"predictions {path} has both NAME and {PROB_PREFIX}NAME columns for {ambiguous}")
    return chosen


def read_predictions(path: Path, table: LabelTable, labelled: frozenset[str]) -> tuple[LabelTable, np.ndarray]:
    """The rows of ``table`` that have predictions, and their (N, K) probabilities for the table's labels, matched by
    image name.

    ``labelled`` is every image name of the whole label table: a prediction for an image it lacks is an error
    naming the images, as is a name listed twice.  Labelled images without a prediction are left out (the usual
    case: test-set predictions scored against NIH's full ``Data_Entry_2017``); the caller reports how many.
    """
    frame, names = _read_prediction_frame(path)
    columns = _prediction_columns(list(frame.columns), path, table.labels)
    unlabelled = [name for name in names if name not in labelled]
    if unlabelled:
        raise LabelTableError(
            f"predictions {path} name {len(unlabelled)} image(s) that have no label: "
            f"{', '.join(unlabelled[:MAX_NAMED])}" + (" ..." if len(unlabelled) > MAX_NAMED else "")
        )
    row_of = {name: i for i, name in enumerate(names)}
    covered = [i for i, name in enumerate(table.image_names) if name in row_of]
    if not covered:
        raise LabelTableError(f"predictions {path} cover none of the {len(table)} labelled images to evaluate")
    values = _probability_values(frame, columns, names, path, table.labels)
    order = np.fromiter((row_of[table.image_names[i]] for i in covered), dtype=np.int64, count=len(covered))
    return table.subset(covered), values[order]


def _read_prediction_frame(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """The CSV and its image names (``Image Index``, else ``image_path``); refuses names listed twice."""
    try:
        frame = pd.read_csv(path, dtype={c: str for c in (*PREDICTION_NAME_COLUMNS, "path")}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise LabelTableError(f"predictions {path} could not be read as CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    name_column = next((c for c in PREDICTION_NAME_COLUMNS if c in frame.columns), None)
    if name_column is None:
        raise LabelTableError(f"predictions {path} has no {PREDICTION_NAME_COLUMNS[0]!r} column naming the images")
    names = [str(v).strip() for v in frame[name_column].tolist()]
    duplicated = sorted(name for name, count in Counter(names).items() if count > 1)
    if duplicated:
        raise LabelTableError(
            f"predictions {path} list images more than once ({name_column} must identify each image): "
            f"{', '.join(duplicated[:MAX_NAMED])}"
        )
    return frame, names


def _probability_values(
    frame: pd.DataFrame, columns: dict[str, str], names: list[str], path: Path, labels: tuple[str, ...]
) -> np.ndarray:
    """(rows, K) float64 from the chosen columns; every value must be a probability in [0, 1]."""
    values = np.empty((len(frame), len(labels)), dtype=np.float64)
    bad: list[str] = []
    for k, name in enumerate(labels):
        column = pd.to_numeric(frame[columns[name]], errors="coerce").to_numpy(dtype=np.float64)
        wrong = np.flatnonzero(~(np.isfinite(column) & (column >= 0.0) & (column <= 1.0)))
        bad.extend(f"{columns[name]}={frame[columns[name]].iloc[i]!r} for {names[i]}" for i in wrong[:MAX_NAMED])
        values[:, k] = column
    if bad:
        raise LabelTableError(f"predictions {path} must hold probabilities in [0, 1]: {', '.join(bad[:MAX_NAMED])}")
    return values


def inference_settings(
    options: EvaluateOptions, checkpoint: Checkpoint | None = None, precision: str = "fp32"
) -> InferenceSettings:
    """How ``--device``, ``--batch-size``, ``--workers``, ``--tta`` and ``--precision`` run the model."""
    device = resolve_device(options.device)
    forward = None
    if precision != "fp32" and checkpoint is not None:
        forward = probability_fn(checkpoint, precision, device, options.int8_model)
    return InferenceSettings(
        device, options.batch_size, options.workers, tencrop=options.tta == "tencrop", forward=forward
    )


@dataclass(frozen=True)
class Scored:
    """What is scored: the shared labels, per image or per study, with what was left out."""

    labels: tuple[str, ...]
    names: tuple[str, ...]
    patient_ids: tuple[str, ...]
    targets: np.ndarray
    probs: np.ndarray
    per: str | None
    shared: SharedLabels

    def describe(self, competition: float | None) -> dict[str, Any]:
        return {
            "labels": list(self.labels),
            "not_scored": {"model_only": list(self.shared.model_only), "table_only": list(self.shared.table_only)},
            "per": f"study:{self.per}" if self.per is not None else "image",
            "mean_auroc_competition": competition,
        }


def _scored(options: EvaluateOptions, table: LabelTable, probs: np.ndarray, output_labels: tuple[str, ...]) -> Scored:
    """The model's outputs the table shares (others listed), per image or combined per study (``--per``)."""
    shared = shared_labels(output_labels, table.labels)
    if shared.model_only or shared.table_only:
        print(
            f"scoring the {len(shared.labels)} labels the model and the table share; not scored: model only "
            f"[{', '.join(shared.model_only)}], table only [{', '.join(shared.table_only)}]"
        )
    targets = table.targets[:, list(shared.table_columns)].astype(np.float64)
    scores = np.asarray(probs, dtype=np.float64)[:, list(shared.model_columns)]
    how = parse_per(options.per)
    if how is None:
        return Scored(shared.labels, table.image_names, table.patient_ids, targets, scores, None, shared)
    if table.study_ids is None:
        raise ScoringError(f"--per {options.per}: the {table.kind} table names no studies")
    names, patients, targets, scores = per_study(table.study_ids, table.patient_ids, targets, scores, how)
    print(f"{len(table)} images combined into {len(names)} studies ({how} over each study's views)")
    return Scored(shared.labels, names, patients, targets, scores, how, shared)


def _fidelity_against_fp32(
    options: EvaluateOptions, checkpoint: Checkpoint, table: LabelTable, probs: np.ndarray
) -> Fidelity:
    """The same rows run at fp32 (eager, the reference), and how far ``--precision``'s probabilities are from it:
    per-class AUROC change on known rows, largest |dp|, findings that flip at each stored operating point."""
    settings = inference_settings(options, checkpoint, "fp32")
    again, reference = labelled_probabilities(
        checkpoint, table, Path(str(options.images)), settings, options.skip_unreadable, Path(options.out)
    )
    if again.image_names != table.image_names:  # the rows decoded once already; a file changed meanwhile
        raise ValueError("--against fp32: the images changed between the two runs; run the command again")
    fidelity = measure_fidelity(
        checkpoint.labels,
        reference,
        probs,
        aligned_targets(table, checkpoint.labels),
        checkpoint.operating_points,
    )
    print()
    print(format_fidelity(fidelity, options.precision))
    return fidelity


def run_evaluate(options: EvaluateOptions) -> int:
    """Evaluate, print the tables, write metrics.json / predictions.csv / roc.png; returns the exit code (0).

    Operating points are chosen on the probabilities after the checkpoint's temperature, when it has one.
    """
    validate_options(options)
    table, labelled = load_labelled_table(options.labels, options.split_list, options.table_options())
    (Path(options.out) / UNREADABLE_LIST).unlink(missing_ok=True)  # a list from an earlier run would mislead
    stored_points: OperatingPoints | None = None
    fidelity: Fidelity | None = None
    if options.checkpoint is not None:
        checkpoint = load_checkpoint(str(options.checkpoint))
        settings = inference_settings(options, checkpoint, options.precision)
        check_settings(checkpoint, settings)
        table, probs = labelled_probabilities(
            checkpoint, table, Path(str(options.images)), settings, options.skip_unreadable, Path(options.out)
        )
        stored_points = checkpoint.operating_points
        if options.against is not None:
            fidelity = _fidelity_against_fp32(options, checkpoint, table, probs)
    else:
        total = len(table)
        table, probs = read_predictions(Path(str(options.predictions)), table, labelled)
        print(f"{len(table)} of {total} labelled images have predictions")
    scored = _scored(options, table, probs, checkpoint.labels if options.checkpoint is not None else table.labels)
    labels, targets, probs = scored.labels, scored.targets, scored.probs
    report = auroc_report(targets, probs, scored.patient_ids, options.bootstrap, options.seed, labels)
    mean = mean_auroc({r.name: r.auroc for r in report})
    average_precision = per_class_average_precision(targets, probs, labels)
    print_report(report, mean, average_precision)
    competition = competition_mean({r.name: r.auroc for r in report})
    if competition is not None:
        print(f"mean AUROC over the five CheXpert competition labels: {fmt(competition)}")
    temperature = stored_points.temperature if stored_points is not None else None
    source = {"data": describe_data(options.labels, options.split_list), "command": command_line()}
    chosen = choose_operating_points(
        targets, apply_temperature(probs, temperature), options.specificity, source, labels, temperature
    )
    print()
    print_chosen_points(chosen)
    stored = stored_points_on(targets, probs, stored_points, labels) if stored_points is not None else None
    if stored is not None:
        print()
        print_point_table("the checkpoint's stored thresholds on these images", stored, set(chosen.unreliable))

    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    document = metrics_document(
        report, mean, average_precision, chosen, stored, options.bootstrap, options.tta, options.checkpoint is not None
    )
    document.update(scored.describe(competition))
    if options.checkpoint is not None:
        document["precision"] = options.precision
    if fidelity is not None:
        document["fidelity_against_fp32"] = fidelity.to_dict()
    (out / "metrics.json").write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    write_predictions(out / "predictions.csv", scored.names, probs, labels)
    source_name = Path(options.checkpoint if options.checkpoint is not None else str(options.predictions)).name
    unit = "studies" if scored.per is not None else "images"
    title = f"ROC curves: {source_name} on {len(scored.names)} {unit}"
    draw_roc_curves(targets, probs, out / "roc.png", title, labels)
    logger.info("mean AUROC %s; wrote metrics.json, predictions.csv and roc.png to %s", fmt(mean), out)
    return 0
