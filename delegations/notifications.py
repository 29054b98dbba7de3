"""E-mails about delegation grants, sent after the change commits (by ``tasks.send_grant_notifications``).

- ``requested``: every active IAM admin who may decide it (never the requester, the agent's
  owner or backup owner, or the person it acts for) — a new request waits in the queue; not sent
  if it no longer waits when the task runs.
- ``approved`` / ``denied``: the requester — by whom and why (every approver, with their
  comments, when several approved).
- ``expiring``: the requester and the agent's owner — the grant ends within the reminder window.
- ``expired`` / ``revoked`` / ``cancelled``: the requester and the agent's owner — the grant ended
  (revoked or cancelled: by whom and why).

One message per grant, addressed to all its recipients; people without an e-mail address are skipped.
A message is written when the task runs, from what does not change after its event: the approvals
and denials as recorded, and an ended grant's end; never from a state a later change may have
replaced (an approval mailed after a revocation still says who approved it and why).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, mailers
from django.db.models import Prefetch, Q

from governance.roles import IAM_ADMIN

from .models import Approval, DelegationGrant

KINDS = ("requested", "approved", "denied", "expiring", "expired", "revoked", "cancelled")


def _emails(users: Iterable) -> list[str]:
    seen, out = set(), []
    for u in users:
        if u is not None and u.is_active and u.email and u.email not in seen:
            seen.add(u.email)
            out.append(u.email)
    return out


def _approvers(grant: DelegationGrant) -> list:
    excluded = {grant.requested_by_id, grant.agent.owner_id, grant.agent.backup_owner_id, grant.on_behalf_of_id}
    users = get_user_model().objects.filter(Q(is_superuser=True) | Q(groups__name=IAM_ADMIN), is_active=True).distinct()
    return [u for u in users.order_by("pk") if u.pk not in excluded]


def _fmt(dt) -> str:
    return dt.strftime("%Y-%m-%d %H:%M UTC")


def _scopes(grant: DelegationGrant) -> str:
    return ", ".join(str(s) for s in grant.scopes.all())


def _link(grant: DelegationGrant) -> str:
    return f"{settings.WARRANT_BASE_URL.rstrip('/')}/grants/{grant.pk}/"


def message_for(kind: str, grant: DelegationGrant) -> EmailMessage | None:
    """The e-mail of ``kind`` (one of ``KINDS``) about ``grant``, or None when nobody is to receive it."""
    agent = grant.agent
    owner_and_requester = _emails([grant.requested_by, agent.owner])
    if kind == "requested":
        if grant.status != DelegationGrant.Status.PENDING:
            return None  # decided, cancelled or withdrawn before the mail left: nothing waits for anyone
        to = _emails(_approvers(grant))
        subject = f"[Warrant] Grant request for {agent.name} awaits approval"
        body = (
            f"{grant.requested_by.get_username()} asks for a grant to {agent.name} "
            f"(risk tier {agent.risk_tier}).\n\nScopes: {_scopes(grant)}\nPurpose: {grant.purpose}\n"
            f"Justification: {grant.justification}\nFrom {_fmt(grant.starts_at)} until {_fmt(grant.expires_at)}\n"
            f"Approvals required: {grant.approvals_required}\n\nDecide it in the approval queue: {_link(grant)}\n"
        )
    elif kind in ("approved", "denied"):
        to = _emails([grant.requested_by])
        decision = Approval.Decision.APPROVE if kind == "approved" else Approval.Decision.DENY
        deciding = [a for a in grant.approvals.all() if a.decision == decision]
        if len(deciding) > 1:
            # Each of the distinct approvers decided: name them all, with what each said.
            who = " and ".join(a.approver.get_username() for a in deciding)
            why = "".join(f"- {a.approver.get_username()}: {a.comment or '(no comment)'}\n" for a in deciding)
            why = f"Their comments:\n{why}"
        else:
            who = deciding[0].approver.get_username() if deciding else "an approver"
            why = f"Reason: {(deciding[0].comment if deciding else '') or '(none given)'}\n"
        subject = f"[Warrant] Your grant request for {agent.name} was {kind}"
        since = ""
        if kind == "approved":
            since = f"It authorises from {_fmt(grant.starts_at)} until {_fmt(grant.expires_at)}.\n"
            if grant.status in (DelegationGrant.Status.REVOKED, DelegationGrant.Status.EXPIRED):
                since += f"It has since been {grant.status} ({_fmt(grant.ended_at)}).\n"
        body = f"Your request #{grant.pk} for {agent.name} was {kind} by {who}.\n{why}{since}\n{_link(grant)}\n"
    elif kind == "expiring":
        to = owner_and_requester
        subject = f"[Warrant] Grant #{grant.pk} for {agent.name} expires {_fmt(grant.expires_at)}"
        body = (
            f"Grant #{grant.pk} to {agent.name} ({_scopes(grant)}) ends at {_fmt(grant.expires_at)}.\n"
            f"If the work continues, ask for a renewal; it goes through approval again.\n\n{_link(grant)}\n"
        )
    elif kind == "expired":
        to = owner_and_requester
        subject = f"[Warrant] Grant #{grant.pk} for {agent.name} has expired"
        body = (
            f"Grant #{grant.pk} to {agent.name} ({_scopes(grant)}) ended at {_fmt(grant.expires_at)}.\n\n"
            f"{_link(grant)}\n"
        )
    elif kind == "revoked":
        to = owner_and_requester
        subject = f"[Warrant] Grant #{grant.pk} for {agent.name} was revoked"
        body = (
            f"Grant #{grant.pk} to {agent.name} ({_scopes(grant)}) was revoked by {grant.ended_by or 'an admin'} "
            f"at {_fmt(grant.ended_at)}: {grant.end_reason or '(no reason given)'}\n\n{_link(grant)}\n"
        )
    elif kind == "cancelled":
        to = owner_and_requester
        subject = f"[Warrant] Grant request #{grant.pk} for {agent.name} was cancelled"
        by = f" by {grant.ended_by}" if grant.ended_by else ""
        body = f"Request #{grant.pk} for {agent.name} was cancelled{by}: {grant.end_reason}\n\n{_link(grant)}\n"
    else:
        raise ValueError(f"unknown notification {kind!r}; known: {', '.join(KINDS)}")
    if not to:
        return None
    return EmailMessage(subject=subject, body=body, to=to)


def grant_notifications_send(*, kind: str, grant_ids: Iterable[int]) -> int:
    """Send the ``kind`` e-mail for each grant in ``grant_ids`` over one connection; returns messages sent."""
    grants = (
        DelegationGrant.objects.filter(pk__in=list(grant_ids))
        .select_related("agent__owner", "agent__backup_owner", "requested_by", "decided_by")
        .prefetch_related("scopes", Prefetch("approvals", queryset=Approval.objects.select_related("approver")))
        .order_by("pk")
    )
    messages = [m for m in (message_for(kind, g) for g in grants) if m is not None]
    if not messages:
        return 0
    with mailers.default as connection:
        return connection.send_messages(messages) or 0
