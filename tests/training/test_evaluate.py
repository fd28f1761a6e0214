"""``chexnet evaluate``: scoring a predictions CSV, and running a (tiny, random) checkpoint through preprocessing."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.labels import NIH_LABELS
from models.network import build_network
from models.preprocessing import PreprocessSpec, eval_tensor, image_to_gray
from training.data.dataset import UnreadableImageError
from training.data.image_check import UnreadableImagesError
from training.data.label_tables import LabelTableError
from training.evaluate import EvaluateOptions, run_evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Six images of six patients: Hernia is never positive (undefined), Fibrosis always positive (undefined).
LABELS = [
    ("00000001_000.png", "Atelectasis|Effusion|Fibrosis", "1"),
    ("00000002_000.png", "Fibrosis", "2"),
    ("00000003_000.png", "Atelectasis|Cardiomegaly|Fibrosis", "3"),
    ("00000004_000.png", "Fibrosis|Infiltration|Mass|Nodule|Pneumonia", "4"),
    ("00000005_000.png", "Fibrosis|Pneumothorax|Consolidation|Edema|Emphysema|Pleural_Thickening", "5"),
    ("00000006_000.png", "Fibrosis|Effusion|Cardiomegaly|Mass|Edema", "6"),
]


def write_labels(tmp_path: Path, rows: list[tuple[str, str, str]] = LABELS) -> Path:
    path = tmp_path / "labels.csv"
    body = "".join(f"{image},{labels},0,{patient},40,F,PA\n" for image, labels, patient in rows)
    path.write_text(
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n" + body
    )
    return path


def truth() -> np.ndarray:
    targets = np.zeros((len(LABELS), 14))
    for i, (_, labels, _) in enumerate(LABELS):
        for label in labels.split("|"):
            targets[i, NIH_LABELS.index(label)] = 1.0
    return targets


def options(tmp_path: Path, **changes: object) -> EvaluateOptions:
    base = EvaluateOptions(
        checkpoint=None,
        predictions=None,
        images=None,
        labels=tmp_path / "labels.csv",
        split_list=None,
        tta="none",
        bootstrap=0,
        out=tmp_path / "out",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def write_predictions(tmp_path: Path, probs: np.ndarray, prefix: str = "", names: list[str] | None = None) -> Path:
    names = names if names is not None else [row[0] for row in LABELS]
    frame = pd.DataFrame(probs, columns=[prefix + p for p in NIH_LABELS])
    frame.insert(0, "Image Index", names)
    path = tmp_path / "preds.csv"
    frame.iloc[::-1].to_csv(path, index=False)  # row order differs from the labels on purpose
    return path


@pytest.mark.parametrize("prefix", ["", "prob_"])
def test_perfect_predictions(tmp_path: Path, prefix: str, capsys: pytest.CaptureFixture[str]) -> None:
    write_labels(tmp_path)
    targets = truth()
    probs = 0.1 + 0.8 * targets
    preds = write_predictions(tmp_path, probs, prefix)
    assert run_evaluate(options(tmp_path, predictions=preds, bootstrap=50)) == 0

    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected_auroc: dict[str, float | None] = {name: 1.0 for name in NIH_LABELS}
    expected_auroc["Hernia"] = None
    expected_auroc["Fibrosis"] = None
    assert document["auroc"] == expected_auroc
    assert document["mean_auroc"] == 1.0
    assert document["positives"] == {name: int(targets[:, k].sum()) for k, name in enumerate(NIH_LABELS)}
    assert document["n"] == 6
    assert document["undefined"] == {
        "Fibrosis": "only one label value among the known rows (6 positives of 6)",
        "Hernia": "only one label value among the known rows (0 positives of 6)",
    }
    assert document["bootstrap"] == 50
    assert document["tta"] == "none"
    assert document["source"] == "predictions"
    assert set(document) == {
        "auroc", "mean_auroc", "ci95", "average_precision", "mean_average_precision", "positives", "n", "undefined",
        "unreliable", "min_positives", "operating_points", "stored_operating_points", "bootstrap", "tta", "source",
        "labels", "not_scored", "per", "mean_auroc_competition",
    }  # fmt: skip
    assert document["labels"] == list(NIH_LABELS) and document["per"] == "image"
    assert document["not_scored"] == {"model_only": [], "table_only": []}
    # the five CheXpert competition labels are all NIH labels too (Pleural Effusion = Effusion by label key)
    assert document["mean_auroc_competition"] == 1.0
    assert document["average_precision"] == expected_auroc  # perfect ranking: PR-AUC 1 where defined
    assert document["mean_average_precision"] == 1.0
    assert document["unreliable"] == list(NIH_LABELS)  # 6 images: no class has 10 positives
    assert document["min_positives"] == 10
    assert document["stored_operating_points"] is None
    points = document["operating_points"]
    assert points["default"] == "youden" and list(points["points"]) == ["youden", "spec90"]
    assert points["source"]["images"] == 6 and points["source"]["data"] == "labels.csv"
    assert points["temperature"] is None
    # positives score 0.9, negatives 0.1: both points cut at 0.9 and get every image right
    assert points["points"]["youden"]["thresholds"]["Atelectasis"] == {
        "threshold": 0.9, "sensitivity": 1.0, "specificity": 1.0, "ppv": 1.0, "npv": 1.0
    }  # fmt: skip
    assert points["points"]["spec90"]["thresholds"]["Atelectasis"]["threshold"] == 0.9
    # Fibrosis (all positive): cut at the lowest score, no specificity; Hernia (none): just above the highest
    assert points["points"]["youden"]["thresholds"]["Fibrosis"] == {"threshold": 0.9, "sensitivity": 1.0, "ppv": 1.0}
    assert points["points"]["youden"]["thresholds"]["Hernia"] == {
        "threshold": float(np.nextafter(0.1, 1.0)), "specificity": 1.0, "npv": 1.0
    }  # fmt: skip
    assert document["ci95"]["Hernia"] is None
    assert document["ci95"]["Atelectasis"] == [1.0, 1.0]

    written = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(written.columns) == ["Image Index", *NIH_LABELS]
    assert written["Image Index"].tolist() == [row[0] for row in LABELS]
    np.testing.assert_allclose(written[list(NIH_LABELS)].to_numpy(), probs, atol=1e-6)
    assert (tmp_path / "out" / "roc.png").read_bytes()[:8] == PNG_MAGIC

    printed = capsys.readouterr().out
    assert "Hernia" in printed
    assert "undefined (only one label value among the known rows (0 positives of 6))" in printed
    assert "mean AUROC over 12 of 14 defined classes: 1.000" in printed
    assert "mean PR-AUC over the same classes: 1.000" in printed
    assert "Atelectasis          1.000  [1.000, 1.000]    1.000          2       6  *" in printed
    assert "* fewer than 10 positives: its thresholds and figures are unreliable" in printed
    assert "Atelectasis *         youden     0.9000  1.000  1.000  1.000  1.000" in printed
    assert "Hernia *              youden     0.1000      -  1.000      -  1.000" in printed


def test_known_imperfect_auroc_and_split_list(tmp_path: Path) -> None:
    write_labels(tmp_path)
    probs = np.full((6, 14), 0.5)
    # Atelectasis positives: images 1, 3. Scores rank image 2 (negative) above image 3 (positive).
    probs[:, 0] = [0.9, 0.8, 0.7, 0.1, 0.2, 0.3]
    preds = write_predictions(tmp_path, probs)
    split = tmp_path / "test_list.txt"
    split.write_text("00000001_000.png\n00000002_000.png\n00000003_000.png\n00000004_000.png\n")
    run_evaluate(options(tmp_path, predictions=preds, split_list=split))
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert document["n"] == 4
    # positives {1, 3} vs negatives {2, 4}: pairs won (1>2, 1>4, 3>4) = 3 of 4
    assert document["auroc"]["Atelectasis"] == 0.75
    assert document["auroc"]["Effusion"] == 0.5  # all scores tied
    assert document["ci95"]["Atelectasis"] is None  # bootstrap 0
    assert len(pd.read_csv(tmp_path / "out" / "predictions.csv")) == 4


def test_labels_covering_more_images_than_the_predictions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The usual case: test-set predictions scored against a label table of every image."""
    write_labels(tmp_path)
    probs = 0.1 + 0.8 * truth()
    preds = write_predictions(tmp_path, probs[:4], names=[row[0] for row in LABELS[:4]])
    assert run_evaluate(options(tmp_path, predictions=preds)) == 0
    assert "4 of 6 labelled images have predictions" in capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert document["n"] == 4
    assert document["positives"]["Atelectasis"] == 2
    written = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert written["Image Index"].tolist() == [row[0] for row in LABELS[:4]]


