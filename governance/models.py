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
    verb = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64)
    object_label = models.CharField(max_length=300, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["object_type", "object_id", "id"])]

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
        validators=[MinValueValidator(1)],
        help_text="A credential whose last use is older than this, as of its observed-at, is unused.",
    )
    never_used_grace_days = models.PositiveIntegerField(
        default=7,
        validators=[MinValueValidator(0)],
        help_text="A never-used credential older than this, as of its observed-at, is unused.",
    )
    rotation_period_days = models.PositiveIntegerField(
        default=90,
        validators=[MinValueValidator(1)],
        help_text="Default rotation period for credentials that do not set their own.",
    )
    expiring_within_days = models.PositiveIntegerField(
        default=14,
        validators=[MinValueValidator(1)],
        help_text="A credential expiring within this many days raises an expiring-credential finding.",
    )
    # Delegation grants (DESIGN.md invariants 4, 5, 6). An unassessed agent is capped and approved as a high one.
    grant_max_hours_critical = models.PositiveIntegerField(
        default=8, validators=[MinValueValidator(1)], help_text="Longest grant for a critical-tier agent, in hours."
    )
    grant_max_hours_high = models.PositiveIntegerField(
        default=24,
        validators=[MinValueValidator(1)],
        help_text="Longest grant for a high-tier (or not yet assessed) agent, in hours.",
    )
    grant_max_hours_medium = models.PositiveIntegerField(
        default=7 * 24, validators=[MinValueValidator(1)], help_text="Longest grant for a medium-tier agent, in hours."
    )
    grant_max_hours_low = models.PositiveIntegerField(
        default=30 * 24, validators=[MinValueValidator(1)], help_text="Longest grant for a low-tier agent, in hours."
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
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "policy"

    def __str__(self):
        return "Governance policy"

    @classmethod
    def current(cls) -> "Policy":
        """The policy row, created with defaults on first use."""
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

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
