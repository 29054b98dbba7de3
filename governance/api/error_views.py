"""Error responses outside the API views: under ``/api/`` they are JSON, elsewhere the HTML pages.

Django answers some requests before any API view runs — a path that matches no route, a body
too large to read, an exception that escaped a view. ``handler400`` … ``handler500`` in
``governance.urls`` point here: a path under ``/api/`` gets ``{"detail": "…"}`` with the
status (and ``413`` for a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE``), every other path the
web UI's error templates (``templates/400.html``, ``404.html``, ``403.html``, ``500.html``)
through Django's default views.

``api_not_found`` is also routed as the last ``/api/…/`` pattern, so that an unknown API path
is a JSON 404 even while ``DEBUG`` shows technical pages for the rest of the site.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt

API_PREFIX = "/api/"


def is_api_request(request: HttpRequest) -> bool:
    """True for requests to ``/api`` or a path under ``/api/`` (the REST API, its schema and docs)."""
    return request.path_info.startswith(API_PREFIX) or request.path_info == API_PREFIX.rstrip("/")


def too_large_detail() -> str:
    """The message of a 413: the body limit in bytes (``DATA_UPLOAD_MAX_MEMORY_SIZE``)."""
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return f"The request body is too large: at most {limit} bytes (excluding uploaded files)."


def json_error(detail: str, status: int) -> JsonResponse:
    """``{"detail": detail}`` with ``status``."""
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request: HttpRequest, exception: Exception | None = None):
    """400 (or 413 for ``RequestDataTooBig``): JSON under ``/api/``, ``400.html`` elsewhere."""
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        return json_error(too_large_detail(), 413)
    return json_error("The request was malformed and was not processed.", 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None):
    """403: JSON under ``/api/``, ``403.html`` elsewhere."""
    if not is_api_request(request):
        return defaults.permission_denied(request, exception)
    return json_error(str(exception or "") or "You do not have permission to perform this action.", 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None):
    """404: JSON under ``/api/``, ``404.html`` elsewhere."""
    if not is_api_request(request):
        return defaults.page_not_found(request, exception)
    return json_error(f"Not found: no API endpoint or object at {request.path}.", 404)


def server_error(request: HttpRequest):
    """500: JSON under ``/api/``, ``500.html`` elsewhere. Nothing was half-done (one transaction per write)."""
    if not is_api_request(request):
        return defaults.server_error(request)
    return json_error("Server error. It was logged; nothing was half-done.", 500)


@csrf_exempt
def api_not_found(request: HttpRequest, *args, **kwargs):
    """The last route under ``/api/``: any path no endpoint matched is a JSON 404, whatever the method."""
    return page_not_found(request)
