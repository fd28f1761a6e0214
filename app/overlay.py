"""Grad-CAM overlays as PNG: the jet heatmap (alpha 0.4, as in the seed) over the image at its own size."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from models.gradcam import cam_on_image
from models.preprocessing import CropGeometry

ALPHA = 0.4
PANEL_SIDE = 320


def jet(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(...) in [0, 1] -> (..., 3) RGB in [0, 1]: the classic jet map (dark blue -> cyan -> yellow -> dark red)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green and blue peak
    return np.clip(1.5 - np.abs(4.0 * v - 4.0 * centres), 0.0, 1.0).astype(np.float32)


def overlay_rgb(
    gray: npt.NDArray[np.float32], cam: npt.NDArray[np.float32], geometry: CropGeometry
) -> npt.NDArray[np.uint8]:
    """(H, W) image and (h, w) map over the model's crop -> (H, W, 3) uint8; outside the crop, the image alone."""
    full = cam_on_image(cam, geometry)
    x0, y0, x1, y1 = geometry.box_in_original()
    inside = np.zeros(gray.shape, dtype=np.float32)
    inside[int(np.ceil(y0 - 0.5)) : int(np.ceil(y1 - 0.5)), int(np.ceil(x0 - 0.5)) : int(np.ceil(x1 - 0.5))] = ALPHA
    base = np.repeat(gray[..., None], 3, axis=-1)
    mixed = base * (1.0 - inside[..., None]) + jet(full) * inside[..., None]
    return np.asarray(np.round(mixed * 255.0), dtype=np.uint8)


def encode_png(rgb: npt.NDArray[np.uint8]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buffer, format="PNG", compress_level=1)  # speed over a few bytes
    return buffer.getvalue()


def render_overlay_png(gray: npt.NDArray[np.float32], cam: npt.NDArray[np.float32], geometry: CropGeometry) -> bytes:
    return encode_png(overlay_rgb(gray, cam, geometry))


def render_panels_png(
    gray: npt.NDArray[np.float32],
    cams: npt.NDArray[np.float32],
    geometry: CropGeometry,
    titles: list[str],
    columns: int = 4,
) -> bytes:
    """All classes in one PNG: a grid of overlays (each scaled to PANEL_SIDE on its longer side) with titles."""
    height, width = gray.shape
    scale = PANEL_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    rows = -(-len(titles) // columns)
    title_h = 18
    sheet = Image.new("RGB", (columns * size[0], rows * (size[1] + title_h)), "black")
    draw = ImageDraw.Draw(sheet)
    for index, (cam, title) in enumerate(zip(cams, titles, strict=True)):
        panel = Image.fromarray(overlay_rgb(gray, cam, geometry), "RGB").resize(size, Image.Resampling.BILINEAR)
        x, y = (index % columns) * size[0], (index // columns) * (size[1] + title_h)
        sheet.paste(panel, (x, y + title_h))
        draw.text((x + 4, y + 3), title, fill="white")
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
