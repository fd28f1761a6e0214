"""Overlays drawn in uint8 at bounded size agree with the float reference, and stay bounded through the API."""

from __future__ import annotations

import io
import threading
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from app.encoding import overlay
from app.encoding.explanation import render_explanation_png
from app.encoding.overlay import (
    ALPHA,
    PANEL_SIDE,
    TITLE_HEIGHT,
    blend_cam,
    crop_box,
    encode_png,
    fit_title,
    gray_image,
    jet,
    output_size,
    overlay_base,
    panel_columns,
    render_overlay_png,
    render_panels_png,
)
from models.gradcam import cam_on_image
from models.preprocessing import CropGeometry, PreprocessSpec, center_crop_geometry
from tests.app.fakes import FakePredictor, client_for

SPEC = PreprocessSpec(image_size=224, resize=256)


def reference_overlay(
    gray: npt.NDArray[np.float32], cam: npt.NDArray[np.float32], geometry: CropGeometry | None = None
) -> npt.NDArray[np.float64]:
    """The definition, in float64 at the image's own size: jet(map stretched over the crop) at alpha 0.4."""
    geometry = geometry or center_crop_geometry(SPEC, *gray.shape)
    full = cam_on_image(cam, geometry)
    x0, y0, x1, y1 = geometry.box_in_original()
    inside = np.zeros(gray.shape)
    inside[int(np.ceil(y0 - 0.5)) : int(np.ceil(y1 - 0.5)), int(np.ceil(x0 - 0.5)) : int(np.ceil(x1 - 0.5))] = ALPHA
    base = np.repeat(gray[..., None].astype(np.float64), 3, axis=-1)
    return np.round((base * (1 - inside[..., None]) + jet(full) * inside[..., None]) * 255)


def decode_png(data: bytes) -> npt.NDArray[np.int64]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.mode == "RGB"
    return np.asarray(image, dtype=np.int64)


@pytest.mark.parametrize("shape", [(100, 200), (300, 170), (67, 64), (256, 256)])
def test_overlay_at_full_size_is_the_float_reference_within_quantisation(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    gray = rng.random(shape, dtype=np.float32)
    cam = rng.random((7, 7)).astype(np.float32)
    png = render_overlay_png(overlay_base(gray, 1024), cam, center_crop_geometry(SPEC, *shape))
    difference = np.abs(decode_png(png) - reference_overlay(gray, cam))
    # uint8 steps: the map quantised before the resample, the palette, the blend's own rounding
    assert difference.max() <= 3
    assert difference.mean() < 0.5


def test_outside_the_crop_the_image_is_left_alone() -> None:
    gray = np.full((100, 200), 60 / 255, dtype=np.float32)
    geometry = center_crop_geometry(SPEC, 100, 200)  # crop x 56.25..143.75, y 6.25..93.75
    pixels = decode_png(render_overlay_png(overlay_base(gray, 1024), np.ones((7, 7), np.float32), geometry))
    assert np.all(pixels[:, :56] == 60) and np.all(pixels[:, 144:] == 60)
    assert np.all(pixels[:6] == 60) and np.all(pixels[94:] == 60)
    assert np.all(pixels[6:94, 56:144] == [round(0.6 * 60 + 0.4 * 128), 36, 36])  # dark red at alpha 0.4


@pytest.mark.parametrize(
    ("shape", "max_side", "expected"),
    [((4000, 3000), 1024, (1024, 768)), ((100, 200), 1024, (100, 200)), ((3001, 999), 256, (256, 85))],
)
def test_output_size_bounds_the_longer_side(shape: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert output_size(*shape, max_side) == expected


def test_a_large_upload_is_drawn_at_the_bound_as_the_reference_at_that_size() -> None:
    gray = np.random.default_rng(4).random((2000, 1000), dtype=np.float32)
    cam = np.zeros((7, 7), dtype=np.float32)
    cam[1, 5] = 1.0  # top right of the crop
    geometry = center_crop_geometry(SPEC, 2000, 1000)
    pixels = decode_png(render_overlay_png(overlay_base(gray, 256), cam, geometry))
    assert pixels.shape == (256, 128, 3)
    small = np.asarray(gray_image(gray, (256, 128)), dtype=np.float32) / 255
    at_output = replace(geometry, height=256, width=128)  # the same crop, in output pixel coordinates
    assert np.abs(pixels - reference_overlay(small, cam, at_output)).max() <= 3


def test_palette_ends_are_jet_dark_blue_and_dark_red() -> None:
    assert overlay.JET_PALETTE[:3] == [0, 0, 128] and overlay.JET_PALETTE[-3:] == [128, 0, 0]
    assert len(overlay.JET_PALETTE) == 256 * 3


def test_png_encoding_is_lossless() -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(Image.fromarray(pixels, "RGB"))), pixels)


