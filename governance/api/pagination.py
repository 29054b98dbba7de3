"""Pagination classes for the REST API.

``page_size`` must be a whole number from 1 to the class's ``max_page_size`` and ``page`` a
whole number from 1: anything else is a 400 naming the parameter and the allowed range, never
silently replaced by a default or capped. A page beyond the last is a 404 (``{"detail": …}``).
"""

from rest_framework import pagination
from rest_framework.exceptions import ValidationError


def positive_int_param(request, name: str, *, maximum: int | None = None) -> int | None:
    """The query parameter ``name`` as an int in ``1..maximum`` (None when absent or empty).

    Raises ``ValidationError`` ({name: [message with the allowed range]}) → 400.
    """
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return None
    allowed = f"from 1 to {maximum}" if maximum else "from 1"
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or value < 1 or (maximum and value > maximum):
        raise ValidationError({name: [f"Give a whole number {allowed}; got {raw!r}."]})
    return value


class StrictPageSizeMixin:
    """``page_size`` outside ``1..max_page_size`` is a 400 instead of the default or the cap."""

    def get_page_size(self, request):
        size = positive_int_param(request, self.page_size_query_param, maximum=self.max_page_size)
        return self.page_size if size is None else size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {**parameter["schema"], "minimum": 1, "maximum": self.max_page_size}
                parameter["description"] = (
                    f"Number of results per page: 1 to {self.max_page_size} (default {self.page_size})."
                )
            elif parameter["name"] == getattr(self, "page_query_param", None):
                parameter["schema"] = {**parameter["schema"], "minimum": 1}
        return parameters


class PageNumberPagination(StrictPageSizeMixin, pagination.PageNumberPagination):
    """``?page=N&page_size=M``: ``N`` from 1 (past the last page: 404), ``M`` from 1 to 500 (default 50)."""

    page_size_query_param = "page_size"
    max_page_size = 500
    last_page_strings = ()

    def get_page_number(self, request, paginator):
        return positive_int_param(request, self.page_query_param) or 1


class AuditCursorPagination(StrictPageSizeMixin, pagination.CursorPagination):
    """Cursor pagination over the audit chain, newest first (stable under concurrent appends);
    ``page_size`` from 1 to 1000 (default 100). A cursor that does not decode is a 404.

    ``?page=N`` belongs to page-number lists: here it is a 400 pointing at ``cursor`` rather
    than silently answering the first page again.
    """

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    page_query_param = "page"

    def paginate_queryset(self, queryset, request, view=None):
        if self.page_query_param in request.query_params:
            raise ValidationError(
                {
                    self.page_query_param: [
                        f"This list is cursor-paginated: follow the 'next' and 'previous' links, "
                        f"which carry ?{self.cursor_query_param}=…, instead of giving a page number."
                    ]
                }
            )
        return super().paginate_queryset(queryset, request, view)
