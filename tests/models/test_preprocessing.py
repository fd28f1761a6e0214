import io

import numpy as np
import pytest
import torch
from PIL import Image

from models.preprocessing import (
    PreprocessSpec,
    center_crop_geometry,
    denormalise,
    eval_tensor,
    image_to_gray,
    resized_gray,
    resized_hw,
    tencrop_tensor,
    train_tensor,
)

SPEC = PreprocessSpec(image_size=32, resize=36)


def test_default_spec_is_the_seed_recipe() -> None:
    spec = PreprocessSpec()
    assert (spec.image_size, spec.resize) == (224, 256)
    assert spec.mean == (0.485, 0.456, 0.406)
    assert spec.std == (0.229, 0.224, 0.225)
    assert PreprocessSpec.for_image_size(224) == spec


def test_spec_round_trips_through_plain_dict() -> None:
    data = SPEC.to_dict()
    assert data["mean"] == [0.485, 0.456, 0.406]
    assert all(isinstance(v, (int, float, str, bool, list)) for v in data.values())
    assert PreprocessSpec.from_dict(data) == SPEC


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"image_size": 64, "resize": 32}, "image_size"), ({"mean": (0.5,)}, "3")]
)
def test_invalid_specs_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PreprocessSpec(**kwargs)  # type: ignore[arg-type]


def test_8bit_gray_is_value_over_255() -> None:
    pixels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    gray = image_to_gray(Image.fromarray(pixels, mode="L"))
    assert gray.dtype == np.float32
    assert np.array_equal(gray, pixels.astype(np.float32) / np.float32(255))


def test_16bit_ramp_is_scaled_by_its_real_depth_exactly() -> None:
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")  # a real 16-bit PNG file
    gray = image_to_gray(Image.open(io.BytesIO(buffer.getvalue())))
    expected = (ramp.astype(np.float64) / 65535.0).astype(np.float32)
    assert np.array_equal(gray, expected)
    assert gray.max() == 1.0 and gray.min() == 0.0
    # convert("L") would have clipped everything above 255 to white: this ramp keeps 4096 distinct levels
    assert len(np.unique(gray)) == 4096


