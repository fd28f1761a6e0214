"""The fidelity table ``chexnet quantize`` and ``chexnet evaluate --against fp32`` print (the CLI may print)."""

from __future__ import annotations

from training.scoring.fidelity import Fidelity


def format_fidelity(fidelity: Fidelity, precision: str = "int8") -> str:
    """The table ``chexnet quantize`` and ``chexnet evaluate --against fp32`` print: one row per label."""
    points = list(fidelity.flips)
    header = f"{'label':<28} {'AUROC fp32':>10} {f'AUROC {precision}':>10} {'change':>8} {'max |dp|':>9}"
    header += "".join(f" {'flips@' + name:>14}" for name in points)
    lines = [header]
    change = fidelity.auroc_change
    for name in fidelity.labels:
        ref, other, delta = fidelity.auroc_reference[name], fidelity.auroc_other[name], change[name]
        row = f"{name[:28]:<28} {_num(ref):>10} {_num(other):>10} {_num(delta, signed=True):>8}"
        row += f" {fidelity.max_abs_dp_per_class[name]:>9.2e}"
        row += "".join(f" {fidelity.flips[point][name]:>14d}" for point in points)
        lines.append(row)
    drop = fidelity.mean_auroc_drop
    lines.append(
        f"{fidelity.images} images; largest |dp| {fidelity.max_abs_dp:.2e}; mean AUROC drop "
        + ("not measured (no labels)" if drop is None else f"{drop:+.4f}")
    )
    return "\n".join(lines)


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
