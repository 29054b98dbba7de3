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

import re
import unicodedata
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
            # The runtime decision reads an agent's latest grants by this (``decisions._candidates_sql``).
            models.Index(fields=["agent", "expires_at"], name="grant_agent_expires_idx"),
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
    ``*``; no other wildcards, no spaces or control characters, and — as for the resources a
    decision is asked about (``resource_problem``) — no ``.`` or ``..`` segments and no
    percent-encoded dots or slashes: no resource could ever match such a pattern. Raises ``ValidationError``."""
    if not pattern:
        return
    if "*" in pattern[:-1]:
        raise ValidationError("A resource pattern may hold one '*', and only at its end (a prefix match).")
    if any(ch.isspace() or not ch.isprintable() for ch in pattern):
        raise ValidationError("A resource pattern may not contain spaces or control characters.")
    problem = resource_problem(pattern.removesuffix("*"))
    if problem:
        raise ValidationError(problem.replace("A resource may", "A resource pattern may"))


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


def resource_problem(resource: str) -> str | None:
    """Why ``resource`` (a name a caller asks about) cannot be matched against a pattern safely, or None.

    A prefix pattern (``repo:acme/*``) must not be escaped by path tricks, so a resource may hold no
    control or invisible formatting characters (Unicode Cc, Cf), no ``.`` or ``..`` segment between
    slashes or backslashes, and no percent-encoded dot, slash or backslash (``%2e``, ``%2f``, ``%5c``):
    the caller normalises first (RFC 3986 §5.2.4 removes dot segments).
    """
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in resource):
        return "A resource may not contain control or invisible formatting characters."
    if any(segment in (".", "..") for segment in re.split(r"[/\\]", resource)):
        return "A resource may not contain '.' or '..' segments; normalise it first (RFC 3986 §5.2.4)."
    if re.search(r"%(2e|2f|5c)", resource, re.IGNORECASE):
        return "A resource may not contain percent-encoded dots, slashes or backslashes; decode and normalise it first."
    return None


def resource_matches(pattern: str, resource: str, *, problem: str | None = None) -> bool:
    """True if ``resource`` (an exact name) falls under ``pattern`` (see ``validate_resource_pattern``).

    Empty matches anything; otherwise a resource with a ``resource_problem`` never matches.
    ``problem``: that check's result when the caller already has it (``""`` for none), so that a
    caller matching one resource against many patterns checks it once.
    """
    if pattern == "":
        return True
    if resource_problem(resource) if problem is None else problem:
        return False
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


class DecisionLog(models.Model):
    """One runtime decision kept in the decision log: every denial, and a sample of allows
    (``Policy.decision_allow_sample_percent``).

    What was asked (the agent as presented, tool, access, resource, intent, the person acted for,
    the grant chain claimed), the outcome, its reason codes (``delegations.decisions``), the grant
    that authorised it and when that authority ends, and who asked (the integration's user and
    token). Append-only by use; entries older than ``Policy.decision_log_retention_days`` are pruned
    by the ``prune-decision-log`` job. Repeated out-of-scope denials raise one
    ``out_of_scope_actions`` finding (OWASP NHI Top 10 2025, NHI5 overprivileged NHI).
    """

    class Outcome(models.TextChoices):
        ALLOW = "allow", "Allowed"
        DENY = "deny", "Denied"

    decided_at = models.DateTimeField()
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, null=True, blank=True, related_name="decisions")
    presented = models.CharField(max_length=600, help_text="The workload identity as presented, or verified.")
    tool_name = models.CharField(max_length=100)
    access = models.CharField(max_length=16)
    resource = models.CharField(max_length=500, blank=True)
    intent = models.CharField(max_length=200, blank=True)
    on_behalf_of = models.CharField(max_length=150, blank=True)
    claimed_chain = models.JSONField(default=list, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    reasons = models.JSONField(default=list, blank=True, help_text="Reason codes, most telling first.")
    out_of_scope = models.BooleanField(default=False, help_text="Denied because the agent asked beyond its grants.")
    grant = models.ForeignKey(DelegationGrant, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    authority_ends_at = models.DateTimeField(null=True, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_via = models.CharField(max_length=200, blank=True, help_text="The integration token's name, if any.")

    class Meta:
        ordering = ["-decided_at", "-id"]
        indexes = [
            models.Index(fields=["agent", "-decided_at"], name="decision_agent_recent_idx"),
            models.Index(fields=["decided_at"], name="decision_decided_at_idx"),
        ]

    def __str__(self):
        return f"{self.outcome} {self.tool_name}:{self.access} at {self.decided_at:%Y-%m-%d %H:%M:%S}Z"


# --- task tokens (``delegations.tokens``) ----------------------------------------------------


class SigningKey(models.Model):
    """An ES256 (ECDSA P-256, RFC 7518 §3.4) key pair that signs task tokens, published as a JWK
    (RFC 7517) at ``/.well-known/jwks.json``.

    ``status``: ``active`` signs new tokens (exactly one at a time: a partial unique constraint);
    ``retiring`` signs nothing more but is still published and still verifies the tokens it signed
    until they have all expired; ``retired`` is neither published nor accepted. ``private_key`` holds
    the PKCS#8 PEM encrypted with Fernet under a key derived from ``SECRET_KEY`` — never the PEM in
    clear (DESIGN.md invariant 9). Rows are written only by ``delegations.tokens``.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (signs new tokens)"
        RETIRING = "retiring", "Retiring (verifies tokens in flight)"
        RETIRED = "retired", "Retired"

    kid = models.CharField(max_length=64, unique=True, help_text="The JWK key id, random and URL-safe.")
    algorithm = models.CharField(max_length=16, default="ES256")
    public_jwk = models.JSONField(help_text="The public key as a JWK (RFC 7517), with kid, use and alg.")
    private_key = models.TextField(
        help_text="The private key's PEM, encrypted (Fernet) under a key derived from SECRET_KEY; never in clear."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField()
    retiring_since = models.DateTimeField(null=True, blank=True, help_text="When a newer key replaced it.")
    retired_at = models.DateTimeField(null=True, blank=True, help_text="When it stopped verifying tokens.")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=Q(status="active"), name="signing_key_one_active"),
            models.CheckConstraint(
                condition=Q(status="active", retiring_since__isnull=True, retired_at__isnull=True)
                | Q(status="retiring", retiring_since__isnull=False, retired_at__isnull=True)
                | Q(status="retired", retiring_since__isnull=False, retired_at__isnull=False),
                name="signing_key_status_times",
            ),
        ]

    def __str__(self):
        return f"Signing key {self.kid} ({self.status})"


class TaskToken(models.Model):
    """A short-lived signed credential (a JWT access token, RFC 9068) bound to one grant, one agent
    and one task; ``delegations.tokens`` issues, revokes and introspects it.

    The token itself is never stored — only its ``jti`` and what it says: the workload identity
    bound into ``sub`` (``subject``), the grant's scopes as issued, the RFC 8693 actor chain
    (``act``), the audience, the signing key's ``kid`` and its lifetime. Whether it is active is
    decided at each introspection: signature, lifetime, revocation and the grant's authority then.
    """

    jti = models.UUIDField(unique=True)
    grant = models.ForeignKey(DelegationGrant, on_delete=models.PROTECT, related_name="task_tokens")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="task_tokens")
    task_id = models.CharField(max_length=200, help_text="The caller's name for the one task the token is for.")
    subject = models.CharField(max_length=900, help_text="The agent's workload identity bound into the token's sub.")
    scopes = models.JSONField(default=list, blank=True, help_text='[{"tool", "access", "resource_pattern"}, …]')
    act = models.JSONField(null=True, blank=True, help_text="The RFC 8693 actor chain: the agents that delegated.")
    audience = models.CharField(max_length=300)
    kid = models.CharField(max_length=64, help_text="The signing key's id.")
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    issued_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    issued_via = models.CharField(max_length=200, blank=True, help_text="The integration that asked, if any.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=200, blank=True)
    revoke_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=F("issued_at")), name="task_token_expires_after_issue"),
        ]
        indexes = [models.Index(fields=["expires_at"], name="task_token_expires_idx")]

    def __str__(self):
        return f"Task token {self.jti} for task {self.task_id}"
