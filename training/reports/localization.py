"""What ``chexnet localize`` reports: the printed table beside Wang et al.'s row, localization.json, .csv, and
pictures (one per case, and a contact sheet of them all)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib import colormaps
from PIL import Image, ImageDraw

from models.files import write_bytes_atomically
from training.scoring.localization import Box, Case, point_in_boxes

# Wang et al., CVPR 2017 (arXiv:1705.02315), table 3: ChestX-ray14 ResNet-50 localization accuracy by T(IoBB).
WANG_RESNET50_IOBB: Mapping[str, Mapping[str, float]] = {
    "0.1": {"Atelectasis": 0.6222, "Cardiomegaly": 1.0, "Effusion": 0.7974, "Infiltration": 0.9106,
            "Mass": 0.5882, "Nodule": 0.1519, "Pneumonia": 0.8583, "Pneumothorax": 0.5204},
    "0.25": {"Atelectasis": 0.3944, "Cardiomegaly": 0.9863, "Effusion": 0.6339, "Infiltration": 0.7967,
             "Mass": 0.4588, "Nodule": 0.0506, "Pneumonia": 0.7083, "Pneumothorax": 0.3367},
    "0.5": {"Atelectasis": 0.1944, "Cardiomegaly": 0.9452, "Effusion": 0.4183, "Infiltration": 0.6504,
            "Mass": 0.3058, "Nodule": 0.0, "Pneumonia": 0.4833, "Pneumothorax": 0.2653},
    "0.75": {"Atelectasis": 0.0889, "Cardiomegaly": 0.8151, "Effusion": 0.2287, "Infiltration": 0.4390,
             "Mass": 0.1647, "Nodule": 0.0, "Pneumonia": 0.2917, "Pneumothorax": 0.1735},
}  # fmt: skip
ALPHA = 0.4
PICTURE_SIDE = 512
THUMB_SIDE = 192
TRUTH_COLOUR, DETECTED_COLOUR, PEAK_COLOUR = (0, 255, 0), (255, 255, 255), (255, 0, 255)


def _value(figures: Mapping[str, Any], name: str) -> tuple[float | None, list[float] | None]:
    entry = figures["metrics"][name]
    return entry["value"], entry["ci"]


def _fmt(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def format_table(scores: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The printed table: per label (then overall) boxes, accuracy at T(IoBB) = 0.1 with its CI beside Wang et
    al.'s ResNet-50, accuracy at T(IoU) = 0.1 and 0.5, AFP at T(IoBB) = 0.1, pointing, mean IoU, flat maps."""
    head = ["label", "boxes", "acc IoBB>0.1 [95% CI]", "Wang R-50", "acc IoU>0.1", "acc IoU>0.5", "AFP IoBB>0.1",
            "pointing [95% CI]", "mIoU", "flat"]  # fmt: skip
    rows = [head]
    for label, figures in scores.items():
        anchor = WANG_RESNET50_IOBB["0.1"].get(label)
        rows.append(
            [
                label,
                str(figures["boxes"]),
                _fmt(*_value(figures, "accuracy_iobb@0.1")),
                "-" if anchor is None else f"{anchor:.2f}",
                _fmt(_value(figures, "accuracy_iou@0.1")[0]),
                _fmt(_value(figures, "accuracy_iou@0.5")[0]),
                _fmt(_value(figures, "afp_iobb@0.1")[0]),
                _fmt(*_value(figures, "pointing")),
                _fmt(_value(figures, "mean_iou")[0]),
                str(figures["flat_maps"]),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """The whole result as indented JSON (atomically)."""
    write_bytes_atomically(path, (json.dumps(document, indent=2, sort_keys=False) + "\n").encode())


def write_csv(path: Path, scores: Mapping[str, Mapping[str, Any]]) -> None:
    """Long format: label, metric, threshold, value, ci_low, ci_high, boxes, cases (one row per figure)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "metric", "threshold", "value", "ci_low", "ci_high", "boxes", "cases"])
        for label, figures in scores.items():
            for name, entry in figures["metrics"].items():
                metric, _, threshold = name.partition("@")
                ci = entry["ci"] or ["", ""]
                value = "" if entry["value"] is None else f"{entry['value']:.6f}"
                bounds = [f"{v:.6f}" if v != "" else "" for v in ci]
                writer.writerow([label, metric, threshold, value, *bounds, figures["boxes"], figures["cases"]])


def write_cases_csv(path: Path, cases: Sequence[Case]) -> None:
    """One row per case: image, label, boxes, detected boxes, flat, pointing hit (0/1), mask IoU."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Image Index", "label", "boxes", "detected", "flat", "pointing", "mask_iou"])
        for c in cases:
            hit = int(point_in_boxes(c.peak, c.truths))
            writer.writerow([c.image, c.label, len(c.truths), len(c.detected), int(c.flat), hit, f"{c.mask_iou:.6f}"])