def test_rgb_and_rgba_reduce_to_luma() -> None:
    rgb = np.zeros((4, 4, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    expected = np.float32((0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255)
    assert np.allclose(image_to_gray(Image.fromarray(rgb, "RGB")), expected, atol=1e-6)
    rgba = np.dstack([rgb, np.full((4, 4), 7, dtype=np.uint8)])
    assert np.allclose(image_to_gray(Image.fromarray(rgba, "RGBA")), expected, atol=1e-6)


def test_gray_replicated_rgb_equals_gray() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    rgb = Image.fromarray(np.dstack([pixels] * 3), "RGB")
    assert np.allclose(image_to_gray(rgb), pixels / 255.0, atol=1e-6)


def test_eval_tensor_shape_channels_and_normalisation() -> None:
    gray = np.full((50, 40), 0.5, dtype=np.float32)
    tensor = eval_tensor(SPEC, gray)
    assert tensor.shape == (3, 32, 32)
    for c in range(3):
        expected = (0.5 - SPEC.mean[c]) / SPEC.std[c]
        assert torch.allclose(tensor[c], torch.full((32, 32), expected), atol=1e-6)
    assert torch.allclose(denormalise(SPEC, tensor), torch.full((32, 32), 0.5), atol=1e-6)


def test_resize_rule_and_center_crop_geometry() -> None:
    assert resized_hw(SPEC, 100, 200) == (36, 72)
    assert resized_hw(SPEC, 300, 100) == (108, 36)
    geometry = center_crop_geometry(SPEC, 100, 200)
    assert (geometry.top, geometry.left, geometry.size) == (2, 20, 32)
    x0, y0, x1, y1 = geometry.box_in_original()
    assert (x0, x1) == pytest.approx((20 * 200 / 72, 52 * 200 / 72))
    assert (y0, y1) == pytest.approx((2 * 100 / 36, 34 * 100 / 36))


def test_eval_crop_is_the_centre_of_the_resized_image() -> None:
    gray = np.zeros((36, 72), dtype=np.float32)  # already at the resized size: no interpolation
    gray[:, 20:52] = 1.0  # exactly the centre crop's columns
    tensor = eval_tensor(SPEC, gray)
    assert torch.allclose(denormalise(SPEC, tensor), torch.ones(32, 32), atol=1e-6)


def test_train_tensor_is_seeded_and_only_flips_horizontally() -> None:
    gray = np.zeros((36, 36), dtype=np.float32)
    gray[:18, :] = 1.0  # top half bright: a vertical flip would move it to the bottom
    outs = [train_tensor(SPEC, gray, torch.Generator().manual_seed(s)) for s in range(20)]
    assert torch.equal(outs[3], train_tensor(SPEC, gray, torch.Generator().manual_seed(3)))
    for out in outs:
        image = denormalise(SPEC, out)
        assert image[:14].mean() > 0.99 and image[-14:].mean() < 0.01


def test_tencrop_has_ten_crops_with_mirrors() -> None:
    gray = np.random.default_rng(1).random((40, 48), dtype=np.float32)
    crops = tencrop_tensor(SPEC, gray)
    assert crops.shape == (10, 3, 32, 32)
    assert torch.allclose(crops[5:], crops[:5].flip(-1))
    assert torch.allclose(crops[4], eval_tensor(SPEC, gray), atol=1e-6)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("shape", [(36, 36), (37, 50), (50, 37), (100, 333), (20, 24), (128, 128)])
def test_transforms_of_the_resized_image_equal_those_of_the_original(
    shape: tuple[int, int], interpolation: str
) -> None:
    spec = PreprocessSpec(image_size=32, resize=36, interpolation=interpolation)
    gray = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    resized = resized_gray(spec, gray)
    assert resized.shape == resized_hw(spec, *shape) and resized.dtype == np.float32
    assert torch.equal(eval_tensor(spec, resized), eval_tensor(spec, gray))
    assert torch.equal(tencrop_tensor(spec, resized), tencrop_tensor(spec, gray))
    for seed in range(5):
        expected = train_tensor(spec, gray, torch.Generator().manual_seed(seed))
        assert torch.equal(train_tensor(spec, resized, torch.Generator().manual_seed(seed)), expected)


CROP_FIRST = PreprocessSpec(image_size=32, resize=32, mean=(0.5, 0.5, 0.5), std=(1 / 2048,) * 3, crop_first=True)


def test_a_stored_spec_without_crop_first_keeps_the_seed_geometry() -> None:
    old = {k: v for k, v in SPEC.to_dict().items() if k != "crop_first"}  # written before the field existed
    assert PreprocessSpec.from_dict(old).crop_first is False
    assert PreprocessSpec.from_dict(CROP_FIRST.to_dict()) == CROP_FIRST
    with pytest.raises(ValueError, match="resize must equal"):
        PreprocessSpec(image_size=32, resize=36, crop_first=True)


@pytest.mark.parametrize(
    ("shape", "top", "left", "side"),
    [((100, 200), 0, 50, 100), ((201, 100), 50, 0, 100), ((101, 200), 0, 50, 101), ((64, 64), 0, 0, 64)],
)
def test_crop_first_geometry_is_the_centred_square_of_the_original(
    shape: tuple[int, int], top: int, left: int, side: int
) -> None:
    geometry = center_crop_geometry(CROP_FIRST, *shape)
    assert (geometry.top, geometry.left, geometry.size, geometry.resized_hw) == (top, left, side, shape)
    assert geometry.box_in_original() == (left, top, left + side, top + side)


def test_crop_first_eval_tensor_resizes_the_square_crop() -> None:
    gray = np.zeros((40, 80), dtype=np.float32)
    gray[:, 20:60] = np.random.default_rng(2).random((40, 40), dtype=np.float32)  # the centred square
    tensor = eval_tensor(CROP_FIRST, gray)
    square = torch.from_numpy(gray[:, 20:60])[None, None]
    resized = torch.nn.functional.interpolate(square, size=(32, 32), mode="bilinear", antialias=True)[0, 0]
    assert tensor.shape == (3, 32, 32)
    assert torch.equal(tensor, ((resized - 0.5) * 2048).expand(3, -1, -1))  # exact: 1/2048 is a power of two


def test_crop_first_specs_are_not_trained_or_ten_cropped() -> None:
    gray = np.zeros((40, 40), dtype=np.float32)
    with pytest.raises(ValueError, match="training is not supported for a crop_first spec"):
        train_tensor(CROP_FIRST, gray, torch.Generator())
    with pytest.raises(ValueError, match="ten-crop"):
        tencrop_tensor(CROP_FIRST, gray)
    with pytest.raises(ValueError, match="cache"):
        resized_gray(CROP_FIRST, gray)
