"""The operating-points section: validated, stored as plain data, optional (older checkpoints load as before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.labels import NIH_LABELS
from models.network import build_network
from models.operating_points import (
    ClassThreshold,
    OperatingPoint,
    OperatingPoints,
    apply_temperature,
    specificity_point_name,
)
from tests.conftest import TINY_SPEC


def youden() -> OperatingPoint:
    return OperatingPoint(
        "maximises Youden's J",
        {name: ClassThreshold(0.1 + i / 100, 0.8, 0.7, 0.2, 0.95) for i, name in enumerate(NIH_LABELS)},
    )


def points() -> OperatingPoints:
    bare = OperatingPoint("thresholds only", {name: ClassThreshold(0.5) for name in NIH_LABELS})
    return OperatingPoints(
        points={"youden": youden(), "xrv": bare},
        default="youden",
        source={"data": "synthetic", "images": 20, "positives": dict.fromkeys(NIH_LABELS, 3)},
        unreliable=NIH_LABELS,
        temperature=1.5,
    )


def test_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "with-points.pt"
    save_checkpoint(
        Checkpoint(
            state_dict=build_network("none", len(NIH_LABELS)).state_dict(),
            labels=NIH_LABELS,
            spec=TINY_SPEC,
            operating_points=points(),
        ),
        path,
    )
    loaded = load_checkpoint(path)
    assert loaded.operating_points == points()
    assert loaded.operating_points.to_dict()["points"]["xrv"]["thresholds"]["Hernia"] == {"threshold": 0.5}


def test_a_checkpoint_without_the_section_loads_without_points(tiny_checkpoint: Path) -> None:
    assert load_checkpoint(tiny_checkpoint).operating_points is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"default": "spec90"}, "default operating point 'spec90' is not one of ['xrv', 'youden']"),
        ({"unreliable": ("Cancer",)}, "unreliable classes ['Cancer'] are not among the points' labels"),
        ({"temperature": 0.0}, "temperature must be a positive number"),
    ],
)
def test_invalid_sections_are_refused_by_name(change: dict[str, object], message: str) -> None:
    fields = {**points().__dict__, **change}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        OperatingPoints(**fields)  # type: ignore[arg-type]


def test_every_point_covers_the_same_labels_with_a_probability() -> None:
    partial = {name: ClassThreshold(0.5) for name in NIH_LABELS[:-1]}
    with pytest.raises(ValueError, match="operating point 'spec90' must have one threshold per label, in the same"):
        OperatingPoints(points={"youden": youden(), "spec90": OperatingPoint("", partial)}, default="youden")
    reordered = {name: ClassThreshold(0.5) for name in reversed(NIH_LABELS)}
    with pytest.raises(ValueError, match="operating point 'spec90' must have one threshold per label, in the same"):
        OperatingPoints(points={"youden": youden(), "spec90": OperatingPoint("", reordered)}, default="youden")
    duplicate = {"Mass": ClassThreshold(0.5), "mass": ClassThreshold(0.5)}
    with pytest.raises(ValueError, match="labels 1 and 2 are the same name"):
        OperatingPoints(points={"youden": OperatingPoint("", duplicate)}, default="youden")
    beyond = {name: ClassThreshold(1.5) for name in NIH_LABELS}
    with pytest.raises(ValueError, match="values must be numbers in"):
        OperatingPoints(points={"youden": OperatingPoint("", beyond)}, default="youden")


def test_a_damaged_stored_section_is_a_checkpoint_error() -> None:
    stored = points().to_dict()
    del stored["points"]["youden"]["thresholds"]["Hernia"]
    with pytest.raises(CheckpointError, match="invalid operating points in the checkpoint"):
        OperatingPoints.from_dict(stored)
    with pytest.raises(CheckpointError, match="this code reads up to 1"):
        OperatingPoints.from_dict({**points().to_dict(), "version": 2})


@pytest.mark.parametrize(
    ("specificity", "name"), [(0.9, "spec90"), (0.95, "spec95"), (0.875, "spec87_5"), (0.8333, "spec83_33")]
)
def test_specificity_point_names(specificity: float, name: str) -> None:
    assert specificity_point_name(specificity) == name


@pytest.mark.parametrize("specificity", [0.0, 1.0, 1.5, float("nan"), 0.12345])
def test_specificity_point_names_refuse_what_they_cannot_name(specificity: float) -> None:
    with pytest.raises(ValueError, match="specificity"):
        specificity_point_name(specificity)


def test_apply_temperature_is_sigmoid_of_logit_over_t() -> None:
    # sigmoid(logit(p) / 2) = 1 / (1 + sqrt((1 - p) / p)): 0.2 -> 1/3, 0.9 -> 3/4; 0 and 1 stay put
    values = apply_temperature(np.array([0.0, 0.2, 0.5, 0.9, 1.0], dtype=np.float32), 2.0)
    np.testing.assert_allclose(values, [0.0, 1 / 3, 0.5, 0.75, 1.0], rtol=1e-6)
    raw = np.array([0.2, 0.7], dtype=np.float32)
    assert apply_temperature(raw, None).tolist() == [float(v) for v in raw]  # no temperature: the same numbers


def test_decide_applies_the_temperature_then_probability_at_or_above_threshold() -> None:
    section = points()  # youden: 0.10 + i/100 per class; temperature 1.5; every class unreliable
    raw = np.full(14, 0.1, dtype=np.float32)
    raw[0] = 0.05  # calibrated: 1 / (1 + 19 ** (1 / 1.5)) = 0.1229..., above Atelectasis' 0.10
    decisions = section.decide(raw, "youden")
    assert list(decisions) == list(NIH_LABELS)
    calibrated = 1 / (1 + 19 ** (1 / 1.5))
    assert decisions["Atelectasis"].probability == pytest.approx(calibrated, rel=1e-6)
    assert decisions["Atelectasis"].above and decisions["Atelectasis"].unreliable
    # 0.1 calibrated at T = 1.5 is 1 / (1 + 9 ** (2/3)) = 0.1877: above 0.10 ... 0.18, below 0.19 ... 0.23
    assert [d.above for d in decisions.values()] == [True] * 9 + [False] * 5
    at_threshold = OperatingPoints(points={"youden": youden()}, default="youden")
    exact = np.array([0.1 + i / 100 for i in range(14)])  # exactly each threshold, no temperature: all above
    assert all(d.above for d in at_threshold.decide(exact, "youden").values())
    assert not any(d.above for d in at_threshold.decide(np.nextafter(exact, 0.0), "youden").values())
    with pytest.raises(KeyError):
        section.decide(raw, "spec90")


def test_points_for_other_labels_than_the_models_are_refused_at_load(tmp_path: Path) -> None:
    labels = ("Pneumonia", "Lung Opacity", "Effusion")
    state = build_network("none", 3).state_dict()
    other = OperatingPoints(
        points={"xrv": OperatingPoint("", {n: ClassThreshold(0.2) for n in ("Pneumonia", "Lung Opacity", "Mass")})},
        default="xrv",
    )
    path = save_checkpoint(Checkpoint(state, TINY_SPEC, labels, operating_points=other), tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"invalid operating points in the checkpoint \(its thresholds are not"):
        load_checkpoint(path)
    # the same labels stored in another order are read in the model's order
    reordered = OperatingPoints(
        points={"xrv": OperatingPoint("", {n: ClassThreshold(0.1 * (i + 1)) for i, n in enumerate(reversed(labels))})},
        default="xrv",
    )
    path = save_checkpoint(Checkpoint(state, TINY_SPEC, labels, operating_points=reordered), tmp_path / "r.pt")
    loaded = load_checkpoint(path).operating_points
    assert loaded is not None and loaded.labels == labels
    decisions = loaded.decide(np.array([0.25, 0.25, 0.25], dtype=np.float32), "xrv")
    assert [(name, d.threshold, d.above) for name, d in decisions.items()] == [
        ("Pneumonia", pytest.approx(0.3), False),
        ("Lung Opacity", pytest.approx(0.2), True),
        ("Effusion", pytest.approx(0.1), True),
    ]
    with pytest.raises(ValueError, match="expected 3 probabilities, got 14"):
        loaded.decide(np.zeros(14, dtype=np.float32), "xrv")
