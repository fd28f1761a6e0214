"""arnoweng/CheXNet's model.pth.tar layout imports key for key, and the model computes what the source does."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from models.labels import NIH_LABELS
from models.network import CheXNet
from tests.training.import_sources import arnoweng_network, arnoweng_state, write_arnoweng_file, xrv_network
from training.import_weights import ImportRequest, import_checkpoint, strict_chexnet_state
from training.importers.arnoweng import ARNOWENG_CLASS_NAMES, ARNOWENG_SPEC
from training.importers.foreign_weights import ImportSourceError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return arnoweng_network(seed=3)


def _imported(path: Path) -> CheXNet:
    checkpoint = import_checkpoint(ImportRequest("arnoweng", path, path.with_suffix(".out.pt")))
    model = CheXNet(len(NIH_LABELS))
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval()


@pytest.mark.parametrize("cuda_storages", [False, True])
def test_imported_probabilities_equal_the_source_networks(
    source: torch.nn.Module, tmp_path: Path, cuda_storages: bool
) -> None:
    path = write_arnoweng_file(tmp_path / "model.pth.tar", source, cuda_storages=cuda_storages)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = source(images)  # arnoweng's head ends in Sigmoid
        got = torch.sigmoid(_imported(path)(images))
    assert float(expected.min()) > 0.05 and float(expected.max()) < 0.95  # not saturated: the check has teeth
    assert torch.allclose(got, expected, rtol=0, atol=1e-5), float((got - expected).abs().max())


def test_the_checkpoint_records_its_source_and_the_seed_preprocessing(source: torch.nn.Module, tmp_path: Path) -> None:
    path = write_arnoweng_file(tmp_path / "model.pth.tar", source)
    checkpoint = import_checkpoint(
        ImportRequest("arnoweng", path, tmp_path / "out.pt", name="chexnet-aw", model_version="1")
    )
    assert checkpoint.spec == ARNOWENG_SPEC
    assert (ARNOWENG_SPEC.image_size, ARNOWENG_SPEC.resize, ARNOWENG_SPEC.crop_first) == (224, 256, False)
    assert checkpoint.operating_points is None
    provenance = checkpoint.provenance
    assert (provenance["model_name"], provenance["model_version"]) == ("chexnet-aw", "1")
    assert provenance["source"]["file"] == "model.pth.tar"
    assert provenance["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert provenance["source"]["format"] == "arnoweng/CheXNet model.pth.tar"
    assert provenance["source"]["labels"] == {name: name for name in NIH_LABELS}


def test_arnoweng_class_order_is_ours() -> None:
    assert ARNOWENG_CLASS_NAMES == NIH_LABELS
    assert "Pleural_Thickening" in ARNOWENG_CLASS_NAMES


def test_a_state_dict_with_num_batches_tracked_imports_the_same(source: torch.nn.Module, tmp_path: Path) -> None:
    torch.save({"state_dict": arnoweng_state(source, num_batches_tracked=True)}, tmp_path / "newer.pth.tar")
    write_arnoweng_file(tmp_path / "model.pth.tar", source)
    newer = import_checkpoint(ImportRequest("arnoweng", tmp_path / "newer.pth.tar", tmp_path / "a.pt")).state_dict
    older = import_checkpoint(ImportRequest("arnoweng", tmp_path / "model.pth.tar", tmp_path / "b.pt")).state_dict
    assert newer.keys() == older.keys()
    assert all(torch.equal(newer[k], older[k]) for k in newer if not k.endswith("num_batches_tracked"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("module.densenet121.features.norm5.weight"), "1 missing (e.g. features.norm5.weight)"),
        (lambda s: s.update({"module.densenet121.extra.weight": torch.zeros(1)}), "1 unexpected (e.g. extra.weight)"),
        (
            lambda s: s.update({"module.densenet121.features.norm0.bias": torch.zeros(3)}),
            "1 misshapen (e.g. features.norm0.bias)",
        ),
    ],
)
def test_a_key_that_does_not_fit_is_named_never_dropped(
    source: torch.nn.Module, tmp_path: Path, edit: object, message: str
) -> None:
    state = arnoweng_state(source)
    edit(state)  # type: ignore[operator]
    torch.save({"state_dict": state}, tmp_path / "edited.pth.tar")
    with pytest.raises(ImportSourceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_checkpoint(ImportRequest("arnoweng", tmp_path / "edited.pth.tar", tmp_path / "out.pt"))


def test_only_num_batches_tracked_may_be_absent() -> None:
    complete = CheXNet(len(NIH_LABELS)).state_dict()
    without = {k: v for k, v in complete.items() if not k.endswith("num_batches_tracked")}
    filled = strict_chexnet_state(without, len(NIH_LABELS))
    assert filled.keys() == complete.keys()
    assert all(int(v) == 0 for k, v in filled.items() if k.endswith("num_batches_tracked"))


def test_another_layout_is_refused_saying_what_was_found(tmp_path: Path) -> None:
    torch.save(xrv_network().state_dict(), tmp_path / "xrv.pt")
    with pytest.raises(ImportSourceError) as info:
        import_checkpoint(ImportRequest("arnoweng", tmp_path / "xrv.pt", tmp_path / "out.pt"))
    assert str(info.value) == (
        "not arnoweng/CheXNet's layout (a dict with a 'state_dict'): a state dict of 727 tensors; no key prefix; "
        "first convolution 64x1x7x7 (1 input channel); head classifier.weight 18x1024"
    )
