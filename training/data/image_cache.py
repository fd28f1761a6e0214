"""``chexnet train --image-cache DIR``: each image decoded and resized once, the random crop and flip every epoch.

A 1024 × 1024 NIH PNG takes about 10 ms to decode, and the resize to 256 px about 1.3 ms more, while the random
crop, flip and normalisation of the resized image take 0.1 ms.  The decode and the resize depend only on the
file and the preprocessing, so the cache keeps their result, the (h, w) float32 image that
:func:`models.preprocessing.resized_gray` returns.  Every transform of that image equals the transform of the
full-resolution one, so the tensors a cached run produces are identical to those of an uncached run
(``torch.equal``, for the train transform under the same seeds and for the eval transform).  float32 is kept
because anything more compact (uint8, float16) would round the resized pixels and break that.

Layout: ``DIR/<pipeline>/<ab>/<content>.f32`` with a ``pipeline.json`` beside the entries.

- ``<pipeline>`` is 16 hex digits of a SHA-256 over what determines the pixels: the resize size and
  interpolation, the source of the decoder and preprocessing modules, the versions of the libraries they call,
  and the vector instruction set torch's kernels use here (a folder shared between machines stays exact).
  Another ``--image-size``, an edited decoder or an upgraded torch reads other entries, never stale ones.
- ``<content>`` is the SHA-256 of the file's bytes: an edited file gets a new entry, a renamed one hits.
- An entry is a header (magic, format, original and resized size, the full key, a CRC-32 of the whole entry)
  and the pixels as little-endian float32.  It is written to a temporary file in the same folder and renamed
  over the entry, so a reader sees a whole entry or none, whatever DataLoader workers or processes run at once.
  An entry whose size, header, key or checksum does not match is decoded again and replaced, never trusted.  A
  killed run can leave a ``.tmp`` file per worker; they are never read and may be deleted.

Hitting the cache still reads and hashes the file (about 0.2 ms for a 400 KB PNG): the content decides the key,
not a name or a modification time that a copy can keep.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

import models.imaging
import models.preprocessing
from models.files import files_sha256, write_bytes_atomically
from models.imaging.decoder import decode_image, read_image_bytes
from models.preprocessing import PreprocessSpec, resized_gray, resized_hw

logger = logging.getLogger(__name__)

CACHE_FORMAT: Final = 1
MAGIC: Final = b"CXRCACHE"
# magic, format, original height, width, resized height, width, SHA-256 key; then CRC-32 of all before and after
HEADER: Final = struct.Struct("<8sIIIII32sI")
# What turns a file into resized pixels: every source file of the decoder package and the preprocessing module
# (a new format module is covered without being listed), and these libraries. A change in any makes a new pipeline.
IMAGING_PACKAGE: Final = Path(models.imaging.__file__).parent
PIPELINE_SOURCES: Final = (Path(models.preprocessing.__file__),)
LIBRARIES: Final = ("torch", "numpy", "pillow", "simplejpeg", "pydicom", "pylibjpeg", "pylibjpeg-libjpeg",
                    "pylibjpeg-openjpeg", "pylibjpeg-rle", "imagecodecs", "python-gdcm")  # fmt: skip


def describe_pipeline(spec: PreprocessSpec) -> dict[str, Any]:
    """Everything the cached pixels depend on, as plain types (written to ``pipeline.json``)."""
    sources = [*IMAGING_PACKAGE.rglob("*.py"), *PIPELINE_SOURCES]
    source_sha256 = files_sha256(sources, IMAGING_PACKAGE.parent)
    libraries: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            libraries[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libraries[name] = None
    return {
        "format": CACHE_FORMAT,
        "resize": spec.resize,
        "interpolation": spec.interpolation,
        "decoder_source_sha256": source_sha256,
        "libraries": libraries,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),  # torch's vector kernels round differently
    }


class ResizedImageCache:
    """Files -> ``resized_gray(spec, decode_image(file).gray)``, decoded once and then read from ``root``."""

    def __init__(self, root: Path, spec: PreprocessSpec) -> None:
        self.spec = spec
        pipeline = describe_pipeline(spec)
        digest = hashlib.sha256(json.dumps(pipeline, sort_keys=True).encode()).digest()
        self.pipeline_key = digest
        self.folder = root / digest.hex()[:16]
        self.folder.mkdir(parents=True, exist_ok=True)
        if not (self.folder / "pipeline.json").is_file():
            write_bytes_atomically(self.folder / "pipeline.json", json.dumps(pipeline, indent=2).encode() + b"\n")
        self._write_failed = False

    def resized_gray(self, path: Path) -> np.ndarray:
        """(h, w) float32 in [0, 1], the resized image; raises :class:`~models.imaging.errors.InputError` like
        :func:`models.imaging.decoder.decode_image` for a file that cannot be used (failures are never cached).
        """
        data = read_image_bytes(path)
        content = hashlib.sha256(data).digest()
        key = hashlib.sha256(self.pipeline_key + content).digest()
        entry = self.folder / content.hex()[:2] / f"{content.hex()}.f32"
        pixels, problem = self._read(entry, key)
        if pixels is not None:
            return pixels
        if problem is not None:
            logger.warning("image cache: an entry failed its check (%s); decoding the image again", problem)
        gray = decode_image(data).gray
        pixels = resized_gray(self.spec, gray)
        fields = HEADER.pack(MAGIC, CACHE_FORMAT, *gray.shape, *pixels.shape, key, 0)[:-4]
        payload = pixels.astype("<f4", copy=False).tobytes()
        self._store(entry, fields + struct.pack("<I", zlib.crc32(payload, zlib.crc32(fields))) + payload)
        return pixels

    def _read(self, entry: Path, key: bytes) -> tuple[np.ndarray | None, str | None]:
        """(pixels, None) for a sound entry; (None, None) when there is none; (None, why) when it is unusable."""
        try:
            with open(entry, "rb") as handle:
                header = handle.read(HEADER.size)
                if len(header) < HEADER.size:
                    return None, "truncated header"
                magic, fmt, height, width, rh, rw, stored_key, crc = HEADER.unpack(header)
                if magic != MAGIC or fmt != CACHE_FORMAT or stored_key != key:
                    return None, "not an entry of this key"
                if min(height, width) < 1 or (rh, rw) != resized_hw(self.spec, height, width):
                    return None, "wrong size"
                if os.fstat(handle.fileno()).st_size != HEADER.size + rh * rw * 4:
                    return None, "wrong length"  # checked before allocating: a damaged size could be huge
                pixels = np.empty((rh, rw), dtype="<f4")
                if handle.readinto(pixels.data.cast("B")) != pixels.nbytes:
                    return None, "wrong length"
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, exc.strerror or "read error"
        if zlib.crc32(pixels.data, zlib.crc32(header[:-4])) != crc:
            return None, "checksum mismatch"
        return pixels.astype(np.float32, copy=False), None

    def _store(self, entry: Path, data: bytes) -> None:
        """Write the entry atomically; a full or read-only disk is logged once per process, then training goes on."""
        try:
            entry.parent.mkdir(exist_ok=True)
            write_bytes_atomically(entry, data, durable=False)  # an entry carries its own CRC; a lost one is redone
        except OSError as exc:
            if not self._write_failed:
                logger.warning("image cache: cannot store entries (%s); continuing without them", exc.strerror)
                self._write_failed = True
