"""Label sets as data: the known sets (NIH ChestX-ray14's 14 is the default), their validation, the one way a
name typed by a person is matched to a model's labels, and the synonym table that aligns datasets by name.

A model's labels are a ``tuple[str, ...]`` carried by its checkpoint; every consumer reads them from there.
``NIH_LABELS`` is NIH's set: the default for NIH tables and the bundled model, never "the" labels.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Final

NIH_LABELS: Final[tuple[str, ...]] = (
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

# CheXpert's 14 columns (Irvin et al. 2019), in train.csv's order; MIMIC-CXR-JPG's labeler tables use the same
# names (in alphabetical order). "No Finding" is a label there, not the absence of one.
CHEXPERT_LABELS: Final[tuple[str, ...]] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)
# The CheXpert paper's five competition tasks; their mean AUROC is the figure that paper and its followers report.
CHEXPERT_COMPETITION: Final[tuple[str, ...]] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

KNOWN_LABEL_SETS: Final[Mapping[str, tuple[str, ...]]] = {
    "nih": NIH_LABELS,
    "chexpert": CHEXPERT_LABELS,
    "mimic": CHEXPERT_LABELS,
}

MAX_LABELS: Final[int] = 64
MAX_LABEL_CHARS: Final[int] = 64

# Names that mean the same finding in different datasets, folded (see ``fold_label``) -> one canonical key.
# Sources: NIH Data_Entry_2017 and BBox_List_2017 spellings, CheXpert/MIMIC-CXR column names, torchxrayvision's
# renaming of CheXpert's "Pleural Effusion" to "Effusion" (mlmed/torchxrayvision datasets.py).
SYNONYMS: Final[Mapping[str, str]] = {
    "pleural_effusion": "effusion",
    "infiltrate": "infiltration",
    "infiltrates": "infiltration",
    "pleural_thickening": "pleural_thickening",
    "enlarged_cardiomediastinum": "enlarged_cardiomediastinum",
    "lung_opacity": "lung_opacity",
    "lung_lesion": "lung_lesion",
}


class LabelSetError(ValueError):
    """A label list cannot be a model's labels; the message says which entry and why (it names no file)."""


# difflib's similarity ratio a typo must reach to be suggested; 0.8 takes one wrong, missing or extra letter in a
# word of six or more ("Pnemonia", "Efusion") and refuses unrelated words.
SUGGESTION_CUTOFF: Final[float] = 0.8


def fold_label(name: str) -> str:
    """``" Pleural Thickening"`` -> ``"pleural_thickening"``: case, surrounding space, and space vs underscore."""
    return "_".join(name.strip().lower().replace("_", " ").split())


_folded = fold_label


def label_key(name: str) -> str:
    """The key two datasets' labels are aligned by: the folded name through ``SYNONYMS``.

    ``"Pleural Effusion"`` and ``"Effusion"`` -> ``"effusion"``; ``"Pleural_Thickening"`` and
    ``"Pleural Thickening"`` -> ``"pleural_thickening"``; ``"Infiltrate"`` -> ``"infiltration"``.
    """
    folded = fold_label(name)
    return SYNONYMS.get(folded, folded)


def validate_labels(labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` as a tuple, checked once: 1 to ``MAX_LABELS`` names, each a non-empty printable string of at most
    ``MAX_LABEL_CHARS`` characters, no two equal after ``fold_label``.

    Raises :class:`LabelSetError` naming the first offending entry by position.
    """
    if isinstance(labels, str):
        raise LabelSetError("labels must be a list of names, not one string")
    names = tuple(labels)
    if not names:
        raise LabelSetError("a model needs at least one label")
    if len(names) > MAX_LABELS:
        raise LabelSetError(f"{len(names)} labels: at most {MAX_LABELS} are supported")
    seen: dict[str, int] = {}
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise LabelSetError(f"label {index + 1} is not a string")
        if not name.strip():
            raise LabelSetError(f"label {index + 1} is empty")
        if len(name) > MAX_LABEL_CHARS:
            raise LabelSetError(f"label {index + 1} is longer than {MAX_LABEL_CHARS} characters")
        if name != name.strip() or any(unicodedata.category(c).startswith("C") for c in name):
            raise LabelSetError(f"label {index + 1} has surrounding space or unprintable characters")
        folded = fold_label(name)
        if folded in seen:
            raise LabelSetError(f"labels {seen[folded] + 1} and {index + 1} are the same name ({name!r})")
        seen[folded] = index
    return names


def align_labels(source: Sequence[str], target: Sequence[str]) -> dict[int, int]:
    """``{index in target: index in source}`` for every target label that ``source`` names (by ``label_key``).

    Target labels missing from ``source`` are absent from the mapping (unknown there). Raises
    :class:`LabelSetError` if two source labels share a key (for example both "Effusion" and "Pleural Effusion").
    """
    by_key: dict[str, int] = {}
    for index, name in enumerate(source):
        key = label_key(name)
        if key in by_key:
            raise LabelSetError(f"{source[by_key[key]]!r} and {name!r} name the same finding")
        by_key[key] = index
    return {t: by_key[label_key(name)] for t, name in enumerate(target) if label_key(name) in by_key}


def match_label(name: str, known: Sequence[str] = NIH_LABELS) -> str | None:
    """The entry of ``known`` that ``name`` spells, ignoring case and treating spaces and underscores alike.

    ``"mass"`` -> ``"Mass"``; ``"Pleural Thickening"`` and ``"pleural_thickening"`` -> ``"Pleural_Thickening"``;
    an unknown name -> None. NIH's own spelling is the one in ``NIH_LABELS``.
    """
    folded = _folded(name)
    return next((label for label in known if _folded(label) == folded), None)


def suggest_label(name: str, known: Sequence[str] = NIH_LABELS) -> str | None:
    """The entry of ``known`` that ``name`` most likely meant: its loose match, else the closest spelling by
    ``difflib.get_close_matches`` (ratio at least ``SUGGESTION_CUTOFF``), else None."""
    matched = match_label(name, known)
    if matched is not None:
        return matched
    by_folded = {_folded(label): label for label in known}
    close = difflib.get_close_matches(_folded(name), list(by_folded), n=1, cutoff=SUGGESTION_CUTOFF)
    return by_folded[close[0]] if close else None
