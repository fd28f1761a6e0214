import numpy as np
import pytest
import torch

from models.gradcam import cam_on_image, gradcam_maps, normalise_maps
from models.labels import NIH_LABELS
from models.network import CheXNet
from models.preprocessing import PreprocessSpec, center_crop_geometry


def autograd_gradcam(model: CheXNet, x: torch.Tensor, target: int, through_sigmoid: bool = False) -> torch.Tensor:
    """The seed's Grad-CAM with autograd and a tensor hook: gradient of the target w.r.t. the norm5 map."""
    features = model.forward_features(x)
    grads: list[torch.Tensor] = []
    features.register_hook(grads.append)
    score = model.forward_head(features)[0, target]
    if through_sigmoid:
        score = torch.sigmoid(score)
    score.backward()
    weights = grads[0].mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * torch.relu(features)).sum(dim=1))[0]
    return normalise_maps(cam.detach())


@pytest.fixture(scope="module")
def model_and_input() -> tuple[CheXNet, torch.Tensor]:
    torch.manual_seed(7)
    # float64 on both sides: the comparison measures the maths, not rounding
    model = CheXNet(len(NIH_LABELS)).double().eval()
    with torch.no_grad():  # random heads give tiny maps; widen them so every class has structure
        model.classifier.weight.normal_(0, 0.5)
    return model, torch.randn(1, 3, 128, 128, dtype=torch.float64)


def test_closed_form_matches_autograd_for_all_14_classes(model_and_input: tuple[CheXNet, torch.Tensor]) -> None:
    model, x = model_and_input
    with torch.no_grad():
        cams = normalise_maps(gradcam_maps(model.forward_features(x), model.classifier.weight))
    assert cams.shape == (1, 14, 4, 4)
    nonzero = 0
    for target in range(14):
        oracle = autograd_gradcam(model, x, target)
        assert (cams[0, target] - oracle).abs().max().item() <= 1e-5, target
        nonzero += int(oracle.max() > 0)
    assert nonzero >= 10  # the comparison is not between all-zero maps


def test_sigmoid_does_not_change_the_normalised_map(model_and_input: tuple[CheXNet, torch.Tensor]) -> None:
    model, x = model_and_input
    for target in (0, 6, 13):
        plain = autograd_gradcam(model, x, target)
        through = autograd_gradcam(model, x, target, through_sigmoid=True)
        assert (plain - through).abs().max().item() <= 1e-5


def test_batch_maps_equal_single_maps(model_and_input: tuple[CheXNet, torch.Tensor]) -> None:
    model, _ = model_and_input
    torch.manual_seed(3)
    batch = torch.randn(3, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        together = gradcam_maps(model.forward_features(batch), model.classifier.weight)
        alone = gradcam_maps(model.forward_features(batch[1:2]), model.classifier.weight)
    assert torch.allclose(together[1:2], alone, atol=1e-6)


def test_normalise_constant_map_is_zero() -> None:
    maps = torch.stack([torch.full((2, 2), 3.0), torch.tensor([[0.0, 1.0], [2.0, 4.0]])])
    out = normalise_maps(maps)
    assert torch.equal(out[0], torch.zeros(2, 2))
    assert torch.allclose(out[1], torch.tensor([[0.0, 0.25], [0.5, 1.0]]))


def test_cam_on_image_lands_where_the_crop_lies() -> None:
    spec = PreprocessSpec(image_size=32, resize=36)
    geometry = center_crop_geometry(spec, 100, 200)  # crop covers x in [55.6, 144.4), y in [5.6, 94.4)
    cam = np.zeros((4, 4), dtype=np.float32)
    cam[0, 3] = 1.0  # top-right cell of the crop
    full = cam_on_image(cam, geometry)
    assert full.shape == (100, 200)
    assert full[:, :55].max() == 0 and full[:, 145:].max() == 0 and full[:5].max() == 0
    y, x = np.unravel_index(np.argmax(full), full.shape)
    assert 5 <= y <= 20 and 125 <= x <= 145
    assert full[60:, :].max() < 1e-6
