"""Reading weights files written by other projects, without running any of their code.

Every file is unpickled by ``torch.load(..., weights_only=True)``: tensors, containers, numbers and strings only,
never ``weights_only=False``. When that refuses a file, a static scan of the pickle's GLOBAL opcodes (nothing is
executed) names the classes it holds, so the message can say what was found: torchxrayvision's released files,
for instance, pickle a whole ``nn.Module`` (its loader uses ``weights_only=False``), and their state dict has to
be exported first (README, "Real models").
"""

from __future__ import annotations

import hashlib
import io
import pickletools
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.errors import ModelContractError

# Where the classes of a pickled network come from: a file naming them holds a module, not a state dict.
_MODULE_PREFIXES = ("torch.nn.modules.", "torchxrayvision.", "torchvision.models.")
_LEGACY_PICKLES_BEFORE_OBJECT = 3  # torch's legacy format: magic number, protocol version, system info


class ImportSourceError(ModelContractError):
    """A file to import is unreadable or matches no supported layout; the message says what was found."""


@dataclass(frozen=True)
class SourceFile:
    """A foreign weights file as read: ``content`` (what it unpickled to), its name (no folders) and SHA-256."""

    content: Any
    file_name: str
    sha256: str


def read_source_file(path: Path) -> SourceFile:
    """Read ``path`` with ``torch.load(weights_only=True)`` on the CPU; raises ImportSourceError saying why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportSourceError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
    try:
        content = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and EOF errors all mean the file cannot be read as data
        found = (name for name in _pickled_globals(data) if name.startswith(_MODULE_PREFIXES))
        classes = sorted(found, key=lambda name: (name.startswith("torch.nn."), name))  # the network's own first
        if classes:
            raise ImportSourceError(
                f"{path.name} holds a whole pickled network ({', '.join(classes[:4])}"
                f"{', ...' if len(classes) > 4 else ''}), not a state dict; it cannot be read with "
                "weights_only=True, and nothing here loads it otherwise: export its state_dict() first "
                "(docs/real-models.md)"
            ) from exc
        raise ImportSourceError(
            f"{path.name} cannot be read as a PyTorch weights file ({type(exc).__name__}): it is corrupt or "
            "truncated, or holds objects other than tensors and plain data (only weights_only loads are done)"
        ) from exc
    return SourceFile(content, path.name, hashlib.sha256(data).hexdigest())


def _pickled_globals(data: bytes) -> set[str]:
    """``module.name`` of every GLOBAL opcode in a torch file's object pickle (zip or legacy format); static."""
    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
                return _globals_in_pickle(io.BytesIO(archive.read(name)))
        stream = io.BytesIO(data)
        for _ in range(_LEGACY_PICKLES_BEFORE_OBJECT):
            _globals_in_pickle(stream)
        return _globals_in_pickle(stream)
    except Exception:  # not a torch file or damaged: torch.load reports it
        return set()


def _globals_in_pickle(stream: io.BytesIO) -> set[str]:
    """Scan one pickle up to its STOP opcode, leaving ``stream`` just after it."""
    found: set[str] = set()
    for opcode, argument, _ in pickletools.genops(stream):
        if opcode.name == "GLOBAL" and isinstance(argument, str):
            found.add(argument.replace(" ", "."))
    return found


def describe_content(content: Any) -> str:
    """One line saying what a file unpickled to: a chexnet checkpoint, a wrapper dict, or a state dict's shape.

    For a state dict: the tensor count, the key prefix before ``features.conv0.weight``, that convolution's
    shape (its input channels) and the classifier tensors' shapes, which tell the layouts apart.
    """
    if not isinstance(content, dict):
        return f"a {type(content).__name__}, not a dict"
    if content.get("format") == "chexnet-checkpoint":
        return "a chexnet checkpoint already (serve it with --checkpoint; there is nothing to import)"
    tensors = {str(k): v for k, v in content.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(repr(k) for k in list(content)[:8])
        inner = content.get("state_dict")
        within = f"; its 'state_dict' is {describe_content(inner)}" if isinstance(inner, dict) else ""
        return f"a dict without tensors at the top (keys {keys}{', ...' if len(content) > 8 else ''}){within}"
    parts = [f"a state dict of {len(tensors)} tensors"]
    stem = next((k for k in tensors if k.endswith("features.conv0.weight")), None)
    if stem is not None:
        prefix = stem.removesuffix("features.conv0.weight")
        parts.append(f"key prefix {prefix!r}" if prefix else "no key prefix")
        channels = tensors[stem].shape[1]
        parts.append(f"first convolution {_shape(tensors[stem])} ({channels} input channel{'s' * (channels != 1)})")
    else:
        parts.append(f"keys like {', '.join(list(tensors)[:3])}")
    heads = [f"{k} {_shape(v)}" for k, v in tensors.items() if "classifier" in k and k.endswith("weight")]
    parts.append(f"head {', '.join(heads)}" if heads else "no classifier weights")
    return "; ".join(parts)


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(n) for n in tensor.shape)
