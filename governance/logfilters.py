"""Logging filters: a refused request is expected behaviour, logged in one line; real errors stay loud."""

from __future__ import annotations

import logging


class RefusalFilter(logging.Filter):
    """On ``django.request``: a 4xx record (403 refused, 404, 409 …) loses its traceback and names the reason.

    Django logs a ``PermissionDenied`` with the exception's traceback; a refusal is not a fault in
    Warrant, so the line keeps its level (WARNING), path and status, and appends the refusal's own
    message (escaped like the path, so a message cannot forge log lines). 5xx records are left
    untouched, traceback and all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if status is None or not 400 <= status < 500 or not record.exc_info:
            return True
        exc = record.exc_info[1]
        reason = str(exc) if exc is not None else ""
        record.exc_info = None
        record.exc_text = None
        if reason:
            record.msg = f"{record.msg} (%s)"
            record.args = (*(record.args or ()), reason.encode("unicode_escape").decode("ascii"))
        return True
