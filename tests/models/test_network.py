import pytest
import torch
from torch import nn
from torchvision.models import densenet121

from models.labels import NIH_LABELS
from models.network import CheXNet, build_network, upgrade_legacy_keys


def test_state_dict_keys_are_torchvision_densenet121_keys() -> None:
    reference = densenet121(weights=None, num_classes=14).state_dict()
    ours = CheXNet(len(NIH_LABELS)).state_dict()
    assert list(ours) == list(reference)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in reference.items()}
    assert isinstance(CheXNet(len(NIH_LABELS)).classifier, nn.Linear)


def test_torchvision_weights_load_strict_and_forward_matches() -> None:
    torch.manual_seed(0)
    reference = densenet121(weights=None, num_classes=14).eval()
    model = CheXNet(len(NIH_LABELS)).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = reference(x)
        features = model.forward_features(x)
        assert features.shape == (2, 1024, 2, 2)
        assert torch.allclose(model.forward_head(features), expected, atol=1e-5)
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_forward_returns_logits_not_probabilities() -> None:
    torch.manual_seed(0)
    model = CheXNet(len(NIH_LABELS)).eval()
    with torch.no_grad():
        model.classifier.bias.fill_(5.0)
        out = model(torch.randn(1, 3, 32, 32))
    assert out.min().item() > 1.0  # a sigmoid inside would cap every output at 1


def test_legacy_norm_dot_keys_upgrade() -> None:
    old = {
        "features.denseblock1.denselayer1.norm.1.weight": torch.ones(1),
        "features.denseblock1.denselayer1.conv.2.weight": torch.ones(1),
        "features.norm5.weight": torch.ones(1),
    }
    assert list(upgrade_legacy_keys(old)) == [
        "features.denseblock1.denselayer1.norm1.weight",
        "features.denseblock1.denselayer1.conv2.weight",
        "features.norm5.weight",
    ]


def test_unknown_init_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown initialisation"):
        build_network("imagenet21k", len(NIH_LABELS))
