"""Grad-CAM overlays as PNG: the jet heatmap (alpha 0.4, as in the seed) over the image, at bounded size.

Every step after the first runs in uint8 inside Pillow or libpng, at the output size, never at the upload's:
1. the image is scaled so its longer side is at most ``max_side`` (``CHEXNET_OVERLAY_MAX_SIDE``);
2. the (h, w) map, quantised to uint8, is stretched bilinearly over the model's crop box in output pixels
   (half-pixel centres, edges clamped), coloured through a 256-entry jet palette and blended over the crop;
3. the PNG's rows are Up-filtered with numpy and deflated by libdeflate (``imagecodecs``) at level 1; see
   :func:`encode_png` for the measurements behind that.
So one overlay costs O(output pixels) plus one resample of the upload, and its memory is a few bytes per output
pixel. Measured choices: ``benchmarks/overlay_render.py``.
"""

from __future__ import annotations

import math
import struct
import zlib

import imagecodecs
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from models.preprocessing import CropGeometry

ALPHA = 0.4
PANEL_SIDE = 320
TITLE_HEIGHT = 18
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_LEVEL = 1  # deflate level: speed over a few bytes
PNG_FILTER_UP = 2  # PNG filter type 2, Up, for every row


def jet(values: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(...) in [0, 1] -> (..., 3) RGB in [0, 1]: the classic jet map (dark blue -> cyan -> yellow -> dark red)."""
    v = np.clip(values, 0.0, 1.0)[..., None]
    centres = np.array([0.75, 0.5, 0.25], dtype=np.float32)  # where red, green and blue peak
    return np.clip(1.5 - np.abs(4.0 * v - 4.0 * centres), 0.0, 1.0).astype(np.float32)


JET_PALETTE: list[int] = np.round(jet(np.linspace(0.0, 1.0, 256, dtype=np.float32)) * 255).astype(int).ravel().tolist()


def output_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """(H, W) of the overlay: the upload's own size, or scaled down so the longer side is ``max_side``."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def gray_image(gray: npt.NDArray[np.float32], size_hw: tuple[int, int]) -> Image.Image:
    """(H, W) in [0, 1] -> an 8-bit grey PIL image of ``size_hw`` (bilinear, antialiased when shrinking)."""
    image = Image.fromarray(np.asarray(gray, dtype=np.float32), "F")
    if image.size != (size_hw[1], size_hw[0]):
        image = image.resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    pixels = np.asarray(image, dtype=np.float32)
    return Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8), "L")


