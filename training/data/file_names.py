"""File and image names as they are shown in messages and written to CSV files.

Names from real archives carry what a terminal does not show (a byte-order mark saved by a Windows editor, a
zero-width space, a control character) or bytes that are not UTF-8 (a CD written on an old system); Python holds
such bytes as lone surrogates (PEP 383), which no UTF-8 file can store.

- :func:`visible_name`, for messages: every character that does not print is written as an escape (``\\ufeff``,
  ``\\t``, ``\\x85``; a byte that is not UTF-8 as ``\\xNN``), so two names that look alike are told apart.
- :func:`csv_file_name`, for CSV files: lossless. Every byte that is not part of UTF-8 text becomes ``\\xNN`` (two
  lower-case hex digits) and a backslash becomes ``\\\\``; everything else is kept. :func:`original_file_name`
  undoes it.
"""

from __future__ import annotations

import os
import re

_SURROGATE_BYTES = range(0xDC80, 0xDD00)  # PEP 383: byte 0xNN that is not UTF-8 -> U+DCNN
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def visible_name(name: str | os.PathLike[str]) -> str:
    """``name`` with every character that does not print written as an escape (see the module docstring)."""
    parts: list[str] = []
    for char in os.fspath(name):
        code = ord(char)
        if code in _SURROGATE_BYTES:
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif char.isprintable() and char != "\\":
            parts.append(char)
        elif char == "\\":
            parts.append("\\\\")
        else:
            parts.append(repr(char)[1:-1])  # \t, \x85, \u200b, \ufeff: Python's own escapes
    return "".join(parts)


def csv_file_name(name: str | os.PathLike[str]) -> str:
    """``name`` as valid UTF-8 text, losslessly: bytes that are not UTF-8 -> ``\\xNN``, a backslash -> ``\\\\``."""
    parts: list[str] = []
    for char in os.fspath(name):
        code = ord(char)
        if code in _SURROGATE_BYTES:
            parts.append(f"\\x{code - 0xDC00:02x}")
        elif char == "\\":
            parts.append("\\\\")
        else:
            parts.append(char)
    return "".join(parts)


def original_file_name(text: str) -> str:
    """The inverse of :func:`csv_file_name`: the name as the file system holds it (``os.fsencode`` gives its bytes)."""
    return _ESCAPE.sub(lambda m: "\\" if m.group(1) == "\\" else chr(0xDC00 + int(m.group(1)[1:], 16)), text)
