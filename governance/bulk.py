"""Fast append of many rows: ``COPY … FROM STDIN`` on PostgreSQL, ``bulk_create`` elsewhere.

Used by the audit writer and the findings writer, whose set-based jobs may append hundreds of
thousands of rows in one transaction. Rows are written in the caller's transaction; ids are
not returned (callers that need them read them back).

``insert_rows`` takes Python values and works on every database; ``copy_lines`` takes lines
already in COPY's text format (``copy_text`` escapes one field), for a writer that builds its
rows as text anyway and wants PostgreSQL to parse them with no per-value work in Python.
"""

import json
import re
from collections.abc import Iterable, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models

#: Characters handed to the server per write while streaming ``copy_lines``.
COPY_CHUNK_CHARS = 1 << 18
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_LINE_SPECIAL = re.compile(r"[\\\n\r]")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_text(value: str | None) -> str:
    """``value`` as one field of a line in PostgreSQL's COPY text format: ``\\N`` for None, and
    backslash, tab, newline and carriage return escaped with a backslash; other values are ``str()``-ed."""
    if value is None:
        return "\\N"
    if type(value) is not str:
        value = str(value)
    return value.translate(_COPY_ESCAPES) if _COPY_SPECIAL.search(value) else value


def copy_fields(values: Sequence[str | None]) -> str:
    """``values`` as consecutive fields of a COPY text line: each escaped as ``copy_text`` does, joined by tabs.

    The common case — strings holding no tab, newline, carriage return or backslash — costs one
    join and one scan of the joined text.
    """
    if None not in values:
        try:
            joined = "\t".join(values)
        except TypeError:
            pass
        else:
            if joined.count("\t") == len(values) - 1 and not _COPY_LINE_SPECIAL.search(joined):
                return joined
    return "\t".join([copy_text(v) for v in values])


def copy_lines(model: type[models.Model], fields: Sequence[str], lines: Iterable[str]) -> int:
    """Stream ``lines`` into ``model``'s table with ``COPY … FROM STDIN`` (PostgreSQL only).

    Each line holds the values of ``fields`` (model attribute names) in COPY's text format: fields
    escaped with ``copy_text``, separated by tabs, the line ended by a newline. Lines are sent in
    chunks of about ``COPY_CHUNK_CHARS`` characters, so memory stays bounded whatever their number.
    Returns the number of lines written. Runs in the current transaction; raises the database's
    error on a malformed line or a violated constraint.
    """
    meta = model._meta
    columns = ", ".join(connection.ops.quote_name(meta.get_field(name).column) for name in fields)
    sql = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"
    count = 0
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        chunk, size = [], 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            count += 1
            if size >= COPY_CHUNK_CHARS:
                copy.write("".join(chunk))
                chunk, size = [], 0
        if chunk:
            copy.write("".join(chunk))
    return count


def insert_rows(
    model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence], batch_size: int = 5000
) -> int:
    """Insert ``rows`` (tuples in the order of ``fields``, model attribute names) into ``model``'s table.

    JSON fields take Python data. Returns the number of rows written. Runs in the current
    transaction; raises the database's error (e.g. ``IntegrityError``) on a violated constraint.
    """
    meta = model._meta
    field_objs = [meta.get_field(name) for name in fields]
    json_positions = {i for i, f in enumerate(field_objs) if isinstance(f, models.JSONField)}
    count = 0
    if connection.vendor == "postgresql":
        columns = ", ".join(connection.ops.quote_name(f.column) for f in field_objs)
        sql = f"COPY {connection.ops.quote_name(meta.db_table)} ({columns}) FROM STDIN"
        with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
            for row in rows:
                if json_positions:
                    row = [
                        json.dumps(v, cls=DjangoJSONEncoder) if i in json_positions and v is not None else v
                        for i, v in enumerate(row)
                    ]
                copy.write_row(row)
                count += 1
        return count
    batch = []
    for row in rows:
        batch.append(model(**{f.attname: v for f, v in zip(field_objs, row, strict=True)}))
        if len(batch) >= batch_size:
            model.objects.bulk_create(batch)
            count += len(batch)
            batch = []
    if batch:
        model.objects.bulk_create(batch)
        count += len(batch)
    return count
