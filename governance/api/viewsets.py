"""The base of every API viewset: authentication, permissions, strict filtering, and the
parse → authorise → call the service → render shape of a write.

Lists and retrievals read through a selector (``get_queryset``) filtered by the view's shared
FilterSet (``filterset_class``, a ``governance.filtering.StrictFilterSet``): an unknown query
parameter or an unknown value is a 400, never ignored.
"""

from __future__ import annotations

from django_filters import utils as filter_utils
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from governance.audit import Actor

from .permissions import AuditorsReadOnly, TokenScopePermission


class StrictFilterBackend(DjangoFilterBackend):
    """``DjangoFilterBackend`` that always raises 400 for an invalid filter set.

    Form-wide errors (unknown parameters) are reported under ``filters``.
    """

    raise_exception = True

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            errors = filter_utils.translate_validation(filterset.errors).detail
            if "__all__" in errors:
                errors["filters"] = errors.pop("__all__")
            raise ValidationError(errors)
        return filterset.qs


class ParseBodyMixin:
    """``parse``: the request body validated by an input serializer, shared by the viewsets and the
    API views that are not viewsets."""

    def parse(self, serializer_class, *, partial: bool = False) -> dict:
        """Validate the request body with ``serializer_class``; 400 with field messages when invalid.

        ``partial`` (PATCH): only the fields sent are validated and returned; at least one is needed.
        """
        serializer = serializer_class(data=self.request.data, partial=partial, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        if partial and not serializer.validated_data:
            raise ValidationError({"non_field_errors": ["Send at least one field to change."]})
        return dict(serializer.validated_data)


class WarrantViewSet(ParseBodyMixin, viewsets.GenericViewSet):
    """A viewset whose writes call one service each; PUT is not offered (use PATCH)."""

    permission_classes = [IsAuthenticated, TokenScopePermission, AuditorsReadOnly]
    filter_backends = [StrictFilterBackend]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @property
    def actor(self) -> Actor:
        """The audit actor of this request: the person, or the integration token acting for one."""
        return Actor.from_request(self.request)

    @property
    def is_schema_request(self) -> bool:
        """True while drf-spectacular introspects the view (no real user, no database reads)."""
        return getattr(self, "swagger_fake_view", False)

    def render(self, instance, *, code: int = status.HTTP_200_OK, serializer_class=None) -> Response:
        """Render ``instance`` with the output serializer (or ``serializer_class``)."""
        serializer_class = serializer_class or self.get_serializer_class()
        return Response(serializer_class(instance, context=self.get_serializer_context()).data, status=code)
