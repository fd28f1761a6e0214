"""A checkpoint over labelled images: the table's rows that decoded and their probabilities, for evaluate and calibrate.

labels CSV [+ split list] -> :class:`LabelTable` -> every image exists -> header check (``--skip-unreadable``
leaves failures out, listed in ``OUT/unreadable.csv``) -> :func:`training.scoring.inference.infer_probabilities`
-> (rows that decoded, ``probs`` (N, K) raw sigmoid probabilities).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from models.checkpoint import Checkpoint
from training.data.dataset import DecodeFailure
from training.data.image_check import (
    UNREADABLE_LIST,
    UnreadableImage,
    drop_unreadable,
    read_unreadable_list,
    write_unreadable_list,
)
from training.data.label_policies import LabelPolicy
from training.data.label_tables import (
    LabelTable,
    LabelTableError,
    TableOptions,
    check_images_exist,
    read_label_table,
)
from training.data.splits import indices_of, read_name_list
from training.scoring.inference import InferenceSettings, infer_probabilities

logger = logging.getLogger(__name__)


def check_labelled_inputs(labels: Path, split_list: Path | None, images: Path | None) -> None:
    """Raises :class:`LabelTableError` naming the first of the label table, split list or image folder missing."""
    if not Path(labels).is_file():
        raise LabelTableError(f"label table not found: {labels}")
    if split_list is not None and not Path(split_list).is_file():
        raise LabelTableError(f"split list not found: {split_list}")
    if images is not None and not Path(images).is_dir():
        raise LabelTableError(f"image folder not found: {images}")


class TableFlags(Protocol):
    """The label-table options evaluate and calibrate share with train (``--format``, ``--views``, ...)."""

    table_format: str | None
    views: str
    uncertain: str
    blank: str | None
    image_column: str | None
    patient_column: str | None
    patient_pattern: str | None


def table_options_of(flags: TableFlags) -> TableOptions:
    """How a command's flags read the label table (``LabelPolicy`` raises ``PolicyError`` for unknown values)."""
    return TableOptions(
        format=flags.table_format,
        views=flags.views,
        policy=LabelPolicy(flags.uncertain, flags.blank),
        image_column=flags.image_column,
        patient_column=flags.patient_column,
        patient_pattern=flags.patient_pattern,
    )


def load_labelled_table(
    labels: Path, split_list: Path | None, options: TableOptions | None = None
) -> tuple[LabelTable, frozenset[str]]:
    """The labelled images to score (restricted to the split list's names), and every labelled name.

    ``options`` are the table's ``--format``, ``--views``, uncertainty and blank policies and columns (as for
    ``chexnet train``); None reads it as detected, with each format's default policies.
    """
    table = read_label_table(labels, options)
    labelled = frozenset(table.image_names)
    if split_list is not None:
        names = read_name_list(split_list)
        table = table.subset(indices_of(table, names, split_list))
        logger.info("restricted to the %d images named in the split list", len(table))
    return table, labelled


def describe_data(labels: Path, split_list: Path | None) -> str:
    """What the images were, in file names only: the labels file, and the split list when one was given."""
    name = Path(labels).name
    return f"{name}, the images in {Path(split_list).name}" if split_list else name


def labelled_probabilities(
    checkpoint: Checkpoint,
    table: LabelTable,
    images: Path,
    settings: InferenceSettings,
    skip_unreadable: bool,
    out: Path,
) -> tuple[LabelTable, np.ndarray]:
    """The table's rows whose images decoded, and their (N, K) probabilities from ``checkpoint``, in table order.

    Raises ``UnreadableImagesError`` (header check) or ``UnreadableImageError`` (decode) naming the image, unless
    ``skip_unreadable``: then such images are left out and listed in ``out/unreadable.csv``.
    """
    check_images_exist(table, images)
    listing = out / UNREADABLE_LIST
    table, dropped = drop_unreadable(table, images, skip_unreadable, listing)
    if dropped:
        logger.warning("left out %d unreadable images (listed in %s)", dropped, UNREADABLE_LIST)
    paths = [images / name for name in table.image_names]
    result = infer_probabilities(checkpoint, paths, settings, stop_at_failure=not skip_unreadable, description="score")
    if result.failures:
        _list_failures(listing, result.failures)
    return table.subset(list(result.indices)), result.probs


def _list_failures(listing: Path, failures: list[DecodeFailure]) -> None:
    skipped = [UnreadableImage(Path(f.path), f.code, f.message) for f in failures]
    previous = read_unreadable_list(listing) if listing.exists() else []
    write_unreadable_list(listing, [*previous, *skipped])
    logger.warning("left out %d more images that failed to decode (listed in %s)", len(failures), UNREADABLE_LIST)
