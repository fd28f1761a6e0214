"""Starting weights from torchvision's published files, hash-checked and unpickled with ``weights_only=True``.

torchvision loads these files through ``torch.hub``, which unpickles them with ``weights_only=False`` and, for
these files, checks no hash: a replaced file in the hub cache would run code when training starts. Here the file
is read once into memory, its SHA-256 checked against the prefix that torchvision publishes in the file name
(``densenet121-a639ec97.pth``: the hash begins ``a639ec97``), and only those bytes are unpickled, with
``weights_only=True`` (tensors and plain containers; nothing executes whatever the file holds).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import torch

from models.errors import WeightsUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedFile:
    """A published weights file: where it is downloaded from and how its SHA-256 begins."""

    url: str
    sha256_prefix: str

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def cache_path(self) -> Path:
        """Where torch.hub keeps it: ``$TORCH_HOME/hub/checkpoints/NAME`` (default ``~/.cache/torch``)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


# torchvision's DenseNet121_Weights.IMAGENET1K_V1, pinned here with its hash so a torchvision upgrade cannot move it
DENSENET121_IMAGENET = PretrainedFile("https://download.pytorch.org/models/densenet121-a639ec97.pth", "a639ec97")


def cached_or_downloaded(weights: PretrainedFile) -> Path:
    """The file in the torch hub cache, downloaded there first if missing (hash-checked before it is kept)."""
    path = weights.cache_path()
    if path.is_file():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(weights.url, str(path), hash_prefix=weights.sha256_prefix, progress=False)
    except Exception as exc:  # urllib, ssl, socket, file system and hash errors all mean "not available here"
        raise WeightsUnavailableError(
            f"ImageNet weights are not in the torch hub cache ({path}) and could not be downloaded "
            f"({type(exc).__name__}). Where there is no network, copy {weights.file_name} from {weights.url} "
            f"to that path (or point TORCH_HOME at a folder holding hub/checkpoints/{weights.file_name}), "
            "or start from random weights with --weights none."
        ) from exc
    return path


def load_pretrained_state(weights: PretrainedFile) -> dict[str, torch.Tensor]:
    """The file's state dict; raises ``WeightsUnavailableError`` if it is missing, altered or holds code."""
    path = cached_or_downloaded(weights)
    data = path.read_bytes()  # hashed and unpickled from the same bytes: the file may change meanwhile
    digest = hashlib.sha256(data).hexdigest()
    if not digest.startswith(weights.sha256_prefix):
        raise WeightsUnavailableError(
            f"{path} is not the published {weights.file_name}: its SHA-256 begins {digest[:8]}, not "
            f"{weights.sha256_prefix}. The file is corrupt or was replaced; delete it (it is downloaded again "
            "where there is a network), or start from random weights with --weights none."
        )
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # an unpickling error: objects other than tensors and plain containers
        raise WeightsUnavailableError(
            f"{path} holds objects other than tensors and plain data ({type(exc).__name__}); refused: starting "
            "weights are only loaded with weights_only=True"
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsUnavailableError(f"{path} is not a state dict (names to tensors)")
    logger.info("loaded %s (SHA-256 %s...)", path, digest[:16])
    return state
