"""``chexnet calibrate``: choose a checkpoint's operating points (and, optionally, a temperature) on labelled
images, and write them into a new checkpoint.

checkpoint + images + labels [+ split list] -> raw probabilities (``training.scoring.inference``, no TTA) -> optional
temperature T (``training.scoring.temperature``) -> ``youden`` and ``specNN`` thresholds on sigmoid(logit(p) / T)
(``training.scoring.thresholds``) -> the same checkpoint with a new ``operating_points`` section -> OUT.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.checkpoint import load_checkpoint, save_checkpoint
from models.files import resolve_device
from models.operating_points import (
    DEFAULT_POINT,
    DEFAULT_SPECIFICITY,
    OperatingPoints,
    apply_temperature,
    specificity_point_name,
)
from training.data.sources import aligned_targets
from training.exit_status import UsageError
from training.reports.evaluation import print_report
from training.reports.point_table import print_chosen_points
from training.reports.provenance import command_line
from training.reports.reliability_plot import draw_reliability_diagram
from training.scoring.inference import InferenceSettings, check_settings
from training.scoring.labelled_images import (
    check_labelled_inputs,
    describe_data,
    labelled_probabilities,
    load_labelled_table,
    table_options_of,
)
from training.scoring.metrics import auroc_report, mean_auroc, per_class_average_precision
from training.scoring.temperature import (
    RELIABILITY_BINS,
    TEMPERATURE_BOUNDS,
    binary_nll,
    fit_temperature,
    reliability_bins,
)
from training.scoring.thresholds import choose_operating_points

logger = logging.getLogger(__name__)


@dataclass
class CalibrateOptions:
    checkpoint: Path
    images: Path
    labels: Path
    out: Path
    split_list: Path | None = None
    specificity: float = DEFAULT_SPECIFICITY
    default: str = DEFAULT_POINT
    temperature: bool = False
    data_description: str | None = None
    batch_size: int = 32
    workers: int = 0
    device: str = "auto"
    overwrite: bool = False
    table_format: str | None = None  # how the label table is read, as for train and evaluate
    views: str = "frontal"
    uncertain: str = "ignore"
    blank: str | None = None
    image_column: str | None = None
    patient_column: str | None = None
    patient_pattern: str | None = None


def reliability_path(out: Path) -> Path:
    """Where the reliability diagram goes: beside the new checkpoint, ``NAME-reliability.png``."""
    return out.with_name(f"{out.stem}-reliability.png")


class CalibrateUsageError(UsageError):
    """An option value that cannot work (the command line's exit status 2)."""


def validate_calibrate_options(options: CalibrateOptions) -> None:
    """Check the options before any image is read; raises CalibrateUsageError for a bad option value, and
    ValueError / LabelTableError for data that cannot be used, each saying what to fix."""
    try:
        point = specificity_point_name(options.specificity)
    except ValueError as exc:
        raise CalibrateUsageError(f"--specificity: {exc}") from None
    choices = ("youden", point)
    if options.default not in choices:
        raise CalibrateUsageError(
            f"--default must be one of {', '.join(choices)} (the points written), got {options.default!r}"
        )
    if Path(options.out).resolve() == Path(options.checkpoint).resolve():
        raise CalibrateUsageError("--out must name a new file, not the checkpoint being calibrated")
    if options.out.suffix != ".pt":
        raise CalibrateUsageError(f"--out should be a checkpoint file ending in .pt, got {options.out.name}")
    if options.out.exists() and not options.overwrite:
        raise CalibrateUsageError(f"--out {options.out} exists: choose another file, or add --overwrite")
    if options.batch_size < 1:
        raise CalibrateUsageError(f"--batch-size must be >= 1, got {options.batch_size}")
    if options.workers < 0:
        raise CalibrateUsageError(f"--workers must be >= 0, got {options.workers}")
    check_labelled_inputs(options.labels, options.split_list, options.images)
    if not Path(options.checkpoint).is_file():
        raise ValueError(f"checkpoint not found: {options.checkpoint}")
    resolve_device(options.device)


def _calibration_record(targets: np.ndarray, probs: np.ndarray, temperature: float) -> dict[str, Any]:
    """NLL and ECE before and after the temperature, for the checkpoint's record (``source.calibration``)."""
    before, after = reliability_bins(targets, probs), reliability_bins(targets, probs, temperature)
    return {
        "method": "temperature scaling, one T for all outputs, minimising NLL on known entries (Guo et al. 2017)",
        "nll_before": binary_nll(targets, probs),
        "nll_after": binary_nll(targets, probs, temperature),
        "ece_before": before.expected_calibration_error,
        "ece_after": after.expected_calibration_error,
        "ece_bins": RELIABILITY_BINS,
    }


def run_calibrate(options: CalibrateOptions) -> int:
    """Calibrate, print the tables, write OUT (and OUT's reliability diagram with --temperature); returns 0."""
    validate_calibrate_options(options)
    table, _ = load_labelled_table(options.labels, options.split_list, table_options_of(options))
    checkpoint = load_checkpoint(options.checkpoint)
    settings = InferenceSettings(resolve_device(options.device), options.batch_size, options.workers)
    check_settings(checkpoint, settings)
    table, probs = labelled_probabilities(checkpoint, table, options.images, settings, False, options.out.parent)
    labels = checkpoint.labels
    targets = aligned_targets(table, labels)  # a label the table lacks is unknown: undefined, flagged unreliable
    report = auroc_report(targets, probs, table.patient_ids, 0, 0, labels)
    print_report(
        report, mean_auroc({r.name: r.auroc for r in report}), per_class_average_precision(targets, probs, labels)
    )

    source: dict[str, Any] = {
        "data": options.data_description or describe_data(options.labels, options.split_list),
        "command": command_line(),
        "checkpoint_sha256": checkpoint.sha256,
    }
    temperature = fit_temperature(targets, probs) if options.temperature else None
    if temperature is not None:
        source["calibration"] = _calibration_record(targets, probs, temperature)
        if not TEMPERATURE_BOUNDS[0] * 1.001 < temperature < TEMPERATURE_BOUNDS[1] * 0.999:
            logger.warning("the fitted temperature %.4f lies on the edge of its search interval", temperature)
        calibration = source["calibration"]
        print(
            f"\ntemperature {temperature:.4f}: NLL {calibration['nll_before']:.4f} -> {calibration['nll_after']:.4f}, "
            f"ECE {calibration['ece_before']:.4f} -> {calibration['ece_after']:.4f}"
        )
        draw_reliability_diagram(
            reliability_bins(targets, probs),
            reliability_bins(targets, probs, temperature),
            temperature,
            reliability_path(options.out),
        )
    points = choose_operating_points(
        targets,
        apply_temperature(probs, temperature),
        options.specificity,
        source,
        labels,
        temperature,
        options.default,
    )
    _warn_replaced(checkpoint.operating_points, points)
    print()
    print_chosen_points(points)
    checkpoint.operating_points = points
    save_checkpoint(checkpoint, options.out)
    print(f"wrote {options.out}")
    return 0


def _warn_replaced(previous: OperatingPoints | None, new: OperatingPoints) -> None:
    """The new section replaces the old whole: points chosen on other data (or without this temperature) go."""
    if previous is None:
        return
    dropped = sorted(set(previous.points) - set(new.points))
    logger.warning(
        "the checkpoint's operating points are replaced%s",
        f" (points no longer present: {', '.join(dropped)})" if dropped else "",
    )
