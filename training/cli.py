"""Argument parsing for ``chexnet train | evaluate | calibrate | predict``; heavy imports happen when a command runs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from models.operating_points import DEFAULT_SPECIFICITY  # plain data and numpy: light enough for argument parsing

logger = logging.getLogger(__name__)


def register(commands: Any) -> None:
    """Add the training-side subcommands to the top-level ``chexnet`` parser."""
    _register_train(commands.add_parser("train", help="train CheXNet on a labels CSV and an image folder"))
    _register_evaluate(
        commands.add_parser("evaluate", help="per-class AUROC with bootstrap CIs, PR-AUC, operating points, ROC curves")
    )
    _register_calibrate(
        commands.add_parser("calibrate", help="write operating points (and a temperature) into a new checkpoint")
    )
    _register_predict(commands.add_parser("predict", help="write a CSV of the model's probabilities for images"))
    _register_import(commands.add_parser("import", help="make a chexnet checkpoint from published CheXNet/xrv weights"))
    _register_localize(commands.add_parser("localize", help="score Grad-CAM against NIH's radiologist boxes"))
    _register_quantize(commands.add_parser("quantize", help="an int8 CPU model calibrated and measured on your X-rays"))


def _register_train(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train DenseNet-121, one sigmoid output per label (BCE on logits over known labels). Defaults follow the "
        "seed recipe: Adam 1e-4, ReduceLROnPlateau (x0.1, patience 2), random crop + horizontal flip, 224 px. "
        "Under torchrun it trains with DistributedDataParallel."
    )
    p.add_argument("--images", type=Path, help="folder holding the images named in the label table")
    p.add_argument(
        "--labels", type=Path, help="label table: NIH Data_Entry_2017, one-hot, CheXpert, MIMIC-CXR or generic CSV"
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="KIND:LABELS:IMAGES",
        help="a label table and its image folder (KIND: auto, nih, onehot, chexpert, mimic, generic); repeat it to "
        "train on several datasets at once (instead of --labels/--images)",
    )
    p.add_argument(
        "--label-set",
        metavar="NAME|FILE",
        help="the model's labels: nih, chexpert, mimic, or a file with one label a line (default: the union of the "
        "tables' labels, aligned by name)",
    )
    _add_table_options(p)
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="share of patients held out as a test split (OUT/test_list.txt), never used for model or threshold "
        "selection",
    )
    p.add_argument("--test-list", type=Path, help="file of test image names (with --train-list and --val-list)")
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
    run.add_argument(
        "--resume",
        nargs="?",
        const=True,
        type=_resume_mode,
        metavar="auto",
        help="continue the run in OUT from OUT/last.pt with the options it recorded (given again, they must agree; "
        "--epochs, --workers, --device, --image-cache, --tensorboard may change); --resume auto: continue when "
        "OUT/last.pt exists, else start the run (the same command for every torchrun restart; docs/scale-training.md)",
    )
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
    _only_given_options(p)


def _resume_mode(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (--resume alone, or --resume auto)")
    return text


def _only_given_options(p: argparse.ArgumentParser) -> None:
    """Leave options not given out of the parsed arguments, so that --resume can tell an option given again from a
    default (the run's recorded options fill them); --help still names each default."""
    for action in p._actions:
        if not action.option_strings or action.dest in ("help", "run"):
            continue
        if action.default is not None and action.default is not False and "(default" not in (action.help or ""):
            action.help = f"{action.help} (default: {action.default})"
        action.default = argparse.SUPPRESS


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


def _add_table_options(p: argparse.ArgumentParser) -> None:
    """How a label table is read: format, views, uncertain and blank policies, generic columns (docs/datasets.md)."""
    p.add_argument(
        "--format",
        dest="table_format",
        choices=["nih", "onehot", "chexpert", "mimic", "generic"],
        help="the label table's format (default: detected from its header)",
    )
    p.add_argument(
        "--views",
        choices=["frontal", "pa", "ap", "lateral", "all"],
        default="frontal",
        help="CheXpert / MIMIC-CXR views kept; frontal is PA and AP",
    )
    p.add_argument(
        "--uncertain",
        choices=["ignore", "zeros", "ones"],
        default="ignore",
        help="uncertain (-1) labels: ignore = unknown, masked (U-Ignore); zeros (U-Zeros); ones (U-Ones)",
    )
    p.add_argument(
        "--blank",
        choices=["ignore", "zeros"],
        help="blank (not mentioned) labels: ignore = unknown, or zeros (default: the format's convention: zeros for "
        "CheXpert and MIMIC-CXR, ignore for one-hot and generic tables)",
    )
    p.add_argument("--image-column", help="generic tables: the column naming each image file")
    p.add_argument("--patient-column", help="generic tables: the column naming each image's patient")
    p.add_argument("--patient-pattern", help="generic tables: a regex with one group finding the patient in the path")


def _add_specificity(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--specificity",
        type=float,
        default=DEFAULT_SPECIFICITY,
        help=f"the specificity of the second operating point (0.90 -> spec90); {what}",
    )


def _run_train(args: argparse.Namespace) -> int:
    from training.data.dataset import UnreadableImageError
    from training.exit_status import run_command
    from training.loop.resume_options import train_config_from_options
    from training.train import run_training

    def train() -> int:
        best = run_training(train_config_from_options(_options(args)))
        print(f"best checkpoint: {best}")
        return 0

    def unreadable(exc: BaseException) -> str:
        again = "continue with --resume" if (args.out / "last.pt").is_file() else "run the command again"
        return f"cannot read image {str(exc).rstrip('.')}; stopped (fix it, then {again})"

    return run_command("train", train, {UnreadableImageError: unreadable})


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The command's own options: the parsed arguments less the parser's bookkeeping."""
    return {k: v for k, v in vars(args).items() if k not in ("run", "command", "log_level")}


def _register_evaluate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Evaluate a checkpoint on labelled images, or someone else's predictions CSV, against NIH-format labels: "
        "per-class AUROC with a patient-level bootstrap 95% CI; writes metrics.json, predictions.csv, roc.png."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", type=Path, help="a chexnet checkpoint")
    source.add_argument(
        "--predictions", type=Path, help="CSV: Image Index + a column per label (prob_ prefix optional)"
    )
    p.add_argument("--images", type=Path, help="image folder (with --checkpoint)")
    p.add_argument("--labels", type=Path, required=True, help="label table (any format chexnet train reads)")
    p.add_argument("--split-list", type=Path, help="evaluate only the image names listed in this file")
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8"],
        default="fp32",
        help="run the checkpoint as the service does at this precision: bf16/int8 through OpenVINO on the CPU, "
        "bf16/fp16 autocast on CUDA",
    )
    p.add_argument("--int8-model", type=Path, help="with --precision int8: the folder chexnet quantize wrote")
    p.add_argument(
        "--against",
        choices=["fp32"],
        help="also run fp32 and print the precision's fidelity: AUROC change per class, largest |dp|, flips",
    )
    _add_table_options(p)
    p.add_argument(
        "--per",
        default="image",
        metavar="image|study:max|study:mean",
        help="score per image, or per study with each study's views combined by max or mean (CheXpert, MIMIC-CXR)",
    )
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
    from training.data.dataset import UnreadableImageError
    from training.evaluate import EvaluateOptions, run_evaluate
    from training.exit_status import run_command, unreadable_image

    def hint(exc: BaseException) -> str:
        return f"{unreadable_image(exc)} (--skip-unreadable leaves such images out)"

    return run_command(
        "evaluate", lambda: run_evaluate(EvaluateOptions(**_options(args))), {UnreadableImageError: hint}
    )


def _register_calibrate(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Choose a checkpoint's operating points on labelled images (per class: the threshold maximising Youden's J, "
        "and the lowest threshold with the given specificity, with sensitivity, specificity, PPV and NPV), "
        "optionally after fitting a temperature (with a reliability diagram), and write them into a new checkpoint "
        "that the service uses for /predict's findings."
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint to calibrate (left unchanged)")
    p.add_argument("--images", type=Path, required=True, help="image folder")
    p.add_argument("--labels", type=Path, required=True, help="label table (any format chexnet train reads)")
    p.add_argument("--split-list", type=Path, help="use only the image names listed in this file")
    _add_table_options(p)
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
    from training.calibrate import CalibrateOptions, run_calibrate
    from training.exit_status import run_command

    return run_command("calibrate", lambda: run_calibrate(CalibrateOptions(**_options(args))))


def _register_predict(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Predict the probabilities for PNG, JPEG or DICOM files, or folders of them (found by content, not by "
        "suffix; a file named like an image that holds none is named with the reason; DICOM files without pixel "
        "data, such as DICOMDIR, are passed over in folders). Writes CSV: Image Index (file name), path, one "
        "column per label. Unreadable files are named on stderr with the reason; the others are predicted, and "
        "the exit status is 1."
    )
    p.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="image files or folders; or merge OUT SHARD... (join shard tables into OUT)",
    )
    p.add_argument("-r", "--recursive", action="store_true", help="search folders' subfolders too")
    p.add_argument("--checkpoint", type=Path, help="a chexnet checkpoint (default: the bundled demo model)")
    p.add_argument("--out", type=Path, help="CSV file to write (default: stdout)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when there is one")
    p.add_argument(
        "--operating-point",
        metavar="NAME",
        help="also write one finding_LABEL column per label: 1 when the probability (after the checkpoint's "
        "temperature) is at or above the threshold of the checkpoint's operating point NAME (youden, spec90, ...)",
    )
    _add_batch_options(p)
    p.set_defaults(run=_run_predict)


def _add_batch_options(p: argparse.ArgumentParser) -> None:
    """Batch scoring past one machine (docs/scale-scoring.md): any of these writes a resumable results table."""
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "int8"],
        default="fp32",
        help="run the checkpoint as the service does at this precision: bf16/int8 through OpenVINO on the CPU, "
        "bf16/fp16 autocast on CUDA (measure what it changes first: chexnet evaluate --against fp32)",
    )
    p.add_argument("--int8-model", type=Path, help="with --precision int8: the folder chexnet quantize wrote")
    batch = p.add_argument_group("batch scoring (docs/scale-scoring.md): a resumable table with an error column")
    batch.add_argument(
        "--list",
        dest="list_file",
        type=Path,
        metavar="FILE",
        help="the inputs: a text file (one path a line) or a Parquet file with a 'path' column, instead of PATHs",
    )
    batch.add_argument(
        "--root", type=Path, help="relative paths in --list are read under ROOT (default: the list file's folder)"
    )
    batch.add_argument("--shard", metavar="K/N", help="score shard K of N (1 <= K <= N), chosen by a hash of the path")
    batch.add_argument(
        "--resume", action="store_true", help="continue --out: skip the inputs already in it, append the others"
    )
    batch.add_argument(
        "--engine", choices=["local", "ray"], default="local", help="ray: a Ray cluster (pip install 'chexnet[ray]')"
    )
    batch.add_argument("--address", metavar="ADDR", help="with --engine ray: the cluster (default: a local one)")
    batch.add_argument("--actors", type=int, default=1, help="with --engine ray: model actors (one GPU each if any)")


def _run_predict(args: argparse.Namespace) -> int:
    from training.exit_status import run_command
    from training.predict import PredictOptions, run_predict

    return run_command("predict", lambda: run_predict(PredictOptions(**_options(args))))


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
    from training.exit_status import UsageError, run_command
    from training.import_weights import ImportRequest, run_import

    def import_weights() -> int:
        if args.out.exists() and not args.overwrite:
            raise UsageError(f"{args.out} exists (pass --overwrite to replace it)")
        if args.xrv_weights is not None and args.source != "torchxrayvision":
            raise UsageError("--xrv-weights goes with --from torchxrayvision")
        request = ImportRequest(args.source, args.src, args.out, args.name, args.model_version, args.xrv_weights)
        checkpoint = run_import(request)
        spec, points, source = checkpoint.spec, checkpoint.operating_points, checkpoint.provenance["source"]
        geometry = "centred square, resized" if spec.crop_first else f"shorter side {spec.resize}, centre crop"
        print(
            f"wrote {args.out}: {checkpoint.provenance['model_name']} from {source['file']} (sha256 {source['sha256']})"
        )
        print(f"  input: {geometry} {spec.image_size} px, mean {list(spec.mean)}, std {list(spec.std)}")
        print(f"  operating point: {points.default if points else 'none'}")
        print(f"  labels kept ({len(checkpoint.labels)}): {', '.join(checkpoint.labels)}")
        if source.get("dropped_outputs"):
            print(f"  outputs dropped, never trained: {', '.join(source['dropped_outputs'])}")
        print(f"  serve it: chexnet serve --checkpoint {args.out}")
        return 0

    return run_command("import", import_weights)


def _register_localize(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Score the checkpoint's Grad-CAM maps against NIH's radiologist boxes (BBox_List_2017.csv): boxes from each "
        "map by a named rule, accuracy and AFP at Wang et al.'s T(IoBB) and T(IoU) grids, pointing game, mean IoU, "
        "with patient-level bootstrap 95% CIs. Writes localization.json, localization.csv, a picture per case "
        "and contact-sheet.png; prints the table beside Wang et al.'s published ResNet-50 row. See "
        "docs/localization.md."
    )
    p.add_argument("--checkpoint", type=Path, help="a chexnet checkpoint (default: the bundled demo model)")
    p.add_argument("--images", type=Path, required=True, help="folder holding the box file's images by name")
    p.add_argument("--boxes", type=Path, required=True, help="BBox_List_2017.csv[.gz], or a folder of such files")
    p.add_argument("--out", type=Path, required=True, help="folder for the results")
    p.add_argument(
        "--rule",
        default="wang",  # checked by LocalizeOptions.check against models.cam_boxes.RULES (not imported here: torch)
        help="map -> boxes: wang (levels 60 and 180 of 255, both kept), wang-low, wang-high, half (0.5 of the peak)",
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="patient-level bootstrap resamples (0 = no CIs)")
    p.add_argument("--seed", type=int, default=0, help="seeds the bootstrap and the sanity check's weights")
    p.add_argument(
        "--sanity",
        action="store_true",
        help="also repeat the maps with the head, then dense block 4, then all weights randomised (cascading) "
        "and report Spearman and SSIM against the trained maps",
    )
    p.add_argument("--no-pictures", dest="pictures", action="store_false", help="write no pictures")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: cuda when there is one")
    p.set_defaults(run=_run_localize)


def _run_localize(args: argparse.Namespace) -> int:
    from models.bundled import DEMO_CHECKPOINT
    from training.exit_status import run_command
    from training.localize import LocalizeOptions, run_localize

    def localize() -> int:
        options = _options(args)
        options["checkpoint"] = options["checkpoint"] or Path(DEMO_CHECKPOINT)
        run_localize(LocalizeOptions(**options))
        return 0

    return run_command("localize", localize)


def _register_quantize(p: argparse.ArgumentParser) -> None:
    from training.quantize_policy import DEFAULT_MAX_AUROC_DROP, DEFAULT_MAX_IMAGES

    p.description = (
        "Quantize a checkpoint to int8 for the CPU (NNCF post-training quantization into an OpenVINO model), "
        "calibrated on your images and measured against fp32 on them: per-class AUROC change (with --labels), "
        "largest probability change, findings that flip at each operating point. Serve the result with "
        "'chexnet serve --precision int8 --int8-model OUT'. Exit status: 0 written, 1 a file cannot be used, "
        "2 invalid options, 3 refused (loses more mean AUROC than --max-auroc-drop; nothing written)."
    )
    p.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint to quantize")
    p.add_argument("--images", type=Path, required=True, help="folder of calibration X-rays")
    p.add_argument("--labels", type=Path, help="label table of those images: the AUROC change is measured on it")
    p.add_argument("--split-list", type=Path, help="only these image names of --labels (e.g. a run's val_list.txt)")
    p.add_argument("--out", type=Path, required=True, help="folder to write (model.xml, model.bin, manifest.json)")
    p.add_argument(
        "--max-images", type=int, default=DEFAULT_MAX_IMAGES, help="calibration images at most (seeded draw)"
    )
    p.add_argument(
        "--max-auroc-drop",
        type=float,
        default=DEFAULT_MAX_AUROC_DROP,
        help="refuse when the mean AUROC falls by more than this on the calibration images",
    )
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass when measuring")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration draw")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=_run_quantize)


def _run_quantize(args: argparse.Namespace) -> int:
    from training.exit_status import run_command
    from training.quantize import QuantizeOptions, run_quantize

    return run_command("quantize", lambda: run_quantize(QuantizeOptions(**_options(args))))
