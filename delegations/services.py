"""Every write to delegation grants: one function per use case.

Each service is keyword-only, takes the acting ``Actor``, checks permission
(``PermissionDenied`` → 403), state (``Conflict`` → 409) and input (``ValidationError`` with
field messages → 400), writes, and records its audit event in one transaction (DESIGN.md
invariant 2). State changes lock the grant row first (``select_for_update``), so two
approvals, or an approval racing a revocation or the expiry job, end in one consistent
state (invariant 10). Notifications go out after commit, through a Celery task.

The rules: invariants 4 (separation of duties), 5 (chains attenuate), 6 (grant length
capped per risk tier, refused, never trimmed) and 1 (enforcement is
``DelegationGrant.objects.active_at``; the expiry job only keeps the books).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from governance.audit import Actor, PendingEvent, audit_record, audit_record_many, object_type_of, to_json
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.models import Policy
from inventory.models import AccessLevel, Agent, DataClass, validate_display_text
from inventory.secrets import text_refusal

from .models import (
    Approval,
    DelegationGrant,
    GrantScope,
    pattern_covers,
    scope_label,
    validate_resource_pattern,
)
from .permissions import can_cancel_grant, can_renew_grant, can_request_grant, can_revoke_grant, decision_refusal

#: Data classes whose reach makes a grant need the elevated number of approvers (invariant 4).
ELEVATED_DATA_CLASSES = frozenset({DataClass.PAYMENT, DataClass.HEALTH, DataClass.PRODUCTION})
#: Risk tiers whose agents need the elevated number of approvers; unassessed counts as high.
ELEVATED_TIERS = frozenset({Agent.RiskTier.HIGH, Agent.RiskTier.CRITICAL, Agent.RiskTier.UNASSESSED})
#: How far in the past a requested start may lie (clock skew between the client and Warrant).
START_TOLERANCE = timedelta(minutes=5)
#: Rows per batch in the set-based jobs: memory is bounded by this, not by the rows due.
JOB_BATCH_SIZE = 5000

GRANT_AUDIT_FIELDS = ("status", "starts_at", "expires_at")


@dataclass(frozen=True)
class ScopeRequest:
    """One scope asked for: a tool of the agent (by name), an access level (``read``, ``write``
    or ``execute``) and a resource pattern (empty for any; an exact resource; a prefix ending in ``*``)."""

    tool: str
    access: str
    resource: str = ""

    def __str__(self) -> str:
        return scope_label(self.tool, self.access, self.resource)


@dataclass(frozen=True)
class RenewalResult:
    """The outcome of one item of a bulk renewal: the new request, or why it was refused."""

    grant: DelegationGrant
    renewal: DelegationGrant | None = None
    error: str = ""


# --- helpers -------------------------------------------------------------------------------


def _lock(grant: DelegationGrant) -> DelegationGrant:
    return DelegationGrant.objects.select_for_update(of=("self",)).select_related("agent", "parent").get(pk=grant.pk)


def _user(actor: Actor):
    return actor.user


def _aware(value, field: str) -> datetime:
    if not isinstance(value, datetime):
        raise ValidationError({field: "Give a date and time."})
    if timezone.is_naive(value):
        raise ValidationError({field: "Give a time zone offset (for example Z or +01:00)."})
    return value


def _fmt_duration(delta: timedelta) -> str:
    """A length as people read it: ``30 d``, ``24 h``, or ``24 h 0 min 1 s`` — whole seconds, rounded
    up, so that a request just over the cap never reads as the cap itself."""
    seconds = math.ceil(delta.total_seconds())
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours} h {minutes} min"
    if secs:
        text += f" {secs} s"
    return text


def grant_cap(agent: Agent, policy: Policy | None = None) -> timedelta:
    """The longest grant the policy allows for ``agent``, by its risk tier (invariant 6)."""
    policy = policy or Policy.current()
    return timedelta(hours=policy.grant_max_hours(agent.risk_tier))


def approvals_required_for(
    agent: Agent, scope_data_classes: Iterable[Iterable[str]], policy: Policy | None = None
) -> int:
    """Distinct approvers a grant needs (invariant 4): the policy's elevated number (at least 2)
    for an agent of tier high, critical or not yet assessed, or when a scope's tool reaches
    payment, health or production data; otherwise the standard number."""
    policy = policy or Policy.current()
    reached = set().union(*[set(dc) for dc in scope_data_classes]) if scope_data_classes else set()
    if agent.risk_tier in ELEVATED_TIERS or reached & ELEVATED_DATA_CLASSES:
        return policy.grant_approvals_elevated
    return policy.grant_approvals_standard


def _grant_after(grant: DelegationGrant, **extra) -> dict:
    return to_json(
        {
            "status": grant.status,
            "agent": grant.agent.slug,
            "starts_at": grant.starts_at,
            "expires_at": grant.expires_at,
            **extra,
        }
    )


def _notify(kind: str, grant_ids: Sequence[int]) -> None:
    """Send notification ``kind`` about ``grant_ids`` once the transaction commits (Celery task)."""
    ids = list(grant_ids)
    if not ids:
        return

    def send():
        from .tasks import send_grant_notifications

        send_grant_notifications.delay(kind, ids)

    # robust: a broker that is down is logged, never turned into an error after the change committed.
    transaction.on_commit(send, robust=True)


def _check_scopes(agent: Agent, scopes: Sequence[ScopeRequest]) -> list[GrantScope]:
    """Resolve requested scopes against the agent's tools; field-keyed ValidationError on any fault."""
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise ValidationError({"scopes": "Ask for at least one scope (a tool and an access level)."})
    tools = {t.name: t for t in agent.tools.all()}
    errors, rows, seen = [], [], set()
    for i, s in enumerate(scopes):
        label = f"Scope {i + 1}"
        if s.tool not in tools:
            errors.append(f"{label}: {agent} has no tool named {s.tool!r}.")
            continue
        tool = tools[s.tool]
        if s.access not in AccessLevel.values:
            errors.append(f"{label}: unknown access level {s.access!r}; use read, write or execute.")
            continue
        if tool.access_levels and s.access not in tool.access_levels:
            errors.append(f"{label}: {tool.name} offers only {', '.join(tool.access_levels)} access, not {s.access}.")
            continue
        try:
            validate_resource_pattern(s.resource)
        except ValidationError as e:
            errors.append(f"{label}: {e.messages[0]}")
            continue
        key = (s.tool, s.access, s.resource)
        if key in seen:
            errors.append(f"{label}: {s} is asked for twice.")
            continue
        seen.add(key)
        rows.append(
            GrantScope(
                tool=tool,
                tool_name=tool.name,
                access=s.access,
                resource_pattern=s.resource,
                data_classes=list(tool.data_classes),
            )
        )
    if errors:
        raise ValidationError({"scopes": errors})
    return rows