def test_prediction_errors(tmp_path: Path) -> None:
    write_labels(tmp_path)
    probs = 0.1 + 0.8 * truth()
    names = [row[0] for row in LABELS[:5]] + ["99999999_000.png"]
    preds = write_predictions(tmp_path, probs, names=names)
    with pytest.raises(LabelTableError, match=r"name 1 image\(s\) that have no label: 99999999_000.png"):
        run_evaluate(options(tmp_path, predictions=preds))
    names = [row[0] for row in LABELS[:5]] + [LABELS[0][0]]
    preds = write_predictions(tmp_path, probs, names=names)
    with pytest.raises(
        LabelTableError, match=r"list images more than once \(Image Index must identify each image\): 00000001_000.png"
    ):
        run_evaluate(options(tmp_path, predictions=preds))
    split = tmp_path / "split.txt"
    split.write_text("00000006_000.png\n")
    preds = write_predictions(tmp_path, probs[:2], names=[row[0] for row in LABELS[:2]])
    with pytest.raises(LabelTableError, match=r"cover none of the 1 labelled images"):
        run_evaluate(options(tmp_path, predictions=preds, split_list=split))
    preds = write_predictions(tmp_path, probs)
    frame = pd.read_csv(preds).drop(columns=["Edema", "Hernia"])
    frame.to_csv(preds, index=False)
    with pytest.raises(LabelTableError, match=r"lacks a column for \['Edema', 'Hernia'\]"):
        run_evaluate(options(tmp_path, predictions=preds))


