"""The 14 ChestX-ray14 pathology names, in the order and spelling of the seed tutorial (and of NIH's tables),
and the one way a name typed by a person is matched to them."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Final

PATHOLOGIES: Final[tuple[str, ...]] = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)

NO_FINDING: Final[str] = "No Finding"

# difflib's similarity ratio a typo must reach to be suggested; 0.8 takes one wrong, missing or extra letter in a
# word of six or more ("Pnemonia", "Efusion") and refuses unrelated words.
SUGGESTION_CUTOFF: Final[float] = 0.8


def _folded(name: str) -> str:
    """``" Pleural Thickening"`` -> ``"pleural_thickening"``: case, surrounding space, and space vs underscore."""
    return "_".join(name.strip().lower().replace("_", " ").split())


def match_label(name: str, known: Sequence[str] = PATHOLOGIES) -> str | None:
    """The entry of ``known`` that ``name`` spells, ignoring case and treating spaces and underscores alike.

    ``"mass"`` -> ``"Mass"``; ``"Pleural Thickening"`` and ``"pleural_thickening"`` -> ``"Pleural_Thickening"``;
    an unknown name -> None. NIH's own spelling is the one in ``PATHOLOGIES``.
    """
    folded = _folded(name)
    return next((label for label in known if _folded(label) == folded), None)


def suggest_label(name: str, known: Sequence[str] = PATHOLOGIES) -> str | None:
    """The entry of ``known`` that ``name`` most likely meant: its loose match, else the closest spelling by
    ``difflib.get_close_matches`` (ratio at least ``SUGGESTION_CUTOFF``), else None."""
    matched = match_label(name, known)
    if matched is not None:
        return matched
    by_folded = {_folded(label): label for label in known}
    close = difflib.get_close_matches(_folded(name), list(by_folded), n=1, cutoff=SUGGESTION_CUTOFF)
    return by_folded[close[0]] if close else None