def _endpoint(tool) -> str:
    """Where a tool runs — its URL, or the command line of a local (stdio) tool: two agents' tools of
    one name are the same tool only if they run at the same place."""
    return tool.url or " ".join([tool.command, *map(str, tool.args or [])]).strip()


def _check_attenuation(parent: DelegationGrant, agent: Agent, scopes: list[GrantScope], starts_at, expires_at) -> None:
    """Invariant 5: a child's scopes are a subset of its parent's, it neither starts before nor
    outlives it, its depth is bounded, and no agent appears twice in one chain."""
    policy = Policy.current()
    if parent.depth + 1 > policy.grant_max_depth:
        raise ValidationError(
            {
                "parent": f"A delegation chain may hold at most {policy.grant_max_depth} grants; this would be "
                f"grant {parent.depth + 1}."
            }  # fmt: skip
        )
    chain_agents, node = [], parent
    while node is not None:
        chain_agents.append(node.agent_id)
        node = node.parent
    if agent.pk in chain_agents:
        raise ValidationError({"parent": f"{agent} already appears up this chain; a delegation chain has no cycles."})
    parent_scopes = list(parent.scopes.select_related("tool"))
    wider = [
        str(s)
        for s in scopes
        if not any(
            p.tool_name == s.tool_name
            and p.access == s.access
            and pattern_covers(p.resource_pattern, s.resource_pattern)
            for p in parent_scopes
        )
    ]
    elsewhere = []
    for s in scopes:
        same_name = [p for p in parent_scopes if p.tool_name == s.tool_name]
        if same_name and not any(p.tool is not None and _endpoint(p.tool) == _endpoint(s.tool) for p in same_name):
            theirs = next((p.tool for p in same_name if p.tool is not None), None)
            elsewhere.append(
                f"{s.tool_name} of {agent} is not the tool the parent grant covers: it runs at "
                f"{_endpoint(s.tool) or '(no endpoint)'}, the parent's at "
                f"{(_endpoint(theirs) or '(no endpoint)') if theirs else '(a tool since removed)'}."
            )
    if elsewhere:
        raise ValidationError({"scopes": elsewhere})
    if wider:
        raise ValidationError(
            {
                "scopes": [
                    f"{w} is not within the parent grant's scopes ({', '.join(map(str, parent_scopes))})."
                    for w in wider
                ]
            }  # fmt: skip
        )
    if expires_at > parent.expires_at:
        raise ValidationError(
            {"expires_at": f"A child grant cannot outlive its parent, which ends at {parent.expires_at.isoformat()}."}
        )
    if starts_at < parent.starts_at:
        raise ValidationError({"starts_at": "A child grant cannot start before its parent."})


# --- request ---------------------------------------------------------------------------------


