"""/predict's findings: one image's probabilities at one of the model's operating points.

The decision itself (temperature, then probability >= threshold) is the model contract's
(``models.operating_points.OperatingPoints.decide``); here it is only chosen and shaped for the response.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from app.errors import UnknownOperatingPointError
from app.model_card import without_paths
from app.schemas import Finding, OperatingPointRef
from models.labels import match_label, suggest_label
from models.operating_points import OperatingPoints

NO_OPERATING_POINTS = (
    "This model has no operating points, so its probabilities are scores, not decisions: no threshold is implied "
    "(not 0.5 either). Operating points are chosen on labelled data with chexnet calibrate."
)


def resolve_point(points: OperatingPoints | None, requested: str | None) -> str | None:
    """The point to use: ``requested``, else the model's default; None when the model has none.

    Names match as pathology names do (``Youden``, ``SPEC90``); an empty one means the default. Raises
    UnknownOperatingPointError (422, with a suggestion for a near miss) for a name the model lacks, or any name
    when it has no points.
    """
    asked = requested.strip() if requested is not None else ""
    if points is None:
        if asked:
            raise UnknownOperatingPointError(())
        return None
    if not asked:  # absent or empty: the model's default
        return points.default
    name = match_label(asked, tuple(points.points))  # as ?pathology=: case, spaces and underscores do not matter
    if name is None:
        raise UnknownOperatingPointError(tuple(points.points), suggest_label(asked, tuple(points.points)))
    return name


def findings_fields(probs: npt.NDArray[np.float32], points: OperatingPoints | None, name: str | None) -> dict[str, Any]:
    """The ``findings``, ``operating_point`` and ``note`` fields of /predict's answer for (K,) raw ``probs``."""
    if points is None or name is None:
        return {"findings": None, "operating_point": None, "note": NO_OPERATING_POINTS}
    decisions = points.decide(probs, name)
    findings = {
        label: Finding(probability=d.probability, threshold=d.threshold, above=d.above, unreliable=d.unreliable)
        for label, d in decisions.items()
    }
    reference = OperatingPointRef(
        name=name,
        description=points.points[name].description,
        chosen_on=str(without_paths(str(points.source.get("data", "not recorded")))),
        temperature=points.temperature,
        available=list(points.points),
    )
    return {"findings": findings, "operating_point": reference, "note": None}


def operating_points_card(points: OperatingPoints | None) -> dict[str, Any] | None:
    """The stored section for GET /model, with paths in its free text reduced to file names."""
    if points is None:
        return None
    card: dict[str, Any] = without_paths(points.to_dict())
    return card
