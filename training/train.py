"""``chexnet train``: options -> data -> model -> epochs (train, validate, checkpoint) -> best.pt."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

import models.network
from models.checkpoint import Checkpoint, initial_network, load_checkpoint, save_checkpoint
from models.network import CheXNet, build_network
from models.operating_points import MIN_POSITIVES, OperatingPoints
from models.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from training.data.dataset import EpochSampler, XrayDataset, collate_or_failure
from training.data.image_cache import ResizedImageCache
from training.data.run_data import RunData, load_run_data, write_split_lists
from training.loop.config import TrainConfig, TrainConfigError
from training.loop.distributed import (
    DistContext,
    broadcast_model_state,
    gather_objects,
    init_distributed,
    shutdown_distributed,
)
from training.loop.ema import WeightAverage
from training.loop.epochs import EvalResult, train_one_epoch, validate
from training.loop.head_transfer import refit_head
from training.loop.masked_loss import MaskedBCEWithLogitsLoss, known_pos_weight
from training.loop.optimizers import make_optimizer, make_scheduler, step_scheduler
from training.loop.recipe import describe_recipe
from training.loop.resume import (
    Progress,
    RunAlreadyFinishedError,
    TrainingObjects,
    capture_training_state,
    epochs_done,
    read_resume_point,
    restore_training_state,
)
from training.loop.rng_state import seed_everything
from training.loop.step_recipe import StepRecipe
from training.reports.provenance import describe_run, describe_validation
from training.reports.run_files import clear_run, remove_interrupted_writes
from training.reports.run_history import write_history_files
from training.reports.tensorboard_log import TensorBoardLog
from training.scoring.metrics import mean_auroc, mean_defined, per_class_auroc, per_class_average_precision
from training.scoring.thresholds import choose_operating_points

logger = logging.getLogger(__name__)


def make_loader(
    config: TrainConfig,
    paths: list[Path],
    targets: np.ndarray,
    spec: PreprocessSpec,
    train: bool,
    ctx: DistContext,
) -> DataLoader[Any]:
    """Batches of ((B, 3, S, S) images, (B, K) targets with NaN for unknown, (B,) indices) for one split."""
    cache = ResizedImageCache(config.image_cache, spec) if config.image_cache is not None else None
    dataset = XrayDataset(paths, targets, spec, train=train, seed=config.seed, cache=cache, augment=config.augment)
    sampler = EpochSampler(len(dataset), shuffle=train, seed=config.seed, rank=ctx.rank, world=ctx.world)
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.workers,
        pin_memory=config.resolved_device().type == "cuda",
        # BatchNorm cannot train on a batch of one: drop a final single-image batch (train only)
        drop_last=train and len(sampler) % config.batch_size == 1,
        collate_fn=collate_or_failure,
    )


def make_criterion(config: TrainConfig, train_targets: np.ndarray, device: torch.device) -> nn.Module:
    """BCE on logits over known entries (NaN targets masked); with --pos-weight, each class weighted by known
    negatives / known positives of the training split."""
    if not config.pos_weight:
        return MaskedBCEWithLogitsLoss()
    weights = torch.tensor(known_pos_weight(train_targets), dtype=torch.float32, device=device)
    return MaskedBCEWithLogitsLoss(pos_weight=weights)


def epoch_record(
    epoch: int,
    train_loss: float,
    images_per_s: float,
    result: EvalResult,
    lr: float,
    seconds: float,
    config: TrainConfig,
    data: RunData,
    val_owner: np.ndarray,
) -> dict[str, Any]:
    """One finished epoch as plain data (metrics.json, metrics.csv, curves.png, TensorBoard): losses, per-class
    validation AUROC and PR-AUC (each class on its known rows), the mean AUROC per dataset, and the operating points
    chosen on this epoch's validation predictions (stored in best.pt when the epoch is the best)."""
    labels = data.labels
    aurocs = per_class_auroc(result.targets, result.probs, labels)
    average_precision = per_class_average_precision(result.targets, result.probs, labels)
    per_dataset = {
        split.name: mean_auroc(per_class_auroc(result.targets[val_owner == i], result.probs[val_owner == i], labels))
        for i, split in enumerate(data.tables)
    }
    # No command here: a resumed run's command differs (--resume), and best.pt's provenance already records it.
    source = {"data": describe_validation(config), "epoch": epoch + 1}
    points = choose_operating_points(result.targets, result.probs, config.specificity, source, labels)
    return {
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "val_loss": result.loss,
        "val_mean_auroc": mean_auroc(aurocs),
        "val_auroc": aurocs,
        "val_dataset_mean_auroc": per_dataset,
        "val_mean_average_precision": mean_defined(average_precision),
        "val_average_precision": average_precision,
        "val_images": len(result.targets),  # every validation image exactly once, whatever the process count
        "val_operating_points": points.to_dict(),  # "unreliable": classes with fewer than 10 positives
        "lr": lr,
        "train_images_per_s": images_per_s,
        "seconds": seconds,  # training and validation, wall clock
    }


