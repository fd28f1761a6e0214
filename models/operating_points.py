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

Every point has a threshold for each of the model's labels, in the model's order (the checkpoint checks that the
labels here are its own); the statistics are optional. Names are short identifiers (``[a-z0-9_]``, used in
``?operating_point=``): ``youden``, and ``specNN`` for the threshold at specificity 0.NN (``spec90``, ``spec95``;
``spec87_5`` for 0.875).

How a point is applied, the same at every entry point (:meth:`OperatingPoints.decide`): a class is called positive
when its probability is **greater than or equal to** the threshold (scikit-learn's ``roc_curve`` convention, with
which the thresholds are chosen). When ``temperature`` is set, the thresholds are on the calibrated probability
``sigmoid(logit(p) / T)`` (temperature scaling, Guo et al., "On Calibration of Modern Neural Networks", ICML
2017), so the temperature is applied first (:func:`apply_temperature`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from models.errors import CheckpointError
from models.labels import validate_labels

FORMAT_VERSION = 1
MIN_POSITIVES = 10  # fewer positives than this: the class's thresholds are flagged unreliable
STATISTICS = ("sensitivity", "specificity", "ppv", "npv")
_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
DEFAULT_POINT = "youden"
DEFAULT_SPECIFICITY = 0.90


def specificity_point_name(specificity: float) -> str:
    """The name of the point at ``specificity``: 0.90 -> ``spec90``, 0.95 -> ``spec95``, 0.875 -> ``spec87_5``.

    Raises ValueError unless 0 < specificity < 1 (with at most two decimals in percent).
    """
    if not (math.isfinite(specificity) and 0.0 < specificity < 1.0):
        raise ValueError(f"specificity must lie strictly between 0 and 1, got {specificity}")
    percent = round(specificity * 100, 2)
    if abs(percent - specificity * 100) > 1e-9:
        raise ValueError(f"specificity {specificity} has more than two decimals in percent")
    whole, fraction = divmod(percent, 1)
    return f"spec{int(whole)}" if fraction == 0 else f"spec{int(whole)}_{f'{fraction:.2f}'[2:].rstrip('0')}"


def apply_temperature(probs: npt.ArrayLike, temperature: float | None) -> npt.NDArray[np.float64]:
    """Probabilities (any shape, in [0, 1]) -> ``sigmoid(logit(p) / T)`` as float64; unchanged (as float64) when
    ``temperature`` is None.

    Computed from the probabilities, not the logits, so the service (which has probabilities) and the commands that
    chose the thresholds get the very same numbers from the same float32 inputs. p = 0 and p = 1 stay 0 and 1.
    Temperature scaling: Guo et al., ICML 2017, section 4.2.
    """
    p = np.asarray(probs, dtype=np.float64)
    if temperature is None:
        return p.copy()
    with np.errstate(divide="ignore", over="ignore"):
        z = (np.log(p) - np.log1p(-p)) / temperature
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


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
class Decision:
    """One class of one image at one operating point: ``probability`` after the temperature (if any),
    ``above`` = probability >= threshold, ``unreliable`` = threshold chosen with fewer than MIN_POSITIVES positives."""

    probability: float
    threshold: float
    above: bool
    unreliable: bool


@dataclass(frozen=True)
class OperatingPoint:
    description: str
    thresholds: dict[str, ClassThreshold]  # one per label, in the model's order

    def to_dict(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "thresholds": {name: entry.to_dict() for name, entry in self.thresholds.items()},
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
        labels = validate_labels(self.labels)
        for name, point in self.points.items():
            if not _NAME.match(name):
                raise ValueError(f"operating point name {name!r} is not a short identifier ([a-z0-9_], 1-32)")
            if tuple(point.thresholds) != labels:
                raise ValueError(f"operating point {name!r} must have one threshold per label, in the same order")
            for label, entry in point.thresholds.items():
                values = [entry.threshold, *(v for v in (getattr(entry, s) for s in STATISTICS) if v is not None)]
                if not all(isinstance(v, float | int) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
                    raise ValueError(f"operating point {name!r}, {label}: values must be numbers in [0, 1]")
        if self.default not in self.points:
            raise ValueError(f"default operating point {self.default!r} is not one of {sorted(self.points)}")
        unknown = set(self.unreliable) - set(labels)
        if unknown:
            raise ValueError(f"unreliable classes {sorted(unknown)} are not among the points' labels")
        if self.temperature is not None and not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError("temperature must be a positive number")

    @property
    def labels(self) -> tuple[str, ...]:
        """The K labels every point has a threshold for, in order (the model's labels, when it carries them)."""
        return tuple(next(iter(self.points.values())).thresholds)

    def decide(self, probs: npt.ArrayLike, name: str) -> dict[str, Decision]:
        """(K,) raw probabilities of one image (after sigmoid, in ``labels`` order) -> a decision per label at the
        point ``name`` (KeyError if there is none): temperature first, then probability >= threshold.

        Raises ValueError when the count of probabilities is not K.
        """
        point = self.points[name]
        labels = self.labels
        values = apply_temperature(np.asarray(probs).reshape(-1), self.temperature)
        if values.shape != (len(labels),):
            raise ValueError(f"expected {len(labels)} probabilities, got {values.shape[0]}")
        unreliable = set(self.unreliable)
        return {
            label: Decision(
                probability=float(value),
                threshold=point.thresholds[label].threshold,
                above=bool(value >= point.thresholds[label].threshold),
                unreliable=label in unreliable,
            )
            for label, value in zip(labels, values, strict=True)
        }

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
    def from_dict(cls, data: Any, labels: Sequence[str] | None = None) -> OperatingPoints:
        """Parse the stored section; raises CheckpointError naming what is wrong.

        With ``labels`` (the model's), every point must have exactly those labels, and is read in their order;
        without, in the stored order (which ``to_dict`` writes in the model's order).
        """
        try:
            if not isinstance(data, dict) or not isinstance(data.get("version"), int):
                raise ValueError("not a versioned section")
            if data["version"] > FORMAT_VERSION:
                raise ValueError(f"version {data['version']}; this code reads up to {FORMAT_VERSION}")
            points = {
                str(name): OperatingPoint(
                    description=str(point.get("description", "")),
                    thresholds=_read_thresholds(point["thresholds"], labels),
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


def _read_thresholds(stored: Any, labels: Sequence[str] | None) -> dict[str, ClassThreshold]:
    """One point's stored ``{label: {"threshold": ...}}`` -> ClassThresholds, in ``labels`` order when given."""
    if not isinstance(stored, dict):
        raise ValueError("thresholds are not a mapping")
    if labels is not None and set(stored) != set(labels):
        raise ValueError("its thresholds are not for the model's labels")
    order = list(labels) if labels is not None else list(stored)
    return {str(label): ClassThreshold(**{k: float(v) for k, v in stored[label].items()}) for label in order}
