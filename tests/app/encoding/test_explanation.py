"""/gradcam's flat maps and boxes: the fields, the PNG, and the route (with the fake engine's brightness maps)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.encoding.explanation import explanation_fields, explanation_image, map_is_flat
from app.encoding.overlay import blend_cam, crop_box
from models.preprocessing import CropGeometry
from tests.app.fakes import FakePredictor, client_for

# a 32 x 64 (H x W) upload whose crop is its centred 32 px square: (16, 0)-(48, 32) in upload pixels
GEOMETRY = CropGeometry(32, 64, (32, 64), 0, 16, 32)


def _one_block() -> np.ndarray:
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0:2, 0:2] = 1.0
    return cam


def test_flatness_from_the_span_or_else_from_the_map() -> None:
    assert map_is_flat(_one_block(), 0.0) and not map_is_flat(_one_block(), 1.0)
    assert map_is_flat(np.zeros((4, 4), np.float32), None) and not map_is_flat(_one_block(), None)


def test_json_fields_name_the_rule_and_give_upload_pixels() -> None:
    fields = explanation_fields(_one_block(), GEOMETRY, flat=False)
    assert fields["flat"] is False
    assert fields["box_rule"]["name"] == "wang" and fields["box_rule"]["levels_255"] == [60.0, 180.0]
    # the block covers the crop's top-left quarter; bilinear spreading widens it at 60/255, less at 180/255
    assert len(fields["boxes"]) == 2
    low, high = fields["boxes"]
    assert low[0] == 16.0 and low[1] == 0.0  # clamped at the crop's corner
    assert high[2] < low[2] <= 48.0 and high[3] < low[3] <= 32.0
    assert explanation_fields(_one_block(), GEOMETRY, flat=True)["boxes"] == []


def test_flat_maps_are_not_coloured_and_boxes_are_drawn_on_request() -> None:
    base = Image.fromarray(np.full((32, 64), 100, np.uint8), "L")
    plain = np.asarray(explanation_image(base, _one_block(), GEOMETRY, flat=True, with_boxes=True))
    assert (plain == 100).all()
    without = np.asarray(explanation_image(base, _one_block(), GEOMETRY, flat=False, with_boxes=False))
    assert np.array_equal(without, np.asarray(blend_cam(base, _one_block(), crop_box(GEOMETRY, (32, 64)))))
    boxed = np.asarray(explanation_image(base, _one_block(), GEOMETRY, flat=False, with_boxes=True))
    assert (boxed[0, 16] == 255).all()  # the low-level box's top-left corner, outlined in white
    assert (boxed != without).any(axis=2).sum() > 0


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_route_reports_flat_maps_and_boxes() -> None:
    uniform = _png(np.full((64, 64), 90, np.uint8))  # the fake's map is the image's brightness: flat here
    bright = np.full((64, 64), 40, np.uint8)
    bright[8:24, 8:24] = 220
    with client_for(FakePredictor()) as client:
        flat = client.post("/gradcam", files={"file": ("a", uniform, "image/png")})
        assert flat.headers["x-heatmap"] == "flat"
        assert (np.asarray(Image.open(io.BytesIO(flat.content)))[..., 0] == 90).all()
        body = client.post("/gradcam?format=json", files={"file": ("a", uniform, "image/png")}).json()
        assert body["flat"] is True and body["boxes"] == [] and body["box_rule"]["name"] == "wang"
        shown = client.post("/gradcam?boxes=true", files={"file": ("a", _png(bright), "image/png")})
        assert shown.headers["x-heatmap"] == "map"
        plain = client.post("/gradcam", files={"file": ("a", _png(bright), "image/png")})
        assert shown.content != plain.content
        body = client.post("/gradcam?format=json", files={"file": ("a", _png(bright), "image/png")}).json()
        assert body["flat"] is False and len(body["boxes"]) >= 1
        everything = client.post("/gradcam?format=json&pathology=all", files={"file": ("a", uniform, "image/png")})
        assert set(everything.json()["flat"].values()) == {True}