def run_training(config: TrainConfig) -> Path:
    """Train; returns the path of best.pt. Options are validated before any data is read."""
    config.validate()
    device = config.resolved_device()
    ctx = init_distributed(device)
    try:
        return _train(config, device, ctx)
    finally:
        shutdown_distributed(ctx)


def _train(config: TrainConfig, device: torch.device, ctx: DistContext) -> Path:
    seed_everything(config.seed)
    # Before any data is read: a bad last.pt, or missing ImageNet weights, fail first. A resumed run builds a bare
    # network that last.pt overwrites, so its starting weights (ImageNet, --weights PATH) need not exist any more.
    resume_point = read_resume_point(config) if config.resume else None
    _check_one_run_folder(config, resume_point, ctx)
    if resume_point is not None and epochs_done(resume_point) >= config.epochs:
        _finish_finished_run(config, resume_point, ctx)
    if config.overwrite and ctx.is_main:
        clear_run(config.out)  # every rank has validated its options by now (init_distributed is a rendezvous)
    if resume_point is None:
        _check_starting_weights(config.weights)  # the head's size needs the data; unusable weights fail first
    data = load_run_data(config, listing_allowed=ctx.is_main)
    if resume_point is not None:
        if tuple(resume_point.labels) != data.labels:
            raise TrainConfigError("--resume: the data's label set differs from the one the run was started with")
        model, head = CheXNet(num_classes=len(data.labels)), None
    else:
        model, head = _starting_network(config.weights, data.labels)
    if min(data.count("train"), data.count("val")) < ctx.world:
        raise TrainConfigError(f"each split needs at least one image per process ({ctx.world} processes)")
    logger.info(
        "training on %d images, validating on %d, %d held out for test (no patient in two)",
        data.count("train"),
        data.count("val"),
        data.count("test"),
    )
    if ctx.is_main:
        write_split_lists(config.out, data)
    spec = PreprocessSpec.for_image_size(config.image_size)
    recipe = StepRecipe.for_device(device, config.precision, config.channels_last)
    model = model.to(device, memory_format=torch.channels_last if recipe.channels_last else torch.preserve_format)
    average = WeightAverage(model, config.ema) if config.ema is not None else None  # from the starting weights
    recipe = replace(recipe, average=average)
    optimizer = make_optimizer(config, model)
    scaler = make_grad_scaler(device, recipe.needs_grad_scaler)
    objects: TrainingObjects = (optimizer, make_scheduler(config, optimizer), scaler)
    progress = Progress()
    if resume_point is not None:
        progress = restore_training_state(resume_point, model, objects, device, ctx.world)
        if average is not None:
            average.load_state_dict(resume_point.training_state["ema"])  # type: ignore[index]
        if ctx.is_main:
            remove_interrupted_writes(config.out)
            write_history_files(config.out, progress.history)  # a kill may have come between last.pt and these
    elif config.replace_first_epoch and ctx.is_main:
        remove_interrupted_writes(config.out)  # --resume auto over a first epoch cut short: its leftovers too
    net: nn.Module = DistributedDataParallel(model) if ctx.enabled else model
    train_paths, train_targets, _ = data.part("train")
    val_paths, val_targets, val_owner = data.part("val")
    train_loader = make_loader(config, train_paths, train_targets, spec, train=True, ctx=ctx)
    val_loader = make_loader(config, val_paths, val_targets, spec, train=False, ctx=ctx)
    criterion = make_criterion(config, train_targets, device)
    run_info = {**describe_run(config, data, head), "recipe": describe_recipe(config, device)}
    validated = model if average is None else average.module  # --ema: the average is validated and kept as best
    board = TensorBoardLog(config.out, progress.next_epoch + 1) if config.tensorboard and ctx.is_main else None
    try:
        for epoch in range(progress.next_epoch, config.epochs):
            for loader in (train_loader, val_loader):
                loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
                loader.dataset.set_epoch(epoch)  # type: ignore[attr-defined]
            start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
            stats = train_one_epoch(net, train_loader, criterion, optimizer, scaler, device, epoch, ctx, recipe)
            broadcast_model_state(ctx, model)  # every rank validates the copy that rank 0 saves
            if average is not None:
                broadcast_model_state(ctx, average.module)
            result = validate(validated, val_loader, criterion, device, ctx, recipe)  # unwrapped: no DDP in eval
            seconds = time.perf_counter() - start
            record = epoch_record(
                epoch, stats.loss, stats.images_per_second, result, lr, seconds, config, data, val_owner
            )
            step_scheduler(objects[1], result.loss)
            improved = progress.add_epoch(record)
            if ctx.is_main:
                state = capture_training_state(progress, objects, device, ctx.world)
                if average is not None:
                    state["ema"] = average.state_dict()
                _save_epoch(config, model, spec, data.labels, record, improved, run_info, state, validated)
                write_history_files(config.out, progress.history)
                if board is not None:
                    board.add_epoch(record)
            _log_epoch(record, config.epochs)
    finally:
        if board is not None:
            board.close()
    return config.out / "best.pt"