def grant_request(
    *,
    actor: Actor,
    agent: Agent,
    scopes: Sequence[ScopeRequest],
    purpose: str,
    justification: str,
    expires_at: datetime,
    starts_at: datetime | None = None,
    intents: Sequence[str] = (),
    on_behalf_of=None,
    parent: DelegationGrant | None = None,
    renewal_of: DelegationGrant | None = None,
) -> DelegationGrant:
    """Request a delegation grant for ``agent`` (its owner or backup owner, or an IAM admin; for a
    child grant, the owner of the agent holding ``parent``, who hands its work on).

    ``scopes``: ``ScopeRequest`` items naming the agent's tools; ``expires_at`` (aware, never
    absent) and ``starts_at`` (aware, default now, at most 5 minutes in the past). The length
    ``expires_at - starts_at`` must not exceed the policy's cap for the agent's risk tier: a
    longer request is refused, never trimmed (invariant 6). A child grant (``parent``, which
    must authorise now) asks only for scopes within its parent's and ends no later (invariant
    5). The request needs ``approvals_required_for`` distinct approvers; they are e-mailed
    after commit. Raises PermissionDenied, Conflict (agent not active), ValidationError.
    """
    now = timezone.now()
    user = _user(actor)
    errors: dict[str, str] = {}
    purpose = (purpose or "").strip()
    justification = (justification or "").strip()
    if not purpose:
        errors["purpose"] = "Say what the grant is for."
    if not justification:
        errors["justification"] = "Justify the request; approvers read it."
    for name, text in (("purpose", purpose), ("justification", justification)):
        refusal = text_refusal(text)
        if refusal and name not in errors:
            errors[name] = refusal
    if expires_at is None:
        errors["expires_at"] = "Every grant ends: give its expiry."
    if errors:
        raise ValidationError(errors)
    expires_at = _aware(expires_at, "expires_at")
    starts_at = now if starts_at is None else _aware(starts_at, "starts_at")
    if isinstance(intents, str) or not all(isinstance(i, str) and i.strip() for i in intents):
        raise ValidationError({"intents": "Intents must be a list of non-empty tags."})
    intents = sorted({i.strip() for i in intents})
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent.pk)
        if parent is None and (user is None or not can_request_grant(user, agent)):
            raise PermissionDenied("You may request grants only for agents you own or back up.")
        if parent is not None and (user is None or not can_request_grant(user, parent.agent)):
            raise PermissionDenied(
                "Only the owner of the agent that holds the parent grant (or an IAM admin) may hand its work on."
            )
        if agent.state != Agent.State.ACTIVE:
            raise Conflict(f"{agent} is {agent.state}; only an active agent may be granted scopes.")
        if starts_at < now - START_TOLERANCE:
            raise ValidationError({"starts_at": "A grant cannot start in the past."})
        if expires_at <= starts_at:
            raise ValidationError({"expires_at": "The expiry must come after the start."})
        if expires_at <= now:
            raise ValidationError({"expires_at": "The expiry is already past."})
        policy = Policy.current()
        cap = grant_cap(agent, policy)
        if expires_at - starts_at > cap:
            tier = (
                "an agent not yet assessed (capped as high risk)"
                if agent.risk_tier == Agent.RiskTier.UNASSESSED
                else f"a {agent.get_risk_tier_display().lower()}-tier agent"
            )
            raise ValidationError(
                {
                    "expires_at": f"{_fmt_duration(expires_at - starts_at)} is longer than the {_fmt_duration(cap)} "
                    f"allowed for {tier}; ask for {_fmt_duration(cap)} or less "
                    "(requests over the cap are refused, not trimmed)."
                }  # fmt: skip
            )
        rows = _check_scopes(agent, scopes)
        depth = 1
        if parent is not None:
            parent = DelegationGrant.objects.select_for_update(of=("self",)).select_related("agent").get(pk=parent.pk)
            if not DelegationGrant.objects.active_at(now).filter(pk=parent.pk).exists():
                raise Conflict(f"{parent} does not authorise anything now ({parent.status}); it cannot be delegated.")
            _check_attenuation(parent, agent, rows, starts_at, expires_at)
            depth = parent.depth + 1
        if on_behalf_of is not None and not on_behalf_of.is_active:
            raise ValidationError({"on_behalf_of": f"{on_behalf_of.get_username()} is not an active person."})
        grant = DelegationGrant(
            agent=agent,
            purpose=purpose,
            intents=intents,
            justification=justification,
            on_behalf_of=on_behalf_of,
            parent=parent,
            depth=depth,
            renewal_of=renewal_of,
            requested_by=user,
            requested_via=actor.label[:200] if actor.type == "integration" else "",
            requested_at=now,
            starts_at=starts_at,
            expires_at=expires_at,
            approvals_required=max(
                approvals_required_for(agent, [r.data_classes for r in rows], policy),
                parent.approvals_required if parent is not None else 0,
            ),
        )
        validate_display_text(grant, "purpose")
        grant.full_clean(exclude=["requested_by", "agent", "parent", "renewal_of", "on_behalf_of"])
        grant.save()
        for r in rows:
            r.grant = grant
        GrantScope.objects.bulk_create(rows)
        audit_record(
            actor=actor,
            verb="grant.renew" if renewal_of is not None else "grant.request",
            obj=grant,
            after=_grant_after(
                grant,
                scopes=[str(r) for r in rows],
                purpose=purpose,
                intents=intents,
                parent=parent.pk if parent else None,
                renewal_of=renewal_of.pk if renewal_of else None,
                on_behalf_of=on_behalf_of.get_username() if on_behalf_of else None,
                approvals_required=grant.approvals_required,
            ),
            at=now,
        )
        _notify("requested", [grant.pk])
    return grant


# --- decisions -------------------------------------------------------------------------------


def _require_may_decide(actor: Actor, grant: DelegationGrant) -> None:
    user = _user(actor)
    refusal = decision_refusal(user, grant) if user is not None else PermissionDenied("A person decides grants.")
    if refusal is not None:
        raise refusal


