"""From a Grad-CAM map to boxes, a peak and a flat/not-flat verdict: pure numpy, shared by ``chexnet localize``
and the service's ``/gradcam``.

The rule follows Wang et al., CVPR 2017 (arXiv:1705.02315, section 5.2): the map, normalised to [0, 255], is
thresholded, and a box is put around every connected region of the binary image; they used two levels, 60 and
180, and kept the boxes of both. Here the map is first stretched over the model's crop at the crop's own pixel
grid (S x S, bilinear with half-pixel centres, as ``models.gradcam.cam_on_image``), regions are 8-connected, and
each box is mapped back to the uploaded image's pixel coordinates, so boxes do not depend on the upload's size.

A map is *flat* when its raw range (before min-max normalisation) times its number of cells is below
``FLAT_SPAN``: for DenseNet's average-pool head that product is about the logit difference the map spans, and
below a thousandth of a logit the normalised map would only stretch rounding noise (or, when every value is 0,
show nothing at all) as if it were attention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from models.gradcam import cam_on_image
from models.preprocessing import CropGeometry

FLAT_SPAN = 1e-3  # raw (max - min) * h * w below this: a flat map, reported as such rather than drawn

Box = tuple[float, float, float, float]  # (x0, y0, x1, y1) in pixels, right/bottom exclusive


@dataclass(frozen=True)
class BoxRule:
    """How boxes come from a map in [0, 1]: one box per 8-connected region of ``map >= level``, for each level."""

    name: str
    levels: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.levels or not all(0.0 < level <= 1.0 for level in self.levels):
            raise ValueError(f"box rule levels must lie in (0, 1], got {self.levels}")

    def describe(self) -> dict[str, object]:
        """Plain data naming the rule: ``{"name": ..., "levels": [...], "levels_255": [...]}``."""
        return {"name": self.name, "levels": list(self.levels), "levels_255": [round(v * 255, 3) for v in self.levels]}


WANG_RULE = BoxRule("wang", (60 / 255, 180 / 255))
RULES: dict[str, BoxRule] = {
    "wang": WANG_RULE,  # Wang et al. 2017: levels 60 and 180 of 255, boxes of both kept
    "half": BoxRule("half", (0.5,)),  # one box per region at half the map's peak
    "wang-low": BoxRule("wang-low", (60 / 255,)),
    "wang-high": BoxRule("wang-high", (180 / 255,)),
}


def rule_named(name: str) -> BoxRule:
    """The rule of ``RULES`` called ``name``; raises ValueError naming the known ones."""
    if name not in RULES:
        raise ValueError(f"unknown box rule {name!r}: use one of {', '.join(RULES)}")
    return RULES[name]


def cam_spans(raw_cams: torch.Tensor) -> torch.Tensor:
    """(..., h, w) raw Grad-CAM -> (...) its (max - min) * h * w, about the logit difference it spans."""
    h, w = raw_cams.shape[-2:]
    flat = raw_cams.flatten(-2).double()
    return (flat.max(dim=-1).values - flat.min(dim=-1).values) * (h * w)


def is_flat(span: float) -> bool:
    """Whether a map of this span (from :func:`cam_spans`) is flat: below ``FLAT_SPAN``."""
    return bool(span < FLAT_SPAN)


def _runs(row: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in a 1-D boolean row."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], row.view(np.uint8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist(), strict=True))


def region_boxes(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int, int, int]]:
    """(H, W) boolean -> one (col0, row0, col1, row1) box (exclusive ends) per 8-connected region.

    Scan-line labelling: runs of each row are joined (union-find) to the runs of the row above that touch them,
    diagonally included; O(rows x runs), so a full-resolution mask is cheap. Sorted by (row0, col0).
    """
    parent: list[int] = []
    extent: list[list[int]] = []  # per run: col0, row0, col1, row1

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above: list[tuple[int, int, int]] = []
    for r in range(mask.shape[0]):
        current = []
        for start, stop in _runs(mask[r]):
            index = len(parent)
            parent.append(index)
            extent.append([start, r, stop, r + 1])
            for a_start, a_stop, a_index in above:
                if a_start <= stop and start <= a_stop:  # overlapping or diagonally adjacent (8-connected)
                    root_a, root_b = find(a_index), find(index)
                    if root_a != root_b:
                        parent[root_b] = root_a
            current.append((start, stop, index))
        above = current
    merged: dict[int, list[int]] = {}
    for i, (c0, r0, c1, r1) in enumerate(extent):
        box = merged.setdefault(find(i), [c0, r0, c1, r1])
        box[:] = [min(box[0], c0), min(box[1], r0), max(box[2], c1), max(box[3], r1)]
    return sorted((b[0], b[1], b[2], b[3]) for b in merged.values())


def _crop_grid_geometry(side: int) -> CropGeometry:
    return CropGeometry(side, side, (side, side), 0, 0, side)


def cam_on_crop(cam: npt.NDArray[np.float32], side: int) -> npt.NDArray[np.float32]:
    """(h, w) map in [0, 1] -> (side, side) over the model's crop, bilinear with half-pixel centres."""
    return cam_on_image(cam, _crop_grid_geometry(side))


def _to_original(geometry: CropGeometry, side: int, box: tuple[float, float, float, float]) -> Box:
    """Crop-grid pixel box -> the same box in original image pixels (floats)."""
    x0, y0, x1, y1 = geometry.box_in_original()
    sx, sy = (x1 - x0) / side, (y1 - y0) / side
    return (x0 + box[0] * sx, y0 + box[1] * sy, x0 + box[2] * sx, y0 + box[3] * sy)


def cam_boxes(
    cam: npt.NDArray[np.float32], geometry: CropGeometry, rule: BoxRule = WANG_RULE, grid: int | None = None
) -> list[Box]:
    """(h, w) map in [0, 1] over the crop -> boxes in original pixels, level by level (lowest first).

    ``grid`` is the side of the square grid the map is thresholded on (default: the crop size, the pixels the
    model saw). An all-zero map gives no boxes.
    """
    side = grid or geometry.size
    over_crop = cam_on_crop(np.asarray(cam, dtype=np.float32), side)
    boxes: list[Box] = []
    for level in sorted(rule.levels):
        for c0, r0, c1, r1 in region_boxes(over_crop >= np.float32(level)):
            boxes.append(_to_original(geometry, side, (c0, r0, c1, r1)))
    return boxes


def cam_peak(cam: npt.NDArray[np.float32], geometry: CropGeometry, grid: int | None = None) -> tuple[float, float]:
    """(x, y) in original pixels of the centre of the map's highest crop-grid pixel (the first one on ties)."""
    side = grid or geometry.size
    over_crop = cam_on_crop(np.asarray(cam, dtype=np.float32), side)
    row, col = (int(v) for v in np.unravel_index(int(np.argmax(over_crop)), over_crop.shape))
    x0, y0, x1, y1 = _to_original(geometry, side, (col, row, col + 1, row + 1))
    return ((x0 + x1) / 2, (y0 + y1) / 2)


def boxes_as_lists(boxes: Sequence[Box], digits: int = 2) -> list[list[float]]:
    """Boxes as JSON-ready [x0, y0, x1, y1] lists, rounded to ``digits``."""
    return [[round(v, digits) for v in box] for box in boxes]
