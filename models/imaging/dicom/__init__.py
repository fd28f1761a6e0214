"""DICOM: the header (parse and checks), then the pixel pipeline stage by stage; see :mod:`.pipeline`."""

from models.imaging.dicom.header import looks_like_dicom, read_dicom_header
from models.imaging.dicom.pipeline import decode_dicom

__all__ = ["decode_dicom", "looks_like_dicom", "read_dicom_header"]
