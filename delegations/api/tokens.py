"""Task tokens API: issue (for a grant), revoke (RFC 7009), introspect (RFC 7662), the JWK Set
(RFC 7517) and signing-key rotation.

- ``POST /api/v1/grants/{id}/tokens`` — issue a task token (``GrantViewSet.tokens`` calls
  ``task_token_issue_response``); scope ``tokens:issue``.
- ``POST /api/v1/tokens/revoke`` — ``{"token"}`` or ``{"jti"}``; scope ``tokens:issue``.
- ``POST /api/v1/introspect`` — form-encoded (RFC 7662 §2.1) or JSON ``token``; scope ``tokens:introspect``.
- ``GET /.well-known/jwks.json`` and ``GET /api/v1/jwks`` — public, cached 300 s.
- ``POST /api/v1/signing-keys/rotate`` — IAM admins, scope ``tokens:issue``.

Every endpoint parses with a strict input serializer (unknown fields are a 400) and calls one
function of ``delegations.tokens``, where the rules live. The caller authenticates with its
integration token (``Authorization: Bearer``) or session, never with OAuth client credentials:
RFC 6749 §2.3 ``client_id``/``client_secret`` sent in the body of an introspection or revocation
request (as generic RFC 7662/7009 clients do) are accepted and ignored. ``OPTIONS`` answers as on
every other endpoint of the API — 200 with the endpoint's description for a caller who may read
it (with an integration token: the endpoint's scope) — and a method an endpoint does not serve is
405 with ``Allow`` whoever asks (``ServedMethodsOnly``).
"""

from __future__ import annotations

import math
import uuid

from django.urls import re_path
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import FormParser
from rest_framework.permissions import SAFE_METHODS, AllowAny, BasePermission, IsAuthenticated
from rest_framework.response import Response

from delegations import tokens
from delegations.models import DelegationGrant
from governance.api.parsers import JSONParser
from governance.api.permissions import AuditorsReadOnly, TokenScopePermission
from governance.api.serializers import StrictInputSerializer, UTCDateTimeField
from governance.api.viewsets import ParseBodyMixin
from governance.audit import Actor
from governance.models import IntegrationToken
from governance.roles import is_iam_admin
from inventory.permissions import can_view_agent

#: The longest ``client_id``/``client_secret`` read (and ignored) in a request body.
_MAX_CLIENT_CREDENTIAL = 1000


# --- serializers ----------------------------------------------------------------------------


class TaskTokenIssueInputSerializer(StrictInputSerializer):
    """``task_id`` (required, 1–200 characters: the caller's name for the task); ``ttl_seconds``
    (optional, whole seconds from 1 to ``Policy.task_token_max_seconds``, 3600 unless changed, settable
    30–86400; when absent, ``Policy.task_token_default_seconds``, 900 unless changed, settable 30–3600);
    ``audience`` (optional ``aud``, default ``settings.WARRANT_BASE_URL``: a resource server compares
    ``aud`` with its own identifier) and ``workload_identity`` (optional: the id of the agent's
    workload identity bound into ``sub``; needed when the agent has several, else 400 on
    ``workload_identity`` listing their ids)."""

    task_id = serializers.CharField(max_length=tokens.MAX_TASK_ID)
    ttl_seconds = serializers.IntegerField(required=False, allow_null=True)
    audience = serializers.CharField(max_length=tokens.MAX_AUDIENCE, required=False, allow_null=True)
    workload_identity = serializers.IntegerField(required=False, allow_null=True)


class TaskTokenIssuedSerializer(serializers.Serializer):
    """The issued token, shown once: ``token`` (the JWT), ``token_type`` (``Bearer``), ``expires_at``
    (UTC) and ``expires_in`` (whole seconds from now, rounded down: ``ttl_seconds`` unless the grant
    ends sooner, never 0), ``jti``, the ``grant`` (id), ``task_id`` and ``scope`` (space-separated
    ``tool:access``)."""

    token = serializers.CharField(read_only=True)
    token_type = serializers.CharField(read_only=True)
    expires_at = UTCDateTimeField()
    expires_in = serializers.IntegerField(read_only=True)
    jti = serializers.UUIDField(read_only=True)
    grant = serializers.IntegerField(read_only=True)
    task_id = serializers.CharField(read_only=True)
    scope = serializers.CharField(read_only=True)


class ClientCredentialsIgnored(StrictInputSerializer):
    """``client_id`` and ``client_secret`` (RFC 6749 §2.3.1, which generic RFC 7662/7009 clients send
    in the body): accepted and ignored — the caller is authenticated by its bearer integration token
    or session, never by these. Neither is stored, logged or echoed."""

    client_id = serializers.CharField(max_length=_MAX_CLIENT_CREDENTIAL, required=False, allow_blank=True)
    client_secret = serializers.CharField(max_length=_MAX_CLIENT_CREDENTIAL, required=False, allow_blank=True)