def _check_one_run_folder(config: TrainConfig, resume_point: Checkpoint | None, ctx: DistContext) -> None:
    """Every process must continue the same run: under torchrun on several nodes, --out must be one folder they
    all share (a node that sees no last.pt would start afresh while the others resume)."""
    seen = gather_objects(ctx, None if resume_point is None else epochs_done(resume_point))
    if len(set(seen)) > 1:
        found = ", ".join(f"rank {rank}: {'no last.pt' if n is None else f'{n} epochs'}" for rank, n in enumerate(seen))
        raise TrainConfigError(
            f"--out {config.out} holds different runs for different processes ({found}): under torchrun on several "
            "nodes --out must be a folder every node shares"
        )


def _starting_network(weights: str, labels: tuple[str, ...]) -> tuple[CheXNet, dict[str, Any] | None]:
    """``--weights``' network with one output per label, and (for a checkpoint) which head rows it kept.

    A checkpoint whose labels differ keeps its backbone; head rows whose label matches by ``label_key`` are copied
    and the others initialised as a new head's are. A checkpoint made for other inputs than these transforms give
    is refused.
    """
    if weights in ("imagenet", "none"):
        return build_network(weights, len(labels)), None
    model, spec = initial_network(weights, len(labels))  # a checkpoint brings its own labels and head
    _check_fine_tuning_spec(weights, spec)
    return refit_head(model, load_checkpoint(weights).labels, labels)


def _check_starting_weights(weights: str) -> None:
    """Before any data is read: ImageNet weights that cannot be had (``WeightsUnavailableError``), or a checkpoint
    made for other inputs than training here gives (``TrainConfigError``)."""
    if weights == "imagenet":
        models.network.imagenet_backbone_state()
    elif weights != "none":
        _check_fine_tuning_spec(weights, load_checkpoint(weights).spec)


