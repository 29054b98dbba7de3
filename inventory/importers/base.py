"""What every importer shares: the error it raises, text decoding and positions in a file.

Importers work in two steps. *Parse* is pure (no database): it turns the file's bytes into
frozen dataclasses or raises one ``ImportFailed`` naming the line and column of the first
problem. *Apply* writes the parsed result in the caller's transaction, with its audit events.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from django.core.exceptions import ValidationError

# The largest file any importer reads (an AWS credential report; the upload page states it).
# An MCP client configuration has its own, smaller limit (``mcp.MAX_BYTES``).
MAX_BYTES = 20 * 1024 * 1024
UTF8_BOM = b"\xef\xbb\xbf"


class ImportFailed(ValidationError):
    """A file, or an argument of the import, is not acceptable; nothing was written.

    A field-keyed ``ValidationError`` (HTTP 400): ``field`` is ``"file"`` for the file's content,
    ``"agent"`` or ``"observed_at"`` for those arguments. ``line`` and ``column`` (1-based) locate
    the problem in the file when it has a place; the message names them too.
    """

    def __init__(self, message: str, *, field: str = "file", line: int | None = None, column: int | None = None):
        self.field = field
        self.line = line
        self.column = column
        self.detail = message
        super().__init__({field: [message]})

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


def at(line: int | None, column: int | None = None, column_name: str = "") -> str:
    """``"line 4, column 9 (arn): "``-style prefix for a message."""
    if line is None:
        return ""
    text = f"line {line}"
    if column is not None:
        text += f", column {column}"
    if column_name:
        text += f" ({column_name})"
    return text + ": "


def fail(
    message: str, line: int | None = None, column: int | None = None, column_name: str = "", *, prefix: str = ""
) -> ImportFailed:
    """An ``ImportFailed`` on the file whose message starts with its position."""
    return ImportFailed(f"{prefix}{at(line, column, column_name)}{message}", line=line, column=column)


def sha256_hex(content: bytes) -> str:
    """SHA-256 hex digest of ``content``."""
    return hashlib.sha256(content).hexdigest()


def line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    start = text.rfind("\n", 0, offset) + 1
    return line, offset - start + 1


def decode_text(content: bytes, *, prefix: str = "") -> str:
    """The file's text: UTF-8, without a leading byte-order mark.

    Raises ``ImportFailed`` for an empty or oversized file or bytes that are not UTF-8 (naming
    the line and column of the first bad byte).
    """
    if len(content) > MAX_BYTES:
        raise fail(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB.", prefix=prefix)
    if content.startswith(UTF8_BOM):
        content = content[len(UTF8_BOM) :]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = content[: exc.start].decode("utf-8")
        line, column = line_col(good, len(good))
        raise fail("The file is not UTF-8 text (neither a CSV nor a JSON document).", line, column, prefix=prefix)
    if not text.strip():
        raise fail("The file is empty.", 1, 1, prefix=prefix)
    return text


def find_key(text: str, key: str, start: int = 0) -> int | None:
    """Character offset of the first ``"key":`` (or JSON5 ``key:``) at or after ``start``, or None."""
    pattern = re.compile(r"""(?:"%s"|'%s'|(?<![\w$])%s)\s*:""" % ((re.escape(key),) * 3))
    match = pattern.search(text, start)
    return None if match is None else match.start()


def locate_key(text: str, key: str, start: int = 0) -> tuple[int, int] | None:
    """Line and column of the first ``"key":`` (or JSON5 ``key:``) at or after ``start``, or None."""
    offset = find_key(text, key, start)
    return None if offset is None else line_col(text, offset)


def offset_of(text: str, line: int, column: int) -> int:
    """Character offset of a 1-based line and column in ``text``."""
    offset = 0
    for _ in range(line - 1):
        nxt = text.find("\n", offset)
        if nxt < 0:
            return len(text)
        offset = nxt + 1
    return offset + column - 1


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset, converted to UTC.

    Raises ``ValueError`` when it does not parse or has no offset.
    """
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError("no UTC offset")
    return parsed.astimezone(UTC)
