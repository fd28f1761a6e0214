"""Typed errors for image files that cannot be turned into an image, shared by every entry point.

Each error carries a stable machine-readable ``code`` and a fixed message for a person that is safe to show
anywhere: it never contains exception text, file names or DICOM header values (which may hold patient data).
The service maps :class:`UnsupportedFormatError` to 415 and every other :class:`InputError` to 422 (in
``app/errors.py``); the command line prints one line naming the file and the message.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AspectRatioError",
    "DecompressionBombError",
    "ImageTooSmallError",
    "InputError",
    "InvalidImageError",
    "MultiFrameError",
    "UnreadableFileError",
    "UnsupportedCompressionError",
    "UnsupportedFormatError",
]


class InputError(Exception):
    """Base class: an upload that cannot be decoded into a single grayscale image."""

    code: ClassVar[str] = "invalid_input"
    default_message: ClassVar[str] = "The uploaded file could not be used."

    def __init__(self, message: str | None = None) -> None:
        self.message: str = message if message is not None else self.default_message
        super().__init__(self.message)


class UnsupportedFormatError(InputError):
    """The bytes are not PNG, JPEG or DICOM (judged by magic bytes only)."""

    code: ClassVar[str] = "unsupported_format"
    default_message: ClassVar[str] = (
        "Unsupported file format: only PNG, JPEG and DICOM images are read. (A DICOM file must begin with the "
        "128-byte preamble and 'DICM', or, without them, with a group 0002 or 0008 element.)"
    )


class InvalidImageError(InputError):
    """Empty, corrupt, truncated or otherwise undecodable data."""

    code: ClassVar[str] = "invalid_image"
    default_message: ClassVar[str] = "The image could not be decoded; the file may be empty, corrupt or truncated."


class ImageTooSmallError(InputError):
    """A side is shorter than the minimum."""

    code: ClassVar[str] = "image_too_small"
    default_message: ClassVar[str] = "The image is too small."


class AspectRatioError(InputError):
    """Longer side / shorter side exceeds the limit."""

    code: ClassVar[str] = "extreme_aspect_ratio"
    default_message: ClassVar[str] = "The image is too elongated to be a chest X-ray."


class DecompressionBombError(InputError):
    """More pixels than allowed (our cap, or Pillow's decompression-bomb threshold)."""

    code: ClassVar[str] = "decompression_bomb"
    default_message: ClassVar[str] = "The image has too many pixels."


class MultiFrameError(InputError):
    """A multi-frame DICOM, animated PNG or other multi-frame image."""

    code: ClassVar[str] = "multi_frame"
    default_message: ClassVar[str] = "Multi-frame images are not supported: only single images are read."


class UnsupportedCompressionError(InputError):
    """A DICOM file whose transfer syntax (compression) no installed decoder reads; the message names it."""

    code: ClassVar[str] = "unsupported_compression"
    default_message: ClassVar[str] = "The DICOM file uses a compression that no installed decoder can read."


class UnreadableFileError(InputError):
    """A file on disk that cannot be read at all (missing, a folder, no permission); command line only."""

    code: ClassVar[str] = "unreadable_file"
    default_message: ClassVar[str] = "The file could not be read."
