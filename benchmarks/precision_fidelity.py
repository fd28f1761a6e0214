"""The bundled demo model at bf16 and int8 against fp32, on its own 100-image validation split.

    .venv/bin/python -m benchmarks.precision_fidelity [--data ../shared/data/nih-sample] [--out runs/precision]

Recreates the demo run's validation list (split by patient, the seed and fraction its checkpoint records), makes
an int8 model with ``chexnet quantize`` calibrated on those images, then runs ``chexnet evaluate --precision P
--against fp32`` for bf16 and int8 and prints each fidelity table (per-class AUROC change, largest |dp|, findings
that flip at the stored operating points). Needs ../shared/data (the NIH sample); about 2 minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import chexnet_cli
from models.bundled import DEMO_CHECKPOINT
from models.checkpoint import load_checkpoint
from training.data.label_tables import read_label_table
from training.data.splits import split_by_patient

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "nih-sample")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "precision")
    args = parser.parse_args(argv)
    labels, images, out = args.data / "Data_Entry_sample.csv", args.data / "images", args.out
    out.mkdir(parents=True, exist_ok=True)
    config = load_checkpoint(DEMO_CHECKPOINT).config
    table = read_label_table(labels)
    _, val = split_by_patient(table, config["val_fraction"], config["seed"])
    split_list = out / "val_list.txt"
    split_list.write_text("".join(f"{table.image_names[i]}\n" for i in val))
    common = ["--labels", str(labels), "--split-list", str(split_list), "--device", "cpu"]
    int8 = out / "demo-int8"
    status = chexnet_cli.main(
        ["quantize", "--checkpoint", str(DEMO_CHECKPOINT), "--images", str(images), "--labels", str(labels),
         "--split-list", str(split_list), "--out", str(int8), "--overwrite", "--max-auroc-drop", "1"]
    )  # fmt: skip
    if status != 0:
        raise SystemExit(status)
    summary = {}
    for precision in ("bf16", "int8"):
        extra = ["--int8-model", str(int8)] if precision == "int8" else []
        folder = out / f"eval-{precision}"
        argv_eval = ["evaluate", "--checkpoint", str(DEMO_CHECKPOINT), "--images", str(images), *common]
        argv_eval += ["--precision", precision, *extra, "--against", "fp32", "--bootstrap", "0", "--out", str(folder)]
        if chexnet_cli.main(argv_eval) != 0:
            raise SystemExit(1)
        fidelity = json.loads((folder / "metrics.json").read_text())["fidelity_against_fp32"]
        summary[precision] = {
            "max_abs_dp": fidelity["max_abs_dp"],
            "mean_auroc_drop": fidelity["mean_auroc_drop"],
            "flips": {point: sum(counts.values()) for point, counts in fidelity["flips"].items()},
        }
    print(json.dumps(summary, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
