"""Check every image of a dataset before epoch 1: it opens, its format and size pass the decoder's limits.

Only headers are read (``models.imaging.decoder.probe_image``), in a thread pool, so 100,000 files take seconds, not
an epoch.  A file that passes can still fail to decode later (a truncated body): the training dataset reports
such a file with :class:`training.data.dataset.UnreadableImageError`.
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from models.imaging.decoder import DEFAULT_LIMITS, DecodeLimits, probe_image
from models.imaging.errors import InputError
from training.data.file_names import csv_file_name, original_file_name, visible_name
from training.data.label_tables import LabelTable

logger = logging.getLogger(__name__)

MAX_NAMED = 5
UNREADABLE_LIST = "unreadable.csv"


@dataclass(frozen=True)
class UnreadableImage:
    """One file that cannot be used: its path, the decoder's error code and the message for a person."""

    path: Path
    code: str
    message: str

    def describe(self) -> str:
        return f"{visible_name(self.path)}: {self.message}"


class UnreadableImagesError(ValueError):
    """Some images of a dataset cannot be used; the message names the first few with their reasons."""

    def __init__(self, failures: Sequence[UnreadableImage], total: int) -> None:
        self.failures = list(failures)
        shown = "; ".join(f.describe().rstrip(".") for f in self.failures[:MAX_NAMED])
        more = f"; and {len(self.failures) - MAX_NAMED} more" if len(self.failures) > MAX_NAMED else ""
        super().__init__(
            f"{len(self.failures)} of {total} images cannot be read (fix or remove them, or pass "
            f"--skip-unreadable to leave them out): {shown}{more}."
        )


def _probe(path: Path, limits: DecodeLimits) -> UnreadableImage | None:
    try:
        probe_image(path, limits)
    except InputError as error:
        return UnreadableImage(path, error.code, error.message)
    return None


def find_unreadable(
    paths: Sequence[Path], limits: DecodeLimits = DEFAULT_LIMITS, threads: int | None = None, show: bool = True
) -> list[UnreadableImage]:
    """The files among ``paths`` whose header fails the decoder's checks, in ``paths`` order.

    ``threads`` defaults to 4 per CPU core (header reads wait on the disk more than on the CPU); the progress
    bar is shown on a terminal only.
    """
    workers = threads or min(32, 4 * (os.cpu_count() or 1))
    quiet = not (show and sys.stderr.isatty())
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(
            tqdm(
                pool.map(lambda p: _probe(p, limits), paths),
                total=len(paths),
                desc="check images",
                unit="img",
                disable=quiet,
                leave=False,
            )
        )
    return [r for r in results if r is not None]


def read_unreadable_list(path: Path) -> list[UnreadableImage]:
    """The rows of a list written by :func:`write_unreadable_list` (paths unescaped: see ``csv_file_name``)."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [UnreadableImage(Path(original_file_name(row["path"])), row["code"], row["reason"]) for row in rows]


def write_unreadable_list(path: Path, failures: Sequence[UnreadableImage]) -> None:
    """CSV of ``path,code,reason`` for each skipped file (the run folder's record of what was left out); paths that
    are not UTF-8 are escaped losslessly (:func:`training.data.file_names.csv_file_name`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "code", "reason"])
        writer.writerows([csv_file_name(f.path), f.code, f.message] for f in failures)


def drop_unreadable(table: LabelTable, images: Path, skip: bool, listing: Path | None) -> tuple[LabelTable, int]:
    """The table without the images that fail the header check, and how many were left out.

    Raises :class:`UnreadableImagesError` unless ``skip`` (``--skip-unreadable``); then the failures are written
    to ``listing`` (when given: only one process of a distributed run writes).
    """
    paths = [images / name for name in table.image_names]
    failures = find_unreadable(paths)
    if not failures:
        return table, 0
    if not skip:
        raise UnreadableImagesError(failures, len(paths))
    if listing is not None:
        write_unreadable_list(listing, failures)
    bad = {f.path for f in failures}
    return table.subset([i for i, path in enumerate(paths) if path not in bad]), len(bad)