class TaskTokenRevokeInputSerializer(ClientCredentialsIgnored):
    """Exactly one of ``token`` (a string: any text, RFC 7009 §2.2 — one Warrant did not issue, even
    malformed, is answered ``{"revoked": false}``, not an error) or ``jti`` (a UUID); ``token_type_hint``
    (RFC 7009 §2.1), ``client_id`` and ``client_secret`` are accepted and ignored; ``reason`` (kept in
    the audit trail) is optional. An empty ``token`` counts as absent (RFC 6749 §3.1)."""

    token = serializers.CharField(required=False, trim_whitespace=False)
    jti = serializers.CharField(max_length=64, required=False)
    token_type_hint = serializers.CharField(max_length=100, required=False)
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")

    def validate_jti(self, value):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise serializers.ValidationError("A task token's jti is a UUID.") from None

    def validate(self, attrs):
        if ("token" in attrs) == ("jti" in attrs):
            raise serializers.ValidationError({"token": ["Give the token or its jti (one of them)."]})
        return attrs


class IntrospectInputSerializer(ClientCredentialsIgnored):
    """RFC 7662 §2.1: ``token`` (required, any text: one that is not an active task token is answered
    ``{"active": false}``); ``token_type_hint``, ``client_id`` and ``client_secret`` are accepted and
    ignored. Any other parameter is a 400."""

    token = serializers.CharField(trim_whitespace=False)
    token_type_hint = serializers.CharField(max_length=100, required=False)


INTROSPECTION_RESPONSE = inline_serializer(
    "TaskTokenIntrospection",
    fields={
        "active": serializers.BooleanField(),
        "scope": serializers.CharField(required=False),
        "client_id": serializers.CharField(required=False),
        "sub": serializers.CharField(required=False),
        "aud": serializers.CharField(required=False),
        "iss": serializers.CharField(required=False),
        "exp": serializers.IntegerField(required=False),
        "iat": serializers.IntegerField(required=False),
        "nbf": serializers.IntegerField(required=False),
        "jti": serializers.CharField(required=False),
        "token_type": serializers.CharField(required=False),
        "grant_id": serializers.IntegerField(required=False),
        "task_id": serializers.CharField(required=False),
        "warrant_scopes": serializers.ListField(child=serializers.DictField(), required=False),
        "act": serializers.DictField(required=False),
    },
)
REVOKE_RESPONSE = inline_serializer("TaskTokenRevoked", fields={"revoked": serializers.BooleanField()})
ROTATE_RESPONSE = inline_serializer(
    "SigningKeyRotated",
    fields={"kid": serializers.CharField(), "retiring": serializers.CharField(allow_null=True)},
)
JWKS_RESPONSE = inline_serializer(
    "JsonWebKeySet", fields={"keys": serializers.ListField(child=serializers.DictField())}
)


# --- issue (an action of GrantViewSet) ------------------------------------------------------


def task_token_issue_response(view, grant: DelegationGrant) -> Response:
    """Parse the body of ``POST /api/v1/grants/{id}/tokens`` and issue the token for ``grant`` (one the
    caller may see). 201 with the token; 403 (not the agent's owner, backup owner or an IAM admin);
    409 with ``reasons`` (the grant does not authorise now); 400 (bad input)."""
    data = view.parse(TaskTokenIssueInputSerializer)
    now = timezone.now()
    actor = Actor.from_request(view.request)
    try:
        row, token = tokens.task_token_issue(actor=actor, user=view.request.user, grant=grant, now=now, **data)
    except tokens.GrantNotAuthorising as exc:
        return Response(
            {"detail": str(exc), "code": "conflict", "reasons": list(exc.reasons)}, status=status.HTTP_409_CONFLICT
        )
    body = {
        "token": token,
        "token_type": "Bearer",
        "expires_at": row.expires_at,
        "expires_in": math.floor((row.expires_at - now).total_seconds()),  # at least 1 (task_token_issue)
        "jti": row.jti,
        "grant": grant.pk,
        "task_id": row.task_id,
        "scope": tokens.scope_string(row.scopes),
    }
    response = Response(TaskTokenIssuedSerializer(body).data, status=status.HTTP_201_CREATED)
    response["Cache-Control"] = "no-store"  # the token is shown once (RFC 6749 §5.1)
    return response


