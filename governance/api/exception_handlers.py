"""The one place that maps application errors to HTTP responses.

``ValidationError`` → 400 with field messages; ``PermissionDenied`` → 403; ``Conflict`` → 409;
``ObjectDoesNotExist`` and ``Http404`` (``get_object_or_404``) → 404 "Not found." (never a model's
name); a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``RequestDataTooBig``) → 413 and any other
request Django refuses to read (too many fields or files) → 400, each as ``{"detail": "…"}``.
Everything else goes to DRF's default handler.
"""

from django.core.exceptions import ObjectDoesNotExist, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from governance.errors import Conflict

from .error_views import too_large_detail


class PayloadTooLarge(exceptions.APIException):
    """413: the request body exceeds ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (RFC 9110 §15.5.14)."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def validation_error_detail(exc: DjangoValidationError) -> dict | list:
    """Field-keyed messages of a Django ValidationError (``non_field_errors`` for the rest)."""
    if hasattr(exc, "error_dict"):
        return {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
    return {"non_field_errors": exc.messages}


def exception_handler(exc, context):
    """DRF exception handler with Warrant's application errors mapped."""
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_error_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Conflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    elif isinstance(exc, ObjectDoesNotExist | Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge(too_large_detail())
    elif isinstance(exc, SuspiciousOperation):
        exc = exceptions.ParseError(str(exc) or None)
    return drf_exception_handler(exc, context)
