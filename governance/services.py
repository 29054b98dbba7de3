"""Governance writes: working findings, issuing integration tokens, editing the policy.

Same contract as every service: keyword-only, acting ``Actor`` first, permission → state →
validation → write → audit event, in one transaction. Raises ``PermissionDenied`` (403),
``Conflict`` (409) or ``ValidationError`` (400).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from governance.audit import Actor, audit_record, snapshot
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.models import Finding, IntegrationToken, Policy
from governance.roles import is_agent_owner, is_auditor, is_iam_admin
from inventory.models import Agent

TOKEN_PREFIX = "wrt_"
FINDING_FIELDS = (
    "status",
    "acknowledged_at",
    "acknowledged_by",
    "risk_accepted_until",
    "risk_accepted_by",
    "resolved_at",
    "resolved_by",
    "resolution_note",
)


def _lock_finding(finding: Finding) -> Finding:
    return Finding.objects.select_for_update().get(pk=finding.pk)


def finding_workable_agent_ids(user) -> set[int] | None:
    """Ids of the agents whose findings ``user`` may work — those they own or back up, as an
    active person; ``None`` means every finding (IAM admins). One query at most."""
    if is_iam_admin(user):
        return None
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return set()
    owned = Agent.objects.filter(Q(owner=user) | Q(backup_owner=user))
    return set(owned.values_list("pk", flat=True))


def can_work_finding(user, finding: Finding, workable: set[int] | None = ...) -> bool:
    """Whether ``user`` may acknowledge, resolve or accept the risk of ``finding``: IAM admins
    every finding, owners the findings of the agents they own or back up. Pass ``workable``
    (``finding_workable_agent_ids(user)``) when judging many findings."""
    if workable is ...:
        workable = finding_workable_agent_ids(user)
    return workable is None or finding.agent_id in workable


def _require_can_work(actor: Actor, finding: Finding) -> None:
    if not (actor.is_system or can_work_finding(actor.user, finding)):
        raise PermissionDenied("You may work only the findings of agents you own or back up.")


def _finding_change(
    *, actor: Actor, finding: Finding, verb: str, refusal: Callable[[Finding], str], note: str = "", **changes
) -> Finding:
    """Lock the finding, refuse with ``Conflict(refusal(finding))`` when that is not empty, set
    ``changes``, save and write the audit event ``verb`` — one transaction."""
    with transaction.atomic():
        finding = _lock_finding(finding)
        _require_can_work(actor, finding)
        refused = refusal(finding)
        if refused:
            raise Conflict(refused)
        before = snapshot(finding, FINDING_FIELDS)
        for name, value in changes.items():
            setattr(finding, name, value)
        finding.save()
        after = snapshot(finding, FINDING_FIELDS)
        audit_record(
            actor=actor, verb=verb, obj=finding, before=before, after={**after, "note": note} if note else after
        )
    return finding


def finding_acknowledge(*, actor: Actor, finding: Finding, note: str = "") -> Finding:
    """Acknowledge an open finding: someone is on it. Raises PermissionDenied, Conflict (not open)."""
    note = (note or "").strip()
    extra = {"resolution_note": note} if note else {}
    return _finding_change(
        actor=actor,
        finding=finding,
        verb="finding.acknowledge",
        note=note,
        refusal=lambda f: (
            ""
            if f.status == Finding.Status.OPEN
            else (f"Only an open finding can be acknowledged; this one is {f.get_status_display().lower()}.")
        ),
        status=Finding.Status.ACKNOWLEDGED,
        acknowledged_at=timezone.now(),
        acknowledged_by=actor.label[:200],
        **extra,
    )


def finding_resolve(*, actor: Actor, finding: Finding, note: str) -> Finding:
    """Resolve a finding by hand, with a note saying what was done.

    If its condition still holds, the next job run opens a new finding. Raises PermissionDenied,
    Conflict (already resolved), ValidationError (no note).
    """
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say what was done to resolve it."})
    return _finding_change(
        actor=actor,
        finding=finding,
        verb="finding.resolve",
        refusal=lambda f: "This finding is already resolved." if f.status == Finding.Status.RESOLVED else "",
        status=Finding.Status.RESOLVED,
        resolved_at=timezone.now(),
        resolved_by=actor.label[:200],
        resolution_note=note,
    )


MAX_RISK_ACCEPTANCE = timedelta(days=365)


def finding_accept_risk(*, actor: Actor, finding: Finding, until: datetime, note: str) -> Finding:
    """Accept the risk of a finding until ``until`` (aware datetime, UTC stored; at most a year ahead).

    IAM admins only. When ``until`` passes and the condition still holds, the finding reopens.
    Raises PermissionDenied, Conflict (resolved), ValidationError (no note, until not in the future).
    """
    if not (actor.is_system or is_iam_admin(actor.user)):
        raise PermissionDenied("Only IAM admins may accept a risk.")
    note = (note or "").strip()
    errors = {}
    if not note:
        errors["note"] = "Say why the risk is acceptable."
    now = timezone.now()
    if until is None or timezone.is_naive(until):
        errors["until"] = "Give the date and time the acceptance ends, with its timezone."
    elif until <= now:
        errors["until"] = "The acceptance must end in the future."
    elif until - now > MAX_RISK_ACCEPTANCE:
        errors["until"] = "A risk can be accepted for at most 365 days."
    if errors:
        raise ValidationError(errors)
    return _finding_change(
        actor=actor,
        finding=finding,
        verb="finding.accept_risk",
        refusal=lambda f: "A resolved finding has no risk to accept." if f.status == Finding.Status.RESOLVED else "",
        status=Finding.Status.RISK_ACCEPTED,
        risk_accepted_until=until,
        risk_accepted_by=actor.label[:200],
        resolution_note=note,
    )


# --- integration tokens --------------------------------------------------------------------


def token_digest(clear: str) -> str:
    """SHA-256 hex digest of a clear token (what is stored; invariant 9)."""
    return hashlib.sha256(clear.encode()).hexdigest()


def token_scopes_for(user) -> set[str]:
    """The token scopes ``user``'s roles can use: IAM admins all; agent owners read, write and import
    (their own agents), read audit events, read and write delegation grants (request, cancel,
    revoke, renew those of their agents), and — for their own agents — ask for runtime decisions,
    issue task tokens and introspect them; auditors read inventory, audit events and grants."""
    S = IntegrationToken.Scope
    scopes: set[str] = set()
    if is_iam_admin(user):
        return set(S.values)
    if is_agent_owner(user):
        scopes |= {S.INVENTORY_READ, S.INVENTORY_WRITE, S.IMPORTS_WRITE, S.AUDIT_READ, S.GRANTS_READ, S.GRANTS_WRITE}
        scopes |= {S.DECISIONS_CHECK, S.TOKENS_ISSUE, S.TOKENS_INTROSPECT}
    if is_auditor(user):
        scopes |= {S.INVENTORY_READ, S.AUDIT_READ, S.GRANTS_READ}
    return {str(s) for s in scopes}


def integration_token_issue(
    *, actor: Actor, user, name: str, scopes: list[str], expires_at: datetime
) -> tuple[IntegrationToken, str]:
    """Issue an API token acting for ``user`` within ``scopes``; returns ``(token, clear_text)``.

    The clear text is shown once and never stored. People issue tokens for themselves; IAM
    admins for anyone. ``expires_at`` must be in the future and within
    ``WARRANT_TOKEN_MAX_DAYS``. Raises PermissionDenied, ValidationError.
    """
    if actor.type == "integration":
        raise PermissionDenied("Tokens are issued by people, not by other tokens.")
    if not (actor.is_system or is_iam_admin(actor.user) or (actor.user and actor.user.pk == user.pk)):
        raise PermissionDenied("You may issue tokens only for yourself.")
    errors = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = "Name the integration that will use this token."
    known = set(IntegrationToken.Scope.values)
    unknown = [s for s in scopes if s not in known]
    allowed = token_scopes_for(user)
    beyond = [s for s in scopes if s in known and s not in allowed]
    if not scopes:
        errors["scopes"] = "Choose at least one scope."
    elif unknown:
        errors["scopes"] = f"Unknown scopes: {', '.join(unknown)}. Allowed: {', '.join(sorted(known))}."
    elif beyond:
        errors["scopes"] = (
            f"{user.get_username()}'s role does not allow {', '.join(beyond)}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}."
        )
    now = timezone.now()
    if expires_at is None or timezone.is_naive(expires_at):
        errors["expires_at"] = "Give the expiry with its timezone."
    elif expires_at <= now:
        errors["expires_at"] = "A token must expire in the future."
    elif expires_at - now > timedelta(days=settings.WARRANT_TOKEN_MAX_DAYS):
        errors["expires_at"] = f"A token may live at most {settings.WARRANT_TOKEN_MAX_DAYS} days."
    if not user.is_active:
        errors["user"] = "The token's user must be active."
    if errors:
        raise ValidationError(errors)
    clear = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = IntegrationToken.objects.create(
            name=name,
            user=user,
            prefix=clear[: len(TOKEN_PREFIX) + 8],
            digest=token_digest(clear),
            scopes=sorted(set(scopes)),
            created_at=now,
            expires_at=expires_at,
            created_by=actor.user,
        )
        audit_record(
            actor=actor,
            verb="token.issue",
            obj=token,
            after=snapshot(token, ("name", "user", "prefix", "scopes", "expires_at")),
            at=now,
        )
    return token, clear


def integration_token_revoke(*, actor: Actor, token: IntegrationToken) -> IntegrationToken:
    """Revoke a token at once. Its owner or an IAM admin. Raises PermissionDenied, Conflict."""
    if not (actor.is_system or is_iam_admin(actor.user) or (actor.user and actor.user.pk == token.user_id)):
        raise PermissionDenied("You may revoke only your own tokens.")
    now = timezone.now()
    with transaction.atomic():
        token = IntegrationToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            raise Conflict("This token is already revoked.")
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, verb="token.revoke", obj=token, after={"revoked_at": now}, at=now)
    return token


# --- policy --------------------------------------------------------------------------------

POLICY_FIELDS = (
    "unused_after_days",
    "never_used_grace_days",
    "rotation_period_days",
    "expiring_within_days",
    "grant_max_hours_critical",
    "grant_max_hours_high",
    "grant_max_hours_medium",
    "grant_max_hours_low",
    "grant_approvals_elevated",
    "grant_approvals_standard",
    "grant_request_stale_days",
    "grant_max_depth",
    "grant_expiry_reminder_hours",
    "attestation_days_critical",
    "attestation_days_high",
    "attestation_days_medium",
    "attestation_days_low",
    "attestation_grace_days",
    "attestation_suspend_critical",
    "attestation_suspend_high",
    "attestation_suspend_medium",
    "attestation_suspend_low",
    "assessment_valid_days_critical",
    "assessment_valid_days_high",
    "assessment_valid_days_medium",
    "assessment_valid_days_low",
    "decision_allow_sample_percent",
    "decision_out_of_scope_threshold",
    "decision_out_of_scope_window_minutes",
    "decision_log_retention_days",
    "task_token_default_seconds",
    "task_token_max_seconds",
)


def policy_update(*, actor: Actor, **changes) -> Policy:
    """Change the governance policy (IAM admins). Unknown fields and bad values → ValidationError."""
    if not (actor.is_system or is_iam_admin(actor.user)):
        raise PermissionDenied("Only IAM admins may change the policy.")
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError({k: "Unknown policy setting." for k in sorted(unknown)})
    with transaction.atomic():
        Policy.current()
        policy = Policy.objects.select_for_update().get(pk=1)
        before = snapshot(policy, changes)
        for k, v in changes.items():
            setattr(policy, k, v)
        policy.full_clean()
        policy.save()
        audit_record(actor=actor, verb="policy.update", obj=policy, before=before, after=snapshot(policy, changes))
    return policy