TASK_TOKEN_ISSUE_SCHEMA = extend_schema(
    summary="Issue a task token for this grant",
    description="A short-lived signed token (JWT access token, RFC 9068, ES256) for one task under this grant, "
    "bound to the agent's workload identity. `task_id` is required. `ttl_seconds`: 1 to the policy's longest "
    "(`task_token_max_seconds`, default 3600), default the policy's `task_token_default_seconds` (900); `exp` "
    "is rounded up to the second, so the token lives at least that long and `expires_in` is never 0; it never "
    "outlives the grant or a grant up its chain. `audience`: the `aud` claim, default Warrant's base URL "
    "(`WARRANT_BASE_URL`). `workload_identity`: the id of the agent's workload identity bound into `sub`, "
    "needed when the agent has several (400 listing their ids otherwise). The agent's owner or backup owner, "
    "or an IAM admin. 409 with `reasons` when the grant does not authorise now (`grant_not_approved` for a "
    "pending or denied grant, `grant_revoked`, `grant_expired`, `agent_not_active` …); the token is shown "
    "once and never stored.",
    request=TaskTokenIssueInputSerializer,
    responses={201: TaskTokenIssuedSerializer},
)


# --- revoke, introspect, JWK Set, rotation --------------------------------------------------


class ServedMethodsOnly(BasePermission):
    """405 (with ``Allow``) for a method the view does not serve, before any other permission is
    checked — whoever asks, with whatever token scopes. DRF otherwise checks permissions first, so
    ``GET`` on a ``POST``-only endpoint answered 403 to a token lacking the read scope and 405 to
    one holding it. Put it first in ``permission_classes``."""

    def has_permission(self, request, view):
        method = request.method.lower()
        if method not in view.http_method_names or getattr(view, method, None) is None:
            raise MethodNotAllowed(request.method)
        return True


class TokenEndpoint(ParseBodyMixin, GenericAPIView):
    """Base of the task-token endpoints: JSON errors, no pagination, strict input. ``serializer_class``
    is the input serializer (it describes the body in an ``OPTIONS`` answer); ``read_scope`` is the
    endpoint's own scope, so that ``OPTIONS`` needs what ``POST`` needs."""

    pagination_class = None
    http_method_names = ["post", "options"]


class TaskTokenRevokeView(TokenEndpoint):
    """``POST /api/v1/tokens/revoke`` (RFC 7009): revoke a task token named by ``token`` or ``jti``."""

    permission_classes = [ServedMethodsOnly, IsAuthenticated, TokenScopePermission, AuditorsReadOnly]
    parser_classes = [JSONParser, FormParser]
    serializer_class = TaskTokenRevokeInputSerializer
    read_scope = IntegrationToken.Scope.TOKENS_ISSUE
    write_scope = IntegrationToken.Scope.TOKENS_ISSUE

    @extend_schema(
        summary="Revoke a task token (RFC 7009)",
        description='Name it by `token` (the JWT) or `jti`. 200 `{"revoked": true}` once it is revoked '
        '(again: nothing more is recorded); `{"revoked": false}` for a token Warrant does not know or did not '
        "sign — malformed text included, an invalid token is not an error (RFC 7009 §2.2) — or whose agent "
        "the caller may not see. `token_type_hint`, `client_id` and `client_secret` are accepted and ignored "
        "(the bearer token authenticates the caller). 400 when neither or both of `token` and `jti` are given, "
        "`token` is not a string, or `jti` is not a UUID; 403 when the caller sees the agent but may not act "
        "for it.",
        request=TaskTokenRevokeInputSerializer,
        responses={200: REVOKE_RESPONSE},
    )
    def post(self, request):
        data = self.parse(TaskTokenRevokeInputSerializer)
        if "token" in data:
            row = tokens.task_token_find(data["token"])
        else:
            row = tokens.TaskToken.objects.select_related("agent").filter(jti=data["jti"]).first()
        if row is None or not can_view_agent(request.user, row.agent):
            return Response({"revoked": False})
        tokens.task_token_revoke(
            actor=Actor.from_request(request), user=request.user, token=row, reason=data["reason"], now=timezone.now()
        )
        return Response({"revoked": True})