def test_panels_are_drawn_at_panel_size_one_per_class() -> None:
    gray = np.random.default_rng(2).random((900, 600), dtype=np.float32)
    cams = np.random.default_rng(3).random((14, 7, 7)).astype(np.float32)
    geometry = center_crop_geometry(SPEC, 900, 600)
    base = overlay_base(gray, 1024)  # the upload's own size here: panels are drawn from a shrunk copy
    sheet = decode_png(render_panels_png(base, cams, geometry, [f"class {i}" for i in range(14)]))
    panel_h, panel_w = PANEL_SIDE, 213  # 600 * 320 / 900 rounded
    assert sheet.shape == (4 * (panel_h + TITLE_HEIGHT), 4 * panel_w, 3)
    base = base.resize((panel_w, panel_h), Image.Resampling.BILINEAR, reducing_gap=2.0)
    for index in (0, 5, 13):
        x, y = (index % 4) * panel_w, (index // 4) * (panel_h + TITLE_HEIGHT) + TITLE_HEIGHT
        expected = np.asarray(blend_cam(base, cams[index], crop_box(geometry, (panel_h, panel_w))), dtype=np.int64)
        assert np.array_equal(sheet[y : y + panel_h, x : x + panel_w], expected)


def test_api_overlay_is_bounded_by_the_setting_and_drawn_in_the_decode_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[str] = []
    original = render_explanation_png

    def recording(*args: object) -> bytes:
        threads.append(threading.current_thread().name)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr("app.encoding.responses.render_explanation_png", recording)
    buffer = io.BytesIO()
    Image.fromarray(np.full((400, 200), 90, dtype=np.uint8)).save(buffer, format="PNG")
    with client_for(FakePredictor(), overlay_max_side=100) as client:
        response = client.post("/gradcam", files={"file": ("a", buffer.getvalue(), "image/png")})
    assert response.status_code == 200
    assert Image.open(io.BytesIO(response.content)).size == (50, 100)
    assert len(threads) == 1 and threads[0].startswith("chexnet-decode")


@pytest.mark.parametrize(("count", "columns"), [(1, 1), (2, 2), (4, 2), (5, 3), (14, 4), (16, 4), (18, 5), (64, 8)])
def test_the_panel_grid_is_about_square_for_any_label_count(count: int, columns: int) -> None:
    assert panel_columns(count) == columns


def test_one_panel_sheet_and_a_64_panel_sheet_have_their_grid_sizes() -> None:
    gray = np.random.default_rng(4).random((64, 64), dtype=np.float32)
    geometry = center_crop_geometry(SPEC, 64, 64)
    base = overlay_base(gray, 1024)
    for count, (columns, rows) in ((1, (1, 1)), (64, (8, 8))):
        cams = np.random.default_rng(count).random((count, 7, 7)).astype(np.float32)
        sheet = decode_png(render_panels_png(base, cams, geometry, [f"label {i}" for i in range(count)]))
        assert sheet.shape == (rows * (PANEL_SIDE + TITLE_HEIGHT), columns * PANEL_SIDE, 3)


def test_a_long_title_is_cut_to_the_panel_width() -> None:
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    long = "Enlarged Cardiomediastinum with a sixty-four character long name p=0.123"
    cut = fit_title(draw, long, 200)
    assert cut.endswith("..") and long.startswith(cut[:-2])
    assert draw.textlength(cut) <= 200 < draw.textlength(cut[:-2] + long[len(cut) - 2] + "..")
    assert fit_title(draw, "Mass p=0.500", 200) == "Mass p=0.500"
