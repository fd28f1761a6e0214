"""File helpers both sides use: atomic writes, content hashes, and the torch device a name asks for."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO

import torch

CHUNK_BYTES = 1 << 20


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], object], durable: bool = True) -> Path:
    """Write a file so that a crash or ``kill -9`` at any moment leaves the old file or the new one, whole.

    ``write`` fills a temporary file in the same folder; it is flushed to disk, then renamed over ``path`` (an
    atomic step), and the folder is synced so the rename survives a power cut too. A killed writer leaves only a
    hidden ``.NAME.*.tmp`` beside the file. Raises whatever ``write`` or the file system raises (``OSError``).
    ``durable=False`` leaves out both syncs, for files that can be made again (a cache whose entries carry their
    own checksum): readers still see the old file or the new one whole, but a power cut may lose the new one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; a container's non-root user must read mounted checkpoints
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if not durable:
        return target
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return target


def write_bytes_atomically(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> Path:
    """:func:`write_atomically` for bytes already in memory."""
    return write_atomically(path, lambda handle: handle.write(data), durable)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks; raises ``OSError`` if it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def files_sha256(paths: Iterable[Path], root: Path) -> str:
    """Hex SHA-256 over files' paths (relative to ``root``, sorted) and contents: one key for a source tree."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> cuda if available else cpu; otherwise a device usable here.

    Raises ``ValueError`` for a name torch does not know, or for CUDA asked for where there is none.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but no CUDA device is available")
    return resolved
