"""The upload contract of ``/predict`` and ``/gradcam``: exactly one multipart part named ``file``, a file.

FastAPI binds a parameter to one part and silently ignores any others of the same name, so a client that sends
two X-rays would get an answer for one of them.  :func:`require_one_file` refuses that, and names the part a form
sent under another name (``-F image=@x.png``). A ``file`` sent as a text field (no file name, ``-F file=<x.png``)
is kept empty by :class:`UploadFormParser` and refused here as ``not_a_file``, whatever its size: the form
limits of ``app.main.FORM_LIMITS`` hold for the real text fields only.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Final

from fastapi import HTTPException, Request
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from app.errors import NOT_A_FILE_MESSAGE, ApiError, shown_name

FIELD: Final = "file"


class UploadFormParser(MultiPartParser):
    """Starlette's multipart parser, keeping no byte of a text part named ``file`` (so its size never counts
    against the form limits): the part stays in the form, empty, for :func:`require_one_file` to refuse."""

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.field_name == FIELD and self._current_part.file is None:
            return
        super().on_part_data(data, start, end)


class UploadRequest(Request):
    """A request whose multipart form is read by :class:`UploadFormParser`; other bodies as Starlette reads them."""

    async def _get_form(
        self, *, max_files: int | float = 1000, max_fields: int | float = 1000, max_part_size: int = 1024 * 1024
    ) -> FormData:
        media_type = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if self._form is not None or media_type != "multipart/form-data":
            return await super()._get_form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)
        try:
            async with aclosing(self.stream()) as stream:
                parser = UploadFormParser(
                    self.headers, stream, max_files=max_files, max_fields=max_fields, max_part_size=max_part_size
                )
                self._form = await parser.parse()
        except MultiPartException as exc:
            raise HTTPException(400, exc.message) from None  # as Starlette: app.errors answers with its own words
        return self._form


async def require_one_file(request: Request) -> None:
    """Raise a 422 ``wrong_part``, ``multiple_files`` or ``not_a_file`` error unless the form holds one file part
    named ``file``.

    The form is the one FastAPI has already parsed (Starlette caches it on the request), so nothing is read twice.
    """
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()  # RFC 9110 8.3.1
    if media_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return  # the parameter's own validation answers "'file' is required (multipart/form-data upload)"
    form = await request.form()
    parts = form.getlist(FIELD)
    if not parts and len(form):
        others = ", ".join(shown_name(name) for name in list(dict.fromkeys(form.keys()))[:3])
        raise ApiError(
            422,
            "wrong_part",
            f"the form has no part named 'file', but one named {others}: send the X-ray as the part named 'file' "
            "(for example: curl -F file=@xray.png ...)",
        )
    if len(parts) > 1:
        raise ApiError(
            422, "multiple_files", f"Send one X-ray per request: the form has {len(parts)} parts named 'file'."
        )
    if parts and not isinstance(parts[0], UploadFile):
        raise ApiError(422, "not_a_file", NOT_A_FILE_MESSAGE)