class IntrospectView(TokenEndpoint):
    """``POST /api/v1/introspect`` (RFC 7662): whether a task token is active now, and what it says."""

    permission_classes = [ServedMethodsOnly, IsAuthenticated, TokenScopePermission]
    parser_classes = [FormParser, JSONParser]
    serializer_class = IntrospectInputSerializer
    read_scope = IntegrationToken.Scope.TOKENS_INTROSPECT
    write_scope = IntegrationToken.Scope.TOKENS_INTROSPECT

    @extend_schema(
        summary="Introspect a task token (RFC 7662)",
        description="`token` form-encoded (`application/x-www-form-urlencoded`, RFC 7662 §2.1) or in JSON. "
        "`token_type_hint`, `client_id` and `client_secret` are accepted and ignored: the caller authenticates "
        "with its bearer integration token (scope `tokens:introspect`), not with client credentials; any other "
        'parameter is a 400. 200: `{"active": false}` alone for a token that is malformed, forged, tampered, '
        "expired, not yet valid, revoked, signed by a retired key, whose grant (or a grant up its chain) no "
        "longer authorises, whose agent is not active or changed state since the token was issued (a "
        "suspended agent's tokens stay dead when it is reactivated), whose bound workload identity was removed "
        "or re-added since — or whose agent the caller may not see; otherwise `active: true` with its claims.",
        request={
            "application/x-www-form-urlencoded": IntrospectInputSerializer,
            "application/json": IntrospectInputSerializer,
        },
        responses={200: INTROSPECTION_RESPONSE},
    )
    def post(self, request):
        data = self.parse(IntrospectInputSerializer)
        response = Response(tokens.task_token_introspect(data["token"], now=timezone.now(), viewer=request.user))
        response["Cache-Control"] = "no-store"
        return response


class JwksView(GenericAPIView):
    """``GET /.well-known/jwks.json`` and ``GET /api/v1/jwks``: the public keys that verify task tokens."""

    authentication_classes = []
    permission_classes = [ServedMethodsOnly, AllowAny]
    pagination_class = None
    http_method_names = ["get", "head", "options"]

    @extend_schema(
        summary="The JWK Set of the task-token signing keys (RFC 7517)",
        description="Public; no authentication. The active key and any retiring one (still verifying tokens "
        f"in flight). Cacheable for {tokens.JWKS_MAX_AGE} seconds; refetch on an unknown `kid`.",
        auth=[],
        responses={200: JWKS_RESPONSE},
    )
    def get(self, request):
        response = Response(tokens.jwks())
        response["Cache-Control"] = f"public, max-age={tokens.JWKS_MAX_AGE}"
        return response


class WellKnownJwksView(JwksView):
    """``GET /.well-known/jwks.json``: the same JWK Set at its conventional place (outside the API schema,
    which documents ``/api/v1/jwks``)."""

    schema = None


class IamAdminsOnly(BasePermission):
    """Refuse (403) every write by anyone but IAM admins (reads — ``OPTIONS`` — pass)."""

    message = "Only IAM admins rotate the task-token signing key."

    def has_permission(self, request, view):
        return request.method in SAFE_METHODS or is_iam_admin(request.user)


class SigningKeyRotateView(TokenEndpoint):
    """``POST /api/v1/signing-keys/rotate``: a new signing key; the previous one keeps verifying until retired."""

    permission_classes = [ServedMethodsOnly, IsAuthenticated, TokenScopePermission, IamAdminsOnly]
    serializer_class = StrictInputSerializer
    read_scope = IntegrationToken.Scope.TOKENS_ISSUE
    write_scope = IntegrationToken.Scope.TOKENS_ISSUE

    @extend_schema(
        summary="Rotate the task-token signing key (IAM admins)",
        description="A new ES256 key signs every token from now on; the previous active key is `retiring`: "
        "still published and still verifying the tokens it signed until the `retire-signing-keys` job retires "
        "it. An IAM admin, with an integration token: one holding `tokens:issue`. Answers 201 with the new "
        "`kid` and the retiring one. The body is empty (`{}`).",
        request=None,
        responses={201: ROTATE_RESPONSE, 403: OpenApiResponse(OpenApiTypes.OBJECT, description="Not an IAM admin.")},
    )
    def post(self, request):
        self.parse(StrictInputSerializer)
        previous = tokens.SigningKey.objects.filter(status=tokens.SigningKey.Status.ACTIVE).first()
        key = tokens.signing_key_rotate(actor=Actor.from_request(request), now=timezone.now())
        return Response(
            {"kid": key.kid, "retiring": previous.kid if previous else None}, status=status.HTTP_201_CREATED
        )


urlpatterns = [
    re_path(r"^tokens/revoke/?$", TaskTokenRevokeView.as_view(), name="task-token-revoke"),
    re_path(r"^introspect/?$", IntrospectView.as_view(), name="task-token-introspect"),
    re_path(r"^jwks/?$", JwksView.as_view(), name="jwks"),
    re_path(r"^signing-keys/rotate/?$", SigningKeyRotateView.as_view(), name="signing-key-rotate"),
]
