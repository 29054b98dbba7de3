"""Delegation grants API: list, retrieve, request, and the actions approve, deny, cancel, revoke,
renew and bulk renewal.

Each endpoint parses with a strict input serializer, calls one service of
``delegations.services`` (which checks who may, the grant's state and the input, writes and
records the audit event in one transaction) and renders the grant as the selector reads it,
with its ``state`` as of now. Reads go through ``delegations.selectors.grant_list`` and the
shared ``GrantFilterSet``; a grant the caller may not see is 404. With an integration token,
reads need ``grants:read`` and writes ``grants:write`` — except ``tokens`` (issue a task token,
``delegations.api.tokens``), which needs ``tokens:issue``.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action

from delegations import selectors, services
from delegations.filters import GrantFilterSet
from delegations.models import DelegationGrant
from governance.api.serializers import OptionalReasonInputSerializer, ReasonInputSerializer
from governance.api.viewsets import WarrantViewSet
from governance.models import IntegrationToken

from .serializers import (
    ApproveInputSerializer,
    GrantRequestInputSerializer,
    GrantSerializer,
    RenewBulkInputSerializer,
    RenewBulkResultSerializer,
    RenewInputSerializer,
    RevokedGrantSerializer,
)
from .tokens import (
    TASK_TOKEN_ISSUE_SCHEMA,
    ServedMethodsOnly,
    TaskTokenIssueInputSerializer,
    task_token_issue_response,
)

ID_REGEX = r"[0-9]+"

DECISION_REFUSALS = (
    "403 for the requester, the agent's owner or backup owner and the person the grant acts for "
    "(separation of duties) and for anyone but IAM admins; 409 once the request is no longer pending "
    "or this approver has already decided it."
)


def rekeyed(exc: ValidationError, names: dict[str, str]) -> ValidationError:
    """``exc`` with its field keys renamed by ``names`` (a service's argument → the API's field)."""
    if not hasattr(exc, "error_dict"):
        return exc
    return ValidationError({names.get(k, k): v for k, v in exc.error_dict.items()})


@extend_schema_view(
    list=extend_schema(
        summary="List delegation grants",
        description="Newest request first. `status` filters by the state as of now (`active` means "
        "authorising now; `expired` includes grants whose end has come before the expiry job ran).",
    ),
    retrieve=extend_schema(summary="Get a delegation grant"),
)
class GrantViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, WarrantViewSet):
    """Delegation grants: an agent's scopes for a purpose, until an expiry, approved with separation
    of duties. Owners see the grants of the agents they own or back up and those they requested
    or that act for them; IAM admins and auditors see all."""

    serializer_class = GrantSerializer
    filterset_class = GrantFilterSet
    read_scope = IntegrationToken.Scope.GRANTS_READ
    write_scope = IntegrationToken.Scope.GRANTS_WRITE
    lookup_value_regex = ID_REGEX

    def get_queryset(self):
        if self.is_schema_request:
            return DelegationGrant.objects.none()
        return selectors.grant_list(user=self.request.user, now=timezone.now())

    def _reload(self, grant: DelegationGrant) -> DelegationGrant:
        return selectors.grant_get(user=self.request.user, pk=grant.pk, now=timezone.now())

    def _render(self, grant: DelegationGrant, *, code: int = status.HTTP_200_OK):
        return self.render(self._reload(grant), code=code)

    @extend_schema(
        summary="Request a delegation grant",
        description="The agent's owner or backup owner, or an IAM admin, asks for `scopes` on the agent's "
        "tools until `expires_at` (with a UTC offset; required). A request longer than the cap for the "
        "agent's risk tier is refused (400), never trimmed. A child grant (`parent`) asks only for scopes "
        "within its parent's and ends no later. The grant starts pending; 409 if the agent is not active.",
        request=GrantRequestInputSerializer,
        responses={201: GrantSerializer},
    )
    def create(self, request):
        data = self.parse(GrantRequestInputSerializer)
        data["scopes"] = [services.ScopeRequest(**scope) for scope in data["scopes"]]
        grant = services.grant_request(actor=self.actor, **data)
        return self._render(grant, code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Approve a grant request (IAM admins)",
        description="One approval of the distinct approvers the grant needs; the grant becomes active with "
        "the last. `expires_at` may shorten it, never lengthen it. " + DECISION_REFUSALS,
        request=ApproveInputSerializer,
        responses=GrantSerializer,
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        grant = self.get_object()
        data = self.parse(ApproveInputSerializer)
        return self._render(services.grant_approve(actor=self.actor, grant=grant, **data))

    @extend_schema(
        summary="Deny a grant request (IAM admins)",
        description="One denial ends the request; the `reason` is required and sent to the requester. "
        + DECISION_REFUSALS,
        request=ReasonInputSerializer,
        responses=GrantSerializer,
    )
    @action(detail=True, methods=["post"])
    def deny(self, request, pk=None):
        grant = self.get_object()
        data = self.parse(ReasonInputSerializer)
        return self._render(services.grant_deny(actor=self.actor, grant=grant, **data))

    @extend_schema(
        summary="Cancel a pending grant request",
        description="The requester, the agent's owner or backup owner, or an IAM admin; 409 once it is not pending.",
        request=OptionalReasonInputSerializer,
        responses=GrantSerializer,
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        grant = self.get_object()
        data = self.parse(OptionalReasonInputSerializer)
        return self._render(services.grant_cancel(actor=self.actor, grant=grant, **data))

    @extend_schema(
        summary="Revoke an active grant and every grant below it in its chain",
        description="The `reason` is required. Active descendants are revoked and pending ones cancelled, "
        "one audit event each; `ended` lists the ids of every grant ended, this one first. 409 if the grant "
        "is not active.",
        request=ReasonInputSerializer,
        responses=RevokedGrantSerializer,
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        grant = self.get_object()
        data = self.parse(ReasonInputSerializer)
        ended = services.grant_revoke(actor=self.actor, grant=grant, **data)
        revoked = self._reload(grant)
        revoked.ended_ids = [g.pk for g in ended]
        return self.render(revoked, serializer_class=RevokedGrantSerializer)

    @extend_schema(
        summary="Ask to renew a grant",
        description="A new request linked to this grant, with its scopes, through the same caps and approvals "
        "(the agent's owner never approves it). Give exactly one of `duration_seconds` or `expires_at` "
        "(with offset): there is no default length. The renewal starts when this grant ends if it is still "
        "active, else now. 409 unless the grant is active or expired.",
        request=RenewInputSerializer,
        responses={201: GrantSerializer},
    )
    @action(detail=True, methods=["post"])
    def renew(self, request, pk=None):
        grant = self.get_object()
        data = self.parse(RenewInputSerializer)
        seconds = data.pop("duration_seconds", None)
        duration = timedelta(seconds=seconds) if seconds is not None else None
        names = {"duration": "duration_seconds"}
        if duration is not None:
            names["expires_at"] = "duration_seconds"
        try:
            renewal = services.grant_renew(actor=self.actor, grant=grant, duration=duration, **data)
        except ValidationError as exc:
            raise rekeyed(exc, names) from exc
        return self._render(renewal, code=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Renew many grants, each on its own terms",
        description="`items`: each a `grant` (id) and its `duration_seconds`. Each item is renewed on its own, "
        "through the same caps and approvals; one refused item (over the cap, no duration, not renewable, "
        "not permitted) does not stop the others. Answers 200 with one result per item, in order: the "
        "renewal request made, or the error.",
        request=RenewBulkInputSerializer,
        responses=RenewBulkResultSerializer,
    )
    @action(detail=False, methods=["post"], url_path="renew-bulk")
    def renew_bulk(self, request):
        data = self.parse(RenewBulkInputSerializer)
        items = [
            (
                item["grant"],
                timedelta(seconds=item["duration_seconds"]) if item["duration_seconds"] is not None else None,
            )
            for item in data["items"]
        ]
        results = services.grants_renew_bulk(actor=self.actor, items=items)
        made = [r.renewal.pk for r in results if r.renewal is not None]
        renewals = {g.pk: g for g in selectors.grant_list(user=request.user, now=timezone.now()).filter(pk__in=made)}
        rows = [
            {
                "grant": r.grant,
                "renewal": renewals.get(r.renewal.pk) if r.renewal is not None else None,
                "error": r.error or None,
            }
            for r in results
        ]
        return self.render({"results": rows}, serializer_class=RenewBulkResultSerializer)

    @TASK_TOKEN_ISSUE_SCHEMA
    @action(
        detail=True,
        methods=["post"],
        url_path="tokens",
        # this route's own settings: another method is a plain 405 whoever asks, OPTIONS needs the same
        # scope as POST, and OPTIONS describes the input serializer
        permission_classes=[ServedMethodsOnly, *WarrantViewSet.permission_classes],
        read_scope=IntegrationToken.Scope.TOKENS_ISSUE,
        write_scope=IntegrationToken.Scope.TOKENS_ISSUE,
        serializer_class=TaskTokenIssueInputSerializer,
    )
    def tokens(self, request, pk=None):
        """Issue a task token for one task under this grant: a short-lived signed JWT (RFC 9068) bound to
        the agent's workload identity. Scope ``tokens:issue``; ``delegations.api.tokens`` does the work."""
        return task_token_issue_response(self, self.get_object())
