"""The runtime decision endpoint: ``POST /api/v1/decisions`` and ``POST /api/v1/decisions/batch``.

An agent runtime or MCP gateway asks before each tool call whether the agent — named by its
workload identity, or by an identity token (an OIDC JWT or a SPIFFE JWT-SVID Warrant verifies
against its issuer registry) — may call ``tool`` with ``access`` on ``resource``. The answer is
always 200 with ``decision`` ``allow`` or ``deny`` and reason codes (``delegations.decisions.REASONS``);
400 is kept for a malformed request. The rule is ``delegations.decisions.decide``, shared with the
UI's test form and the task-token issuer. Token scope ``decisions:check``; an agent owner's token
decides only for the agents they own or back up (others read as ``identity_unknown``).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from delegations.decisions import Decision, DecisionRequest, Subject, decide, decision_log_write, reason
from delegations.models import resource_problem
from governance.api.serializers import StrictInputSerializer, UTCDateTimeField
from governance.api.viewsets import WarrantViewSet
from governance.models import MAX_DELEGATION_DEPTH, IntegrationToken
from inventory.identity_proof import IdentityTokenError, verify_identity_token
from inventory.models import AccessLevel, WorkloadIdentity

#: Most requests in one batch.
MAX_BATCH = 100


class WorkloadIdentityRefSerializer(StrictInputSerializer):
    """A workload identity as the agent presents it: ``type``, ``identifier`` and, for OIDC, ``issuer``."""

    type = serializers.ChoiceField(choices=WorkloadIdentity.Type.choices)
    identifier = serializers.CharField(max_length=500)
    issuer = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["type"] == WorkloadIdentity.Type.OIDC and not attrs["issuer"]:
            raise serializers.ValidationError({"issuer": ["An OIDC identity needs its issuer."]})
        if attrs["type"] != WorkloadIdentity.Type.OIDC and attrs["issuer"]:
            raise serializers.ValidationError({"issuer": ["Only OIDC identities have an issuer."]})
        return attrs


class DecisionInputSerializer(StrictInputSerializer):
    """One decision request. Exactly one of ``workload_identity`` and ``identity_token``."""

    workload_identity = WorkloadIdentityRefSerializer(required=False)
    identity_token = serializers.CharField(required=False, max_length=16384, trim_whitespace=True)
    tool = serializers.CharField(max_length=100)
    access = serializers.ChoiceField(choices=AccessLevel.choices)
    resource = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    intent = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    on_behalf_of = serializers.CharField(max_length=150, required=False, allow_blank=True, default="")
    grant_chain = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        default=list,
        max_length=MAX_DELEGATION_DEPTH,
        help_text="The grant ids the agent claims to act under: its own grant first, then up to the root.",
    )

    def validate_resource(self, value):
        problem = resource_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        given = [name for name in ("workload_identity", "identity_token") if attrs.get(name)]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ["Name the agent with exactly one of workload_identity and identity_token."]}
            )
        if len(set(attrs["grant_chain"])) != len(attrs["grant_chain"]):
            raise serializers.ValidationError({"grant_chain": ["A grant appears twice in the chain."]})
        return attrs


class DecisionBatchInputSerializer(StrictInputSerializer):
    """Up to ``MAX_BATCH`` decision requests, decided one by one, answered in the same order."""

    requests = serializers.ListField(
        child=DecisionInputSerializer(),
        min_length=1,
        max_length=MAX_BATCH,
        error_messages={
            "min_length": "Send at least one request.",
            "max_length": f"Send at most {MAX_BATCH} requests in one batch.",
        },
    )


#: One validator instance of each form per process: DRF builds a serializer's fields by deep copy on
#: every instantiation, which costs more than validating a decision request. Validation keeps no state
#: on the instance (``run_validation`` returns the data or raises), so sharing it is safe.
_SINGLE = DecisionInputSerializer()
_BATCH = DecisionBatchInputSerializer()


def validated(validator: serializers.Serializer, data) -> dict:
    """``data`` validated by ``validator``, or a 400 with the field messages, exactly as ``is_valid``."""
    try:
        return validator.run_validation(data)
    except serializers.ValidationError as exc:
        detail = exc.detail if isinstance(exc.detail, Mapping) else {"non_field_errors": exc.detail}
        raise serializers.ValidationError(detail) from None


DECISION_RESPONSE = inline_serializer(
    "Decision",
    {
        "decision": serializers.ChoiceField(choices=["allow", "deny"]),
        "reasons": inline_serializer(
            "DecisionReason", {"code": serializers.CharField(), "message": serializers.CharField()}, many=True
        ),
        "agent": serializers.CharField(allow_null=True),
        "grant": serializers.IntegerField(allow_null=True),
        "grant_chain": serializers.ListField(child=serializers.IntegerField()),
        "authority_ends_at": serializers.DateTimeField(allow_null=True),
        "decided_at": serializers.DateTimeField(),
        "logged": serializers.BooleanField(),
    },
)


_UTC = UTCDateTimeField()  # the API's datetimes: ISO 8601 in UTC with a Z


def _iso(value) -> str | None:
    return _UTC.to_representation(value) if value is not None else None


def render_decision(decision: Decision, *, logged: bool) -> dict:
    """The JSON of one decision."""
    return {
        "decision": decision.outcome,
        "reasons": [r.as_dict() for r in decision.reasons],
        "agent": decision.agent_slug or None,
        "grant": decision.grant_id,
        "grant_chain": list(decision.grant_chain),
        "authority_ends_at": _iso(decision.authority_ends_at),
        "decided_at": _iso(decision.decided_at),
        "logged": logged,
    }


class DecisionViewSet(WarrantViewSet):
    """Runtime decisions before tool calls: may this agent, now, call this tool with this access on
    this resource? (OWASP NHI Top 10 2025 NHI5: least privilege at the moment of use.)"""

    read_scope = IntegrationToken.Scope.DECISIONS_CHECK
    write_scope = IntegrationToken.Scope.DECISIONS_CHECK
    http_method_names = ["post", "options"]
    serializer_class = DecisionInputSerializer  # describes the request body to OPTIONS

    def get_serializer_class(self):
        return DecisionBatchInputSerializer if self.action == "batch" else DecisionInputSerializer

    def _decide_one(self, data: dict, now) -> dict:
        request = self.request
        token = data.get("identity_token")
        subject, failure = None, None
        if token:
            try:
                verified = verify_identity_token(token, now=now)
            except IdentityTokenError as exc:
                failure = reason("identity_token_invalid", f"{exc.code}: {exc.message}")
            else:
                subject = Subject(verified.type, verified.identifier, verified.issuer)
        else:
            ref = data["workload_identity"]
            subject = Subject(ref["type"], ref["identifier"], ref["issuer"])
        asked = DecisionRequest(
            tool=data["tool"],
            access=data["access"],
            subject=subject or Subject("token", "(unverified identity token)"),
            resource=data["resource"],
            intent=data["intent"],
            on_behalf_of=data["on_behalf_of"],
            grant_chain=tuple(data["grant_chain"]),
        )
        if failure is not None:
            decision = Decision(False, (failure,), now)
        else:
            decision = decide(asked, now=now, viewer=request.user)
        auth = request.auth
        via = auth.name if isinstance(auth, IntegrationToken) else ""
        logged = decision_log_write(asked, decision, requested_by=request.user, requested_via=via)
        return render_decision(decision, logged=logged)

    @extend_schema(
        summary="Decide a tool call",
        description="May the agent, now, call `tool` with `access` on `resource`? Name the agent by "
        "`workload_identity` (`type`, `identifier`, and `issuer` for OIDC) or by `identity_token` (an OIDC "
        "JWT or a SPIFFE JWT-SVID from a trusted issuer). Always 200 with `allow` or `deny` and reason "
        "codes; `grant` is the grant that authorises and `authority_ends_at` when its authority (or its "
        "chain's) ends. Every denial and a sample of allows are kept in the decision log.",
        request=DecisionInputSerializer,
        responses={200: DECISION_RESPONSE},
    )
    def create(self, request):
        data = validated(_SINGLE, request.data)
        return Response(self._decide_one(data, timezone.now()), status=status.HTTP_200_OK)

    @extend_schema(
        summary="Decide many tool calls",
        description=f"Up to {MAX_BATCH} requests of the single form, each decided on its own, answered in the "
        "same order under `decisions`. A malformed item refuses the whole batch (400, errors by index).",
        request=DecisionBatchInputSerializer,
        responses={
            200: inline_serializer("DecisionBatch", {"decisions": serializers.ListField(child=serializers.DictField())})
        },
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        data = validated(_BATCH, request.data)
        now = timezone.now()
        return Response({"decisions": [self._decide_one(item, now) for item in data["requests"]]})
