import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from models.checkpoint import Checkpoint, initial_network, load_checkpoint, save_checkpoint
from models.errors import CheckpointError
from models.files import file_sha256
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec

SPEC = PreprocessSpec(image_size=32, resize=36)


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return build_network("none", len(NIH_LABELS)).state_dict()


def test_round_trip_keeps_everything(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    path = save_checkpoint(
        Checkpoint(
            weights,
            SPEC,
            NIH_LABELS,
            config={"lr": 1e-4},
            metrics={"val_mean_auroc": 0.75},
            provenance={"command": "x"},
        ),
        tmp_path / "c.pt",
    )
    loaded = load_checkpoint(path)
    assert loaded.spec == SPEC
    assert loaded.labels == NIH_LABELS
    assert loaded.config == {"lr": 1e-4}
    assert loaded.metrics == {"val_mean_auroc": 0.75}
    assert loaded.provenance["command"] == "x"
    assert loaded.provenance["torch_version"] == torch.__version__
    model = loaded.build_model()
    assert not model.training
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())


def test_file_loads_with_plain_weights_only(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    path = save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS), tmp_path / "c.pt")
    assert path.stat().st_mode & 0o777 == 0o644  # readable by a container's non-root user
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "chexnet-checkpoint"
    assert payload["labels"] == list(NIH_LABELS)
    assert payload["preprocess"]["image_size"] == 32


def test_atomic_write_keeps_old_file_on_crash(
    tmp_path: Path, weights: dict[str, torch.Tensor], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS, metrics={"v": 1}), tmp_path / "c.pt")
    before = file_sha256(path)

    def crash(obj: object, handle: "os.PathLike[str]") -> None:
        handle.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS, metrics={"v": 2}), path)
    assert file_sha256(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_and_truncated_files(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(garbage)
    good = save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS), tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)


class Payload:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("code ran",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickled_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "chexnet-checkpoint", "x": Payload()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"format": "something-else"}, "not a chexnet checkpoint"),
        ({"format_version": 99}, "format version 99"),
        ({"arch": "resnet50"}, "architecture"),
        ({"labels": ["Mass", "mass", *NIH_LABELS[2:]]}, r"invalid label list: labels 1 and 2 are the same name"),
        ({"labels": "Mass"}, "has no label list"),
        ({"labels": list(NIH_LABELS[:13])}, r"13 labels but a classifier of shape \(14, 1024\)"),
        ({"preprocess": {"image_size": 64, "resize": 32}}, "preprocessing"),
    ],
)
def test_incompatible_metadata(
    tmp_path: Path, weights: dict[str, torch.Tensor], patch: dict[str, object], message: str
) -> None:
    payload = {**Checkpoint(weights, SPEC, NIH_LABELS).to_payload(), **patch}
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.pt")


def test_mismatched_weights_fail_strictly(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    broken = dict(weights)
    broken["classifier.weight"] = torch.zeros(10, 1024)
    path = save_checkpoint(Checkpoint(broken, SPEC, NIH_LABELS), tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"14 labels but a classifier of shape \(10, 1024\); expected \(14, 1"):
        load_checkpoint(path)
    del broken["classifier.weight"]
    path = save_checkpoint(Checkpoint(broken, SPEC, NIH_LABELS), tmp_path / "d.pt")
    with pytest.raises(CheckpointError, match="has no classifier weights"):
        load_checkpoint(path)
    del broken["features.conv0.weight"]
    broken["classifier.weight"] = weights["classifier.weight"]
    path = save_checkpoint(Checkpoint(broken, SPEC, NIH_LABELS), tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="1 missing"):
        load_checkpoint(path).build_model()


def test_initial_network_from_checkpoint(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    path = save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS), tmp_path / "c.pt")
    model, spec = initial_network(str(path), 1)
    assert spec == SPEC
    assert model.training
    assert torch.equal(model.state_dict()["classifier.weight"], weights["classifier.weight"])


def test_only_a_crop_first_spec_makes_a_version_2_file(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    crop_first = PreprocessSpec(image_size=32, resize=32, crop_first=True)
    plain = save_checkpoint(Checkpoint(weights, SPEC, NIH_LABELS), tmp_path / "plain.pt")
    square = save_checkpoint(Checkpoint(weights, crop_first, NIH_LABELS), tmp_path / "square.pt")
    # A version-1 reader drops unknown spec fields, so it must refuse the crop_first file rather than misread it
    assert torch.load(plain, weights_only=True)["format_version"] == 1
    assert torch.load(square, weights_only=True)["format_version"] == 2
    assert load_checkpoint(square).spec == crop_first
    assert load_checkpoint(plain).spec == SPEC


@pytest.mark.parametrize(
    "labels",
    [
        ("Pneumonia",),
        ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion"),
        tuple(f"Finding {i}" for i in range(64)),
    ],
    ids=["1", "5", "64"],
)
def test_any_valid_label_tuple_loads_with_a_head_of_its_size(tmp_path: Path, labels: tuple[str, ...]) -> None:
    torch.manual_seed(0)
    model = build_network("none", len(labels))
    path = save_checkpoint(Checkpoint(model.state_dict(), SPEC, labels), tmp_path / "k.pt")
    loaded = load_checkpoint(path)
    assert loaded.labels == labels
    rebuilt = loaded.build_model()
    assert rebuilt.classifier.out_features == len(labels)
    with torch.no_grad():
        assert rebuilt(torch.zeros(1, 3, 32, 32)).shape == (1, len(labels))


def test_nih_labels_in_another_order_load_as_stored(tmp_path: Path, weights: dict[str, torch.Tensor]) -> None:
    reordered = tuple(reversed(NIH_LABELS))
    path = save_checkpoint(Checkpoint(weights, SPEC, reordered), tmp_path / "r.pt")
    assert load_checkpoint(path).labels == reordered


def test_a_label_tuple_that_fails_validation_is_refused(tmp_path: Path) -> None:
    state = build_network("none", 2).state_dict()
    for labels, message in [
        (("Mass", " Mass"), "label 2 has surrounding space or unprintable characters"),
        (("Mass", "x" * 65), "label 2 is longer than 64 characters"),
        (("Mass", ""), "label 2 is empty"),
    ]:
        payload = Checkpoint(state, SPEC, labels).to_payload()
        torch.save(payload, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=f"invalid label list: {re.escape(message)}"):
            load_checkpoint(tmp_path / "bad.pt")


def test_a_network_needs_its_output_count() -> None:
    with pytest.raises(ValueError, match="a model needs at least one output, got 0"):
        build_network("none", 0)
