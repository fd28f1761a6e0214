"""What the service says about its model: a name and version, and the training record without private paths.

A checkpoint records how it was made (``provenance``: data set, command, versions; ``config``: the training
options) as typed on the training machine, so it can hold home folders and hospital share names. The service
shows file names instead: every string that looks like a path is reduced to its last component, and every path
inside a command or free text likewise, so ``--images /home/alice/nih/images`` is shown as ``--images images``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# A run of non-space characters with a / or \ in it, not a URL, not a ratio such as 400/100.
_PATH_TOKEN = re.compile(r"(?<![\w:/\\])(?!\d+/\d+\b)([^\s='\"]*[/\\][^\s'\"]*)")


def _last_component(match: re.Match[str]) -> str:
    token = match.group(1)
    if "://" in token:
        return token
    name = re.split(r"[/\\]", token.rstrip("/\\"))[-1]
    return name or "/"


def without_paths(value: Any) -> Any:
    """``value`` (JSON-like) with every path in its strings reduced to a file name; other values unchanged."""
    if isinstance(value, str):
        return _PATH_TOKEN.sub(_last_component, value)
    if isinstance(value, dict):
        return {key: without_paths(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_paths(item) for item in value]
    return value


def model_identity(configured_name: str | None, provenance: dict[str, Any], checkpoint: Path) -> tuple[str, str]:
    """(name, version) shown by ``/model`` and ``/predict``.

    Name: ``CHEXNET_MODEL_NAME``, else the name recorded at training (``provenance["model_name"]``), else the
    checkpoint's file stem. Version: the recorded ``model_version``, else the chexnet version that trained it.
    """
    name = configured_name or provenance.get("model_name") or checkpoint.stem
    version = provenance.get("model_version") or provenance.get("chexnet_version") or "unknown"
    return str(name), str(version)