def test_option_validation(tmp_path: Path) -> None:
    write_labels(tmp_path)
    with pytest.raises(ValueError, match="exactly one of"):
        run_evaluate(options(tmp_path))
    with pytest.raises(ValueError, match="exactly one of"):
        run_evaluate(options(tmp_path, checkpoint=tmp_path / "a.pt", predictions=tmp_path / "p.csv"))
    with pytest.raises(ValueError, match="--images"):
        run_evaluate(options(tmp_path, checkpoint=tmp_path / "a.pt"))
    with pytest.raises(ValueError, match="--tta"):
        run_evaluate(options(tmp_path, predictions=tmp_path / "p.csv", tta="fivecrop"))
    with pytest.raises(ValueError, match="--bootstrap"):
        run_evaluate(options(tmp_path, predictions=tmp_path / "p.csv", bootstrap=-1))
    with pytest.raises(LabelTableError, match="label table not found"):
        run_evaluate(options(tmp_path, predictions=tmp_path / "p.csv", labels=tmp_path / "nope.csv"))
    assert not (tmp_path / "out").exists()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random-weight checkpoint (32-px crops) and six generated 64x64 PNGs with NIH labels."""
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save_checkpoint(
        Checkpoint(
            state_dict=build_network("none", len(NIH_LABELS)).state_dict(),
            labels=NIH_LABELS,
            spec=PreprocessSpec(image_size=32, resize=36),
        ),
        root / "model.pt",
    )
    images = root / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i, (name, _, _) in enumerate(LABELS):
        pixels = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
        pixels[: 5 * (i + 1)] //= 2  # a band that differs between images
        Image.fromarray(pixels, mode="L").save(images / name)
    write_labels(root)
    return root, images


def test_checkpoint_predictions_match_direct_computation(tiny_setup: tuple[Path, Path]) -> None:
    root, images = tiny_setup
    out_none, out_ten = root / "out-none", root / "out-tencrop"
    base = options(root, checkpoint=root / "model.pt", images=images, batch_size=3, bootstrap=20, device="cpu")
    assert run_evaluate(replace(base, out=out_none)) == 0
    assert run_evaluate(replace(base, out=out_ten, tta="tencrop")) == 0

    checkpoint = load_checkpoint(root / "model.pt")
    model = checkpoint.build_model()
    with torch.no_grad():
        expected = np.stack(
            [
                torch.sigmoid(model(eval_tensor(checkpoint.spec, image_to_gray(Image.open(images / name)))[None]))[
                    0
                ].numpy()
                for name, _, _ in LABELS
            ]
        )
    got_none = pd.read_csv(out_none / "predictions.csv")
    assert got_none["Image Index"].tolist() == [row[0] for row in LABELS]
    np.testing.assert_allclose(got_none[list(NIH_LABELS)].to_numpy(), expected, atol=1e-6)

    got_ten = pd.read_csv(out_ten / "predictions.csv")
    assert got_ten.shape == got_none.shape
    assert np.abs(got_ten[list(NIH_LABELS)].to_numpy() - expected).max() > 1e-5

    document = json.loads((out_ten / "metrics.json").read_text())
    assert document["source"] == "checkpoint"
    assert document["tta"] == "tencrop"
    assert document["n"] == 6
    assert document["auroc"]["Hernia"] is None
    assert (out_ten / "roc.png").read_bytes()[:8] == PNG_MAGIC


def test_checkpoint_missing_images(tiny_setup: tuple[Path, Path], tmp_path: Path) -> None:
    root, images = tiny_setup
    write_labels(tmp_path, [*LABELS, ("00000099_000.png", "Mass", "99")])
    with pytest.raises(LabelTableError, match=r"1 of 7 labelled images are missing .*00000099_000.png"):
        run_evaluate(options(tmp_path, checkpoint=root / "model.pt", images=images, device="cpu"))


def test_unreadable_images_are_named_skipped_or_stop_in_one_line(tiny_setup: tuple[Path, Path], tmp_path: Path) -> None:
    root, originals = tiny_setup
    images = tmp_path / "images"
    shutil.copytree(originals, images)
    write_labels(tmp_path)
    truncated = images / LABELS[1][0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    base = options(tmp_path, checkpoint=root / "model.pt", images=images, device="cpu")
    with pytest.raises(
        UnreadableImagesError, match=rf"1 of 6 images cannot be read \(.*\): {re.escape(str(truncated))}: "
    ):
        run_evaluate(base)
    assert run_evaluate(replace(base, skip_unreadable=True)) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n"] == 5
    assert pd.read_csv(tmp_path / "out" / "unreadable.csv")["path"].tolist() == [str(truncated)]

    shutil.copy(originals / LABELS[1][0], truncated)
    scrambled = images / LABELS[2][0]
    data = bytearray(scrambled.read_bytes())
    start = data.index(b"IDAT") + 6
    data[start : start + 30] = bytes(range(30))  # header and IEND intact: passes the check, fails to decode
    scrambled.write_bytes(bytes(data))
    with pytest.raises(UnreadableImageError) as info:
        run_evaluate(replace(base, workers=1))
    assert str(info.value) == (
        f"{scrambled}: The image could not be decoded; the file may be empty, corrupt or truncated."
    )
    assert run_evaluate(replace(base, workers=1, skip_unreadable=True)) == 0  # left out, listed, the rest scored
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["n"] == 5
    assert pd.read_csv(tmp_path / "out" / "unreadable.csv")["path"].tolist() == [str(scrambled)]
    assert scrambled.name not in pd.read_csv(tmp_path / "out" / "predictions.csv")["Image Index"].tolist()
