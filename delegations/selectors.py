"""Reads of delegation grants shared by the web UI and the REST API.

Each selector returns a queryset already limited to what ``user`` may see
(``delegations.permissions``), with the joins its pages need, annotated with ``state`` as of
``now`` (``GrantQuerySet.with_state_at``: enforcement's own rule), in a total order.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Prefetch, Q, QuerySet

from governance.audit import object_type_of
from governance.models import AuditEvent
from governance.roles import can_read_all
from inventory.models import Agent
from inventory.permissions import visible_agents_q

from .models import Approval, DecisionLog, DelegationGrant, GrantScope
from .permissions import visible_grants_q


def grant_list(*, user, now: datetime) -> QuerySet[DelegationGrant]:
    """Grants visible to ``user`` with agent, owner, requester, parent joined, scopes and approvals
    prefetched, ``state`` as of ``now``; newest request first."""
    return (
        DelegationGrant.objects.filter(visible_grants_q(user))
        .with_state_at(now)
        .select_related(
            "agent__owner", "agent__backup_owner", "requested_by", "on_behalf_of", "parent__agent", "decided_by"
        )
        .prefetch_related(
            Prefetch("scopes", queryset=GrantScope.objects.order_by("tool_name", "access", "resource_pattern")),
            Prefetch("approvals", queryset=Approval.objects.select_related("approver").order_by("decided_at", "id")),
        )
        .order_by("-requested_at", "-id")
    )


def grant_get(*, user, pk: int, now: datetime) -> DelegationGrant:
    """One grant visible to ``user``; raises ``DelegationGrant.DoesNotExist`` otherwise."""
    return grant_list(user=user, now=now).get(pk=pk)


def approval_queue(*, user, now: datetime) -> QuerySet[DelegationGrant]:
    """Pending requests, oldest first (the approval queue of IAM admins)."""
    return grant_list(user=user, now=now).filter(status=DelegationGrant.Status.PENDING).order_by("requested_at", "id")


def grants_expiring_within(*, user, now: datetime, within: timedelta = timedelta(days=7)) -> QuerySet[DelegationGrant]:
    """Grants that authorise at ``now`` and end within ``within``; soonest first (the dashboard list)."""
    return (
        grant_list(user=user, now=now)
        .filter(pk__in=DelegationGrant.objects.active_at(now).values("pk"), expires_at__lte=now + within)
        .order_by("expires_at", "id")
    )


def grant_chain(grant: DelegationGrant) -> list[DelegationGrant]:
    """The grants above ``grant`` in its chain, root first, then ``grant`` itself (at most the policy depth)."""
    chain, node = [grant], grant
    while node.parent_id is not None:
        node = DelegationGrant.objects.select_related("agent", "parent").get(pk=node.parent_id)
        chain.append(node)
    return list(reversed(chain))


def grant_list_mine(*, user, now: datetime) -> QuerySet[DelegationGrant]:
    """``grant_list`` narrowed to the grants ``user`` requested and those of agents they own or back up
    ("my grants")."""
    if not getattr(user, "is_authenticated", False):
        return grant_list(user=user, now=now).none()
    mine = Q(requested_by=user) | Q(agent__owner=user) | Q(agent__backup_owner=user)
    return grant_list(user=user, now=now).filter(mine)


def grant_history(grant: DelegationGrant) -> QuerySet[AuditEvent]:
    """The audit events about ``grant`` (its request, approvals, denial, cancellation, revocation,
    expiry), oldest first."""
    return AuditEvent.objects.filter(object_type=object_type_of(grant), object_id=str(grant.pk)).order_by("id")


def decision_log_visible(*, user) -> QuerySet[DecisionLog]:
    """Decision-log entries ``user`` may read, newest first, with agent and asker joined: all of them for
    IAM admins and auditors (those naming no known agent included), otherwise those of the agents
    ``user`` may see (``inventory.permissions.visible_agents_q``)."""
    entries = DecisionLog.objects.all()
    if not can_read_all(user):
        entries = entries.filter(agent__in=Agent.objects.filter(visible_agents_q(user)).values("pk"))
    return entries.select_related("agent", "requested_by").order_by("-decided_at", "-id")
