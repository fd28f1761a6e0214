"""Peak memory of one upload's CPU work (decode + preprocess + overlay base), per pixel, by input kind.

    python -m benchmarks.request_memory [--megapixels 20]

Each case runs in a fresh process, which decodes one synthetic image of ``--megapixels`` and builds the model
input (224 px spec) and the 1024 px overlay base, exactly as ``app.inference.decode.prepare_image`` does; the process's
peak resident memory (VmHWM) minus its resident memory just before is divided by the pixel count. The
largest of these is the per-pixel constant README's memory bound uses. Files are flat or smooth, so they are
small on disk, like a decompression bomb within the pixel cap.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

CASES = ("png8", "png16", "png_rgb", "jpeg", "dicom16")


def vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def make_file(kind: str, side: int) -> bytes:
    ramp = (np.add.outer(np.arange(side), np.arange(side)) % 4096).astype(np.uint16)
    buffer = io.BytesIO()
    if kind == "png8":
        Image.fromarray((ramp >> 4).astype(np.uint8)).save(buffer, format="PNG")
    elif kind == "png16":
        Image.fromarray(ramp.astype(np.uint16)).save(buffer, format="PNG")
    elif kind == "png_rgb":
        Image.fromarray(np.repeat((ramp >> 4).astype(np.uint8)[..., None], 3, axis=-1)).save(buffer, format="PNG")
    elif kind == "jpeg":
        Image.fromarray((ramp >> 4).astype(np.uint8)).save(buffer, format="JPEG", quality=90)
    else:
        from pydicom.dataset import FileDataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "DX", side, side, 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = ramp.astype("<u2").tobytes()
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def measure_one(kind: str, megapixels: float) -> dict[str, float]:
    """In this process: the peak resident growth of preparing one image of ``kind``."""
    import torch

    from app.inference.decode import prepare_image
    from models.imaging.decoder import DecodeLimits
    from models.preprocessing import PreprocessSpec

    torch.set_num_threads(1)
    side = int((megapixels * 1e6) ** 0.5)
    data = make_file(kind, side)
    spec, limits = PreprocessSpec(image_size=224, resize=256), DecodeLimits(max_pixels=side * side + 1)
    prepare_image(make_file(kind, 256), spec, limits, 1024)  # warm: imports, allocator pools, thread pools
    before = vm_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS (Linux >= 4.0)
    prepare_image(data, spec, limits, 1024)
    peak = vm_kib("VmHWM")
    pixels = side * side
    return {"pixels": pixels, "file_bytes": len(data), "peak_growth_mib": (peak - before) / 1024,
            "bytes_per_pixel": (peak - before) * 1024 / pixels}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=20.0)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child process's own case
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure_one(args.case, args.megapixels)))  # noqa: T201
        return
    worst = 0.0
    for kind in CASES:
        command = [
            sys.executable,
            "-m",
            "benchmarks.request_memory",
            "--case",
            kind,
            "--megapixels",
            str(args.megapixels),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        worst = max(worst, result["bytes_per_pixel"])
        print(  # noqa: T201
            f"{kind:8s} {result['pixels'] / 1e6:5.1f} MP, file {result['file_bytes'] / 1e6:7.2f} MB: "
            f"peak +{result['peak_growth_mib']:7.1f} MiB = {result['bytes_per_pixel']:5.1f} bytes per pixel"
        )
    print(f"largest: {worst:.1f} bytes per pixel")  # noqa: T201


if __name__ == "__main__":
    main()
