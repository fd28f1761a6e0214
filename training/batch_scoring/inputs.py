"""The files a batch scoring job reads, each under a stable key, and the shard a key belongs to.

A job's inputs are a folder (searched as ``chexnet predict`` searches one), files named on the command line, or a
list file: text (one path a line; blank lines and lines starting with ``#`` are passed over) or Parquet (a ``path``
column), so that an archive of millions of files is never listed on a shared file system. A relative path in a list
is resolved against ``--root``, else against the list file's folder.

The key of a file is its path relative to the root (POSIX separators): the column ``path`` of the results table,
the identity a resume and a merge compare, and what decides the shard. Shard ``K/N`` (K from 1 to N) holds the
keys whose SHA-256, read as an unsigned 64-bit big-endian integer, is K-1 modulo N: stable when files are added (a
key's shard never depends on the other keys), independent of the listing order and of ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from training.data.file_names import visible_name
from training.data.image_files import FoundImages, NoImagesFoundError, collect_images
from training.exit_status import UsageError

SHARD_PATTERN = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class InputListError(ValueError):
    """A list file that cannot be used (unreadable, no ``path`` column, two entries with the same key)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1 <= index <= count); ``Shard(1, 1)`` is the whole job."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        """Whether ``key`` belongs to this shard (see the module docstring for the hash)."""
        return self.count == 1 or shard_number(key, self.count) == self.index


WHOLE = Shard(1, 1)


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> Shard(K, N); UsageError unless 1 <= K <= N."""
    match = SHARD_PATTERN.match(text)
    if match is None:
        raise UsageError(f"--shard {text}: write it K/N, shard K of N (1 <= K <= N), e.g. --shard 3/8")
    index, count = int(match.group(1)), int(match.group(2))
    if not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N")
    return Shard(index, count)


def shard_number(key: str, count: int) -> int:
    """The shard (1..count) of ``key``: SHA-256 of its UTF-8 bytes, first 8 bytes big-endian, modulo ``count``, + 1."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


@dataclass(frozen=True)
class ScoringInput:
    """One file to score: ``key`` (its path relative to the root, POSIX) and ``path`` (where to read it)."""

    key: str
    path: Path


def key_of(path: Path, root: Path | None) -> str:
    """``path`` relative to ``root`` when it lies under it (lexically), else as given; POSIX separators."""
    if root is not None:
        try:
            return PurePosixPath(path.relative_to(root).as_posix()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def read_list_file(list_file: Path, root: Path | None) -> list[ScoringInput]:
    """The inputs a list file names (see the module docstring), in its order. Raises :class:`InputListError`."""
    base = root if root is not None else list_file.parent
    names = _parquet_paths(list_file) if list_file.suffix.lower() == ".parquet" else _text_paths(list_file)
    inputs = [ScoringInput(key_of(base / name, base), base / name) for name in names]
    _refuse_duplicates(inputs, list_file)
    return inputs


def _text_paths(list_file: Path) -> list[str]:
    try:
        text = list_file.read_text("utf-8", errors="surrogateescape")
    except OSError as exc:
        raise InputListError(f"cannot read the list {visible_name(list_file)}: {exc.strerror or 'I/O error'}") from None
    text = text.removeprefix("\ufeff")  # a byte-order mark: lists saved by spreadsheet and Windows tools have one
    names = []
    for number, line in enumerate(text.splitlines(), start=1):
        name = line.strip()
        if "\0" in name:
            raise InputListError(f"the list {visible_name(list_file)}: line {number} holds a NUL byte: not a path")
        if name and not name.startswith("#"):
            names.append(name)
    return names


def _parquet_paths(list_file: Path) -> list[str]:
    from training.batch_scoring.parquet_parts import require_pyarrow

    parquet = require_pyarrow("a Parquet list file").parquet
    try:
        table = parquet.read_table(list_file, columns=["path"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputListError(
            f"cannot read the list {visible_name(list_file)}: it needs a 'path' column ({type(exc).__name__})"
        ) from None
    names = []
    for number, value in enumerate(table.column("path").to_pylist(), start=1):
        if not isinstance(value, str) or not value or "\0" in value:
            raise InputListError(
                f"the list {visible_name(list_file)}: row {number} of its 'path' column is not a path (empty, null, "
                "binary or holding a NUL byte)"
            )
        names.append(value)
    return names


def _refuse_duplicates(inputs: Sequence[ScoringInput], source: Path | None) -> None:
    seen: set[str] = set()
    for item in inputs:
        if item.key in seen:
            where = f" in {visible_name(source)}" if source is not None else ""
            raise InputListError(f"{visible_name(item.key)} is named twice{where}; each file may be scored once")
        seen.add(item.key)


def found_inputs(paths: Iterable[Path], recursive: bool, root: Path | None) -> tuple[list[ScoringInput], FoundImages]:
    """Files and folders from the command line -> inputs: a file found in a folder is keyed relative to that folder
    (or ``root``), a file named directly by its path as given (or relative to ``root``)."""
    inputs: list[ScoringInput] = []
    found = FoundImages()
    for path in paths:
        try:
            one = collect_images([path], recursive) if path.is_dir() else FoundImages(paths=[path])
        except NoImagesFoundError:
            continue  # one empty folder among several is not an error; none found at all is (below)
        base = root if root is not None else (path if path.is_dir() else None)
        inputs.extend(ScoringInput(key_of(p, base), p) for p in one.paths)
        found.paths.extend(one.paths)
        found.skipped += one.skipped
        found.without_pixels += one.without_pixels
        found.subfolders += one.subfolders
        found.unlistable.extend(one.unlistable)
    if not inputs and not found.unlistable:
        raise NoImagesFoundError(
            "no PNG, JPEG or DICOM images found in the given paths (--recursive searches subfolders)"
        )
    _refuse_duplicates(inputs, None)
    return inputs, found


def shard_inputs(inputs: Iterable[ScoringInput], shard: Shard) -> list[ScoringInput]:
    """The inputs of ``shard``, in their order."""
    return [item for item in inputs if shard.holds(item.key)]
