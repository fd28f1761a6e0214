"""ImageNet starting weights: read from the torch hub cache, hash-checked, unpickled with weights_only, never run.

The files are fabricated (random DenseNet-121 weights laid out as torchvision's 2017 file: legacy "norm.1" names,
a 1000-class classifier, no num_batches_tracked) in a temporary TORCH_HOME; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from torchvision.models import densenet121

import models.network
from chexnet_cli import main
from models.errors import WeightsUnavailableError
from models.labels import NIH_LABELS
from models.network import build_network
from models.pretrained import DENSENET121_IMAGENET, PretrainedFile, load_pretrained_state


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty TORCH_HOME, and a download that fails as it does offline (so no test reaches the network)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def offline(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise URLError("no network here")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    return tmp_path / "torch"


@pytest.fixture(scope="module")
def torchvision_style_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    torch.manual_seed(3)
    legacy = {
        re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", k): v
        for k, v in densenet121(weights=None).state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    assert "features.denseblock1.denselayer1.norm.1.weight" in legacy
    path = tmp_path_factory.mktemp("file") / "densenet121.pth"
    torch.save(legacy, path)
    return path.read_bytes()


def published_as(data: bytes, torch_home: Path) -> PretrainedFile:
    """``data`` in the hub cache under a torchvision-style name that carries its own hash prefix."""
    prefix = hashlib.sha256(data).hexdigest()[:8]
    weights = PretrainedFile(f"https://download.example/models/densenet121-{prefix}.pth", prefix)
    weights.cache_path().parent.mkdir(parents=True, exist_ok=True)
    weights.cache_path().write_bytes(data)
    return weights


def test_cache_path_is_torchvisions(torch_home: Path) -> None:
    assert DENSENET121_IMAGENET.cache_path() == torch_home / "hub" / "checkpoints" / "densenet121-a639ec97.pth"


def test_a_file_with_the_published_hash_loads_into_the_backbone(
    torch_home: Path, torchvision_style_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = published_as(torchvision_style_bytes, torch_home)
    monkeypatch.setattr(models.network, "DENSENET121_IMAGENET", weights)
    model = build_network("imagenet", len(NIH_LABELS))
    saved = load_pretrained_state(weights)
    key = "features.denseblock1.denselayer1.norm1.weight"  # renamed from torchvision's legacy "norm.1"
    assert torch.equal(model.state_dict()[key], saved["features.denseblock1.denselayer1.norm.1.weight"])
    assert torch.equal(model.state_dict()["features.conv0.weight"], saved["features.conv0.weight"])
    assert model.classifier.weight.shape == (14, 1024)  # a new head, not ImageNet's 1000 classes


def test_other_content_under_the_published_name_is_refused(torch_home: Path, torchvision_style_bytes: bytes) -> None:
    path = DENSENET121_IMAGENET.cache_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(torchvision_style_bytes)  # a valid DenseNet-121 state dict, but not the published file
    digest = hashlib.sha256(torchvision_style_bytes).hexdigest()
    with pytest.raises(WeightsUnavailableError) as raised:
        build_network("imagenet", len(NIH_LABELS))
    assert str(raised.value) == (
        f"{path} is not the published densenet121-a639ec97.pth: its SHA-256 begins {digest[:8]}, not a639ec97. "
        "The file is corrupt or was replaced; delete it (it is downloaded again where there is a network), or "
        "start from random weights with --weights none."
    )


class RunsCode:
    """Unpickling this calls ``Path.write_text(marker, "ran")``: what a poisoned cache file could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path, str]]:
        return (Path.write_text, (self.marker, "ran"))


def test_a_pickle_that_runs_code_is_refused_even_with_a_matching_hash(torch_home: Path, tmp_path: Path) -> None:
    pickle.loads(pickle.dumps(RunsCode(tmp_path / "proof")))  # plain unpickling does run it
    assert (tmp_path / "proof").read_text() == "ran"
    marker = tmp_path / "ran"
    poisoned = tmp_path / "poisoned.pth"
    torch.save({"features.conv0.weight": torch.zeros(1), "hook": RunsCode(marker)}, poisoned)
    weights = published_as(poisoned.read_bytes(), torch_home)  # the hash matches: only weights_only stands guard
    with pytest.raises(WeightsUnavailableError, match="holds objects other than tensors and plain data"):
        load_pretrained_state(weights)
    assert not marker.exists()


def test_offline_with_nothing_cached_names_the_path_and_weights_none(torch_home: Path) -> None:
    with pytest.raises(WeightsUnavailableError) as raised:
        build_network("imagenet", len(NIH_LABELS))
    path = torch_home / "hub" / "checkpoints" / "densenet121-a639ec97.pth"
    assert str(raised.value) == (
        f"ImageNet weights are not in the torch hub cache ({path}) and could not be downloaded (URLError). Where "
        "there is no network, copy densenet121-a639ec97.pth from "
        "https://download.pytorch.org/models/densenet121-a639ec97.pth to that path (or point TORCH_HOME at a folder "
        "holding hub/checkpoints/densenet121-a639ec97.pth), or start from random weights with --weights none."
    )


def test_a_download_is_hash_checked(
    torch_home: Path, torchvision_style_bytes: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        calls.append((url, dst, hash_prefix))
        Path(dst).write_bytes(torchvision_style_bytes)

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    prefix = hashlib.sha256(torchvision_style_bytes).hexdigest()[:8]
    weights = PretrainedFile(f"https://download.example/models/densenet121-{prefix}.pth", prefix)
    assert set(load_pretrained_state(weights)) == set(torch.load(weights.cache_path(), weights_only=True))
    assert calls == [(weights.url, str(weights.cache_path()), prefix)]


def test_chexnet_train_offline_exits_1_before_reading_data(
    torch_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "labels.csv").write_text("not read\n")
    args = ["train", "--images", str(tmp_path / "images"), "--labels", str(tmp_path / "labels.csv")]
    assert main([*args, "--out", str(tmp_path / "out"), "--weights", "imagenet", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("chexnet train: ImageNet weights are not in the torch hub cache")
    assert err[0].endswith("or start from random weights with --weights none.")
