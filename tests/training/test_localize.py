"""``chexnet localize`` end to end on images the test writes (and on the shared box images when present), and the
sanity check on a tiny trained model: maps with a randomised head must be far from the trained model's."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from chexnet_cli import main
from models.cam_boxes import FLAT_SPAN, cam_spans
from models.checkpoint import Checkpoint, save_checkpoint
from models.gradcam import gradcam_maps
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec, eval_tensor
from tests.conftest import SHARED_DATA
from tests.training.synthetic import make_square_dataset
from training.data.dataset import load_gray
from training.localize import randomised, sanity_check

SPEC64 = PreprocessSpec(image_size=64, resize=73)  # a 2 x 2 map: the smallest that is not flat by construction
BOX_HEADER = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"


@pytest.fixture(scope="module")
def checkpoint64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("ck64") / "ck64.pt"
    save_checkpoint(
        Checkpoint(state_dict=build_network("none", len(NIH_LABELS)).state_dict(), spec=SPEC64, labels=NIH_LABELS),
        path,
    )
    return path


def _write_images(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, (height, width) in {"00000001_000.png": (64, 96), "00000002_000.png": (80, 80)}.items():
        Image.fromarray(rng.integers(0, 255, (height, width), dtype=np.uint8), "L").save(folder / name)


def test_localize_end_to_end_on_written_images(tmp_path: Path, checkpoint64: Path) -> None:
    images, out = tmp_path / "images", tmp_path / "out"
    _write_images(images)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(
        BOX_HEADER
        + "00000001_000.png,Infiltrate,0,0,512,512\n"  # a box at the border of a non-square, non-1024 image
        + "00000001_000.png,Infiltrate,512,512,512,512\n"  # two boxes of one label on one image
        + "00000002_000.png,Mass,100,200,300,400\n"
        + "00000003_000.png,Mass,1,1,10,10\n"  # not in the folder
        + "00000002_000.png,Fracture,1,1,10,10\n"  # a label the model lacks
    )
    args = ["localize", "--checkpoint", str(checkpoint64), "--images", str(images), "--boxes", str(boxes)]
    assert main([*args, "--out", str(out), "--bootstrap", "20", "--device", "cpu"]) == 0
    document = json.loads((out / "localization.json").read_text())
    assert document["rule"]["name"] == "wang" and document["rule"]["levels_255"] == [60.0, 180.0]
    assert document["images"] == {"scored": 2, "not_found": 1, "unreadable": 0}
    assert document["labels_lacking"] == ["Fracture"]
    scores = document["scores"]
    assert list(scores) == ["Infiltration", "Mass", "overall"]
    assert [scores[k]["boxes"] for k in scores] == [2, 1, 3]
    assert [scores[k]["cases"] for k in scores] == [1, 1, 2]
    with open(out / "cases.csv", newline="") as handle:
        cases = list(csv.DictReader(handle))
    assert [(c["Image Index"], c["label"], c["boxes"]) for c in cases] == [
        ("00000001_000.png", "Infiltration", "2"),
        ("00000002_000.png", "Mass", "1"),
    ]
    pointing = np.mean([int(c["pointing"]) for c in cases])
    assert scores["overall"]["metrics"]["pointing"]["value"] == pointing
    mean_iou = np.mean([float(c["mask_iou"]) for c in cases])
    assert scores["overall"]["metrics"]["mean_iou"]["value"] == pytest.approx(mean_iou, abs=1e-6)
    with open(out / "localization.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3 * (5 + 5 + 7 + 7 + 2)  # per label: accuracy and AFP at 5 IoBB and 7 IoU, pointing, mIoU
    assert sorted(p.name for p in (out / "pictures").iterdir()) == [
        "00000001_000-Infiltration.png",
        "00000002_000-Mass.png",
    ]
    assert (out / "contact-sheet.png").is_file()


def test_localize_refuses_unknown_options_before_reading(tmp_path: Path, checkpoint64: Path) -> None:
    args = ["localize", "--checkpoint", str(checkpoint64), "--boxes", str(tmp_path / "none.csv")]
    assert main([*args, "--images", str(tmp_path / "absent"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(
    not (SHARED_DATA / "nih-labels" / "BBox_List_2017.csv.gz").is_file(), reason="needs ../shared/data (NIH boxes)"
)
def test_localize_on_the_shared_box_images(tmp_path: Path, checkpoint64: Path) -> None:
    boxes = SHARED_DATA / "nih-labels" / "BBox_List_2017.csv.gz"
    images = SHARED_DATA / "nih-sample" / "images"
    args = ["localize", "--checkpoint", str(checkpoint64), "--images", str(images), "--boxes", str(boxes)]
    assert main([*args, "--out", str(tmp_path), "--bootstrap", "0", "--no-pictures", "--device", "cpu"]) == 0
    document = json.loads((tmp_path / "localization.json").read_text())
    # 880 box images in the file, 7 of them in the 500-image sample; every boxed label is one of NIH's 14
    assert document["images"] == {"scored": 7, "not_found": 873, "unreadable": 0}
    assert document["labels_lacking"] == []
    assert document["scores"]["overall"]["boxes"] == 7


def test_randomised_head_maps_are_far_from_a_trained_models_maps(tmp_path: Path) -> None:
    images, _ = make_square_dataset(tmp_path, 4, side=64)
    labels = ("Effusion",)
    inputs = torch.stack([eval_tensor(SPEC64, load_gray(p)) for p in sorted(images.glob("*.png"))])
    targets = torch.tensor([[1.0], [0.0]] * 2)
    torch.manual_seed(0)
    model = build_network("none", num_classes=1).eval()
    with torch.no_grad():
        features = model.forward_features(inputs)
    optimiser = torch.optim.Adam(model.classifier.parameters(), lr=1e-2)
    for _ in range(200):  # the head trained on the (fixed) features: a tiny trained model
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.forward_head(features), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(loss.detach()) < 0.05
    with torch.no_grad():
        spans = cam_spans(gradcam_maps(features, model.classifier.weight))[:, 0]
    not_flat = int((spans >= FLAT_SPAN).sum())  # negatives' maps can be all zero after the ReLU: left out
    assert not_flat >= 2
    result = sanity_check(model, [(x, 0) for x in inputs], labels, torch.device("cpu"), seed=0, stages=("head",))
    assert set(result) == {"head"}
    head = result["head"]["Effusion"]
    assert head["maps"] == not_flat
    assert head["spearman"] < 0.5 and head["ssim"] < 0.5
    # and the measure can see similarity: the model against a copy randomised nowhere else than its head, with
    # the trained head put back, gives the trained maps again
    same = randomised(model, "head", 0)
    same.classifier.load_state_dict(model.classifier.state_dict())
    assert torch.equal(same(inputs), model(inputs))
