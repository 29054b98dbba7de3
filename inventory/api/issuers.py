"""The trusted-issuer registry over the REST API: ``/api/v1/trusted-issuers/``.

IAM admins register, change and remove the issuers whose identity tokens prove a workload
identity (OIDC providers, SPIFFE trust domains); IAM admins and auditors read them; anyone else
gets 403. With a token: reads need ``inventory:read``, writes ``inventory:write``. Every write
calls one service of ``inventory.identity_proof`` (permission, validation, audit event).
"""

from __future__ import annotations

import django_filters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from governance.api.serializers import OutputModelSerializer, StrictInputSerializer
from governance.api.viewsets import WarrantViewSet
from governance.filtering import StrictFilterSet
from governance.models import IntegrationToken
from inventory import identity_proof
from inventory.models import TrustedIssuer

ID_REGEX = r"[0-9]+"
READ_ONLY = ("id", "created_at", "updated_at")


KIND_HELP = "oidc (an OIDC provider) or spiffe (a SPIFFE trust domain)."


@extend_schema_field(OpenApiTypes.STR)
class KindField(serializers.ChoiceField):
    """``TrustedIssuer.Kind``, documented as a string with its values in the help text (a second enum
    named after a ``kind`` field would collide in the OpenAPI components)."""

    def __init__(self, **kwargs):
        super().__init__(choices=TrustedIssuer.Kind.choices, help_text=KIND_HELP, **kwargs)


class TrustedIssuerSerializer(OutputModelSerializer):
    """A trusted issuer: where its keys come from (``jwks_url`` or the static, public ``jwks``), the
    audiences and algorithms it accepts, its clock skew (seconds) and whether it is enabled."""

    kind = KindField(read_only=True)
    audiences = serializers.ListField(child=serializers.CharField(), read_only=True)
    algorithms = serializers.ListField(child=serializers.CharField(), read_only=True)
    jwks = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = TrustedIssuer
        fields = ["id", *identity_proof.TRUSTED_ISSUER_FIELDS, "created_at", "updated_at"]


def _audiences(**kwargs) -> serializers.ListField:
    return serializers.ListField(child=serializers.CharField(max_length=300, trim_whitespace=False), **kwargs)


def _algorithms(**kwargs) -> serializers.ListField:
    """Algorithm names as strings; the model explains a refused one (``none``, HS*, EdDSA for SPIFFE)."""
    return serializers.ListField(child=serializers.CharField(max_length=20), **kwargs)


class TrustedIssuerCreateInputSerializer(StrictInputSerializer):
    """Register a trusted issuer (``identity_proof.trusted_issuer_create``): ``jwks_url`` or
    ``jwks``, exactly one."""

    read_only_names = READ_ONLY
    name = serializers.CharField(max_length=100)
    kind = KindField()
    issuer = serializers.CharField(max_length=300, trim_whitespace=False)
    jwks_url = serializers.CharField(max_length=1000, allow_blank=True, required=False, trim_whitespace=False)
    jwks = serializers.JSONField(required=False, allow_null=True)
    audiences = _audiences()
    algorithms = _algorithms(required=False)
    clock_skew_seconds = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


class TrustedIssuerUpdateInputSerializer(StrictInputSerializer):
    """PATCH a trusted issuer (``identity_proof.trusted_issuer_update``); the ``kind`` is fixed.
    To switch the key source send both: ``{"jwks_url": "", "jwks": {...}}`` or
    ``{"jwks_url": "https://…", "jwks": null}``."""

    read_only_names = (*READ_ONLY, "kind")
    name = serializers.CharField(max_length=100, required=False)
    issuer = serializers.CharField(max_length=300, required=False, trim_whitespace=False)
    jwks_url = serializers.CharField(max_length=1000, allow_blank=True, required=False, trim_whitespace=False)
    jwks = serializers.JSONField(required=False, allow_null=True)
    audiences = _audiences(required=False)
    algorithms = _algorithms(required=False)
    clock_skew_seconds = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)


class TrustedIssuerFilterSet(StrictFilterSet):
    """``kind`` (oidc, spiffe), ``enabled`` (true/false)."""

    kind = django_filters.MultipleChoiceFilter(choices=TrustedIssuer.Kind.choices, help_text=KIND_HELP)
    enabled = django_filters.BooleanFilter()

    class Meta:
        model = TrustedIssuer
        fields = ["kind", "enabled"]


@extend_schema_view(
    list=extend_schema(summary="List trusted issuers (IAM admins, auditors)"),
    retrieve=extend_schema(summary="Get a trusted issuer (IAM admins, auditors)"),
)
class TrustedIssuerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Issuers whose identity tokens (OIDC JWTs, SPIFFE JWT-SVIDs) prove a workload identity."""

    serializer_class = TrustedIssuerSerializer
    filterset_class = TrustedIssuerFilterSet
    lookup_value_regex = ID_REGEX
    read_scope = IntegrationToken.Scope.INVENTORY_READ
    write_scope = IntegrationToken.Scope.INVENTORY_WRITE

    def get_queryset(self):
        if self.is_schema_request:
            return TrustedIssuer.objects.none()
        return identity_proof.trusted_issuer_list(user=self.request.user)

    @extend_schema(
        summary="Register a trusted issuer (IAM admins)",
        description="`kind` `oidc` (issuer: the exact `iss` https URL) or `spiffe` (issuer: the trust domain, "
        "`spiffe://example.org`); `jwks_url` (https, to a public host: no loopback, link-local, private, unspecified "
        "or multicast address, no `localhost`) or `jwks` (a static JWK Set, public keys only), exactly one; "
        "`audiences` at least one; `algorithms` asymmetric only (default `RS256`, `ES256`); "
        "`clock_skew_seconds` 0–300 (default 60).",
        request=TrustedIssuerCreateInputSerializer,
        responses={201: TrustedIssuerSerializer},
    )
    def create(self, request):
        data = self.parse(TrustedIssuerCreateInputSerializer)
        issuer = identity_proof.trusted_issuer_create(actor=self.actor, **data)
        return self.render(issuer, code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change a trusted issuer (IAM admins)",
        request=TrustedIssuerUpdateInputSerializer,
        responses=TrustedIssuerSerializer,
    )
    def partial_update(self, request, pk=None):
        issuer = self.get_object()
        data = self.parse(TrustedIssuerUpdateInputSerializer, partial=True)
        return self.render(identity_proof.trusted_issuer_update(actor=self.actor, trusted_issuer=issuer, **data))

    @extend_schema(
        summary="Remove a trusted issuer (IAM admins)", responses={204: OpenApiResponse(description="Removed.")}
    )
    def destroy(self, request, pk=None):
        identity_proof.trusted_issuer_delete(actor=self.actor, trusted_issuer=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