def grant_approve(
    *, actor: Actor, grant: DelegationGrant, comment: str = "", expires_at: datetime | None = None
) -> DelegationGrant:
    """Approve a pending request as one approver (IAM admins; never the requester, the agent's
    owner or backup owner, or the person it acts for; each approver once — invariant 4).

    ``expires_at`` (aware) may shorten the grant, never lengthen it. The grant becomes active
    when it holds ``approvals_required`` approvals; the requester is e-mailed then. The row is
    locked first, so two approvals at once activate it exactly once (invariant 10). Raises
    PermissionDenied, Conflict (not pending, already decided, agent no longer active, parent no
    longer authorising, expiry passed), ValidationError (lengthened or past expiry; longer than
    the cap for the agent's tier as it stands now — invariant 6 — which the approver may shorten to).
    """
    now = timezone.now()
    comment = (comment or "").strip()
    with transaction.atomic():
        grant = _lock(grant)
        _require_may_decide(actor, grant)
        if grant.agent.state != Agent.State.ACTIVE:
            raise Conflict(f"{grant.agent} is {grant.agent.state}; its grants cannot be approved.")
        if (
            grant.parent_id is not None
            and not DelegationGrant.objects.active_at(now).filter(pk=grant.parent_id).exists()
        ):
            raise Conflict("The parent grant no longer authorises anything; this request cannot be approved.")
        before = {"status": grant.status, "expires_at": grant.expires_at}
        if expires_at is not None:
            expires_at = _aware(expires_at, "expires_at")
            if expires_at > grant.expires_at:
                raise ValidationError(
                    {
                        "expires_at": "An approver may shorten a grant, never lengthen it "
                        f"(requested until {grant.expires_at.isoformat()})."
                    }  # fmt: skip
                )
            if expires_at <= max(now, grant.starts_at):
                raise ValidationError({"expires_at": "The shortened expiry must come after now and after the start."})
            grant.expires_at = expires_at
        if grant.expires_at <= now:
            raise Conflict("This request's expiry has passed; it can no longer be approved.")
        # The cap holds at approval too (invariant 6): the agent's tier or the policy may have changed
        # since the request. Over it is refused, never trimmed; the approver may shorten instead.
        policy = Policy.current()
        cap = grant_cap(grant.agent, policy)
        if grant.expires_at - grant.starts_at > cap:
            tier = grant.agent.get_risk_tier_display().lower()
            raise ValidationError(
                {
                    "expires_at": f"{_fmt_duration(grant.expires_at - grant.starts_at)} is longer than the "
                    f"{_fmt_duration(cap)} now allowed for a {tier}-tier agent (its risk tier or the policy changed "
                    f"since the request); approve with an expiry no later than {(grant.starts_at + cap).isoformat()} "
                    "or deny it."
                }  # fmt: skip
            )
        user = _user(actor)
        Approval.objects.create(
            grant=grant, approver=user, decision=Approval.Decision.APPROVE, comment=comment, decided_at=now
        )
        approved = grant.approvals.filter(decision=Approval.Decision.APPROVE).count()
        required = max(
            grant.approvals_required,
            approvals_required_for(grant.agent, grant.scopes.values_list("data_classes", flat=True), policy),
        )
        fields = ["expires_at"]
        if required != grant.approvals_required:
            grant.approvals_required = required
            fields.append("approvals_required")
        if approved >= required:
            grant.status = DelegationGrant.Status.ACTIVE
            grant.decided_at = now
            grant.decided_by = user
            grant.decision_reason = comment
            fields += ["status", "decided_at", "decided_by", "decision_reason"]
        grant.save(update_fields=fields)
        audit_record(
            actor=actor,
            verb="grant.approve",
            obj=grant,
            before=to_json(before),
            after=_grant_after(grant, approvals=approved, approvals_required=required, comment=comment),
            at=now,
        )
        if grant.status == DelegationGrant.Status.ACTIVE:
            _notify("approved", [grant.pk])
    return grant


def grant_deny(*, actor: Actor, grant: DelegationGrant, reason: str) -> DelegationGrant:
    """Deny a pending request (same approvers as ``grant_approve``; a reason is required).

    One denial ends the request. The requester is e-mailed who decided and why. Raises
    PermissionDenied, Conflict (not pending, already decided), ValidationError (no reason).
    """
    now = timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Give the requester a reason for the denial."})
    with transaction.atomic():
        grant = _lock(grant)
        _require_may_decide(actor, grant)
        user = _user(actor)
        Approval.objects.create(
            grant=grant, approver=user, decision=Approval.Decision.DENY, comment=reason, decided_at=now
        )
        before = {"status": grant.status}
        grant.status = DelegationGrant.Status.DENIED
        grant.decided_at = now
        grant.decided_by = user
        grant.decision_reason = reason
        grant.save(update_fields=["status", "decided_at", "decided_by", "decision_reason"])
        audit_record(
            actor=actor, verb="grant.deny", obj=grant, before=before, after=_grant_after(grant, reason=reason), at=now
        )
        _notify("denied", [grant.pk])
    return grant


def grant_cancel(*, actor: Actor, grant: DelegationGrant, reason: str = "") -> DelegationGrant:
    """Withdraw a pending request (its requester, the agent's owner or backup owner, IAM admins).

    Anyone but the requester must give a reason, and the requester is e-mailed who cancelled it and
    why: ending someone else's request is never a silent veto. Raises PermissionDenied, Conflict
    (not pending), ValidationError (no reason).
    """
    now = timezone.now()
    reason = (reason or "").strip()
    with transaction.atomic():
        grant = _lock(grant)
        if not (actor.is_system or can_cancel_grant(_user(actor), grant)):
            raise PermissionDenied("Only the requester, the agent's owner and IAM admins may cancel a request.")
        if grant.status != DelegationGrant.Status.PENDING:
            raise Conflict(f"Only a pending request can be cancelled; this one is {grant.status}.")
        if not reason and not actor.is_system and _user(actor).pk != grant.requested_by_id:
            raise ValidationError({"reason": "Give the requester a reason: this is not your own request."})
        _end(actor, [grant], DelegationGrant.Status.CANCELLED, reason or "Cancelled.", now)
    return grant


