"""``chexnet predict`` on real-world folders: bad files named with their reason, DICOM found by content."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from chexnet_cli import main
from models.labels import NIH_LABELS
from tests.models.imaging.test_decoder import png_claiming_size
from tests.models.imaging.test_dicom import make_dicom

TRUNCATED = "The PNG file is truncated: it ends before its IEND chunk."


def xray_pixels(seed: int = 0) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (72, 80))
    pixels[0, 0], pixels[0, 1] = 0, 255  # full range: a DICOM without VOI data is min-max scaled to the same
    return pixels


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8), "L").save(buffer, "PNG")
    return buffer.getvalue()


def read_csv(path: Path) -> tuple[list[str], dict[str, list[float]]]:
    rows = list(csv.reader(path.open()))
    return rows[0], {row[1]: [float(v) for v in row[2:]] for row in rows[1:]}


def test_bad_files_are_named_and_the_rest_predicted(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    pixels = xray_pixels()
    good = png_bytes(pixels)
    (folder / "a-good.png").write_bytes(good)
    (folder / "b-truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "c-bomb.png").write_bytes(png_claiming_size(14_000, 14_000))  # 196 MP in a few hundred bytes
    (folder / "IM000001").write_bytes(make_dicom(pixels, bits_stored=8))  # DICOM with no suffix
    (folder / "d-scan.dcm").write_bytes(make_dicom(pixels, bits_stored=8))
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "preds.csv"

    code = main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), str(folder)])

    assert code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"chexnet predict: cannot read {folder / 'b-truncated.png'}: {TRUNCATED}" in err.splitlines()
    assert "Traceback" not in err
    assert (
        f"chexnet predict: cannot read {folder / 'c-bomb.png'}: The image has too many pixels "
        "(at most 40000000 are accepted)." in err.splitlines()
    )
    assert "chexnet predict: 2 of 5 files could not be read" in err
    assert "passed over 1 folder entries that are not PNG, JPEG or DICOM files" in err
    header, rows = read_csv(out)
    assert header == ["Image Index", "path", *NIH_LABELS]
    assert list(rows) == [str(folder / n) for n in ("IM000001", "a-good.png", "d-scan.dcm")]
    np.testing.assert_allclose(rows[str(folder / "IM000001")], rows[str(folder / "a-good.png")], atol=1e-4)
    np.testing.assert_allclose(rows[str(folder / "d-scan.dcm")], rows[str(folder / "a-good.png")], atol=1e-4)


def test_same_file_name_in_two_folders_is_told_apart_by_path(tmp_path: Path, tiny_checkpoint: Path) -> None:
    for index, name in enumerate(("left", "right")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "00000001_000.png").write_bytes(png_bytes(xray_pixels(index)))
    out = tmp_path / "preds.csv"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), str(tmp_path / "left")]
    assert main([*args, str(tmp_path / "right")]) == 0
    rows = list(csv.reader(out.open()))[1:]
    assert [row[0] for row in rows] == ["00000001_000.png", "00000001_000.png"]
    assert [row[1] for row in rows] == [
        str(tmp_path / "left" / "00000001_000.png"),
        str(tmp_path / "right" / "00000001_000.png"),
    ]
    assert rows[0][2:] != rows[1][2:]


def test_a_named_file_that_is_not_an_image(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    (tmp_path / "x.png").write_bytes(png_bytes(xray_pixels()))
    code = main(["predict", "--checkpoint", str(tiny_checkpoint), str(notes), str(tmp_path / "x.png")])
    assert code == 1
    captured = capsys.readouterr()
    assert (
        f"chexnet predict: cannot read {notes}: Unsupported file format: only PNG, JPEG and DICOM images are read."
        in (captured.err)
    )
    assert str(tmp_path / "x.png") in captured.out  # the good file is still predicted (CSV on stdout)


def test_missing_empty_and_special_files_are_named_and_subfolders_counted(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = tmp_path / "study"
    (study / "series").mkdir(parents=True)
    (study / "a.png").write_bytes(png_bytes(xray_pixels()))
    (study / "empty.png").write_bytes(b"")
    (study / "series" / "IM0001").write_bytes(make_dicom(xray_pixels(), bits_stored=8))
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    missing = tmp_path / "missing.png"
    out = tmp_path / "preds.csv"
    code = main(
        ["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), str(study), str(fifo), str(missing)]
    )
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert f"chexnet predict: cannot read {study / 'empty.png'}: The file is empty." in err
    assert f"chexnet predict: cannot read {fifo}: This is not a regular file (a pipe, socket or device)." in err
    assert f"chexnet predict: cannot read {missing}: The file does not exist." in err
    assert "chexnet predict: did not search 1 subfolders (use --recursive)" in err
    assert list(read_csv(out)[1]) == [str(study / "a.png")]

    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--recursive", str(study)]) == 1
    assert list(read_csv(out)[1]) == [str(study / "a.png"), str(study / "series" / "IM0001")]


def test_recursive_search_survives_link_loops_and_unlistable_folders(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = tmp_path / "study"
    (study / "sub").mkdir(parents=True)
    (study / "locked").mkdir()
    (study / "a.png").write_bytes(png_bytes(xray_pixels()))
    (study / "sub" / "b.png").write_bytes(png_bytes(xray_pixels(1)))
    (study / "sub" / "up").symlink_to("..")  # a loop back to study/
    (study / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    os.mkfifo(study / "pipe.png")
    real_iterdir = Path.iterdir

    def iterdir(self: Path) -> object:
        if self.name == "locked":  # as root, chmod cannot make a folder unlistable
            raise PermissionError(13, "Permission denied")
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    out = tmp_path / "preds.csv"
    code = main(["predict", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--recursive", str(study)])
    assert code == 1
    err = capsys.readouterr().err.splitlines()
    assert f"chexnet predict: cannot read {study / 'locked'}: The folder cannot be listed: permission denied." in err
    assert "chexnet predict: passed over 2 folder entries that are not PNG, JPEG or DICOM files" in err
    assert list(read_csv(out)[1]) == [str(study / "a.png"), str(study / "sub" / "b.png")]  # each once
