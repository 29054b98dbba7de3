"""Delegation grants: who may act for whom, with which scopes, until when, approved by whom.

A grant gives an agent scopes (a tool + one access level + an optional resource pattern)
for a purpose, from ``starts_at`` until ``expires_at`` — always an end (database
constraint). Status: ``pending → active | denied | cancelled``; ``active → expired |
revoked``. A child grant (``parent``) is one agent handing work to another: its scopes are
a subset of its parent's and it never outlives it (DESIGN.md invariant 5).

Whether a grant authorises anything is a time comparison, never the status alone:
``DelegationGrant.objects.active_at(t)`` is the one rule (invariant 1), used by every list,
page, export, the expiry job and the runtime decision.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, Exists, F, OuterRef, Q, Value, When

from governance.models import MAX_DELEGATION_DEPTH
from inventory.models import AccessLevel, Agent, Tool, validate_display_text


class GrantQuerySet(models.QuerySet):
    """Grant queries; ``active_at`` is the single definition of "this grant authorises now"."""

    def active_at(self, t: datetime) -> GrantQuerySet:
        """Grants that authorise at instant ``t`` (aware datetime): DESIGN.md invariant 1.

        A grant authorises while ``starts_at <= t < expires_at``, its status is ``active``,
        its agent is active, and so is every grant up its chain (with that grant's agent).
        A grant expiring at 23:59:59Z authorises at 23:59:58.999999Z and not at 23:59:59Z.
        """
        q = _authorises_q("", t)
        for level in range(1, MAX_DELEGATION_DEPTH):
            path = "__".join(["parent"] * level)
            q &= Q(**{f"{path}__isnull": True}) | _authorises_q(f"{path}__", t)
        return self.filter(q)

    def expired_by(self, t: datetime) -> GrantQuerySet:
        """Active-status grants whose end has come by instant ``t`` (``expires_at <= t``): the expiry job's rows."""
        return self.filter(status=DelegationGrant.Status.ACTIVE, expires_at__lte=t)

    def pending(self) -> GrantQuerySet:
        """Requests waiting for approval."""
        return self.filter(status=DelegationGrant.Status.PENDING)

    def with_state_at(self, t: datetime) -> GrantQuerySet:
        """Annotate ``state``: what the grant is at instant ``t``, from ``active_at`` and the stored status.

        ``active`` (authorises at ``t``), ``scheduled`` (approved, starts later), ``expired``
        (its end has come, whether or not the expiry job has run), ``blocked`` (approved and in
        its window, but its agent or a grant up its chain is not active), or the stored status
        (``pending``, ``denied``, ``cancelled``, ``revoked``). Pages, exports and the API show this.
        """
        authorising = self.model.objects.active_at(t).filter(pk=OuterRef("pk"))
        active = DelegationGrant.Status.ACTIVE
        return self.annotate(
            state=Case(
                When(Exists(authorising), then=Value("active")),
                When(status=active, starts_at__gt=t, then=Value("scheduled")),
                When(status=active, expires_at__lte=t, then=Value("expired")),
                When(status=active, then=Value("blocked")),
                default=F("status"),
                output_field=models.CharField(),
            )
        )

    def in_state_at(self, states, t: datetime) -> GrantQuerySet:
        """Grants whose ``with_state_at(t)`` state is one of ``states`` (an iterable of state names)."""
        states = set(states)
        q = Q(pk__in=[])
        if "active" in states:
            q |= Q(pk__in=self.model.objects.active_at(t).values("pk"))
        stored = states & {"pending", "denied", "cancelled", "revoked", "expired"}
        if stored:
            q |= Q(status__in=stored)
        active = DelegationGrant.Status.ACTIVE
        if "expired" in states:
            q |= Q(status=active, expires_at__lte=t)
        if "scheduled" in states:
            q |= Q(status=active, starts_at__gt=t)
        if "blocked" in states:
            q |= Q(status=active, starts_at__lte=t, expires_at__gt=t) & ~Q(
                pk__in=self.model.objects.active_at(t).values("pk")
            )
        return self.filter(q)


def _authorises_q(prefix: str, t: datetime) -> Q:
    return Q(
        **{
            f"{prefix}status": DelegationGrant.Status.ACTIVE,
            f"{prefix}starts_at__lte": t,
            f"{prefix}expires_at__gt": t,
            f"{prefix}agent__state": Agent.State.ACTIVE,
        }
    )


class DelegationGrant(models.Model):
    """A time-boxed grant of scopes to an agent, approved with separation of duties."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        ACTIVE = "active", "Active"
        DENIED = "denied", "Denied"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    ENDED = (Status.DENIED, Status.CANCELLED, Status.EXPIRED, Status.REVOKED)
    #: What a grant can be at an instant (``GrantQuerySet.with_state_at``): the stored statuses plus
    #: ``scheduled`` (approved, not started) and ``blocked`` (its agent or chain is not active).
    STATES = (
        ("pending", "Pending approval"),
        ("scheduled", "Approved, not started"),
        ("active", "Active"),
        ("blocked", "Blocked (agent or chain not active)"),
        ("expired", "Expired"),
        ("revoked", "Revoked"),
        ("denied", "Denied"),
        ("cancelled", "Cancelled"),
    )

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="grants")
    purpose = models.CharField(max_length=300)
    intents = models.JSONField(
        default=list, blank=True, help_text="Tags of the intents this grant serves; empty serves any intent."
    )
    justification = models.TextField()
    on_behalf_of = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children",
        help_text="The grant of the agent that hands this work on (a delegation chain).",
    )  # fmt: skip
    depth = models.PositiveSmallIntegerField(
        default=1, help_text="Grants in the chain up to this one, itself included."
    )
    renewal_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="renewals")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_via = models.CharField(max_length=200, blank=True, help_text="The integration that asked, if any.")
    requested_at = models.DateTimeField()
    starts_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    approvals_required = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When it expired, was revoked or cancelled.")
    ended_by = models.CharField(max_length=200, blank=True)
    end_reason = models.TextField(blank=True)
    expiry_reminded_at = models.DateTimeField(null=True, blank=True)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=F("starts_at")), name="grant_expires_after_start"),
            models.CheckConstraint(
                condition=Q(depth__gte=1) & Q(depth__lte=MAX_DELEGATION_DEPTH), name="grant_depth_bounded"
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["active", "expired", "revoked"]) | Q(decided_at__isnull=False),
                name="grant_approved_has_decision_time",
            ),
            models.CheckConstraint(
                condition=Q(parent__isnull=True, depth=1) | Q(parent__isnull=False, depth__gte=2),
                name="grant_depth_matches_parent",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "expires_at"], name="grant_status_expires_idx"),
            models.Index(fields=["agent", "status"], name="grant_agent_status_idx"),
        ]

    def __str__(self):
        return f"Grant #{self.pk} to {self.agent}" if self.pk else f"Grant to {self.agent}"

    def clean(self):
        validate_display_text(self, "purpose")
        if not isinstance(self.intents, list) or not all(isinstance(i, str) and i.strip() for i in self.intents):
            raise ValidationError({"intents": "Intents must be a list of non-empty tags."})

    @property
    def is_elevated(self) -> bool:
        return self.approvals_required >= 2

    @property
    def duration(self):
        return self.expires_at - self.starts_at


class GrantScope(models.Model):
    """One scope of a grant: a tool (by name, as the agent calls it), one access level, and an
    optional resource pattern — empty for any resource, an exact resource, or a prefix ending
    in ``*`` (``repo:acme/*``)."""

    grant = models.ForeignKey(DelegationGrant, on_delete=models.CASCADE, related_name="scopes")
    tool = models.ForeignKey(Tool, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    tool_name = models.CharField(max_length=100)
    access = models.CharField(max_length=16, choices=AccessLevel.choices)
    resource_pattern = models.CharField(max_length=300, blank=True)
    data_classes = models.JSONField(default=list, blank=True, help_text="The tool's data classes when requested.")

    class Meta:
        ordering = ["grant_id", "tool_name", "access", "resource_pattern"]
        constraints = [
            models.UniqueConstraint(
                fields=["grant", "tool_name", "access", "resource_pattern"], name="grant_scope_unique"
            ),
        ]

    def __str__(self):
        return scope_label(self.tool_name, self.access, self.resource_pattern)


def validate_resource_pattern(pattern: str) -> None:
    """A resource pattern is empty (any resource), an exact resource, or a prefix ending in one
    ``*``; no other wildcards, no spaces or control characters. Raises ``ValidationError``."""
    if not pattern:
        return
    if "*" in pattern[:-1]:
        raise ValidationError("A resource pattern may hold one '*', and only at its end (a prefix match).")
    if any(ch.isspace() or not ch.isprintable() for ch in pattern):
        raise ValidationError("A resource pattern may not contain spaces or control characters.")


def pattern_covers(outer: str, inner: str) -> bool:
    """True if every resource matched by pattern ``inner`` is matched by ``outer``.

    ``""`` covers everything; ``"p*"`` covers any pattern starting with ``p`` (``"p/x"``,
    ``"p/x*"``); an exact pattern covers only itself. Used for attenuation (invariant 5).
    """
    if outer == "":
        return True
    if inner == "":
        return False
    if outer.endswith("*"):
        return inner.startswith(outer[:-1])
    return inner == outer


def resource_matches(pattern: str, resource: str) -> bool:
    """True if ``resource`` (an exact name) falls under ``pattern`` (see ``validate_resource_pattern``)."""
    if pattern == "":
        return True
    if pattern.endswith("*"):
        return resource.startswith(pattern[:-1])
    return resource == pattern


def scope_label(tool_name: str, access: str, resource_pattern: str = "") -> str:
    """``tool:access`` or ``tool:access on pattern``, as pages and audit events show a scope."""
    return f"{tool_name}:{access}" + (f" on {resource_pattern}" if resource_pattern else "")


class Approval(models.Model):
    """One approver's decision on one grant request: at most one per approver per grant."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        DENY = "deny", "Denied"

    grant = models.ForeignKey(DelegationGrant, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["grant", "approver"], name="approval_one_per_approver"),
        ]

    def __str__(self):
        return f"{self.get_decision_display()} by {self.approver} on grant #{self.grant_id}"