def _jet_rgb(cam: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    rgba = colormaps["jet"](np.clip(cam, 0.0, 1.0))
    return np.asarray(np.round(rgba[..., :3] * 255), dtype=np.uint8)


def case_picture(
    gray: npt.NDArray[np.float32],
    cam_image: npt.NDArray[np.float32] | None,
    truths: Sequence[Box],
    detected: Sequence[Box],
    peak: tuple[float, float] | None,
    caption: str,
    crop: Box | None = None,
) -> Image.Image:
    """The image with the map blended over the model's ``crop`` (x0, y0, x1, y1; default all of it), none for a
    flat map; radiologist boxes in green, detected boxes in white, the peak as a magenta cross, and a caption; at
    most ``PICTURE_SIDE`` on the longer side."""
    height, width = gray.shape
    base = np.repeat(np.round(np.clip(gray, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=2)
    if cam_image is not None:
        x0, y0, x1, y1 = crop or (0.0, 0.0, float(width), float(height))
        rows = slice(max(0, math.ceil(y0 - 0.5)), min(height, math.ceil(y1 - 0.5)))
        cols = slice(max(0, math.ceil(x0 - 0.5)), min(width, math.ceil(x1 - 0.5)))
        blended = base[rows, cols] * (1 - ALPHA) + _jet_rgb(cam_image[rows, cols]) * ALPHA
        base[rows, cols] = np.round(blended).astype(np.uint8)
    scale = min(1.0, PICTURE_SIDE / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    picture = Image.fromarray(base, "RGB").resize(size, Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    for boxes, colour in ((detected, DETECTED_COLOUR), (truths, TRUTH_COLOUR)):
        for x0, y0, x1, y1 in boxes:
            draw.rectangle([x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1], outline=colour, width=2)
    if peak is not None:
        px, py = peak[0] * scale, peak[1] * scale
        draw.line([px - 6, py, px + 6, py], fill=PEAK_COLOUR, width=2)
        draw.line([px, py - 6, px, py + 6], fill=PEAK_COLOUR, width=2)
    draw.rectangle([0, 0, size[0], 14], fill="black")
    draw.text((3, 2), caption, fill="white")
    return picture


def contact_sheet(pictures: Sequence[Image.Image], columns: int = 6) -> Image.Image:
    """Thumbnails (``THUMB_SIDE`` square cells) of ``pictures`` in a grid, row by row."""
    rows = max(1, math.ceil(len(pictures) / columns))
    sheet = Image.new("RGB", (min(columns, max(1, len(pictures))) * THUMB_SIDE, rows * THUMB_SIDE), "black")
    for index, picture in enumerate(pictures):
        thumb = picture.copy()
        thumb.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BILINEAR)
        sheet.paste(thumb, ((index % columns) * THUMB_SIDE, (index // columns) * THUMB_SIDE))
    return sheet


def format_sanity_table(sanity: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    """Per randomised stage and label: mean Spearman rank correlation and mean SSIM with the trained maps."""
    lines = [f"{'randomised':<16}  {'label':<20}  {'Spearman':>8}  {'SSIM':>6}  {'maps':>4}"]
    for stage, by_label in sanity.items():
        for label, entry in by_label.items():
            rho, similarity = entry["spearman"], entry["ssim"]
            lines.append(
                f"{stage:<16}  {label:<20}  {_fmt(rho):>8}  {_fmt(similarity):>6}  {entry['maps']:>4d}".rstrip()
            )
    return lines
