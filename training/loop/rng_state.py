"""Resumable training state as plain data + tensors, so ``weights_only`` loading still works."""

from __future__ import annotations

import random
from typing import Any, cast

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors and plain data."""
    np_state = cast(tuple[Any, ...], np.random.get_state())  # the legacy tuple form (MT19937)
    version, keys, cached = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached": float(np_state[4]),
        },
        "python": {"version": version, "state": torch.tensor(keys, dtype=torch.int64), "gauss": cached},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    np_part = state["numpy"]
    keys = np_part["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, np_part["pos"], np_part["has_gauss"], np_part["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
