"""``--tensorboard``: the epoch records as TensorBoard scalars in ``OUT/tensorboard`` (optional package).

The step of each scalar is the epoch number (1-based, as in metrics.csv). A resumed run purges the steps from the
one it resumes at, so epochs repeated after an interruption are not drawn twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from training.reports.run_files import TENSORBOARD_DIR


class TensorBoardLog:
    """Writes each finished epoch's record; ``close`` flushes the event file."""

    def __init__(self, out: Path, first_epoch: int) -> None:
        """``first_epoch``: the 1-based epoch this process trains first (1 for a new run)."""
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package (checked by validate)

        purge = first_epoch if first_epoch > 1 else None
        self.writer = SummaryWriter(log_dir=str(out / TENSORBOARD_DIR), purge_step=purge)

    def add_epoch(self, record: dict[str, Any]) -> None:
        step = record["epoch"]
        scalars = {
            "loss/train": record["train_loss"],
            "loss/validation": record["val_loss"],
            "auroc/mean": record["val_mean_auroc"],
            **{f"auroc/{name}": value for name, value in record["val_auroc"].items()},
            **{f"auroc_dataset/{name}": v for name, v in (record.get("val_dataset_mean_auroc") or {}).items()},
            "lr": record["lr"],
            "seconds": record.get("seconds"),
        }
        for tag, value in scalars.items():
            if value is not None:  # an undefined AUROC is left out, not drawn as 0
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
