"""DICOM (PS3.10 files, or streams without the preamble); the pipeline is :mod:`models.imaging.dicom`."""

from __future__ import annotations

from typing import BinaryIO

from models.imaging.decoded import DecodeLimits, ImageHeader
from models.imaging.dicom import decode_dicom, looks_like_dicom, read_dicom_header
from models.imaging.formats.base import ImageFormat

__all__ = ["FORMAT"]


def _probe(stream: BinaryIO, limits: DecodeLimits) -> ImageHeader:
    return ImageHeader("dicom", *read_dicom_header(stream, limits))


FORMAT = ImageFormat("dicom", looks_like_dicom, _probe, decode_dicom)