def _check_fine_tuning_spec(weights: str, spec: PreprocessSpec | None) -> None:
    if spec is not None and (spec.crop_first or (spec.mean, spec.std) != (IMAGENET_MEAN, IMAGENET_STD)):
        raise TrainConfigError(
            f"--weights {weights}: that model expects other inputs (mean {list(spec.mean)}, std {list(spec.std)}"
            f"{', centred square first' if spec.crop_first else ''}) than training here gives (ImageNet mean/std, "
            "resize then crop); fine-tuning an imported torchxrayvision model is not supported"
        )


def _finish_finished_run(config: TrainConfig, resume_point: Checkpoint, ctx: DistContext) -> None:
    """--resume of a run with every epoch done: repair its files (a kill may have come after last.pt), then say
    there is nothing to do by raising ``RunAlreadyFinishedError``. No data is read."""
    assert resume_point.training_state is not None  # read_resume_point checked
    if ctx.is_main:
        remove_interrupted_writes(config.out)
        write_history_files(config.out, resume_point.training_state["history"])
    done = epochs_done(resume_point)
    longer = "; a larger --epochs trains on" if config.scheduler == "plateau" else ""
    epochs = f"{done} epoch" if done == 1 else f"{done} epochs"
    raise RunAlreadyFinishedError(
        f"nothing to do: the run in {config.out} has finished {epochs} (--epochs {config.epochs}){longer}; "
        f"best checkpoint: {config.out / 'best.pt'}"
    )


def make_grad_scaler(device: torch.device, enabled: bool | None = None) -> torch.amp.GradScaler:
    """AMP's loss scaler, for fp16 autocast (default: on CUDA only; elsewhere disabled, with an empty state)."""
    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" if enabled is None else enabled)


def _log_epoch(record: dict[str, Any], epochs: int) -> None:
    mean = record["val_mean_auroc"]
    logger.info(
        "epoch %d/%d: train loss %.4f, val loss %.4f, val mean AUROC %s, %.1f images/s",
        record["epoch"],
        epochs,
        record["train_loss"],
        record["val_loss"],
        "undefined" if mean is None else f"{mean:.4f}",
        record["train_images_per_s"],
    )


def _save_epoch(
    config: TrainConfig,
    model: nn.Module,
    spec: PreprocessSpec,
    labels: tuple[str, ...],
    record: dict[str, Any],
    improved: bool,
    run_info: dict[str, Any],
    training_state: dict[str, Any],
    validated: nn.Module | None = None,
) -> None:
    """best.pt when mean validation AUROC improves (weights only, for serving), last.pt every epoch (resumable).

    best.pt holds the ``validated`` network's weights (with ``--ema``, the average), last.pt the trained ones.

    Each file is replaced atomically, best.pt first: a kill between the two leaves last.pt one epoch behind, and
    the resumed run repeats that epoch and writes the same best.pt again. Never a last.pt ahead of best.pt.
    """
    weights = {k: v.detach().cpu().clone() for k, v in (validated or model).state_dict().items()}
    kept = (
        "epoch", "val_loss", "val_mean_auroc", "val_auroc", "val_mean_average_precision", "val_average_precision",
        "val_dataset_mean_auroc",
    )  # fmt: skip
    base = Checkpoint(
        state_dict=weights,
        spec=spec,
        labels=labels,
        config=config.to_dict(),
        metrics={k: record[k] for k in kept},
        provenance=run_info,
        operating_points=OperatingPoints.from_dict(record["val_operating_points"]),
    )
    if improved or not (config.out / "best.pt").exists():
        save_checkpoint(base, config.out / "best.pt")
        unreliable = base.operating_points.unreliable if base.operating_points else ()
        logger.info(
            "best.pt: epoch %d, with operating points chosen on its %d validation images (%d classes with fewer "
            "than %d positives flagged unreliable)",
            record["epoch"],
            record["val_images"],
            len(unreliable),
            MIN_POSITIVES,
        )
    if validated is not None and validated is not model:
        base = replace(base, state_dict={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
    save_checkpoint(Checkpoint(**{**base.__dict__, "training_state": training_state}), config.out / "last.pt")
