"""Operating points travel with the model: per-class decision thresholds and what they were chosen on.

A probability alone does not say where to cut; a threshold chosen on one data set does not transfer to another
(torchxrayvision's users found a 0.5 cut calling 1,385 Cardiomegaly positives against 290 true ones). So a
checkpoint may carry named operating points, each a threshold per class, with the data they were chosen on and,
where known, the sensitivity, specificity, PPV and NPV at that threshold there.

Stored in the checkpoint payload under ``"operating_points"`` as plain data (``weights_only``-loadable)::

    {"version": 1,
     "default": "youden",                            # the point /predict uses when none is asked for
     "source": {"data": "NIH ChestX-ray14 sample, validation split", "images": 100,
                "positives": {"Atelectasis": 11, ...}},                     # per class, when known
     "unreliable": ["Hernia", ...],                   # classes with fewer than MIN_POSITIVES positives
     "temperature": 1.0 | None,                       # fitted logit temperature, when calibrated
     "points": {
        "youden": {"description": "maximises Youden's J = sensitivity + specificity - 1",
                   "thresholds": {"Atelectasis": {"threshold": 0.12, "sensitivity": 0.7,
                                                  "specificity": 0.6, "ppv": 0.2, "npv": 0.93}, ...}},
        "spec90": {...}, "xrv": {...}}}

Every point has a threshold for each of the 14 classes (``models.labels.PATHOLOGIES``); the statistics are
optional. Names are short identifiers (``[a-z0-9_]``, used in ``?operating_point=``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from models.errors import CheckpointError
from models.labels import PATHOLOGIES

FORMAT_VERSION = 1
MIN_POSITIVES = 10  # fewer positives than this: the class's thresholds are flagged unreliable
STATISTICS = ("sensitivity", "specificity", "ppv", "npv")
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")


@dataclass(frozen=True)
class ClassThreshold:
    """One class at one operating point: ``threshold`` on the probability (after sigmoid and temperature),
    and the statistics at that threshold on the data it was chosen on (None when unknown)."""

    threshold: float
    sensitivity: float | None = None
    specificity: float | None = None
    ppv: float | None = None
    npv: float | None = None

    def to_dict(self) -> dict[str, float]:
        stats = {name: getattr(self, name) for name in STATISTICS if getattr(self, name) is not None}
        return {"threshold": self.threshold, **stats}


@dataclass(frozen=True)
class OperatingPoint:
    description: str
    thresholds: dict[str, ClassThreshold]  # one per class, in PATHOLOGIES order

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "thresholds": {name: self.thresholds[name].to_dict() for name in PATHOLOGIES},
        }


@dataclass(frozen=True)
class OperatingPoints:
    """The checkpoint's ``operating_points`` section (see the module docstring for its layout)."""

    points: dict[str, OperatingPoint]
    default: str
    source: dict[str, Any] = field(default_factory=dict)
    unreliable: tuple[str, ...] = ()
    temperature: float | None = None

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError("operating points: none given")
        for name, point in self.points.items():
            if not _NAME.match(name):
                raise ValueError(f"operating point name {name!r} is not a short identifier ([a-z0-9_], 1-32)")
            if tuple(point.thresholds) != PATHOLOGIES:
                raise ValueError(f"operating point {name!r} must have one threshold per class, in PATHOLOGIES order")
            for label, entry in point.thresholds.items():
                values = [entry.threshold, *(v for v in (getattr(entry, s) for s in STATISTICS) if v is not None)]
                if not all(isinstance(v, float | int) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
                    raise ValueError(f"operating point {name!r}, {label}: values must be numbers in [0, 1]")
        if self.default not in self.points:
            raise ValueError(f"default operating point {self.default!r} is not one of {sorted(self.points)}")
        unknown = set(self.unreliable) - set(PATHOLOGIES)
        if unknown:
            raise ValueError(f"unreliable classes {sorted(unknown)} are not ChestX-ray14 names")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError("temperature must be a positive number")

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "default": self.default,
            "source": self.source,
            "unreliable": list(self.unreliable),
            "temperature": self.temperature,
            "points": {name: point.to_dict() for name, point in self.points.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> OperatingPoints:
        """Parse the stored section; raises CheckpointError naming what is wrong."""
        try:
            if not isinstance(data, dict) or not isinstance(data.get("version"), int):
                raise ValueError("not a versioned section")
            if data["version"] > FORMAT_VERSION:
                raise ValueError(f"version {data['version']}; this code reads up to {FORMAT_VERSION}")
            points = {
                str(name): OperatingPoint(
                    description=str(point.get("description", "")),
                    thresholds={
                        label: ClassThreshold(**{k: float(v) for k, v in point["thresholds"][label].items()})
                        for label in PATHOLOGIES
                    },
                )
                for name, point in data["points"].items()
            }
            temperature = data.get("temperature")
            return cls(
                points=points,
                default=str(data["default"]),
                source=dict(data.get("source") or {}),
                unreliable=tuple(str(name) for name in data.get("unreliable", ())),
                temperature=None if temperature is None else float(temperature),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"invalid operating points in the checkpoint ({exc})") from exc
