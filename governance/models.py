"""Kernel models: the audit log, findings, policy and integration tokens.

These name their subjects generically (content type + id) and import no other app.
"""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class AuditEvent(models.Model):
    """One state change or decision, append-only and hash-chained.

    ``hash`` is SHA-256 over the previous row's hash and this row's canonical content
    (``governance.audit.event_digest``); ``verify_audit`` recomputes the chain. On
    PostgreSQL a trigger refuses UPDATE and DELETE on this table.
    """

    class ActorType(models.TextChoices):
        PERSON = "person", "Person"
        INTEGRATION = "integration", "Integration"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    actor_label = models.CharField(max_length=200)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_label = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    class Meta:
        ordering = ["-id"]
        # Declared here rather than with ``unique=True`` / ``db_index=True`` on the fields: those also
        # build a second, pattern-matching index on PostgreSQL that no query uses and that every
        # insert pays for (hashes are random, so each one lands on a random page).
        indexes = [
            models.Index(fields=["object_type", "object_id", "id"]),
            models.Index(fields=["verb"], name="audit_verb_idx"),
        ]
        constraints = [models.UniqueConstraint(fields=["hash"], name="audit_hash_unique")]

    def __str__(self):
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.verb} {self.object_label}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValidationError("audit events are append-only")


class Finding(models.Model):
    """A condition that needs a person, about one subject (agent, credential, tool, …).

    At most one finding per (kind, subject) is not resolved at any time (database constraint).
    ``agent_id`` is the agent the subject belongs to, kept for routing and permissions.
    """

    class Severity(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RISK_ACCEPTED = "risk_accepted", "Risk accepted"
        RESOLVED = "resolved", "Resolved"

    UNRESOLVED = (Status.OPEN, Status.ACKNOWLEDGED, Status.RISK_ACCEPTED)

    kind = models.CharField(max_length=48, db_index=True)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    subject_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    subject_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("subject_type", "subject_id")
    subject_label = models.CharField(max_length=300)
    agent_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    title = models.CharField(max_length=200)
    detail = models.TextField(blank=True)
    evidence = models.JSONField(default=dict, blank=True)
    framework_refs = models.JSONField(default=list, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=200, blank=True)
    risk_accepted_until = models.DateTimeField(null=True, blank=True)
    risk_accepted_by = models.CharField(max_length=200, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=200, blank=True)
    resolution_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "subject_type", "subject_id"],
                condition=~Q(status="resolved"),
                name="finding_one_unresolved_per_kind_subject",
            ),
            models.CheckConstraint(
                condition=~Q(status="risk_accepted") | Q(risk_accepted_until__isnull=False),
                name="finding_risk_accepted_has_until",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "severity"]),
            # Findings of one subject (the importers' and services' open/refresh/resolve lookups,
            # the agent page) — the unique constraint's partial index does not serve them.
            models.Index(fields=["subject_type", "subject_id", "kind"], name="finding_subject_idx"),
        ]

    def __str__(self):
        return f"{self.title} — {self.subject_label}"


#: The deepest delegation chain the policy may allow (grants in one chain, the root included).
MAX_DELEGATION_DEPTH = 5


