"""``chexnet calibrate``: operating points (and a temperature) written into a new checkpoint, and reproduced by
``chexnet evaluate`` of that checkpoint on the same images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from chexnet_cli import main
from models.checkpoint import load_checkpoint
from models.files import file_sha256
from tests.training.synthetic import make_square_dataset
from training.calibrate import CalibrateOptions, reliability_path, run_calibrate
from training.evaluate import EvaluateOptions, run_evaluate

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_square_dataset(tmp_path_factory.mktemp("squares"), 16)


def test_calibrate_writes_points_that_evaluate_reproduces(
    tiny_checkpoint: Path, squares: tuple[Path, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    images, labels = squares
    before = file_sha256(tiny_checkpoint)
    out = tmp_path / "calibrated.pt"
    options = CalibrateOptions(
        checkpoint=tiny_checkpoint, images=images, labels=labels, out=out, temperature=True, device="cpu"
    )
    assert run_calibrate(options) == 0
    assert file_sha256(tiny_checkpoint) == before  # the source checkpoint is left as it was
    assert reliability_path(out).read_bytes()[:8] == PNG_MAGIC

    original, calibrated = load_checkpoint(tiny_checkpoint), load_checkpoint(out)
    assert all(torch.equal(v, calibrated.state_dict[k]) for k, v in original.state_dict.items())
    assert (calibrated.metrics, calibrated.spec) == (original.metrics, original.spec)
    points = calibrated.operating_points
    assert points is not None and points.temperature is not None
    assert list(points.points) == ["youden", "spec90"] and points.default == "youden"
    assert points.source["data"] == "labels.csv" and points.source["images"] == 16
    assert points.source["positives"]["Effusion"] == 8 and points.source["checkpoint_sha256"] == before
    record = points.source["calibration"]
    assert record["nll_after"] <= record["nll_before"]  # the fitted T can only lower the NLL it minimises
    assert len(points.unreliable) == 14  # 8 positives at most

    evaluated = tmp_path / "eval"
    evaluation = EvaluateOptions(
        checkpoint=out, predictions=None, images=images, labels=labels, split_list=None, bootstrap=0, out=evaluated,
        device="cpu",
    )  # fmt: skip
    assert run_evaluate(evaluation) == 0
    document = json.loads((evaluated / "metrics.json").read_text())
    # evaluate applies the stored temperature, then chooses on the same images: the very same thresholds
    assert document["operating_points"]["temperature"] == points.temperature
    assert document["operating_points"]["points"] == points.to_dict()["points"]
    assert document["stored_operating_points"] == {
        name: point["thresholds"] for name, point in points.to_dict()["points"].items()
    }


def test_calibrate_without_temperature_and_with_another_specificity(
    tiny_checkpoint: Path, squares: tuple[Path, Path], tmp_path: Path, one_torch_thread: None
) -> None:
    images, labels = squares
    out = tmp_path / "c.pt"
    options = CalibrateOptions(
        checkpoint=tiny_checkpoint, images=images, labels=labels, out=out, specificity=0.95, default="spec95",
        data_description="sixteen squares", device="cpu",
    )  # fmt: skip
    assert run_calibrate(options) == 0
    points = load_checkpoint(out).operating_points
    assert points is not None
    assert (list(points.points), points.default, points.temperature) == (["youden", "spec95"], "spec95", None)
    assert points.source["data"] == "sixteen squares" and "calibration" not in points.source
    assert not reliability_path(out).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--default", "spec95"], "--default must be one of youden, spec90 (the points written), got 'spec95'"),
        (["--specificity", "1.2"], "--specificity: specificity must lie strictly between 0 and 1, got 1.2"),
        (["--out", "SAME"], "--out must name a new file, not the checkpoint being calibrated"),
        (["--out", "EXISTING"], "--out EXISTING exists: choose another file, or add --overwrite"),
    ],
)
def test_bad_options_are_refused_before_any_image_is_read(
    tiny_checkpoint: Path, tmp_path: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("Image Index,Finding Labels,Patient ID\n")  # no images at all: nothing may be read
    (tmp_path / "images").mkdir()
    existing = tmp_path / "existing.pt"
    existing.write_bytes(b"a checkpoint someone pinned")
    args = [str(tiny_checkpoint) if a == "SAME" else str(existing) if a == "EXISTING" else a for a in args]
    message = message.replace("EXISTING", str(existing))
    out = [] if "--out" in args else ["--out", str(tmp_path / "new.pt")]
    code = main(
        ["calibrate", "--checkpoint", str(tiny_checkpoint), "--images", str(tmp_path / "images"), "--labels",
         str(labels), *out, *args]
    )  # fmt: skip
    assert code == 2  # usage (README, exit status)
    assert capsys.readouterr().err == f"chexnet calibrate: {message}\n"
    assert existing.read_bytes() == b"a checkpoint someone pinned"
