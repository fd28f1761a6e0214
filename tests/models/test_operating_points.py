"""The operating-points section: validated, stored as plain data, optional (older checkpoints load as before)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.labels import PATHOLOGIES
from models.network import build_network
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints
from tests.conftest import TINY_SPEC


def youden() -> OperatingPoint:
    return OperatingPoint(
        "maximises Youden's J",
        {name: ClassThreshold(0.1 + i / 100, 0.8, 0.7, 0.2, 0.95) for i, name in enumerate(PATHOLOGIES)},
    )


def points() -> OperatingPoints:
    bare = OperatingPoint("thresholds only", {name: ClassThreshold(0.5) for name in PATHOLOGIES})
    return OperatingPoints(
        points={"youden": youden(), "xrv": bare},
        default="youden",
        source={"data": "synthetic", "images": 20, "positives": dict.fromkeys(PATHOLOGIES, 3)},
        unreliable=PATHOLOGIES,
        temperature=1.5,
    )


def test_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "with-points.pt"
    save_checkpoint(
        Checkpoint(state_dict=build_network("none").state_dict(), spec=TINY_SPEC, operating_points=points()), path
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
        ({"unreliable": ("Cancer",)}, "unreliable classes ['Cancer'] are not ChestX-ray14 names"),
        ({"temperature": 0.0}, "temperature must be a positive number"),
    ],
)
def test_invalid_sections_are_refused_by_name(change: dict[str, object], message: str) -> None:
    fields = {**points().__dict__, **change}
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        OperatingPoints(**fields)  # type: ignore[arg-type]


def test_a_point_must_cover_every_class_with_a_probability() -> None:
    partial = {name: ClassThreshold(0.5) for name in PATHOLOGIES[:-1]}
    with pytest.raises(ValueError, match="one threshold per class"):
        OperatingPoints(points={"youden": OperatingPoint("", partial)}, default="youden")
    beyond = {name: ClassThreshold(1.5) for name in PATHOLOGIES}
    with pytest.raises(ValueError, match="values must be numbers in"):
        OperatingPoints(points={"youden": OperatingPoint("", beyond)}, default="youden")


def test_a_damaged_stored_section_is_a_checkpoint_error() -> None:
    stored = points().to_dict()
    del stored["points"]["youden"]["thresholds"]["Hernia"]
    with pytest.raises(CheckpointError, match="invalid operating points in the checkpoint"):
        OperatingPoints.from_dict(stored)
    with pytest.raises(CheckpointError, match="this code reads up to 1"):
        OperatingPoints.from_dict({**points().to_dict(), "version": 2})