class Policy(models.Model):
    """The governance policy: one row (pk=1), edited by IAM admins, every change audited."""

    unused_after_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="A credential whose last use is older than this, as of its observed-at, is unused.",
    )
    never_used_grace_days = models.PositiveIntegerField(
        default=7,
        validators=[MinValueValidator(0), MaxValueValidator(365)],
        help_text="A never-used credential older than this, as of its observed-at, is unused.",
    )
    rotation_period_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Default rotation period for credentials that do not set their own.",
    )
    expiring_within_days = models.PositiveIntegerField(
        default=14,
        validators=[MinValueValidator(1), MaxValueValidator(365)],
        help_text="A credential expiring within this many days raises an expiring-credential finding.",
    )
    # Delegation grants (DESIGN.md invariants 4, 5, 6). An unassessed agent is capped and approved as a high one.
    grant_max_hours_critical = models.PositiveIntegerField(
        default=8,
        validators=[MinValueValidator(1), MaxValueValidator(8784)],
        help_text="Longest grant for a critical-tier agent, in hours.",
    )
    grant_max_hours_high = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(8784)],
        help_text="Longest grant for a high-tier (or not yet assessed) agent, in hours.",
    )
    grant_max_hours_medium = models.PositiveIntegerField(
        default=7 * 24,
        validators=[MinValueValidator(1), MaxValueValidator(8784)],
        help_text="Longest grant for a medium-tier agent, in hours.",
    )
    grant_max_hours_low = models.PositiveIntegerField(
        default=30 * 24,
        validators=[MinValueValidator(1), MaxValueValidator(8784)],
        help_text="Longest grant for a low-tier agent, in hours.",
    )
    grant_approvals_elevated = models.PositiveIntegerField(
        default=2,
        validators=[MinValueValidator(2), MaxValueValidator(5)],
        help_text="Distinct approvers for a high or critical agent, or a scope reaching payment, health or "
        "production data (at least two: separation of duties).",
    )
    grant_approvals_standard = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(5)],
        help_text="Distinct approvers for any other grant.",
    )
    grant_request_stale_days = models.PositiveIntegerField(
        default=7,
        validators=[MinValueValidator(1), MaxValueValidator(90)],
        help_text="A request still pending after this many days is cancelled.",
    )
    grant_max_depth = models.PositiveIntegerField(
        default=3,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_DELEGATION_DEPTH)],
        help_text=f"Most grants in one delegation chain, the root included (1 to {MAX_DELEGATION_DEPTH}).",
    )
    grant_expiry_reminder_hours = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 14)],
        help_text="Remind the requester and the agent's owner this many hours before a grant expires.",
    )
    # Attestations and risk assessments (issue: owners vouch on a cadence set by the tier).
    # An unassessed agent follows the high tier's cadence.
    attestation_days_critical = models.PositiveIntegerField(
        default=30,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days between attestations of a critical agent.",
    )
    attestation_days_high = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days between attestations of a high-tier (or not yet assessed) agent.",
    )
    attestation_days_medium = models.PositiveIntegerField(
        default=180,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days between attestations of a medium-tier agent.",
    )
    attestation_days_low = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days between attestations of a low-tier agent.",
    )
    attestation_grace_days = models.PositiveIntegerField(
        default=14,
        validators=[MinValueValidator(0), MaxValueValidator(90)],
        help_text="Days past the due date before an unanswered attestation is enforced.",
    )
    attestation_suspend_critical = models.BooleanField(
        default=True, help_text="Past grace, suspend a critical agent (otherwise only flag it)."
    )
    attestation_suspend_high = models.BooleanField(
        default=True, help_text="Past grace, suspend a high-tier agent (otherwise only flag it)."
    )
    attestation_suspend_medium = models.BooleanField(
        default=False, help_text="Past grace, suspend a medium-tier agent (otherwise only flag it)."
    )
    attestation_suspend_low = models.BooleanField(
        default=False, help_text="Past grace, suspend a low-tier agent (otherwise only flag it)."
    )
    assessment_valid_days_critical = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days a critical agent's risk assessment holds.",
    )
    assessment_valid_days_high = models.PositiveIntegerField(
        default=180,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days a high-tier agent's risk assessment holds.",
    )
    assessment_valid_days_medium = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days a medium-tier agent's risk assessment holds.",
    )
    assessment_valid_days_low = models.PositiveIntegerField(
        default=365,
        validators=[MinValueValidator(1), MaxValueValidator(1095)],
        help_text="Days a low-tier agent's risk assessment holds.",
    )
    # Runtime decisions and task tokens (the decision endpoint, the decision log, task credentials).
    decision_allow_sample_percent = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text="Share of allowed decisions kept in the decision log, in percent (every denial is kept).",
    )
    decision_out_of_scope_threshold = models.PositiveIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Denied out-of-scope attempts by one agent within the window that raise a finding.",
    )
    decision_out_of_scope_window_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="The window, in minutes, over which out-of-scope denials are counted.",
    )
    decision_log_retention_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Days the decision log keeps an entry.",
    )
    task_token_default_seconds = models.PositiveIntegerField(
        default=900,
        validators=[MinValueValidator(30), MaxValueValidator(3600)],
        help_text="Lifetime of a task token when the caller names none, in seconds (never past its grant's end).",
    )
    task_token_max_seconds = models.PositiveIntegerField(
        default=3600,
        validators=[MinValueValidator(30), MaxValueValidator(24 * 3600)],
        help_text="Longest lifetime a caller may ask for a task token, in seconds.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policy"

    def __str__(self):
        return "Governance policy"

    #: Settings that must not grow as the risk tier rises: a riskier agent never gets more.
    TIERED = (
        ("grant_max_hours", "longest grant"),
        ("attestation_days", "time between attestations"),
        ("assessment_valid_days", "time an assessment holds"),
    )

    def clean(self):
        """Refuse a policy that gives a riskier tier more than a less risky one (a longer grant, a
        longer attestation cadence, a longer-lived assessment), or that asks fewer approvers for
        elevated grants than for ordinary ones. Raises a field-keyed ``ValidationError``."""
        errors = {}
        tiers = ("critical", "high", "medium", "low")
        for prefix, label in self.TIERED:
            for riskier, safer in zip(tiers, tiers[1:], strict=False):
                a, b = getattr(self, f"{prefix}_{riskier}"), getattr(self, f"{prefix}_{safer}")
                if a is not None and b is not None and a > b:
                    errors[f"{prefix}_{riskier}"] = (
                        f"The {label} for {riskier} ({a}) may not exceed the one for {safer} ({b})."
                    )
        if (
            self.grant_approvals_standard is not None
            and self.grant_approvals_elevated is not None
            and self.grant_approvals_standard > self.grant_approvals_elevated
        ):
            errors["grant_approvals_standard"] = (
                f"Ordinary grants may not need more approvers ({self.grant_approvals_standard}) than elevated "
                f"ones ({self.grant_approvals_elevated})."
            )
        if (
            self.task_token_default_seconds is not None
            and self.task_token_max_seconds is not None
            and self.task_token_default_seconds > self.task_token_max_seconds
        ):
            errors["task_token_default_seconds"] = (
                f"The default task-token lifetime ({self.task_token_default_seconds} s) may not exceed the longest "
                f"one ({self.task_token_max_seconds} s)."
            )
        if errors:
            raise ValidationError(errors)

    @classmethod
    def current(cls) -> "Policy":
        """The policy row, created with defaults on first use."""
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

    def attestation_days(self, risk_tier: str) -> int:
        """Days between attestations for an agent of ``risk_tier`` (``unassessed`` counts as high)."""
        return getattr(self, f"attestation_days_{risk_tier}", self.attestation_days_high)

    def attestation_suspends(self, risk_tier: str) -> bool:
        """True if an attestation overdue past grace suspends an agent of ``risk_tier`` (else it is only flagged)."""
        return getattr(self, f"attestation_suspend_{risk_tier}", self.attestation_suspend_high)

    def assessment_valid_days(self, risk_tier: str) -> int:
        """Days a risk assessment of ``risk_tier`` holds before a reassessment is due."""
        return getattr(self, f"assessment_valid_days_{risk_tier}", self.assessment_valid_days_high)

    def grant_max_hours(self, risk_tier: str) -> int:
        """The longest grant, in hours, for an agent of ``risk_tier`` (``unassessed`` counts as high)."""
        return getattr(self, f"grant_max_hours_{risk_tier}", self.grant_max_hours_high)


class IntegrationToken(models.Model):
    """An API token for an integration, acting for ``user`` within ``scopes``.

    Only a SHA-256 digest of the token is stored (invariant 9); the clear token is shown
    once, when issued. A token always expires.
    """

    class Scope(models.TextChoices):
        INVENTORY_READ = "inventory:read", "Read inventory and findings"
        INVENTORY_WRITE = "inventory:write", "Change inventory and findings"
        IMPORTS_WRITE = "imports:write", "Run imports"
        AUDIT_READ = "audit:read", "Read audit events"
        GRANTS_READ = "grants:read", "Read delegation grants"
        GRANTS_WRITE = "grants:write", "Request, decide, revoke and renew delegation grants"
        DECISIONS_CHECK = "decisions:check", "Ask for runtime decisions before tool calls"
        TOKENS_ISSUE = "tokens:issue", "Issue and revoke task tokens for grants"
        TOKENS_INTROSPECT = "tokens:introspect", "Introspect task tokens (RFC 7662)"

    name = models.CharField(max_length=100)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="integration_tokens")
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="token_expires_after_created"
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    def is_usable(self, now) -> bool:
        """True while not revoked, ``now < expires_at`` and its user is active."""
        return self.revoked_at is None and now < self.expires_at and self.user.is_active