def _descendants(grants: list[DelegationGrant]) -> list[DelegationGrant]:
    """Every grant below ``grants`` in their chains that is still pending or active, locked, level by level."""
    found, frontier = [], [g.pk for g in grants]
    while frontier:
        level = list(
            DelegationGrant.objects.select_for_update(of=("self",))
            .select_related("agent")
            .filter(parent_id__in=frontier)
            .order_by("pk")
        )
        frontier = [g.pk for g in level]
        found += [g for g in level if g.status in (DelegationGrant.Status.PENDING, DelegationGrant.Status.ACTIVE)]
    return found


def _end(actor: Actor, grants: list[DelegationGrant], status: str, reason: str, now: datetime) -> None:
    """Move locked ``grants`` to an end state, one audit event each (revoked / cancelled); the
    requester and the agent's owner are e-mailed after commit — except of a request its own
    requester withdrew."""
    verb = {DelegationGrant.Status.REVOKED: "grant.revoke", DelegationGrant.Status.CANCELLED: "grant.cancel"}[status]
    user_id = None if actor.is_system else getattr(_user(actor), "pk", None)
    _notify(
        "revoked" if status == DelegationGrant.Status.REVOKED else "cancelled",
        [g.pk for g in grants if status == DelegationGrant.Status.REVOKED or g.requested_by_id != user_id],
    )
    for g in grants:
        before = {"status": g.status}
        g.status = status
        g.ended_at = now
        g.ended_by = actor.label[:200]
        g.end_reason = reason
        g.save(update_fields=["status", "ended_at", "ended_by", "end_reason"])
        audit_record(actor=actor, verb=verb, obj=g, before=before, after=_grant_after(g, reason=reason), at=now)


def grant_revoke(*, actor: Actor, grant: DelegationGrant, reason: str) -> list[DelegationGrant]:
    """Revoke an active grant and, with it, every grant below it in its chain (invariant 5).

    Active descendants are revoked, pending ones cancelled, one audit event each, in one
    transaction. Returns the grants ended (the grant first). Who may: ``can_revoke_grant``.
    Raises PermissionDenied, Conflict (not active, or its expiry has come although the expiry job
    has not yet run — an expired grant stays expired),
    ValidationError (no reason).
    """
    now = timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "Give a reason; it is kept in the audit trail."})
    with transaction.atomic():
        grant = _lock(grant)
        if not (actor.is_system or can_revoke_grant(_user(actor), grant)):
            raise PermissionDenied("Only the agent's owner, the requester and IAM admins may revoke a grant.")
        if grant.status != DelegationGrant.Status.ACTIVE:
            raise Conflict(f"Only an active grant can be revoked; this one is {grant.status}.")
        if grant.expires_at <= now:
            raise Conflict(f"This grant already expired at {grant.expires_at.isoformat()}; there is nothing to revoke.")
        return _revoke_with_descendants(actor, [grant], reason, now)


def _revoke_with_descendants(actor: Actor, grants: list[DelegationGrant], reason: str, now: datetime) -> list:
    below = _descendants(grants)
    active = [g for g in grants + below if g.status == DelegationGrant.Status.ACTIVE]
    pending = [g for g in grants + below if g.status == DelegationGrant.Status.PENDING]
    _end(actor, active, DelegationGrant.Status.REVOKED, reason, now)
    _end(actor, pending, DelegationGrant.Status.CANCELLED, reason, now)
    return active + pending


def grant_renew(
    *,
    actor: Actor,
    grant: DelegationGrant,
    duration: timedelta | None = None,
    expires_at: datetime | None = None,
    justification: str = "",
) -> DelegationGrant:
    """Ask to renew ``grant``: a new request with the same agent, scopes, purpose, intents, person
    and parent, linked to the old one, through the same caps and approvals (the owner never
    approves their own renewal: ``decision_refusal``).

    Give exactly one of ``duration`` (a positive timedelta) or ``expires_at`` (aware) — there
    is no default length. The renewal starts when the old grant ends if it is still active,
    else now. Raises PermissionDenied, Conflict (the grant is pending, denied or cancelled),
    ValidationError (no or both lengths, over the cap).
    """
    now = timezone.now()
    if (duration is None) == (expires_at is None):
        raise ValidationError(
            {"duration": "Give the renewal's length (a duration) or its expiry, exactly one; there is no default."}
        )
    if duration is not None and (not isinstance(duration, timedelta) or duration <= timedelta(0)):
        raise ValidationError({"duration": "The duration must be positive."})
    grant = DelegationGrant.objects.select_related("agent", "parent").get(pk=grant.pk)
    user = _user(actor)
    if user is None or not can_renew_grant(user, grant):
        raise PermissionDenied("You may renew grants only for agents you own or back up.")
    if grant.status not in (DelegationGrant.Status.ACTIVE, DelegationGrant.Status.EXPIRED):
        raise Conflict(f"Only an active or expired grant can be renewed; this one is {grant.status}.")
    live_renewal = (
        grant.renewals.filter(status__in=[DelegationGrant.Status.PENDING, DelegationGrant.Status.ACTIVE])
        .filter(Q(status=DelegationGrant.Status.PENDING) | Q(expires_at__gt=now))
        .order_by("pk")
        .first()
    )
    if live_renewal is not None:
        raise Conflict(
            f"Grant #{grant.pk} is already being renewed by #{live_renewal.pk} ({live_renewal.status}); "
            "cancel or let that one end first."
        )
    starts_at = grant.expires_at if grant.status == DelegationGrant.Status.ACTIVE and grant.expires_at > now else now
    if expires_at is None:
        expires_at = starts_at + duration
    scopes = [ScopeRequest(s.tool_name, s.access, s.resource_pattern) for s in grant.scopes.all()]
    return grant_request(
        actor=actor,
        agent=grant.agent,
        scopes=scopes,
        purpose=grant.purpose,
        justification=(justification or "").strip() or f"Renewal of grant #{grant.pk}: {grant.justification}",
        expires_at=expires_at,
        starts_at=starts_at,
        intents=grant.intents,
        on_behalf_of=grant.on_behalf_of,
        parent=grant.parent,
        renewal_of=grant,
    )


