"""The operating-points table that ``chexnet evaluate``, ``calibrate`` and ``train``'s log show (the CLI may print)."""

from __future__ import annotations

from collections.abc import Mapping

from models.operating_points import MIN_POSITIVES, STATISTICS, OperatingPoints

UNRELIABLE_MARK = "*"
UNRELIABLE_NOTE = f"{UNRELIABLE_MARK} fewer than {MIN_POSITIVES} positives: its thresholds and figures are unreliable"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def point_table_lines(
    points: Mapping[str, Mapping[str, Mapping[str, float]]], unreliable: set[str] | frozenset[str]
) -> list[str]:
    """Rows of pathology, point, threshold, sensitivity, specificity, PPV, NPV from ``points`` laid out as stored
    (``{point: {class: {"threshold", "sensitivity", ...}}}``); a class in ``unreliable`` is marked ``*``."""
    labels = list(next(iter(points.values()))) if points else []  # the model's labels, in its order
    width = max((len(name) for name in labels), default=9) + 2
    point_width = max(6, *(len(name) for name in points))
    lines = [f"{'pathology':<{width}}  {'point':<{point_width}}  {'threshold':>9}  {'sens':>5}  {'spec':>5}  "
             f"{'PPV':>5}  {'NPV':>5}"]  # fmt: skip
    for label in labels:
        shown = f"{label} {UNRELIABLE_MARK}" if label in unreliable else label
        for i, (name, point) in enumerate(points.items()):
            entry = point[label]
            stats = "  ".join(f"{_fmt(entry.get(s)):>5}" for s in STATISTICS)
            first = shown if i == 0 else ""
            lines.append(f"{first:<{width}}  {name:<{point_width}}  {entry['threshold']:>9.4f}  {stats}")
    if unreliable:
        lines.append(UNRELIABLE_NOTE)
    return lines


def print_point_table(
    title: str, points: Mapping[str, Mapping[str, Mapping[str, float]]], unreliable: set[str] | frozenset[str]
) -> None:
    print(title)
    for line in point_table_lines(points, unreliable):
        print(line)


def print_chosen_points(points: OperatingPoints) -> None:
    """The points just chosen, titled with how many images they were chosen on, the temperature and the default."""
    after = f", after temperature {points.temperature:.4f}" if points.temperature is not None else ""
    print_point_table(
        f"operating points chosen on these {points.source['images']} images (positive when probability >= "
        f"threshold{after}; default: {points.default})",
        {name: point.to_dict()["thresholds"] for name, point in points.points.items()},
        set(points.unreliable),
    )
