"""Pagination classes for the REST API."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``?page=N&page_size=M`` (at most 500)."""

    page_size_query_param = "page_size"
    max_page_size = 500


class AuditCursorPagination(pagination.CursorPagination):
    """Cursor pagination over the audit chain, newest first (stable under concurrent appends)."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