def grants_renew_bulk(
    *, actor: Actor, items: Sequence[tuple[DelegationGrant, timedelta | None]]
) -> list[RenewalResult]:
    """Renew many grants, each on its own terms: ``items`` pairs a grant with its duration.

    Each item goes through ``grant_renew`` in its own transaction — the same caps, the same
    approvals, no default length — so one refused item does not stop the others. Returns one
    ``RenewalResult`` per item, in order (``error`` says why an item was refused).
    """
    results = []
    for grant, duration in items:
        try:
            if duration is None:
                raise ValidationError({"duration": "Give each renewal its length; there is no default."})
            renewal = grant_renew(actor=actor, grant=grant, duration=duration)
            results.append(RenewalResult(grant=grant, renewal=renewal))
        except ValidationError as e:
            results.append(RenewalResult(grant=grant, error="; ".join(e.messages)))
        except (PermissionDenied, Conflict) as e:
            results.append(RenewalResult(grant=grant, error=str(e)))
    return results


# --- agent lifecycle -------------------------------------------------------------------------


def on_agent_decommissioned(*, agent: Agent, actor: Actor, now: datetime) -> None:
    """Subscriber of ``agent.decommissioned``: in the decommissioning transaction, revoke every
    active grant the agent holds (and, through the chain, every grant it handed on) and cancel
    its pending requests, one audit event each. Decommissioning is terminal: nothing reopens them."""
    held = list(
        DelegationGrant.objects.select_for_update(of=("self",))
        .select_related("agent")
        .filter(agent=agent, status__in=[DelegationGrant.Status.ACTIVE, DelegationGrant.Status.PENDING])
        .order_by("pk")
    )
    _revoke_with_descendants(actor, held, f"{agent} was decommissioned.", now)


# --- jobs ------------------------------------------------------------------------------------


#: ``expires_at`` as the audit event's JSON holds a datetime (``DjangoJSONEncoder``: ISO 8601, UTC as
#: ``Z``, milliseconds truncated and shown only when there is a fraction), written by PostgreSQL so that
#: the job does not parse and re-format a timestamp per grant in Python (``%%`` is ``%`` escaped for the driver).
_EXPIRES_AT_JSON_SQL = """
    to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
    || CASE WHEN date_part('microseconds', {col} AT TIME ZONE 'UTC')::bigint %% 1000000 = 0 THEN ''
            ELSE to_char({col} AT TIME ZONE 'UTC', '.MS') END
    || 'Z'
"""


