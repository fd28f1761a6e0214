"""``chexnet predict`` on folders as archives hold them: files named like images that hold none, DICOM files
without pixel data (DICOMDIR, SR), names that are not UTF-8; and ``--operating-point``'s findings columns."""

from __future__ import annotations

import csv
import os
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from chexnet_cli import main
from models.checkpoint import load_checkpoint, save_checkpoint
from models.imaging.decoder import decode_image
from models.imaging.errors import InputError
from models.labels import NIH_LABELS
from models.operating_points import ClassThreshold, OperatingPoint, OperatingPoints, apply_temperature
from tests.models.imaging.test_dicom import make_dicom
from tests.training.test_predict import png_bytes, xray_pixels
from training.data.file_names import original_file_name

NOT_AN_IMAGE = "Unsupported file format: only PNG, JPEG and DICOM images are read."
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR (PS3.4 Annex I)
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def dicom_without_pixels(sop_class: str) -> bytes:
    """A Part-10 file of ``sop_class`` with no Pixel Data: the index or a document an archive holds."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = "SR" if sop_class == BASIC_TEXT_SR else "OT"
    ds.FileSetID = "ARCHIVE"
    buffer = BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def decoder_message(path: Path) -> str:
    """The shared decoder's reason for refusing ``path``."""
    with pytest.raises(InputError) as refused:
        decode_image(path)
    return refused.value.message


def read_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_a_file_named_like_an_image_that_holds_none_is_named_and_counted(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(xray_pixels()))
    (folder / "b.png").write_text("<html>Not found</html>")  # a download that saved an error page
    (folder / "c.DCM").write_bytes(b"\0" * 300)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "preds.csv"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), str(folder)]) == 1
    err = capsys.readouterr().err.splitlines()
    for name in ("b.png", "c.DCM"):
        reason = decoder_message(folder / name)
        assert reason.startswith(NOT_AN_IMAGE)
        assert f"chexnet predict: cannot read {folder / name}: {reason}" in err
    assert "chexnet predict: passed over 1 folder entries that are not PNG, JPEG or DICOM files" in err
    assert "chexnet predict: 2 of 3 files could not be read" in err
    assert [row[1] for row in read_rows(out)[1:]] == [str(folder / "a.png")]


def test_dicom_files_without_pixel_data_are_passed_over_in_a_folder_but_refused_when_named(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "cd"
    (export / "IMAGES").mkdir(parents=True)
    (export / "DICOMDIR").write_bytes(dicom_without_pixels(MEDIA_STORAGE_DIRECTORY))
    (export / "IMAGES" / "IM0001").write_bytes(make_dicom(xray_pixels(), bits_stored=8))
    (export / "IMAGES" / "SR0001").write_bytes(dicom_without_pixels(BASIC_TEXT_SR))
    out = tmp_path / "preds.csv"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]

    assert main([*args, "--recursive", str(export)]) == 0  # an archive folder is not a failed run
    err = capsys.readouterr().err.splitlines()
    assert (
        "chexnet predict: passed over 2 folder entries that are not PNG, JPEG or DICOM files (2 of them DICOM "
        "files without pixel data: DICOMDIR, reports, presentation states)" in err
    )
    assert [row[1] for row in read_rows(out)[1:]] == [str(export / "IMAGES" / "IM0001")]

    assert main([*args, str(export / "DICOMDIR"), str(export / "IMAGES" / "IM0001")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert f"chexnet predict: cannot read {export / 'DICOMDIR'}: The DICOM file contains no image." in err
    assert "chexnet predict: 1 of 2 files could not be read" in err


def test_names_that_are_not_utf8_are_written_losslessly(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    latin1 = os.fsdecode(b"r\xf6ntgen.png")  # written on a Latin-1 system: the byte 0xF6 alone is not UTF-8
    (folder / latin1).write_bytes(png_bytes(xray_pixels()))
    (folder / "back\\slash.png").write_bytes(png_bytes(xray_pixels(1)))
    (folder / os.fsdecode(b"zz\xff.png")).write_text("not an image")
    out = tmp_path / "preds.csv"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), str(folder)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    reason = decoder_message(folder / os.fsdecode(b"zz\xff.png"))
    assert f"chexnet predict: cannot read {folder}/zz\\xff.png: {reason}" in err.splitlines()
    rows = read_rows(out)[1:]
    assert [row[0] for row in rows] == ["back\\\\slash.png", "r\\xf6ntgen.png"]
    assert [os.fsencode(original_file_name(row[1])) for row in rows] == [
        os.fsencode(folder / "back\\slash.png"),
        os.fsencode(folder) + b"/r\xf6ntgen.png",
    ]


def test_an_operating_point_adds_one_findings_column_per_label(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [tmp_path / f"{i}.png" for i in range(3)]
    for seed, path in enumerate(images):
        path.write_bytes(png_bytes(xray_pixels(seed)))
    plain = tmp_path / "plain.csv"
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(plain), *map(str, images)]) == 0
    probs = np.array([[float(v) for v in row[2:]] for row in read_rows(plain)[1:]])
    # per class, halfway between the lowest and the middle image (far from the 6-decimal rounding): 0 and 1 occur
    ordered = np.sort(apply_temperature(probs, 0.5), axis=0)
    thresholds = (ordered[0] + ordered[1]) / 2
    checkpoint = load_checkpoint(tiny_checkpoint)
    point = OperatingPoint("test", {n: ClassThreshold(float(t)) for n, t in zip(NIH_LABELS, thresholds, strict=True)})
    checkpoint.operating_points = OperatingPoints({"youden": point}, "youden", temperature=0.5)
    calibrated = save_checkpoint(checkpoint, tmp_path / "calibrated.pt")

    out = tmp_path / "findings.csv"
    args = ["predict", "--checkpoint", str(calibrated), "--out", str(out)]
    assert main([*args, "--operating-point", "youden", *map(str, images)]) == 0
    rows = read_rows(out)
    assert rows[0] == ["Image Index", "path", *NIH_LABELS, *(f"finding_{name}" for name in NIH_LABELS)]
    findings = np.array([[int(v) for v in row[2 + len(NIH_LABELS) :]] for row in rows[1:]])
    expected = (apply_temperature(np.array([[float(v) for v in r[2 : 2 + len(NIH_LABELS)]] for r in rows[1:]]), 0.5)
                >= thresholds).astype(int)  # fmt: skip
    assert findings.tolist() == expected.tolist()
    assert set(findings.ravel().tolist()) == {0, 1}
    capsys.readouterr()

    assert main([*args, "--operating-point", "spec95", *map(str, images)]) == 2
    assert capsys.readouterr().err == "chexnet predict: --operating-point spec95: this checkpoint has youden\n"
    plain_args = ["predict", "--checkpoint", str(tiny_checkpoint), "--operating-point", "youden", str(images[0])]
    assert main(plain_args) == 2
    assert capsys.readouterr().err == (
        "chexnet predict: --operating-point youden: this checkpoint has no operating points (chexnet calibrate "
        "writes them)\n"
    )


def test_an_out_in_a_missing_folder_is_refused_before_the_model_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(png_bytes(xray_pixels()))
    missing = tmp_path / "nowhere" / "preds.csv"
    assert main(["predict", "--checkpoint", str(tmp_path / "none.pt"), "--out", str(missing), str(image)]) == 2
    assert capsys.readouterr().err == (
        f"chexnet predict: --out {missing}: the folder {tmp_path / 'nowhere'} does not exist\n"
    )
