"""``chexnet localize``: Grad-CAM scored against NIH's radiologist boxes, and (``--sanity``) the cascading-
randomisation check of Adebayo et al. (NeurIPS 2018) that the maps depend on the weights.

For every image of the box file found in the image folder and every boxed label the model has: the checkpoint's
own eval preprocessing, one forward pass, the closed-form Grad-CAM of that label on the exact crop the model saw
(``models.gradcam``), boxes and peak by a named rule (``models.cam_boxes``, mapped back to the image as
``/gradcam`` does), the radiologist boxes rescaled from NIH's 1024 px to the image's size; then the figures of
``training.scoring.localization`` per label and pooled, with patient-level bootstrap CIs.
"""

from __future__ import annotations

import copy
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from models.cam_boxes import FLAT_SPAN, BoxRule, cam_boxes, cam_on_crop, cam_peak, cam_spans, is_flat, rule_named
from models.checkpoint import load_checkpoint
from models.files import resolve_device
from models.gradcam import cam_on_image, gradcam_maps, normalise_maps
from models.imaging.errors import InputError
from models.network import CheXNet
from models.preprocessing import CropGeometry, center_crop_geometry, eval_tensor
from training.data.boxes import BoxRecord, align_box_labels, patient_of, read_boxes
from training.data.dataset import load_gray
from training.exit_status import UsageError
from training.reports.localization import (
    WANG_RESNET50_IOBB,
    case_picture,
    contact_sheet,
    format_sanity_table,
    format_table,
    write_cases_csv,
    write_csv,
    write_json,
)
from training.scoring.localization import IOBB_THRESHOLDS, IOU_THRESHOLDS, MASK_LEVEL, Case, mask_iou, score_by_label
from training.scoring.map_similarity import spearman, ssim

logger = logging.getLogger(__name__)

SANITY_STAGES = ("head", "dense block 4", "all")


class LocalizeUsageError(UsageError):
    """Options that cannot work, found before any data is read."""


@dataclass(frozen=True)
class LocalizeOptions:
    checkpoint: Path
    images: Path
    boxes: Path
    out: Path
    rule: str = "wang"
    bootstrap: int = 1000
    seed: int = 0
    device: str = "auto"
    sanity: bool = False
    pictures: bool = True

    def check(self) -> BoxRule:
        """The rule named; raises :class:`LocalizeUsageError` for an option that cannot work."""
        if self.bootstrap < 0:
            raise LocalizeUsageError("--bootstrap must be 0 or more")
        if not self.images.is_dir():
            raise LocalizeUsageError(f"--images {self.images} is not a folder")
        if not self.boxes.exists():
            raise LocalizeUsageError(f"--boxes {self.boxes} does not exist")
        try:
            return rule_named(self.rule)
        except ValueError as exc:
            raise LocalizeUsageError(str(exc)) from exc


@dataclass
class _Image:
    """One box image as the model saw it: its grey pixels, crop geometry, and (K, h, w) maps with their spans."""

    gray: npt.NDArray[np.float32]
    geometry: CropGeometry
    cams: npt.NDArray[np.float32]
    spans: npt.NDArray[np.float64]