# --- the governance domain: risk assessments, attestations, campaigns ------------------------
# These refer to the inventory by model name ("inventory.Agent"), so the kernel above imports no app.


class RiskTier(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class RiskAssessment(models.Model):
    """One risk assessment of an agent: the answers to each factor, their scores, the total and the tier.

    History is kept; an agent's tier is its latest assessment's. ``valid_until`` is when a
    reassessment falls due (by tier, from the policy). Rules and framework references:
    ``governance.assessments``.
    """

    agent = models.ForeignKey("inventory.Agent", on_delete=models.PROTECT, related_name="risk_assessments")
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    assessed_at = models.DateTimeField()
    answers = models.JSONField(help_text="Factor code → the answer given.")
    factor_scores = models.JSONField(help_text="Factor code → points scored.")
    score = models.PositiveIntegerField()
    tier = models.CharField(max_length=16, choices=RiskTier.choices)
    notes = models.TextField(blank=True)
    valid_until = models.DateTimeField()

    class Meta:
        ordering = ["-assessed_at", "-id"]
        indexes = [models.Index(fields=["agent", "-assessed_at", "-id"], name="assessment_agent_latest_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(valid_until__gt=models.F("assessed_at")), name="assessment_valid_after")
        ]

    def __str__(self):
        return f"Risk assessment #{self.pk} of {self.agent}: {self.tier}" if self.pk else "Risk assessment"


class Campaign(models.Model):
    """An attestation campaign an IAM admin launches over a scope, with a deadline."""

    class ScopeKind(models.TextChoices):
        ALL = "all", "All live agents"
        TIER = "tier", "Agents of one risk tier"
        TEAM = "team", "Agents of one team"
        ENVIRONMENT = "environment", "Agents of one environment"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    scope_kind = models.CharField(max_length=16, choices=ScopeKind.choices)
    scope_value = models.CharField(max_length=100, blank=True, help_text="The tier, team slug or environment.")
    deadline = models.DateField()
    launched_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    launched_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-launched_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scope_kind="all", scope_value="") | (~Q(scope_kind="all") & ~Q(scope_value="")),
                name="campaign_scope_value_matches_kind",
            )
        ]

    def __str__(self):
        return self.name


