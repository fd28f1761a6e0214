"""Image files named on the command line, or found in folders: which entries are pictures to predict.

Folders are searched by content, not by suffix (DICOM files often have none): an entry is predicted when its first
bytes are PNG, JPEG or DICOM, or when its name says it is an image (``.png .jpg .jpeg .dcm .dicom``) though its
bytes are not one, so that predicting it names the file with the reason instead of passing over it. A DICOM file
without pixel data (a DICOMDIR, a presentation state, an SR or key-object document: an archive's index and notes
beside its images) is passed over when a folder is walked, and counted; named on the command line, it is an error
like any file that holds no image.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from models.imaging.decoder import SNIFF_BYTES, sniff_format
from models.imaging.errors import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom"})
# Pixel Data, Float Pixel Data, Double Float Pixel Data (PS3.3 C.7.6.3): a file with none of them holds no image
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)


class NoImagesFoundError(FileNotFoundError):
    """The given paths hold no file to predict; the text says where to look (``--recursive``)."""


@dataclass
class FoundImages:
    """The files to predict, in order; folder entries passed over (not images, not regular files), of which
    ``without_pixels`` are DICOM files holding no image; subfolders not searched; folders that could not be
    listed, with the reason."""

    paths: list[Path] = field(default_factory=list)
    skipped: int = 0
    without_pixels: int = 0
    subfolders: int = 0
    unlistable: list[tuple[Path, str]] = field(default_factory=list)


def has_pixel_data(path: Path) -> bool:
    """Whether a DICOM file carries pixel data; True when it cannot be parsed (the decoder then names the reason).

    Reads element headers only: the pixel data's value is skipped (``defer_size``), so a large image costs little.
    """
    try:
        dataset = pydicom.dcmread(path, force=True, defer_size=1024, specific_tags=list(PIXEL_DATA_TAGS))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, AttributeError):
        return True
    return any(tag in dataset for tag in PIXEL_DATA_TAGS)


def entry_kind(path: Path) -> str:
    """``"image"`` (predict it), ``"no_pixels"`` (a DICOM file without an image) or ``"other"`` (pass over).

    A file that cannot be opened (no permission) or is empty counts as an image, so that predicting it names the
    file with the reason instead of passing over it without a word.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return "image"
    if not head:
        return "image"
    try:
        kind = sniff_format(head)
    except InputError:
        return "image" if path.suffix.lower() in IMAGE_SUFFIXES else "other"
    if kind == "dicom" and not has_pixel_data(path):
        return "no_pixels"
    return "image"


def _add_folder(found: FoundImages, folder: Path, recursive: bool, visited: set[Path]) -> None:
    """Add ``folder``'s image files (sorted; hidden entries left out), and with ``recursive`` its subfolders'.

    A folder reached twice through symbolic links is searched once; one that cannot be listed is recorded.
    """
    real = folder.resolve()
    if real in visited:
        return
    visited.add(real)
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        reason = "permission denied" if isinstance(exc, PermissionError) else (exc.strerror or "I/O error")
        found.unlistable.append((folder, f"The folder cannot be listed: {reason}."))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if recursive:
                _add_folder(found, entry, recursive, visited)
            else:
                found.subfolders += 1
            continue
        kind = entry_kind(entry) if entry.is_file() else "other"  # a pipe, a dangling link: passed over
        if kind == "image":
            found.paths.append(entry)
        else:
            found.skipped += 1
            found.without_pixels += kind == "no_pixels"


def collect_images(paths: Iterable[Path], recursive: bool = False) -> FoundImages:
    """Files as given (each is checked when decoded, so a missing one is reported, not fatal); folders expanded
    to their image files (see the module docstring); with ``recursive`` subfolders too (symbolic links are
    followed, each folder searched once). Raises :class:`NoImagesFoundError` when nothing at all is found.
    """
    found = FoundImages()
    visited: set[Path] = set()
    for path in paths:
        if path.is_dir():
            _add_folder(found, path, recursive, visited)
        else:
            found.paths.append(path)
    if not found.paths and not found.unlistable:
        hint = f" ({found.subfolders} subfolders were not searched: use --recursive)" if found.subfolders else ""
        raise NoImagesFoundError(f"no PNG, JPEG or DICOM images found in the given paths{hint}")
    return found
