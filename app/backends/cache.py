"""Where compiled models are kept: a folder of files named by the checkpoint's SHA-256, each checked on read.

The folder is ``CHEXNET_CACHE_DIR`` when set; otherwise ``.chexnet-cache`` beside the checkpoint, or, when that
cannot be written (a read-only mount in Docker), a per-user folder under the temporary directory. A manifest
written last records the SHA-256 of every file of an entry; an entry whose files are missing or differ from
their manifest is not trusted, and the caller exports again. The files are data (an IR graph and its weights),
never code: nothing here unpickles or executes what it reads.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from models.files import file_sha256

logger = logging.getLogger(__name__)

CACHE_FOLDER = ".chexnet-cache"


def _writable_folder(folder: Path, private: bool = False) -> bool:
    try:
        folder.mkdir(mode=0o700 if private else 0o755, parents=True, exist_ok=True)
    except OSError:
        return False
    if private and (folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o022):
        logger.warning("ignoring a shared cache folder that another user owns or can write")
        return False
    return os.access(folder, os.W_OK | os.X_OK)


def resolve_cache_dir(configured: Path | None, checkpoint: Path) -> Path | None:
    """The first writable of: the configured folder, beside the checkpoint, a per-user temp folder; else None."""
    if configured is not None:
        return configured if _writable_folder(configured) else None
    beside = checkpoint.resolve().parent / CACHE_FOLDER
    if _writable_folder(beside):
        return beside
    fallback = Path(tempfile.gettempdir()) / f"chexnet-cache-{os.getuid()}"
    return fallback if _writable_folder(fallback, private=True) else None


class ExportCache:
    """Entries ``<key>.<suffix>`` plus ``<key>.manifest.json`` in one folder; ``key`` starts with the sha256."""

    def __init__(self, folder: Path, key: str, suffixes: tuple[str, ...]) -> None:
        self.folder, self.key, self.suffixes = folder, key, suffixes

    def path(self, suffix: str) -> Path:
        return self.folder / f"{self.key}.{suffix}"

    @property
    def manifest(self) -> Path:
        return self.folder / f"{self.key}.manifest.json"

    def verified(self) -> bool:
        """True when every file exists and has the digest its manifest records."""
        try:
            recorded = json.loads(self.manifest.read_text())
            return all(recorded.get(s) == file_sha256(self.path(s)) for s in self.suffixes)
        except (OSError, ValueError, AttributeError):
            return False

    def store(self, write: Callable[[Path], None]) -> None:
        """``write(stem)`` writes ``stem.<suffix>`` for each suffix; they are moved into place, manifest last."""
        with tempfile.TemporaryDirectory(prefix=".export-", dir=self.folder) as tmp:
            stem = Path(tmp) / self.key
            write(stem)
            digests = {s: file_sha256(stem.with_name(f"{stem.name}.{s}")) for s in self.suffixes}
            self.manifest.unlink(missing_ok=True)  # a reader never sees the old manifest beside new files
            for suffix in self.suffixes:
                os.replace(stem.with_name(f"{stem.name}.{suffix}"), self.path(suffix))
            manifest_tmp = stem.with_name(f"{stem.name}.manifest.json")
            manifest_tmp.write_text(json.dumps(digests, indent=1))
            os.replace(manifest_tmp, self.manifest)
