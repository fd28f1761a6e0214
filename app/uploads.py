"""The upload contract of ``/predict`` and ``/gradcam``: exactly one multipart part named ``file``, a file.

FastAPI binds a parameter to one part and silently ignores any others of the same name, so a client that sends
two X-rays would get an answer for one of them.  :func:`require_one_file` refuses that; a ``file`` sent as a
plain form field (no file name) is answered by the validation handler in ``app/errors.py`` with
:data:`NOT_A_FILE_MESSAGE`.
"""

from __future__ import annotations

from typing import Final

from fastapi import Request
from starlette.datastructures import UploadFile

from app.errors import NOT_A_FILE_MESSAGE, ApiError

FIELD: Final = "file"


async def require_one_file(request: Request) -> None:
    """Raise a 422 ``multiple_files`` or ``not_a_file`` error unless the form holds one file part named ``file``.

    The form is the one FastAPI has already parsed (Starlette caches it on the request), so nothing is read twice.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()  # RFC 9110 8.3.1
    if media_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return  # the parameter's own validation answers "'file' is required (multipart/form-data upload)"
    parts = (await request.form()).getlist(FIELD)
    if len(parts) > 1:
        raise ApiError(
            422, "multiple_files", f"Send one X-ray per request: the form has {len(parts)} parts named 'file'."
        )
    if parts and not isinstance(parts[0], UploadFile):
        raise ApiError(422, "not_a_file", NOT_A_FILE_MESSAGE)
