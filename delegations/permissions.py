"""Who may see, request, decide, cancel and revoke delegation grants — the one place these rules live.

Separation of duties (DESIGN.md invariant 4): IAM admins approve; nobody approves a grant
they requested, one for an agent they own or back up, or one that acts on their behalf;
an approver decides once. UI views (to show why a person may not decide), API views and
services all ask these functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q

from governance.errors import Conflict, PermissionDenied
from governance.roles import can_read_all, is_agent_owner, is_iam_admin
from inventory.permissions import can_change_agent, is_owner_of

from .models import DelegationGrant

if TYPE_CHECKING:
    from inventory.models import Agent


def visible_grants_q(user) -> Q:
    """A ``Q`` over DelegationGrant for the grants ``user`` may see.

    IAM admins and auditors see all; others the grants of agents they own or back up, the
    grants they requested and those that act on their behalf.
    """
    if can_read_all(user):
        return Q()
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return Q(pk__in=[])
    return Q(agent__owner=user) | Q(agent__backup_owner=user) | Q(requested_by=user) | Q(on_behalf_of=user)


def can_view_grant(user, grant: DelegationGrant) -> bool:
    """True if ``user`` may read ``grant``, its scopes, approvals and history."""
    if can_read_all(user) or is_owner_of(user, grant.agent):
        return True
    return getattr(user, "is_active", False) and user.pk in (grant.requested_by_id, grant.on_behalf_of_id)


def can_request_grant(user, agent) -> bool:
    """IAM admins, and the agent's owner or backup owner, may request a grant for it."""
    return can_change_agent(user, agent)


def decision_refusal(user, grant: DelegationGrant, approvals=None) -> Exception | None:
    """Why ``user`` may not approve or deny ``grant`` now, or None if they may.

    Returns a ``PermissionDenied`` (not an IAM admin; the requester; the agent's owner or
    backup owner; the person it acts for) or a ``Conflict`` (no longer pending; already
    decided) carrying the reason to show. ``approvals`` may pass the grant's approvals
    already loaded (a list), to spare a query per row on list pages.
    """
    if not is_iam_admin(user):
        return PermissionDenied("Only IAM admins approve or deny grant requests.")
    if grant.status != DelegationGrant.Status.PENDING:
        return Conflict(f"This request is no longer pending: it is {grant.get_status_display().lower()}.")
    if user.pk == grant.requested_by_id:
        return PermissionDenied("You requested this grant; someone else must decide it (separation of duties).")
    if user.pk in (grant.agent.owner_id, grant.agent.backup_owner_id):
        return PermissionDenied(
            "You own or back up this agent; someone else must decide its grants (separation of duties)."
        )
    if grant.on_behalf_of_id is not None and user.pk == grant.on_behalf_of_id:
        return PermissionDenied("This grant acts on your behalf; someone else must decide it (separation of duties).")
    if approvals is None:
        mine = grant.approvals.filter(approver=user).first()
    else:
        mine = next((a for a in approvals if a.approver_id == user.pk), None)
    if mine is not None:
        return Conflict(f"You already decided this request ({mine.get_decision_display().lower()}); an approver "
                        "decides once.")  # fmt: skip
    return None


def can_cancel_grant(user, grant: DelegationGrant) -> bool:
    """The requester, the agent's owner or backup owner, and IAM admins may cancel a pending request."""
    return (
        is_iam_admin(user)
        or is_owner_of(user, grant.agent)
        or (getattr(user, "is_active", False) and user.pk == grant.requested_by_id)
    )


def can_revoke_grant(user, grant: DelegationGrant) -> bool:
    """IAM admins, the agent's owner or backup owner, the requester, and the owner of the parent
    grant's agent (who handed the work on) may revoke an active grant."""
    if can_cancel_grant(user, grant):
        return True
    return grant.parent_id is not None and is_owner_of(user, grant.parent.agent)


def can_renew_grant(user, grant: DelegationGrant) -> bool:
    """Whoever may request a grant for the agent may ask to renew one of its grants."""
    return can_request_grant(user, grant.agent)


def grant_actions(user, grant: DelegationGrant, *, now, approvals=None) -> list[str]:
    """The actions ``user`` may take on ``grant`` at instant ``now``, in this order: ``approve`` and
    ``deny`` (``decision_refusal`` finds no reason against), ``cancel`` (pending), ``revoke``
    (approved and its expiry not yet come, whether or not the expiry job has run), ``renew``
    (approved or expired, its agent active). UI pages and the API offer exactly these; the
    services refuse anything else. ``approvals``: the grant's approvals already loaded (a list).
    """
    from inventory.models import Agent

    Status = DelegationGrant.Status
    actions = []
    if decision_refusal(user, grant, approvals=approvals) is None:
        actions += ["approve", "deny"]
    if grant.status == Status.PENDING and can_cancel_grant(user, grant):
        actions.append("cancel")
    if grant.status == Status.ACTIVE and grant.expires_at > now and can_revoke_grant(user, grant):
        actions.append("revoke")
    if (
        grant.status in (Status.ACTIVE, Status.EXPIRED)
        and grant.agent.state == Agent.State.ACTIVE
        and can_renew_grant(user, grant)
    ):
        actions.append("renew")
    return actions


def can_issue_task_token(user, agent: Agent) -> bool:
    """Who may issue and revoke task tokens for ``agent``'s grants: its owner or backup owner, and IAM
    admins — those who may act for the agent (``inventory.permissions.can_change_agent``)."""
    return user is not None and can_change_agent(user, agent)


def may_test_decisions(user) -> bool:
    """IAM admins and auditors test decisions for any agent; agent owners for the agents they own or back up
    (the form offers only the agents ``user`` may see, and ``decide`` checks again)."""
    return can_read_all(user) or is_agent_owner(user)
