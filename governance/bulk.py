"""Fast append of many rows: ``COPY … FROM STDIN`` on PostgreSQL, ``bulk_create`` elsewhere.

Used by the audit writer and the findings writer, whose set-based jobs may append hundreds of
thousands of rows in one transaction. Rows are written in the caller's transaction; ids are
not returned (callers that need them read them back).
"""

import json
from collections.abc import Iterable, Sequence

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models


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
