"""NIH's radiologist boxes: ``BBox_List_2017.csv`` (or ``.csv.gz``, or a folder of such files) -> ``BoxRecord``s.

The file's header is ``Image Index,Finding Label,Bbox [x,y,w,h],,,`` (three empty trailing columns): x, y, w, h
in the 1024 x 1024 pixel space of the original NIH images. Labels are read as NIH spells them (``Infiltrate``);
``align_box_labels`` maps them to a model's labels through ``models.labels.label_key``.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.labels import label_key

NIH_BOX_SPACE = 1024  # NIH's boxes are in the original images' 1024 x 1024 pixels
_HEADER = ("image index", "finding label")
_PATIENT = re.compile(r"^(\d{8})_\d{3}\.")


class BoxFileError(ValueError):
    """A box file cannot be read or is not in NIH's format; the message names the line, not the data."""


@dataclass(frozen=True)
class BoxRecord:
    """One radiologist box: image name, the label as written, and x, y, w, h in NIH's 1024-pixel space."""

    image: str
    label: str
    x: float
    y: float
    w: float
    h: float

    def scaled(self, height: int, width: int, space: int = NIH_BOX_SPACE) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) in the pixels of an image of (height, width) that was resized from ``space`` square."""
        sx, sy = width / space, height / space
        return (self.x * sx, self.y * sy, (self.x + self.w) * sx, (self.y + self.h) * sy)


def patient_of(image: str) -> str:
    """NIH's patient id from an image name (``00013118_008.png`` -> ``00013118``); else the name itself."""
    match = _PATIENT.match(image)
    return match.group(1) if match else image


def _text(path: Path) -> str:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8-sig")


def _parse(text: str, source: str) -> list[BoxRecord]:
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or tuple(h.strip().lower() for h in header[:2]) != _HEADER:
        raise BoxFileError(f"{source} is not an NIH box file (its header must start 'Image Index,Finding Label')")
    records = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError as exc:
            raise BoxFileError(f"{source} line {line}: x, y, w, h must be four numbers") from exc
        if w <= 0 or h <= 0 or not row[0].strip() or not row[1].strip():
            raise BoxFileError(f"{source} line {line}: a box needs an image, a label and positive w and h")
        records.append(BoxRecord(row[0].strip(), row[1].strip(), x, y, w, h))
    return records


def read_boxes(path: Path) -> list[BoxRecord]:
    """Every box of an NIH box file (plain or gzip), or of every ``*.csv``/``*.csv.gz`` file of a folder.

    Raises :class:`BoxFileError` for a missing or malformed file, or a folder without box files.
    """
    files = sorted([*path.glob("*.csv"), *path.glob("*.csv.gz")]) if path.is_dir() else [path]
    if not files:
        raise BoxFileError(f"no .csv or .csv.gz box files in {path}")
    records: list[BoxRecord] = []
    for file in files:
        try:
            text = _text(file)
        except (OSError, UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
            raise BoxFileError(f"cannot read box file {file.name} ({type(exc).__name__})") from exc
        records.extend(_parse(text, file.name))
    return records


def align_box_labels(records: Iterable[BoxRecord], labels: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """``({box label: model label}, [box labels the model lacks])`` by ``label_key`` (``Infiltrate`` ->
    ``Infiltration``); the lacking labels sorted."""
    by_key = {label_key(name): name for name in labels}
    mapping: dict[str, str] = {}
    lacking: set[str] = set()
    for record in records:
        target = by_key.get(label_key(record.label))
        if target is None:
            lacking.add(record.label)
        else:
            mapping[record.label] = target
    return mapping, sorted(lacking)
