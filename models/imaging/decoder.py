"""The one decoder every entry point uses: image file bytes (or a path) -> :class:`DecodedImage`.

The service (``POST /predict``, ``/gradcam``), ``chexnet predict``, ``chexnet evaluate`` and the training
dataset all call :func:`decode_image`, so the same file gives the same pixels everywhere (how a file becomes
pixels is part of the preprocessing contract: reading it differently in training and serving is train/serve
skew).  :func:`probe_image` reads only the header, for checking a whole dataset before training.

The format is judged by the content only, never by file name or content type.  Failures raise the typed
errors of :mod:`models.imaging.errors`, each with a stable ``code`` and a message for a person.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from io import BytesIO
from typing import BinaryIO, Final

from models.imaging.decoded import DEFAULT_LIMITS, DecodedImage, DecodeLimits, ImageHeader, check_dimensions
from models.imaging.errors import InvalidImageError, UnreadableFileError, UnsupportedFormatError
from models.imaging.formats import FORMATS, ImageFormat

__all__ = [
    "DEFAULT_LIMITS",
    "SNIFF_BYTES",
    "DecodeLimits",
    "DecodedImage",
    "ImageHeader",
    "check_dimensions",
    "decode_image",
    "probe_image",
    "read_image_bytes",
    "sniff_format",
]

SNIFF_BYTES: Final = 1024  # enough for every magic number and a preamble-less DICOM's first elements


def sniff_format(data: bytes) -> str:
    """``"png"``, ``"jpeg"`` or ``"dicom"`` (a registered format's name) from the first bytes.

    Each format in :data:`models.imaging.formats.FORMATS` is asked in turn.  DICOM is recognised by its Part-10
    preamble ("DICM" at offset 128), or without one when the stream begins with a well-formed group 0002 or 0008
    element (see :func:`models.imaging.dicom.looks_like_dicom`).  Raises :class:`InvalidImageError` (empty) or
    :class:`UnsupportedFormatError`.
    """
    return _sniff(data).name


def _sniff(data: bytes) -> ImageFormat:
    if not data:
        raise InvalidImageError("The file is empty.")
    for image_format in FORMATS:
        if image_format.sniff(data):
            return image_format
    raise UnsupportedFormatError()


@contextmanager
def _file_errors() -> Iterator[None]:
    """OSErrors of opening or reading a file as :class:`UnreadableFileError`, without the path."""
    try:
        yield
    except FileNotFoundError as exc:
        raise UnreadableFileError("The file does not exist.") from exc
    except PermissionError as exc:
        raise UnreadableFileError("The file cannot be read: permission denied.") from exc
    except OSError as exc:
        raise UnreadableFileError(f"The file could not be read ({exc.strerror or 'I/O error'}).") from exc


def _open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """The file opened for reading if it is a regular file: a FIFO would block, and a device never ends."""
    with _file_errors():
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise UnreadableFileError("This is a folder, not a file.")
        if not stat.S_ISREG(mode):
            raise UnreadableFileError("This is not a regular file (a pipe, socket or device).")
        return open(path, "rb")


def read_image_bytes(path: str | os.PathLike[str]) -> bytes:
    """A regular file's bytes; raises :class:`UnreadableFileError` (missing, a folder, a pipe or device, no
    permission), whose message never contains the path.
    """
    with _open_regular(path) as handle, _file_errors():
        return handle.read()


def decode_image(source: bytes | str | os.PathLike[str], limits: DecodeLimits = DEFAULT_LIMITS) -> DecodedImage:
    """PNG, JPEG or DICOM bytes, or a path to such a file -> :class:`DecodedImage` ((H, W) float32 in [0, 1]).

    Every limit is checked from the header before pixel data is decoded.  Raises an
    :class:`~models.imaging.errors.InputError` subclass: ``unsupported_format``, ``invalid_image``,
    ``image_too_small``, ``extreme_aspect_ratio``, ``decompression_bomb``, ``multi_frame``,
    ``unsupported_compression`` or (for a path) ``unreadable_file``.
    """
    data = source if isinstance(source, bytes) else read_image_bytes(source)
    return _sniff(data).decode(data, limits)


def probe_image(source: bytes | str | os.PathLike[str], limits: DecodeLimits = DEFAULT_LIMITS) -> ImageHeader:
    """Format and size from the header alone (about a millisecond a file), with the checks of :func:`decode_image`.

    Checks the format, the limits, frames, and for DICOM the photometric interpretation and whether an installed
    decoder reads its transfer syntax.  Only the header is read; pixel data is not decoded, so a file that passes
    may still fail to decode (a truncated body, say).  Raises the same errors as :func:`decode_image`.
    """
    if isinstance(source, bytes):
        return _probe_stream(BytesIO(source), limits)
    with _open_regular(source) as handle:
        return _probe_stream(handle, limits)


def _probe_stream(stream: BinaryIO, limits: DecodeLimits) -> ImageHeader:
    with _file_errors():
        head = stream.read(SNIFF_BYTES)
        stream.seek(0)
    return _sniff(head).probe(stream, limits)
