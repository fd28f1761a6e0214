"""Argument parsing for ``chexnet train | evaluate | calibrate | predict``; heavy imports happen when a command runs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from models.operating_points import DEFAULT_SPECIFICITY  # plain data and numpy: light enough for argument parsing

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def register(commands: Any) -> None:
    """Add the training-side subcommands to the top-level ``chexnet`` parser."""
    _register_train(commands.add_parser("train", help="train CheXNet on a labels CSV and an image folder"))
    _register_evaluate(
        commands.add_parser("evaluate", help="per-class AUROC with bootstrap CIs, PR-AUC, operating points, ROC curves")
    )
    _register_calibrate(
        commands.add_parser("calibrate", help="write operating points (and a temperature) into a new checkpoint")
    )
    _register_predict(commands.add_parser("predict", help="write a CSV of the 14 probabilities for images"))
    _register_import(commands.add_parser("import", help="make a chexnet checkpoint from published CheXNet/xrv weights"))


def _register_train(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train DenseNet-121 with 14 sigmoid outputs (BCE on logits). Defaults follow the seed recipe: "
        "Adam 1e-4, ReduceLROnPlateau (x0.1, patience 2), random crop + horizontal flip, 224 px. "
        "Under torchrun it trains with DistributedDataParallel."
    )
    p.add_argument("--images", type=Path, required=True, help="folder holding the images named in the CSV")
    p.add_argument("--labels", type=Path, required=True, help="NIH Data_Entry_2017 CSV or one-hot CSV (image_path)")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        help="run folder: last.pt, best.pt, metrics.json, metrics.csv, curves.png; one that already holds a run "
        "needs --resume or --overwrite",
    )
    p.add_argument("--epochs", type=int, default=10, help="epochs in all (a resumed run counts those done)")
    p.add_argument("--batch-size", type=int, default=16, help="images per step (per process under torchrun)")
    p.add_argument("--image-size", type=int, default=224, help="crop size in pixels (images resized to 8/7 of it)")
    p.add_argument("--lr", type=float, default=1e-4, help="Adam's learning rate")
    p.add_argument(
        "--weights",
        default="imagenet",
        help="imagenet (torchvision's file: downloaded once into the torch hub cache, so the first run needs the "
        "internet) | none (random) | PATH to a chexnet checkpoint to fine-tune",
    )
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of patients held out for validation")
    p.add_argument("--train-list", type=Path, help="file of training image names (with --val-list)")
    p.add_argument("--val-list", type=Path, help="file of validation image names (with --train-list)")
    p.add_argument(
        "--pos-weight",
        action="store_true",
        help="weight positives by negatives/positives per class of the training split (the CheXNet paper used "
        "plain BCE; this helps rare classes such as Hernia)",
    )
    p.add_argument(
        "--scheduler",
        choices=["plateau", "cosine"],
        default="plateau",
        help="plateau: ReduceLROnPlateau on the validation loss (x0.1, patience 2); cosine: over --epochs",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when there is one")
    p.add_argument("--workers", type=int, default=2, help="data loader worker processes")
    p.add_argument("--seed", type=int, default=0, help="seeds the split, the initial weights and the augmentation")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--resume", action="store_true", help="continue the run in OUT from OUT/last.pt")
    run.add_argument("--overwrite", action="store_true", help="replace the run in OUT (its files are deleted first)")
    p.add_argument(
        "--name",
        dest="model_name",
        metavar="NAME",
        help="the model's name, recorded in the checkpoint; /model and /predict show it",
    )
    p.add_argument(
        "--version",
        "--model-version",  # as chexnet import spells it
        dest="model_version",
        metavar="VERSION",
        help="the model's version, recorded in the checkpoint; /model and /predict show it (unset: chexnet's)",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard logs to OUT/tensorboard (needs the tensorboard package)",
    )
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out images that fail the pre-training check (listed in OUT/unreadable.csv) instead of stopping",
    )
    p.add_argument(
        "--image-cache",
        type=Path,
        metavar="DIR",
        help="keep each image decoded and resized in DIR (float32, about 256 KB an image at 224 px), so later "
        "epochs and runs skip the decode; the tensors are identical to an uncached run's",
    )
    _add_specificity(p, "best.pt's operating points: youden and specNN, chosen on the validation split")
    _add_recipe_options(p)
    p.set_defaults(run=_run_train)


def _add_recipe_options(p: argparse.ArgumentParser) -> None:
    """The recipe's options (docs/recipe.md); each default is the seed's recipe."""
    recipe = p.add_argument_group("recipe (docs/recipe.md; the defaults are the seed's recipe)")
    recipe.add_argument("--optimizer", choices=["adam", "adamw"], default="adam", help="adamw: decoupled weight decay")
    recipe.add_argument(
        "--weight-decay",
        type=float,
        default=0.0,
        help="on convolution and linear weights, not BatchNorm or biases (with adamw 0.05 is usual)",
    )
    recipe.add_argument(
        "--warmup-epochs",
        type=int,
        default=0,
        help="epoch k < N trains at lr*(k+1)/(N+1), then --scheduler starts at --lr (0: no warm-up)",
    )
    recipe.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        help="validate and keep as best.pt an exponential moving average of the weights (e.g. 0.999; unset: none)",
    )
    recipe.add_argument(
        "--augment",
        choices=["seed", "cxr"],
        default="seed",
        help="seed: random crop + horizontal flip; cxr: also small rotation, scale, shift, brightness, contrast",
    )
    recipe.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16", "fp16"],
        default="auto",
        help="autocast: auto = fp16 on CUDA, fp32 on the CPU; bf16 on the CPU or CUDA; fp16 on CUDA only",
    )
    recipe.add_argument(
        "--channels-last", action="store_true", help="NHWC memory format on the CPU too (CUDA always uses it)"
    )


def _add_specificity(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--specificity",
        type=float,
        default=DEFAULT_SPECIFICITY,
        help=f"the specificity of the second operating point (0.90 -> spec90); {what}",
    )


def _run_train(args: argparse.Namespace) -> int:
    from models.errors import ModelContractError
    from training.data.dataset import UnreadableImageError
    from training.data.image_check import UnreadableImagesError
    from training.data.label_tables import LabelTableError
    from training.loop.config import TrainConfig, TrainConfigError
    from training.loop.epochs import NonFiniteLossError
    from training.loop.resume import RunAlreadyFinishedError
    from training.train import run_training

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "log_level")}
    try:
        best = run_training(TrainConfig(**options))
    except RunAlreadyFinishedError as exc:
        print(f"chexnet train: {exc}")
        return 0
    except UnreadableImageError as exc:
        again = "continue with --resume" if (args.out / "last.pt").is_file() else "run the command again"
        print(
            f"chexnet train: cannot read image {str(exc).rstrip('.')}; stopped (fix it, then {again})", file=sys.stderr
        )
        return 1
    except (TrainConfigError, LabelTableError, ModelContractError, NonFiniteLossError, UnreadableImagesError) as exc:
        print(f"chexnet train: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, TrainConfigError) else 1
    print(f"best checkpoint: {best}")
    return 0


def _register_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Evaluate a checkpoint on labelled images, or someone else's predictions CSV, against NIH-format labels: "
        "per-class AUROC with a patient-level bootstrap 95% CI; writes metrics.json, predictions.csv, roc.png."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a chexnet checkpoint")
    source.add_argument("--predictions", type=Path, help="CSV: Image Index + 14 columns (optionally prob_ prefix)")
    p.add_argument("--images", type=Path, help="image folder (with --checkpoint)")
    p.add_argument("--labels", type=Path, required=True, help="NIH Data_Entry_2017 CSV or one-hot CSV")
    p.add_argument("--split-list", type=Path, help="evaluate only the image names listed in this file")
    p.add_argument(
        "--tta", choices=["none", "tencrop"], default="none", help="tencrop: average the ten crops' probabilities"
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs (0 = none)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when there is one")
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstrap")
    p.add_argument("--out", type=Path, required=True, help="folder for metrics.json, predictions.csv, roc.png")
    p.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out images that fail the pre-check (listed in OUT/unreadable.csv) instead of stopping",
    )
    _add_specificity(p, "the operating points are chosen on these images")
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from models.errors import ModelContractError
    from training.data.dataset import UnreadableImageError
    from training.data.label_tables import LabelTableError
    from training.evaluate import EvaluateOptions, run_evaluate

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "log_level")}
    try:
        return run_evaluate(EvaluateOptions(**options))
    except UnreadableImageError as exc:
        print(f"chexnet evaluate: cannot read image {exc} (--skip-unreadable leaves such images out)", file=sys.stderr)
        return 1
    except (ValueError, LabelTableError, ModelContractError, FileNotFoundError) as exc:
        print(f"chexnet evaluate: {exc}", file=sys.stderr)
        return 1


def _register_calibrate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Choose a checkpoint's operating points on labelled images (per class: the threshold maximising Youden's J, "
        "and the lowest threshold with the given specificity, with sensitivity, specificity, PPV and NPV), "
        "optionally after fitting a temperature (with a reliability diagram), and write them into a new checkpoint "
        "that the service uses for /predict's findings."
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint to calibrate (left unchanged)")
    p.add_argument("--images", type=Path, required=True, help="image folder")
    p.add_argument("--labels", type=Path, required=True, help="NIH Data_Entry_2017 CSV or one-hot CSV")
    p.add_argument("--split-list", type=Path, help="use only the image names listed in this file")
    p.add_argument("--out", type=Path, required=True, help="the new checkpoint (.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    _add_specificity(p, "chosen on these images")
    p.add_argument("--default", default="youden", help="the point /predict uses when none is asked for")
    p.add_argument(
        "--temperature",
        action="store_true",
        help="fit one logit temperature on these images first (thresholds then apply to calibrated "
        "probabilities); also writes OUT-reliability.png",
    )
    p.add_argument(
        "--data-description",
        help="what the images are, in words, for /model (default: the labels file and split list names)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.set_defaults(run=_run_calibrate)


def _run_calibrate(args: argparse.Namespace) -> int:
    from models.errors import ModelContractError
    from training.calibrate import CalibrateOptions, CalibrateUsageError, run_calibrate
    from training.data.dataset import UnreadableImageError
    from training.data.label_tables import LabelTableError

    options = {k: v for k, v in vars(args).items() if k not in ("run", "command", "log_level")}
    try:
        return run_calibrate(CalibrateOptions(**options))
    except CalibrateUsageError as exc:
        print(f"chexnet calibrate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnreadableImageError as exc:
        print(f"chexnet calibrate: cannot read image {exc}", file=sys.stderr)
        return 1
    except (ValueError, LabelTableError, ModelContractError) as exc:
        print(f"chexnet calibrate: {exc}", file=sys.stderr)
        return 1


def _register_predict(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Predict the 14 probabilities for PNG, JPEG or DICOM files, or folders of them (found by content, not by "
        "suffix). Writes CSV: Image Index (file name), path, 14 columns. Unreadable files are named on stderr "
        "with the reason; the others are predicted, and the exit status is 1."
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    p.add_argument("-r", "--recursive", action="store_true", help="search folders' subfolders too")
    p.add_argument("--checkpoint", type=Path, help="a chexnet checkpoint (default: the bundled demo model)")
    p.add_argument("--out", type=Path, help="CSV file to write (default: stdout)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when there is one")
    p.set_defaults(run=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from models.bundled import DEMO_CHECKPOINT
    from models.errors import ModelContractError
    from models.files import resolve_device
    from training.predict import collect_images, predict_files, write_predictions_csv

    try:
        device = resolve_device(args.device)
        found = collect_images(args.paths, args.recursive)
        result = predict_files(args.checkpoint or DEMO_CHECKPOINT, found.paths, args.batch_size, args.workers, device)
    except (ModelContractError, ValueError, OSError) as exc:
        print(f"chexnet predict: {exc}", file=sys.stderr)
        return 1
    if found.skipped:
        print(
            f"chexnet predict: passed over {found.skipped} folder entries that are not PNG, JPEG or DICOM files",
            file=sys.stderr,
        )
    if found.subfolders:
        print(f"chexnet predict: did not search {found.subfolders} subfolders (use --recursive)", file=sys.stderr)
    for folder, message in found.unlistable:
        print(f"chexnet predict: cannot read {folder}: {message}", file=sys.stderr)
    for failure in result.failures:
        print(f"chexnet predict: cannot read {failure.path}: {failure.message}", file=sys.stderr)
    write_predictions_csv(result.paths, result.probs, args.out)
    if args.out:
        print(f"wrote {len(result.paths)} rows to {args.out}", file=sys.stderr)
    if result.failures:
        print(f"chexnet predict: {len(result.failures)} of {len(found.paths)} files could not be read", file=sys.stderr)
    return 1 if result.failures or found.unlistable else 0


def _register_import(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Convert published weights into a chexnet checkpoint that 'chexnet serve --checkpoint OUT' serves as it is: "
        "arnoweng/CheXNet's model.pth.tar, or a torchxrayvision DenseNet-121 state dict. Read with "
        "weights_only=True, mapped key for key and loaded strictly; nothing is downloaded. Exit status 1 for a "
        "file that matches no layout or lacks one of the 14 classes."
    )
    p.add_argument("--from", dest="source", choices=["arnoweng", "torchxrayvision"], required=True)
    p.add_argument("src", type=Path, metavar="SRC", help="the downloaded weights file")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    p.add_argument("--name", help="model name shown by the service (default: from the source)")
    p.add_argument("--model-version", help="model version shown by the service (default: the chexnet version)")
    p.add_argument(
        "--xrv-weights",
        metavar="NAME",
        help="which torchxrayvision weights (all, nih, pc, chex, rsna, mimic_nb, mimic_ch); default: told from "
        "the release file's name",
    )
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=_run_import)


def _run_import(args: argparse.Namespace) -> int:
    from models.errors import ModelContractError
    from training.import_weights import ImportRequest, run_import

    if args.out.exists() and not args.overwrite:
        print(f"chexnet import: {args.out} exists (pass --overwrite to replace it)", file=sys.stderr)
        return EXIT_USAGE
    if args.xrv_weights is not None and args.source != "torchxrayvision":
        print("chexnet import: --xrv-weights goes with --from torchxrayvision", file=sys.stderr)
        return EXIT_USAGE
    request = ImportRequest(args.source, args.src, args.out, args.name, args.model_version, args.xrv_weights)
    try:
        checkpoint = run_import(request)
    except ModelContractError as exc:
        print(f"chexnet import: {exc}", file=sys.stderr)
        return 1
    spec, points, source = checkpoint.spec, checkpoint.operating_points, checkpoint.provenance["source"]
    geometry = "centred square, resized" if spec.crop_first else f"shorter side {spec.resize}, centre crop"
    print(f"wrote {args.out}: {checkpoint.provenance['model_name']} from {source['file']} (sha256 {source['sha256']})")
    print(f"  input: {geometry} {spec.image_size} px, mean {list(spec.mean)}, std {list(spec.std)}")
    print(f"  operating point: {points.default if points else 'none'}")
    print(f"  serve it: chexnet serve --checkpoint {args.out}")
    return 0
