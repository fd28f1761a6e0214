"""Decode time of one 1024 x 1024 frame per compressed transfer syntax, for every installed pydicom plugin.

    python benchmarks/dicom_decoders.py [--repeat 5]

Used to choose the runtime decoders (see the commit that added them).  The frame is the bundled real chest
X-ray DICOM (8-bit) spread to 12 bits with a little noise, so the codestreams are like real 12-bit CR/DX
data; it is encoded with GDCM (pydicom for RLE) and decoded by each plugin pydicom finds for the syntax.
Prints the best of ``--repeat`` decodes in milliseconds, whether each plugin's pixels equal the original
(lossless syntaxes), and the codestream size.  Needs python-gdcm; other plugins are timed when installed.

Known gap: GDCM's encoder writes 12-bit JPEG extended (.51) with a 16-bit frame precision, which every decoder
rightly rejects ("failed" rows).  The .51 figure in the commit (GDCM read directly, as models/imaging/dicom_codecs.py
does, 30 ms, equal to libjpeg-turbo) came from a codestream made by imagecodecs.jpeg8_encode(bitspersample=12).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom import uid
from pydicom.pixels import pixel_array
from pydicom.pixels.decoders.base import get_decoder

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "tests" / "fixtures" / "siim-cxr-monochrome2.dcm"

# transfer syntax -> (GDCM's name for it or None for pydicom's own RLE encoder, bits stored, lossless)
SYNTAXES: dict[str, tuple[str | None, int, bool]] = {
    uid.JPEGBaseline8Bit: ("JPEGBaselineProcess1", 8, False),
    uid.JPEGExtended12Bit: ("JPEGExtendedProcess2_4", 12, False),
    uid.JPEGLossless: ("JPEGLosslessProcess14", 12, True),
    uid.JPEGLosslessSV1: ("JPEGLosslessProcess14_1", 12, True),
    uid.JPEGLSLossless: ("JPEGLSLossless", 12, True),
    uid.JPEGLSNearLossless: ("JPEGLSNearLossless", 12, False),
    uid.JPEG2000Lossless: ("JPEG2000Lossless", 12, True),
    uid.JPEG2000: ("JPEG2000", 12, False),
    uid.RLELossless: (None, 12, True),
}


def make_frame(bits: int) -> npt.NDArray[np.uint16]:
    """(1024, 1024) uint16 with ``bits`` significant bits: the real X-ray, spread out, plus noise."""
    stored = pydicom.dcmread(SOURCE).pixel_array.astype(np.int64)
    rng = np.random.default_rng(0)
    scale = (2**bits - 1) / 255.0
    values = stored * scale + rng.normal(0.0, 2.0 * scale / 16, stored.shape)
    return np.clip(np.rint(values), 0, 2**bits - 1).astype(np.uint16)


def native_dataset(frame: npt.NDArray[np.uint16], bits: int) -> pydicom.Dataset:
    ds = pydicom.dcmread(SOURCE)
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits - 1, 0
    ds.PixelData = frame.astype(np.uint8 if bits == 8 else "<u2").tobytes()
    return ds


def encode(frame: npt.NDArray[np.uint16], bits: int, syntax: str, gdcm_name: str | None) -> bytes:
    ds = native_dataset(frame, bits)
    if gdcm_name is None:
        ds.compress(syntax, encoding_plugin="pydicom")
        buffer = BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()
    import gdcm

    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder, "in.dcm"), Path(folder, "out.dcm")
        ds.save_as(source)
        reader = gdcm.ImageReader()
        reader.SetFileName(str(source))
        if not reader.Read():
            raise RuntimeError("GDCM could not read the native file")
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, gdcm_name)))
        change.SetInput(reader.GetImage())
        if not change.Change():
            raise RuntimeError(f"GDCM could not encode {gdcm_name}")
        writer = gdcm.ImageWriter()
        writer.SetFileName(str(target))
        writer.SetFile(reader.GetFile())
        writer.SetImage(change.GetOutput())
        if not writer.Write():
            raise RuntimeError("GDCM could not write")
        return target.read_bytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    for syntax, (gdcm_name, bits, lossless) in SYNTAXES.items():
        frame = make_frame(bits)
        data = encode(frame, bits, syntax, gdcm_name)
        size = len(pydicom.dcmread(BytesIO(data)).PixelData)
        for plugin in get_decoder(syntax).available_plugins:
            best, pixels = float("inf"), None
            for _ in range(args.repeat):
                start = time.perf_counter()
                try:
                    pixels = pixel_array(BytesIO(data), decoding_plugin=plugin)
                except Exception as exc:
                    print(f"{syntax:24} {plugin:10} failed: {type(exc).__name__}")  # noqa: T201
                    break
                best = min(best, time.perf_counter() - start)
            if pixels is None:
                continue
            diff = int(np.abs(pixels.astype(np.int64) - frame).max())
            verdict = ("exact" if diff == 0 else f"DIFFERS by {diff}") if lossless else f"max error {diff}"
            print(f"{syntax:24} {plugin:10} {best * 1e3:7.1f} ms  {verdict:16} {size / 1024:6.0f} KiB")  # noqa: T201


if __name__ == "__main__":
    main()
