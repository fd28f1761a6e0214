"""The files a training run keeps in its folder (``--out``): which mark a run, and how ``--overwrite`` clears one.

A folder holding any of ``RUN_MARKERS`` holds a run; ``chexnet train`` refuses it unless ``--resume`` continues it
or ``--overwrite`` replaces it, so a rerun never silently replaces someone's best.pt.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.data.image_check import UNREADABLE_LIST

logger = logging.getLogger(__name__)

RUN_MARKERS = ("best.pt", "last.pt", "metrics.json")
METRICS_CSV = "metrics.csv"
CURVES_PNG = "curves.png"
TENSORBOARD_DIR = "tensorboard"
# Written with models.checkpoint.write_atomically: a writer killed mid-write leaves a hidden ".NAME.*.tmp".
WRITTEN_ATOMICALLY = (*RUN_MARKERS, METRICS_CSV, CURVES_PNG)
_OTHER_FILES = ("train_list.txt", "val_list.txt", UNREADABLE_LIST)


def existing_run_markers(out: Path) -> list[str]:
    """The names in ``RUN_MARKERS`` that exist in ``out`` (empty for a new or empty folder)."""
    return [name for name in RUN_MARKERS if (out / name).exists()]


def remove_interrupted_writes(out: Path) -> int:
    """Delete temporary files left by a writer killed mid-write (the files they were meant to replace are whole)."""
    leftovers = [p for name in WRITTEN_ATOMICALLY for p in out.glob(f".{name}.*.tmp")]
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("removed %d temporary files of an interrupted write", len(leftovers))
    return len(leftovers)


def clear_run(out: Path) -> int:
    """Delete the files a run wrote in ``out`` (and only those: other files and folders stay); returns the count.

    TensorBoard's event files go too, so the curves of the old run do not mix with the new one's.
    """
    removed = remove_interrupted_writes(out)
    paths = [out / name for name in (*WRITTEN_ATOMICALLY, *_OTHER_FILES)]
    paths += (out / TENSORBOARD_DIR).glob("events.out.tfevents.*")
    for path in paths:
        if path.is_file():
            path.unlink()
            removed += 1
    if removed:
        logger.info("--overwrite: removed %d files of the earlier run", removed)
    return removed