def crop_box(geometry: CropGeometry, size_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """The model's crop (x0, y0, x1, y1) in output pixel coordinates (floats, right/bottom exclusive)."""
    x0, y0, x1, y1 = geometry.box_in_original()
    sy, sx = size_hw[0] / geometry.height, size_hw[1] / geometry.width
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


def blend_cam(base: Image.Image, cam: npt.NDArray[np.float32], box: tuple[float, float, float, float]) -> Image.Image:
    """An RGB copy of ``base`` ('L') with the (h, w) map in [0, 1] coloured and blended over ``box``.

    Output pixels whose centre lies inside the box get the heatmap; the others keep the image alone.
    """
    x0, y0, x1, y1 = box
    left, top = math.ceil(x0 - 0.5), math.ceil(y0 - 0.5)
    right, bottom = min(base.width, math.ceil(x1 - 0.5)), min(base.height, math.ceil(y1 - 0.5))
    result = base.convert("RGB")
    if right <= left or bottom <= top:
        return result
    h, w = cam.shape
    levels = np.round(np.clip(cam, 0.0, 1.0) * 255.0).astype(np.uint8)
    padded = Image.fromarray(np.pad(levels, 1, mode="edge"), "L")  # the edge row/column repeated: clamping
    # The output pixel edges left..right map to map coordinates (+1 for the padding); Pillow's resize with a
    # source box puts pixel centres at the same half-pixel positions as models.gradcam.cam_on_image.
    source = (
        1 + (left - x0) / (x1 - x0) * w,
        1 + (top - y0) / (y1 - y0) * h,
        1 + (right - x0) / (x1 - x0) * w,
        1 + (bottom - y0) / (y1 - y0) * h,
    )
    heat = padded.resize((right - left, bottom - top), Image.Resampling.BILINEAR, box=source)
    heat.putpalette(JET_PALETTE)
    region = (left, top, right, bottom)
    result.paste(Image.blend(result.crop(region), heat.convert("RGB"), ALPHA), region)
    return result


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type and data (ISO/IEC 15948, 5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(image: Image.Image) -> bytes:
    """An RGB PIL image -> PNG bytes: IHDR (8-bit RGB), one IDAT, IEND (ISO/IEC 15948).

    Every row uses filter type 2 (Up: each byte minus the byte above it, modulo 256; the first row's "above" is
    zero), and the zlib stream is written by libdeflate at level 1 (``imagecodecs.deflate_encode``). Measured on
    the bundled X-ray's overlay (``benchmarks/overlay_render.py``): 11.6 ms and 0.93 MB, against 26.7 ms and 0.95 MB
    for libpng at level 1 with the same filter and 42 ms with its adaptive one, and 45 ms for Pillow; the
    deflate, not the filter, is what costs, and libdeflate's is the fastest here. Only the chunks are ours.
    """
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8)
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = PNG_FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's does
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits, colour type 2 (RGB), no interlace
    idat = bytes(imagecodecs.deflate_encode(filtered.tobytes(), level=PNG_LEVEL))
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def overlay_base(gray: npt.NDArray[np.float32], max_side: int) -> Image.Image:
    """(H, W) image in [0, 1] -> the 8-bit image overlays are drawn on, at most ``max_side`` on the longer side.

    Made at decode time, so a request waiting for the model holds this (at most max_side² bytes), not the upload.
    """
    return gray_image(gray, output_size(gray.shape[0], gray.shape[1], max_side))


def render_overlay_png(base: Image.Image, cam: npt.NDArray[np.float32], geometry: CropGeometry) -> bytes:
    """Overlay base ('L', from :func:`overlay_base`) and (h, w) map in [0, 1] over the model's crop -> PNG bytes."""
    return encode_png(blend_cam(base, cam, crop_box(geometry, (base.height, base.width))))


def panel_columns(count: int) -> int:
    """Columns of the grid for ``count`` panels: ceil(sqrt(count)), so the sheet stays about square (1 -> 1,
    5 -> 3, 14 -> 4, 18 -> 5, 64 -> 8); rows are ceil(count / columns)."""
    return math.isqrt(max(count, 1) - 1) + 1


def fit_title(draw: ImageDraw.ImageDraw, title: str, width: float) -> str:
    """``title`` cut to fit ``width`` pixels in the draw's font, its end replaced by ".." when cut."""
    if draw.textlength(title) <= width:
        return title
    while title and draw.textlength(title + "..") > width:
        title = title[:-1]
    return title + ".."


def render_panels_png(
    base: Image.Image,
    cams: npt.NDArray[np.float32],
    geometry: CropGeometry,
    titles: list[str],
    columns: int | None = None,
    flat: list[bool] | None = None,
) -> bytes:
    """(K, h, w) maps -> one PNG: a grid of K overlays (``panel_columns(K)`` wide unless ``columns`` is given), each
    drawn at PANEL_SIDE on its longer side, with titles cut to the panel's width; a panel marked ``flat`` shows the
    image alone (its title should say why)."""
    columns = columns or panel_columns(len(titles))
    scale = PANEL_SIDE / max(geometry.height, geometry.width)
    size = (max(1, round(geometry.height * scale)), max(1, round(geometry.width * scale)))
    if base.size != (size[1], size[0]):
        base = base.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
    box = crop_box(geometry, size)
    rows = -(-len(titles) // columns)
    sheet = Image.new("RGB", (columns * size[1], rows * (size[0] + TITLE_HEIGHT)), "black")
    draw = ImageDraw.Draw(sheet)
    for index, (cam, title) in enumerate(zip(cams, titles, strict=True)):
        x, y = (index % columns) * size[1], (index // columns) * (size[0] + TITLE_HEIGHT)
        panel = base.convert("RGB") if flat and flat[index] else blend_cam(base, cam, box)
        sheet.paste(panel, (x, y + TITLE_HEIGHT))
        draw.text((x + 4, y + 3), fit_title(draw, title, size[1] - 8), fill="white")
    return encode_png(sheet)
