"""The map -> boxes rule, the peak and flat maps, on synthetic maps whose boxes are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.cam_boxes import (
    FLAT_SPAN,
    RULES,
    WANG_RULE,
    BoxRule,
    cam_boxes,
    cam_peak,
    cam_spans,
    is_flat,
    region_boxes,
    rule_named,
)
from models.preprocessing import CropGeometry

# a 16 x 16 image whose crop is the whole image: with grid=8 one crop-grid pixel is one map cell and 2 x 2 pixels
IDENTITY16 = CropGeometry(16, 16, (16, 16), 0, 0, 16)


def test_wang_rule_keeps_the_boxes_of_both_levels_lowest_first() -> None:
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[2:4, 1:3] = 1.0  # above both 60/255 and 180/255
    cam[6, 6] = 0.5  # above 60/255 only
    boxes = cam_boxes(cam, IDENTITY16, WANG_RULE, grid=8)
    assert boxes == [(2.0, 4.0, 6.0, 8.0), (12.0, 12.0, 14.0, 14.0), (2.0, 4.0, 6.0, 8.0)]
    assert cam_boxes(cam, IDENTITY16, RULES["wang-high"], grid=8) == [(2.0, 4.0, 6.0, 8.0)]


def test_an_empty_map_gives_no_boxes() -> None:
    assert cam_boxes(np.zeros((7, 7), dtype=np.float32), IDENTITY16) == []


def test_regions_are_eight_connected() -> None:
    diagonal = np.zeros((4, 4), dtype=bool)
    diagonal[0, 0] = diagonal[1, 1] = True
    assert region_boxes(diagonal) == [(0, 0, 2, 2)]
    apart = np.zeros((4, 4), dtype=bool)
    apart[0, 0] = apart[0, 2] = True
    assert region_boxes(apart) == [(0, 0, 1, 1), (2, 0, 3, 1)]


def test_a_u_shape_joined_only_at_the_bottom_is_one_region() -> None:
    mask = np.zeros((5, 5), dtype=bool)
    mask[0:3, 0] = mask[0:3, 4] = True
    mask[3, 0:5] = True
    mask[0, 2] = True  # a separate island inside the U
    assert region_boxes(mask) == [(0, 0, 5, 4), (2, 0, 3, 1)]


def test_boxes_at_the_crop_border_map_back_to_a_non_square_image() -> None:
    # a 40 x 20 (W x H) image resized by 1/2 to 20 x 10, crop of 8 at (top 1, left 6): (12, 2)-(28, 18) originally
    geometry = CropGeometry(20, 40, (10, 20), 1, 6, 8)
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[:, 7] = 1.0
    assert cam_boxes(cam, geometry, BoxRule("one", (0.5,)), grid=8) == [(26.0, 2.0, 28.0, 18.0)]


def test_boxes_of_a_smooth_map_on_the_crop_grid() -> None:
    # one hot cell of a 7 x 7 map over a 224 crop: bilinear tent, so at level t the box is |u - 3| <= 1 - t in map
    # cells, u = (col + 0.5) / 32 - 0.5: columns 103..120 at 180/255 and 88..135 at 60/255
    cam = np.zeros((7, 7), dtype=np.float32)
    cam[3, 3] = 1.0
    geometry = CropGeometry(224, 224, (224, 224), 0, 0, 224)
    assert cam_boxes(cam, geometry) == [(88.0, 88.0, 136.0, 136.0), (103.0, 103.0, 121.0, 121.0)]


def test_peak_is_the_centre_of_the_highest_pixel_in_image_coordinates() -> None:
    cam = np.zeros((8, 8), dtype=np.float32)
    cam[2, 5] = 1.0
    assert cam_peak(cam, IDENTITY16, grid=8) == (11.0, 5.0)


def test_spans_and_flat_maps() -> None:
    raw = torch.zeros(2, 4, 4)
    raw[0, 1, 1] = 0.5
    raw[1] = 3.0  # constant: no spatial information at all
    spans = cam_spans(raw)
    assert spans.tolist() == [8.0, 0.0]
    assert not is_flat(float(spans[0]))
    assert is_flat(float(spans[1]))
    assert is_flat(FLAT_SPAN * 0.999) and not is_flat(FLAT_SPAN)


def test_rules_are_named_and_checked() -> None:
    assert rule_named("wang").levels == (60 / 255, 180 / 255)
    assert WANG_RULE.describe()["levels_255"] == [60.0, 180.0]
    with pytest.raises(ValueError, match="unknown box rule 'otsu'"):
        rule_named("otsu")
    with pytest.raises(ValueError, match=r"levels must lie in \(0, 1\]"):
        BoxRule("bad", (0.0,))
