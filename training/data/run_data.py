"""A training run's data: each label table read, checked and split by patient on its own (no patient is shared
across tables), then aligned to the run's label set. Splits are train / val / test; the test split is written
beside the others and never used for model or threshold selection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.files import file_sha256
from training.data.image_check import UNREADABLE_LIST, drop_unreadable
from training.data.label_tables import LabelTable, check_images_exist, read_label_table
from training.data.sources import DataSource, aligned_targets, dataset_names, resolve_label_set
from training.data.splits import indices_of, read_name_list, split_from_lists, split_official, split_three_ways
from training.loop.config import TrainConfig, TrainConfigError

logger = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitTable:
    """One source's table with its (train, val, test) row indices; ``name`` is its short name in the run."""

    name: str
    source: DataSource
    table: LabelTable
    rows: dict[str, np.ndarray]


@dataclass(frozen=True)
class RunData:
    """Every source, split, and the run's labels (the model's outputs, in order)."""

    labels: tuple[str, ...]
    tables: tuple[SplitTable, ...]

    def part(self, which: str) -> tuple[list[Path], np.ndarray, np.ndarray]:
        """(image paths, (N, K) targets aligned to ``labels`` with NaN for unknown, (N,) source index) of a split."""
        paths: list[Path] = []
        targets, owners = [], []
        for index, split in enumerate(self.tables):
            rows = split.rows[which]
            paths += [split.source.images / split.table.image_names[i] for i in rows]
            targets.append(aligned_targets(split.table.subset(rows), self.labels))
            owners.append(np.full(len(rows), index, dtype=np.int64))
        return paths, np.concatenate(targets), np.concatenate(owners)

    def count(self, which: str) -> int:
        return sum(len(split.rows[which]) for split in self.tables)

    def describe(self) -> list[dict[str, Any]]:
        """Provenance: per source its name, format, file names, policy, patient source, labels and row counts."""
        return [
            {
                "name": split.name,
                "format": split.table.kind,
                "labels_file": split.source.labels.name,
                "labels_sha256": file_sha256(split.source.labels),
                "images": split.source.images.name,
                "policy": split.table.policy,
                "patients_from": split.table.patient_source,
                "labels": list(split.table.labels),
                "rows": {part: len(split.rows[part]) for part in PARTS},
            }
            for split in self.tables
        ]


def _split(config: TrainConfig, table: LabelTable, single: bool) -> dict[str, np.ndarray]:
    if single and config.train_list is not None and config.val_list is not None:
        train, val = split_from_lists(table, config.train_list, config.val_list)
        test = np.empty(0, dtype=np.int64)
        if config.test_list is not None:
            test = indices_of(table, read_name_list(config.test_list), config.test_list)
            if np.intersect1d(test, np.concatenate([train, val])).size:
                raise TrainConfigError(f"--test-list {config.test_list} shares images with the train or val list")
        return dict(zip(PARTS, (train, val, test), strict=True))
    if table.splits is not None and config.test_fraction == 0.0:
        return dict(zip(PARTS, split_official(table), strict=True))
    return dict(
        zip(PARTS, split_three_ways(table, config.val_fraction, config.test_fraction, config.seed), strict=True)
    )


def load_run_data(config: TrainConfig, listing_allowed: bool) -> RunData:
    """Read every table, check every image exists and opens, split each by patient, choose the label set.

    Raises LabelTableError / UnreadableImagesError / DataOptionError naming what to fix.
    """
    sources = config.sources()
    tables = []
    for source in sources:
        table = read_label_table(source.labels, config.table_options(source.kind))
        check_images_exist(table, source.images)
        listing = config.out / UNREADABLE_LIST if listing_allowed else None
        table, dropped = drop_unreadable(table, source.images, config.skip_unreadable, listing)
        if dropped:
            logger.warning("--skip-unreadable: left out %d images (listed in %s)", dropped, UNREADABLE_LIST)
        tables.append(table)
    labels = resolve_label_set(config.label_set, tables)
    names = dataset_names(sources, [t.kind for t in tables])
    splits = tuple(
        SplitTable(name, source, table, _split(config, table, len(sources) == 1))
        for name, source, table in zip(names, sources, tables, strict=True)
    )
    logger.info("run labels (%d): %s", len(labels), ", ".join(labels))
    return RunData(labels, splits)


def write_split_lists(out: Path, data: RunData) -> None:
    """OUT/{train,val,test}_list.txt (NIH's list format) for one table; OUT/<name>/... for each of several."""
    for split in data.tables:
        folder = out if len(data.tables) == 1 else out / split.name
        folder.mkdir(parents=True, exist_ok=True)
        for part in PARTS:
            names = "".join(f"{split.table.image_names[i]}\n" for i in split.rows[part])
            if part != "test" or names:
                (folder / f"{part}_list.txt").write_text(names)
