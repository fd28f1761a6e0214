"""A torchxrayvision DenseNet-121 state dict imports exactly: network, input convention, labels, thresholds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchxrayvision as xrv
from PIL import Image

from models.bundled import SAMPLE_XRAY
from models.imaging.decoder import decode_image
from models.network import CheXNet
from models.preprocessing import eval_tensor
from tests.training.import_sources import xrv_network
from training.import_weights import ImportRequest, import_checkpoint
from training.importers.foreign_weights import ImportSourceError
from training.importers.xrv import XRV_PATHOLOGIES, XRV_SPEC, XRV_WEIGHTS, find_xrv_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# Whole pipeline, ours against xrv's own (normalize, XRayCenterCrop, XRayResizer: skimage's resize), on one
# 1024 x 900 X-ray: the two antialiased resizes differ, nothing else does. Measured 2.3e-4; stated bound 1e-3.
PIPELINE_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def source() -> torch.nn.Module:
    return xrv_network(seed=5)


@pytest.fixture(scope="module")
def imported(source: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> tuple[CheXNet, object]:
    path = tmp_path_factory.mktemp("xrv") / "xrv-all-state.pt"
    state = source.state_dict()
    state["op_threshs"] = torch.tensor([math.nan] * 18)  # a buffer that xrv's own model saves; not weights
    torch.save(state, path)
    checkpoint = import_checkpoint(ImportRequest("torchxrayvision", path, path.with_name("out.pt"), xrv_weights="all"))
    model = CheXNet(len(checkpoint.labels))
    model.load_state_dict(checkpoint.state_dict, strict=True)
    return model.eval(), checkpoint


def _rows(weights: str = "all") -> list[int]:
    return list(XRV_WEIGHTS[weights].kept_outputs)  # every output the weights were trained on, in xrv's order


def test_network_equals_xrvs_own_forward(source: torch.nn.Module, imported: tuple[CheXNet, object]) -> None:
    model, _ = imported
    xrv_input = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(1)) * 2048 - 1024
    with torch.no_grad():
        expected = source(xrv_input)[:, _rows()]
        got = torch.sigmoid(model(xrv_input.expand(-1, 3, -1, -1)))  # our input repeats the grey channel
    assert float(expected.min()) > 0.05 and float(expected.max()) < 0.95
    assert torch.allclose(got, expected, rtol=0, atol=1e-5), float((got - expected).abs().max())


def _xray(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """The bundled 1024 x 1024 sample cut to 1024 x 900 (8-bit), so the centre square crop has work to do."""
    pixels = np.asarray(Image.open(SAMPLE_XRAY).convert("L"))[:, 50:950]
    path = tmp_path / "wide.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_pipeline_matches_xrvs_own_preprocessing(
    source: torch.nn.Module, imported: tuple[CheXNet, object], tmp_path: Path
) -> None:
    model, _ = imported
    path, pixels = _xray(tmp_path)
    ours = eval_tensor(XRV_SPEC, decode_image(path).gray)
    xrv_image = xrv.datasets.normalize(pixels, 255)[None]  # the recipe of xrv's README
    square = xrv.datasets.XRayCenterCrop()(xrv_image)
    resized = torch.from_numpy(xrv.datasets.XRayResizer(224)(square))[None]
    # xrv's model resizes a square of another size itself, with torch's antialiased bilinear, as we do
    own_resize = torch.nn.functional.interpolate(
        torch.from_numpy(square)[None], size=(224, 224), mode="bilinear", antialias=True
    )
    with torch.no_grad():
        got = torch.sigmoid(model(ours[None]))
        by_skimage = source(resized)[:, _rows()]
        by_torch = source(own_resize)[:, _rows()]
    assert float(by_skimage.min()) > 0.05 and float(by_skimage.max()) < 0.95
    assert torch.allclose(ours[0], own_resize[0, 0], rtol=0, atol=2e-3)  # inputs in [-1024, 1024]
    assert torch.allclose(got, by_torch, rtol=0, atol=1e-5), float((got - by_torch).abs().max())
    assert torch.allclose(got, by_skimage, rtol=0, atol=PIPELINE_TOLERANCE), float((got - by_skimage).abs().max())


def test_thresholds_become_the_xrv_operating_point(imported: tuple[CheXNet, object]) -> None:
    _, checkpoint = imported
    points = checkpoint.operating_points  # type: ignore[attr-defined]
    assert points.default == "xrv" and list(points.points) == ["xrv"]
    thresholds = {name: entry.threshold for name, entry in points.points["xrv"].thresholds.items()}
    assert thresholds["Atelectasis"] == 0.07422872 and thresholds["Cardiomegaly"] == 0.050318155
    assert thresholds["Hernia"] == 0.042889766
    assert list(thresholds) == list(XRV_PATHOLOGIES)  # all 18, in xrv's order
    assert all(entry.sensitivity is None for entry in points.points["xrv"].thresholds.values())
    assert points.source["weights"] == XRV_WEIGHTS["all"].file_name


def test_the_checkpoint_says_what_it_serves(imported: tuple[CheXNet, object]) -> None:
    _, checkpoint = imported
    spec = checkpoint.spec  # type: ignore[attr-defined]
    assert (spec.image_size, spec.resize, spec.crop_first) == (224, 224, True)
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (1 / 2048,) * 3
    source = checkpoint.provenance["source"]  # type: ignore[attr-defined]
    assert source["weights"] == "densenet121-res224-all"
    assert source["file"] == "xrv-all-state.pt"
    assert source["labels"]["Cardiomegaly"] == "Cardiomegaly (output 10)"
    assert checkpoint.labels == XRV_PATHOLOGIES  # type: ignore[attr-defined]
    assert source["dropped_outputs"] == []
    assert checkpoint.provenance["model_name"] == "xrv-densenet121-res224-all"  # type: ignore[attr-defined]


def test_our_table_is_xrvs() -> None:
    assert tuple(xrv.datasets.default_pathologies) == XRV_PATHOLOGIES
    for name, weights in XRV_WEIGHTS.items():
        published = xrv.models.model_urls[f"densenet121-res224-{name}"]
        assert list(weights.labels) == published["labels"]
        assert weights.url == published["weights_url"]
        for ours, theirs in zip(weights.op_threshs, published["op_threshs"], strict=True):
            assert (ours is None and math.isnan(theirs)) or ours == pytest.approx(theirs, rel=1e-7)


def test_weights_are_told_from_the_release_file_name_or_asked_for() -> None:
    assert find_xrv_weights(None, XRV_WEIGHTS["nih"].file_name).name == "nih"
    assert find_xrv_weights("densenet121-res224-pc", "x.pt").name == "pc"
    with pytest.raises(ImportSourceError, match="pass --xrv-weights, one of: all, nih, pc, chex, rsna, mimic_nb"):
        find_xrv_weights(None, "my-export.pt")


# Which outputs each published set keeps: the facts of torchxrayvision 1.5.7's model_urls (a '' label there is an
# output the weights were never trained on), written out here so that a change to the table is seen.
_CHEX = (
    "Atelectasis", "Consolidation", "Pneumothorax", "Edema", "Effusion", "Pneumonia", "Cardiomegaly", "Lung Lesion",
    "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum",
)  # fmt: skip
_NOT_CHEX = (
    "Infiltration (output 2)", "Emphysema (output 5)", "Fibrosis (output 6)", "Pleural_Thickening (output 9)",
    "Nodule (output 11)", "Mass (output 12)", "Hernia (output 13)",
)  # fmt: skip
KEPT_AND_DROPPED = {
    "all": (XRV_PATHOLOGIES, ()),
    "nih": (XRV_PATHOLOGIES[:14], tuple(f"{name} (output {i})" for i, name in enumerate(XRV_PATHOLOGIES) if i >= 14)),
    "pc": (
        (*XRV_PATHOLOGIES[:14], "Fracture"),
        ("Lung Lesion (output 14)", "Lung Opacity (output 16)", "Enlarged Cardiomediastinum (output 17)"),
    ),
    "chex": (_CHEX, _NOT_CHEX),
    "mimic_nb": (_CHEX, _NOT_CHEX),
    "mimic_ch": (_CHEX, _NOT_CHEX),
    "rsna": (
        ("Pneumonia", "Lung Opacity"),
        tuple(f"{name} (output {i})" for i, name in enumerate(XRV_PATHOLOGIES) if i not in (8, 16)),
    ),
}


@pytest.mark.parametrize("name", list(KEPT_AND_DROPPED))
def test_every_published_set_imports_whole(source: torch.nn.Module, tmp_path: Path, name: str) -> None:
    torch.save(source.state_dict(), tmp_path / "w.pt")
    checkpoint = import_checkpoint(
        ImportRequest("torchxrayvision", tmp_path / "w.pt", tmp_path / "o.pt", xrv_weights=name)
    )
    kept, dropped = KEPT_AND_DROPPED[name]
    assert checkpoint.labels == kept
    assert checkpoint.provenance["source"]["dropped_outputs"] == list(dropped)
    rows = [XRV_PATHOLOGIES.index(label) for label in kept]
    assert torch.equal(checkpoint.state_dict["classifier.weight"], source.state_dict()["classifier.weight"][rows])
    assert torch.equal(checkpoint.state_dict["classifier.bias"], source.state_dict()["classifier.bias"][rows])
    assert checkpoint.operating_points is not None
    published = xrv.models.model_urls[f"densenet121-res224-{name}"]["op_threshs"]
    thresholds = {
        label: entry.threshold for label, entry in checkpoint.operating_points.points["xrv"].thresholds.items()
    }
    assert thresholds == {label: pytest.approx(published[row], rel=1e-7) for label, row in zip(kept, rows, strict=True)}


def test_a_pickled_network_is_refused_naming_its_classes(source: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / XRV_WEIGHTS["all"].file_name  # what xrv's releases hold: a whole pickled module
    torch.save(source, path, _use_new_zipfile_serialization=False)
    with pytest.raises(ImportSourceError, match=r"holds a whole pickled network \(torchxrayvision.models.DenseNet, "):
        import_checkpoint(ImportRequest("torchxrayvision", path, tmp_path / "o.pt"))


def test_an_arnoweng_file_given_as_xrv_says_what_was_found(tmp_path: Path) -> None:
    torch.save(
        {"state_dict": {"module.densenet121.features.conv0.weight": torch.zeros(64, 3, 7, 7)}}, tmp_path / "m.pt"
    )
    with pytest.raises(ImportSourceError) as info:
        import_checkpoint(ImportRequest("torchxrayvision", tmp_path / "m.pt", tmp_path / "o.pt", xrv_weights="all"))
    assert str(info.value) == (
        "not a torchxrayvision DenseNet state dict: found a dict without tensors at the top (keys 'state_dict'); "
        "its 'state_dict' is a state dict of 1 tensors; key prefix 'module.densenet121.'; first convolution "
        "64x3x7x7 (3 input channels); no classifier weights"
    )


def test_a_missing_head_bias_is_named(source: torch.nn.Module, tmp_path: Path) -> None:
    state = source.state_dict()
    del state["classifier.bias"]
    torch.save(state, tmp_path / "no-bias.pt")
    with pytest.raises(
        ImportSourceError,
        match=r"^the weights do not fit DenseNet-121 key for key: 1 missing \(e\.g\. classifier\.bias\)$",
    ):
        import_checkpoint(
            ImportRequest("torchxrayvision", tmp_path / "no-bias.pt", tmp_path / "o.pt", xrv_weights="all")
        )
