"""The 14 ChestX-ray14 pathology names, in the order and spelling of the seed tutorial (and of NIH's tables)."""

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