def _expire_batch(
    now: datetime, batch_size: int, *, after: datetime | None = None, names: dict[int, str] | None = None
) -> list[tuple[int, str, datetime | str, datetime]]:
    """Mark one batch of due grants expired, returning ``(id, agent name, expires_at for the audit
    event, expires_at)`` of each, by id: the agent's name, so that the audit label reads as
    ``str(grant)`` does (looked up once per agent per run through ``names``, agent id → name, which
    the caller keeps across batches); on PostgreSQL the third item is the text the audit event's
    JSON holds, elsewhere the aware datetime itself.

    The batch is read from ``grant_status_expires_idx`` in index order (``expires_at``), on
    PostgreSQL from ``after`` on when given (the last expiry the run has reached, so that a batch
    does not walk again past the index entries of the rows its predecessors updated, which stay
    until vacuum and cost a visit each while an older transaction is open): the scan stops after
    ``batch_size`` rows however many are due, and a run with nothing due touches one index page.
    Each row is locked ``FOR NO KEY UPDATE`` (the lock the ``UPDATE`` takes anyway) with ``SKIP
    LOCKED``: rows another transaction holds (a revocation in flight, another run of the job) are
    skipped and left to that transaction or a later run, never logged twice — a locked row is
    re-read before it is taken, and a row no longer active is left alone.
    """
    table = DelegationGrant._meta.db_table
    postgres = connection.vendor == "postgresql"
    lock = "FOR NO KEY UPDATE SKIP LOCKED" if postgres else ""
    active = DelegationGrant.Status.ACTIVE
    params = [DelegationGrant.Status.EXPIRED, now, "system", "Reached its expiry.", active, now]
    resume = ""
    if after is not None and postgres:  # SQLite compares datetimes as text; its scans leave nothing behind
        resume = "AND expires_at >= %s"
        params.append(after)
    params += [batch_size, active]
    due = f"SELECT id FROM {table} WHERE status = %s AND expires_at <= %s {resume} ORDER BY expires_at LIMIT %s {lock}"
    # On PostgreSQL, ARRAY(...) runs the locking scan once and the rows are then fetched by primary
    # key: the planner never trades the bounded index scan for a join over the whole table.
    where = f"id = ANY(ARRAY({due}))" if postgres else f"id IN ({due})"
    expires_json = _EXPIRES_AT_JSON_SQL.format(col=f"{table}.expires_at") if postgres else "expires_at"
    sql = f"""
        UPDATE {table} SET status = %s, ended_at = %s, ended_by = %s, end_reason = %s
        WHERE {where} AND status = %s
        RETURNING id, agent_id, {expires_json}, expires_at
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    names = {} if names is None else names
    missing = {agent_id for _, agent_id, _, _ in rows} - names.keys()
    if missing:
        names.update(Agent.objects.filter(pk__in=missing).values_list("pk", "name"))
    if postgres:
        rows = [(pk, names[agent_id], end_json, end) for pk, agent_id, end_json, end in rows]
    else:
        # A raw cursor gives SQLite's datetimes back naive; they are stored in UTC (invariant 3).
        rows = [(pk, names[agent_id], _utc(end), _utc(end)) for pk, agent_id, end, _ in rows]
    rows.sort()
    return rows


def _utc(value: datetime) -> datetime:
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


def grants_expire_due(*, now: datetime, batch_size: int = JOB_BATCH_SIZE) -> dict[str, int]:
    """Mark every active grant with ``expires_at <= now`` (aware, UTC) expired: set-based, in
    batches of ``batch_size`` rows, each one ``UPDATE`` plus its audit events streamed in the
    same transaction; the requester and the agent's owner are e-mailed after each commit.

    Bookkeeping only: enforcement already ended at ``expires_at`` (invariant 1). Idempotent: a
    second run for the same instant finds nothing due and writes and sends nothing
    (invariant 8); rows a revocation (or another run) holds are skipped — tried once more at the
    end of the run — and never logged twice. Memory is bounded by ``batch_size``. Returns
    ``{"expired": n}``.

    On PostgreSQL, called outside a transaction (as the beat job is), once the first batch came back
    full, ``EXPIRY_CONNECTIONS`` database connections work at once (``_ExpiryRun``), each taking its
    own batches: one connection's ``UPDATE`` runs while another writes its batch's audit events. An
    error on any of them stops the run and is raised here; batches already committed stay.
    """
    run = _ExpiryRun(now, batch_size)
    if connection.vendor != "postgresql" or connection.in_atomic_block or EXPIRY_CONNECTIONS < 2:
        run.work()
        return {"expired": run.expired}
    # The first batch alone: a run with little or nothing due never opens another connection.
    if run.one_batch():
        helpers = [threading.Thread(target=run.work_on_own_connection) for _ in range(EXPIRY_CONNECTIONS - 1)]
        for helper in helpers:
            helper.start()
        try:
            run.work()
        finally:
            for helper in helpers:
                helper.join()
        if run.errors:
            raise run.errors[0]
    return {"expired": run.expired}


#: Connections the expiry job works on at once (PostgreSQL, outside a transaction): a batch's
#: ``UPDATE`` (the database's work) overlaps another batch's audit events (hashing here, COPY there).
EXPIRY_CONNECTIONS = 2


class _ExpiryRun:
    """One run of ``grants_expire_due``, shared by the threads working on it, each on its own connection.

    Each thread takes a batch, updates it and writes its audit events in one transaction; the
    ``UPDATE``s of two threads run at once (each skips the rows the other holds: ``SKIP LOCKED``),
    and the audit chain's lock (``audit_record_many``) appends one batch's events after another's.
    ``reached`` (the furthest expiry a full batch reached; each batch starts there) and ``finished``
    are read and written under ``bookkeeping``. The run ends when a batch that started from the
    beginning of the due range comes back short: every due row left is held by another transaction.
    """

    def __init__(self, now: datetime, batch_size: int):
        self.now, self.batch_size = now, batch_size
        self.actor = Actor.system("grant expiry job")
        self.object_type = object_type_of(DelegationGrant())
        self.bookkeeping = threading.Lock()
        self.reached: datetime | None = None  # the expiry the run has reached: each batch resumes there
        self.finished = False
        self.expired = 0
        self.names: dict[int, str] = {}  # agent id → name, for the audit labels; read once per agent per run
        self.errors: list[BaseException] = []

    def work(self) -> None:
        """Take batches until none is left; an error stops every thread of the run."""
        while self.one_batch():
            pass

    def one_batch(self) -> bool:
        """Take, update and log one batch in one transaction; False once the run is finished."""
        try:
            with transaction.atomic():
                with self.bookkeeping:
                    if self.finished:
                        return False
                    after = self.reached
                rows = _expire_batch(self.now, self.batch_size, after=after, names=self.names)
                with self.bookkeeping:
                    self.expired += len(rows)
                    self._advance(rows, after)
                if rows:
                    audit_record_many(
                        actor=self.actor,
                        events=(
                            PendingEvent(
                                verb="grant.expire",
                                object_type=self.object_type,
                                object_id=str(pk),
                                object_label=f"Grant #{pk} to {agent_name}",
                                before={"status": "active"},
                                after={"status": "expired", "expires_at": expires_at},
                            )
                            for pk, agent_name, expires_at, _ in rows
                        ),
                        at=self.now,
                    )
                    _notify("expired", [row[0] for row in rows])
        except BaseException:
            self.finished = True
            raise
        return not self.finished

    def work_on_own_connection(self) -> None:
        """``work`` in a helper thread (its own database connection, closed at the end); an error
        stops the run and is raised by the caller."""
        try:
            self.work()
        except BaseException as exc:  # handed to the caller's thread
            self.errors.append(exc)
        finally:
            connection.close()

    def _advance(self, rows, after: datetime | None) -> None:
        """Where the next batch starts, given a batch that started at ``after``; under ``bookkeeping``."""
        if len(rows) == self.batch_size:
            furthest = max(row[3] for row in rows)
            self.reached = furthest if self.reached is None else max(self.reached, furthest)
        elif after is None:
            self.finished = True
        else:
            # One last pass from the start of the due range picks up rows skipped while another
            # transaction held them, and leaves the index entries behind the run marked dead.
            self.reached = None


def requests_cancel_stale(*, now: datetime) -> dict[str, int]:
    """Cancel pending requests older than the policy's ``grant_request_stale_days``, and those
    whose expiry has passed unapproved: set-based, one audit event each, requester e-mailed.

    Idempotent (a second run finds nothing pending to cancel). Returns ``{"cancelled": n}``.
    """
    actor = Actor.system("stale request job")
    policy = Policy.current()
    cutoff = now - timedelta(days=policy.grant_request_stale_days)
    stale = Q(requested_at__lte=cutoff) | Q(expires_at__lte=now)
    total = 0
    while True:
        with transaction.atomic():
            grants = list(
                DelegationGrant.objects.select_for_update(skip_locked=connection.vendor == "postgresql", of=("self",))
                .select_related("agent")
                .filter(stale, status=DelegationGrant.Status.PENDING)
                .order_by("pk")[:JOB_BATCH_SIZE]
            )
            if not grants:
                break
            reasons = {
                g.pk: (
                    "Its expiry passed before it was approved."
                    if g.expires_at <= now
                    else f"Pending for more than {policy.grant_request_stale_days} days."
                )
                for g in grants
            }
            ids = [g.pk for g in grants]
            for reason in set(reasons.values()):
                DelegationGrant.objects.filter(pk__in=[pk for pk, r in reasons.items() if r == reason]).update(
                    status=DelegationGrant.Status.CANCELLED, ended_at=now, ended_by="system", end_reason=reason
                )
            audit_record_many(
                actor=actor,
                events=(
                    PendingEvent(
                        verb="grant.cancel",
                        object_type=object_type_of(g),
                        object_id=str(g.pk),
                        object_label=str(g),
                        before={"status": "pending"},
                        after={"status": "cancelled", "reason": reasons[g.pk]},
                    )
                    for g in grants
                ),
                at=now,
            )
            _notify("cancelled", ids)
        total += len(grants)
        if len(grants) < JOB_BATCH_SIZE:
            break
    return {"cancelled": total}


def grants_remind_expiring(*, now: datetime) -> dict[str, int]:
    """E-mail the requester and the agent's owner once about each grant that authorises now and
    ends within the policy's ``grant_expiry_reminder_hours`` (default 24 h) of ``now``.

    Marks ``expiry_reminded_at`` in the same transaction, with the rows locked, so a rerun — or
    a second run at the same time — sends nothing more (idempotent); a renewal is a new grant
    and gets its own reminder. Returns ``{"reminded": n}``.
    """
    policy = Policy.current()
    horizon = now + timedelta(hours=policy.grant_expiry_reminder_hours)
    total = 0
    while True:
        with transaction.atomic():
            # Locked (rows another run holds are skipped), so two runs at once never remind twice.
            ids = list(
                DelegationGrant.objects.active_at(now)
                .filter(expires_at__lte=horizon, expiry_reminded_at__isnull=True)
                .select_for_update(skip_locked=connection.vendor == "postgresql", of=("self",))
                .order_by("pk")
                .values_list("pk", flat=True)[:JOB_BATCH_SIZE]
            )
            if not ids:
                break
            DelegationGrant.objects.filter(pk__in=ids, expiry_reminded_at__isnull=True).update(expiry_reminded_at=now)
            _notify("expiring", ids)
        total += len(ids)
        if len(ids) < JOB_BATCH_SIZE:
            break
    return {"reminded": total}


def on_person_deactivated(*, user, actor: Actor, now: datetime) -> None:
    """Subscriber of ``person.deactivated``: in the deactivation's transaction, cancel every request
    the person made that is still pending (one ``grant.cancel`` audit event each; the agents' owners
    are told after commit). Active grants they requested stay as approved, until their expiry or a
    revocation."""
    pending = list(
        DelegationGrant.objects.select_for_update(of=("self",))
        .select_related("agent")
        .filter(requested_by_id=user.pk, status=DelegationGrant.Status.PENDING)
        .order_by("pk")
    )
    _end(actor, pending, DelegationGrant.Status.CANCELLED, f"The requester {user.get_username()} was deactivated.", now)