@torch.no_grad()
def _maps(model: CheXNet, tensors: torch.Tensor, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3, S, S) -> ((N, K, h, w) normalised maps, flat maps zeroed; (N, K) spans)."""
    features = model.forward_features(tensors.to(device))
    raw = gradcam_maps(features, model.classifier.weight)
    spans = cam_spans(raw).cpu().numpy()
    cams = normalise_maps(raw).float().cpu().numpy()
    cams[spans < FLAT_SPAN] = 0.0
    return cams, spans


def _maps_in_batches(
    model: CheXNet, tensors: torch.Tensor, device: torch.device, batch_size: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_maps` over ``tensors`` ``batch_size`` at a time, so a whole box file fits in memory."""
    parts = [_maps(model, tensors[i : i + batch_size], device) for i in range(0, len(tensors), batch_size)]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _group(records: list[BoxRecord], mapping: dict[str, str]) -> dict[str, dict[str, list[BoxRecord]]]:
    """{image: {model label: its boxes}} for the labels the model has, images in file order."""
    grouped: dict[str, dict[str, list[BoxRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.label in mapping:
            grouped[record.image][mapping[record.label]].append(record)
    return grouped


def _case(name: str, label: str, boxes: list[BoxRecord], seen: _Image, k: int, rule: BoxRule) -> Case:
    height, width = seen.gray.shape
    flat = is_flat(float(seen.spans[k]))
    cam = seen.cams[k]
    truths = tuple(b.scaled(height, width) for b in boxes)
    return Case(
        image=name,
        patient=patient_of(name),
        label=label,
        truths=truths,
        detected=() if flat else tuple(cam_boxes(cam, seen.geometry, rule)),
        peak=None if flat else cam_peak(cam, seen.geometry),
        mask_iou=0.0 if flat else mask_iou(cam_on_image(cam, seen.geometry), truths, MASK_LEVEL),
        flat=flat,
    )


def _write_pictures(out: Path, cases: list[Case], seen: dict[str, _Image], labels: tuple[str, ...]) -> None:
    folder = out / "pictures"
    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for case in cases:
        image = seen[case.image]
        k = labels.index(case.label)
        cam_image = None if case.flat else cam_on_image(image.cams[k], image.geometry)
        caption = f"{case.label}: " + ("flat map, nothing to show" if case.flat else f"{len(case.detected)} boxes")
        crop = image.geometry.box_in_original()
        picture = case_picture(image.gray, cam_image, case.truths, case.detected, case.peak, caption, crop)
        picture.save(folder / f"{Path(case.image).stem}-{case.label}.png")
        pictures.append(picture)
    contact_sheet(pictures).save(out / "contact-sheet.png")


def randomised(model: CheXNet, stage: str, seed: int) -> CheXNet:
    """A copy of ``model`` with weights re-initialised from the top down to ``stage`` (cascading): ``head`` (the
    classifier), ``dense block 4`` (also norm5 and denseblock4), ``all`` (every layer). Seeded."""
    copied: CheXNet = copy.deepcopy(model)
    chosen: list[nn.Module] = [copied.classifier]
    if stage in ("dense block 4", "all"):
        chosen += [copied.features.norm5, copied.features.denseblock4]
    if stage == "all":
        chosen = [copied]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in chosen:
            for layer in module.modules():
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    layer.reset_parameters()
                elif isinstance(layer, nn.BatchNorm2d):
                    layer.reset_running_stats()
                    nn.init.uniform_(layer.weight, 0.5, 1.5)  # not the identity that reset_parameters leaves
                    nn.init.zeros_(layer.bias)
    copied.eval()
    return copied


def sanity_check(
    model: CheXNet,
    inputs: list[tuple[torch.Tensor, int]],
    labels: tuple[str, ...],
    device: torch.device,
    seed: int,
    stages: tuple[str, ...] = SANITY_STAGES,
) -> dict[str, dict[str, dict[str, Any]]]:
    """{stage: {label: {"spearman", "ssim", "maps"}}}: mean similarity of the randomised model's maps to the
    trained model's over ``inputs`` ((3, S, S) tensor, label index), compared over the S x S crop.

    Inputs whose trained map is flat are left out (there is nothing to compare); a randomised map that is flat
    is compared as the all-zero map it is. Spearman is None where every compared pair had a constant map.
    """
    if not inputs:
        return {}
    batch, ks = torch.stack([x for x, _ in inputs]), [k for _, k in inputs]
    side = int(batch.shape[-1])
    cams, spans = _maps_in_batches(model, batch, device)
    kept = [i for i, k in enumerate(ks) if not is_flat(float(spans[i, k]))]
    if not kept:
        return {stage: {} for stage in stages}
    references = {i: cam_on_crop(cams[i, ks[i]], side) for i in kept}
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for stage in stages:
        other_cams = _maps_in_batches(randomised(model, stage, seed).to(device), batch[kept], device)[0]
        scores: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for row, i in enumerate(kept):
            cam = cam_on_crop(other_cams[row, ks[i]], side)
            rho = spearman(references[i], cam)
            if rho is not None:
                scores[labels[ks[i]]][0].append(rho)
            scores[labels[ks[i]]][1].append(ssim(references[i], cam))
        result[stage] = {
            label: {"spearman": float(np.mean(rhos)) if rhos else None, "ssim": float(np.mean(sims)), "maps": len(sims)}
            for label, (rhos, sims) in scores.items()
        }
    return result


def run_localize(options: LocalizeOptions) -> dict[str, Any]:
    """Score, write localization.json / .csv (+ pictures) in ``options.out``, print the table; the document."""
    rule = options.check()
    device = resolve_device(options.device)
    checkpoint = load_checkpoint(options.checkpoint)
    labels = tuple(checkpoint.labels)
    model = checkpoint.build_model().to(device)
    records = read_boxes(options.boxes)
    mapping, lacking = align_box_labels(records, labels)
    grouped = _group(records, mapping)
    seen: dict[str, _Image] = {}
    cases: list[Case] = []
    inputs: list[tuple[torch.Tensor, int]] = []
    missing = unreadable = 0
    for name, by_label in grouped.items():
        path = options.images / name
        if not path.is_file():
            missing += 1
            continue
        try:
            gray = load_gray(path)
        except InputError:
            unreadable += 1
            continue
        tensor = eval_tensor(checkpoint.spec, gray)
        cams, spans = _maps(model, tensor[None], device)
        seen[name] = _Image(gray, center_crop_geometry(checkpoint.spec, *gray.shape), cams[0], spans[0])
        for label, boxes in by_label.items():
            cases.append(_case(name, label, boxes, seen[name], labels.index(label), rule))
            if options.sanity:
                inputs.append((tensor, labels.index(label)))
    logger.info("%d box images found, %d not in the image folder, %d unreadable", len(seen), missing, unreadable)
    scores = score_by_label(cases, labels, options.bootstrap, options.seed)
    document: dict[str, Any] = {
        "rule": rule.describe(),
        "flat_span": FLAT_SPAN,
        "mask_level": MASK_LEVEL,
        "thresholds": {"iobb": list(IOBB_THRESHOLDS), "iou": list(IOU_THRESHOLDS)},
        "bootstrap": {"resamples": options.bootstrap, "seed": options.seed, "unit": "patient"},
        "images": {"scored": len(seen), "not_found": missing, "unreadable": unreadable},
        "labels_lacking": lacking,
        "scores": scores,
        "anchor": {"source": "Wang et al., CVPR 2017, ResNet-50, accuracy by T(IoBB)", "accuracy": WANG_RESNET50_IOBB},
    }
    options.out.mkdir(parents=True, exist_ok=True)
    if options.sanity and inputs:
        document["sanity"] = sanity_check(model, inputs, labels, device, options.seed)
    write_json(options.out / "localization.json", document)
    write_csv(options.out / "localization.csv", scores)
    write_cases_csv(options.out / "cases.csv", cases)
    if options.pictures and cases:
        _write_pictures(options.out, cases, seen, labels)
    _print_summary(document, rule)
    return document


def _print_summary(document: dict[str, Any], rule: BoxRule) -> None:
    images = document["images"]
    levels = ", ".join(f"{v * 255:g}" for v in rule.levels)
    print(
        f"rule {rule.name} (levels {levels} of 255); {images['scored']} images scored, {images['not_found']} of "
        f"the box file's images not in the folder, {images['unreadable']} unreadable"
    )
    if document["labels_lacking"]:
        print(f"labels the model lacks (skipped): {', '.join(document['labels_lacking'])}")
    for line in format_table(document["scores"]):
        print(line)
    if "sanity" in document:
        print("sanity check (cascading randomisation; low similarity = the maps depend on the weights):")
        for line in format_sanity_table(document["sanity"]):
            print(line)
