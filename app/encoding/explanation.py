"""What ``/gradcam`` adds to a map: whether it is flat, the boxes the rule derives from it (in the upload's pixels),
and the PNG drawn accordingly: a flat map is not coloured (the plain image, ``X-Heatmap: flat``), boxes are drawn
when asked. The maths lives in ``models.cam_boxes``; this module only encodes it."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from app.encoding.overlay import blend_cam, crop_box, encode_png
from models.cam_boxes import FLAT_SPAN, WANG_RULE, Box, boxes_as_lists, cam_boxes, is_flat
from models.preprocessing import CropGeometry

BOX_COLOUR = (255, 255, 255)
FLAT_NOTE = "flat map: the model's Grad-CAM for this label has no spatial variation to show"


def map_is_flat(cam: npt.NDArray[np.float32], span: float | None) -> bool:
    """Flat by its raw span when the predictor measured one; else an all-constant normalised map is flat."""
    return is_flat(span) if span is not None else bool(np.ptp(cam) == 0)


def boxes_of(cam: npt.NDArray[np.float32], geometry: CropGeometry, flat: bool) -> list[Box]:
    """The rule's boxes in the upload's pixels; none for a flat map."""
    return [] if flat else cam_boxes(cam, geometry, WANG_RULE)


def explanation_fields(cam: npt.NDArray[np.float32], geometry: CropGeometry, flat: bool) -> dict[str, Any]:
    """JSON fields beside one heatmap: ``flat``, ``boxes`` ([x0, y0, x1, y1] in upload pixels) and ``box_rule``."""
    return {
        "flat": flat,
        "boxes": boxes_as_lists(boxes_of(cam, geometry, flat)),
        "box_rule": {**WANG_RULE.describe(), "flat_span": FLAT_SPAN, "coordinates": "upload pixels, x0 y0 x1 y1"},
    }


def draw_boxes(image: Image.Image, boxes: list[Box], geometry: CropGeometry) -> Image.Image:
    """``boxes`` (upload pixels) drawn on ``image`` (the overlay, at its own size) as 2-pixel white outlines."""
    sx, sy = image.width / geometry.width, image.height / geometry.height
    draw = ImageDraw.Draw(image)
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0 * sx, y0 * sy, max(x0 * sx, x1 * sx - 1), max(y0 * sy, y1 * sy - 1)], outline=BOX_COLOUR)
    return image


def explanation_image(
    base: Image.Image, cam: npt.NDArray[np.float32], geometry: CropGeometry, flat: bool, with_boxes: bool
) -> Image.Image:
    """The overlay: the plain image for a flat map, else the map blended over the crop, with boxes if asked."""
    if flat:
        return base.convert("RGB")
    image = blend_cam(base, cam, crop_box(geometry, (base.height, base.width)))
    return draw_boxes(image, boxes_of(cam, geometry, flat), geometry) if with_boxes else image


def render_explanation_png(
    base: Image.Image, cam: npt.NDArray[np.float32], geometry: CropGeometry, flat: bool, with_boxes: bool
) -> bytes:
    """:func:`explanation_image` as PNG bytes."""
    return encode_png(explanation_image(base, cam, geometry, flat, with_boxes))