class Attestation(models.Model):
    """An owner's periodic vouching for one agent: due on a date, answered once with a checklist and
    an outcome. At most one open attestation per agent (database constraint); a decided one is
    never rewritten."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ATTESTED = "attested", "Attested"
        CANCELLED = "cancelled", "Cancelled"

    class Outcome(models.TextChoices):
        KEEP = "keep", "Keep as is"
        REDUCE = "reduce", "Reduce its grants"
        DECOMMISSION = "decommission", "Decommission the agent"

    class Enforcement(models.TextChoices):
        SUSPENDED = "suspended", "Agent suspended"
        FLAGGED = "flagged", "Flagged only"

    agent = models.ForeignKey("inventory.Agent", on_delete=models.PROTECT, related_name="attestations")
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, null=True, blank=True, related_name="attestations")
    due_on = models.DateField()
    opened_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    still_needed = models.BooleanField(null=True, blank=True)
    owner_correct = models.BooleanField(null=True, blank=True)
    grants_appropriate = models.BooleanField(null=True, blank=True)
    credentials_rotated = models.BooleanField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    comment = models.TextField(blank=True)
    attested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    attested_at = models.DateTimeField(null=True, blank=True)
    reminded_14d_at = models.DateTimeField(null=True, blank=True)
    reminded_3d_at = models.DateTimeField(null=True, blank=True)
    reminded_1d_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    enforced_at = models.DateTimeField(null=True, blank=True)
    enforcement = models.CharField(max_length=16, choices=Enforcement.choices, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    close_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=Q(status="open"), name="attestation_one_open_per_agent"
            ),
            models.CheckConstraint(
                condition=~Q(status="attested")
                | (Q(attested_at__isnull=False) & Q(attested_by__isnull=False) & ~Q(outcome="")),
                name="attestation_attested_is_complete",
            ),
        ]
        indexes = [models.Index(fields=["status", "due_on"], name="attestation_status_due_idx")]

    def __str__(self):
        return f"Attestation of {self.agent} due {self.due_on:%Y-%m-%d}" if self.agent_id else "Attestation"
