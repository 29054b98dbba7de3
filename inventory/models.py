"""Inventory: teams, agents, workload identities, credentials and tools.

A credential is never the secret: Warrant keeps its kind, provider, an external id or a
fingerprint, and the dates that say whether it is stale (OWASP NHI Top 10: NHI1, NHI7).
"""

import unicodedata
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Case, ExpressionWrapper, Q, Value, When
from django.db.models.functions import Coalesce


class DataClass(models.TextChoices):
    PII = "pii", "Personal data"
    PAYMENT = "payment", "Payment data"
    HEALTH = "health", "Health data"
    PRODUCTION = "production", "Production systems"
    SECRETS = "secrets", "Secrets"
    SOURCE_CODE = "source_code", "Source code"
    CONFIDENTIAL = "confidential", "Confidential business data"
    PUBLIC = "public", "Public data"


class AccessLevel(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    EXECUTE = "execute", "Execute"


def validate_display_text(obj, *field_names: str) -> None:
    """Refuse control and invisible formatting characters (Unicode categories Cc and Cf, e.g. the
    right-to-left override U+202E) in names people read to decide, so that one agent cannot be
    made to look like another. Raises a field-keyed ``ValidationError``."""
    errors = {}
    for name in field_names:
        value = getattr(obj, name) or ""
        bad = sorted({f"U+{ord(ch):04X}" for ch in value if unicodedata.category(ch) in ("Cc", "Cf")})
        if bad:
            errors[name] = f"Contains control or invisible formatting characters ({', '.join(bad)})."
    if errors:
        raise ValidationError(errors)


def validate_choice_list(values, choices_cls, label: str) -> None:
    """Raise ``ValidationError`` unless ``values`` is a list of distinct values of ``choices_cls``."""
    if not isinstance(values, list):
        raise ValidationError(f"{label} must be a list.")
    allowed = set(choices_cls.values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValidationError(
            f"Unknown {label}: {', '.join(map(str, unknown))}. Allowed: {', '.join(sorted(allowed))}."
        )
    if len(set(values)) != len(values):
        raise ValidationError(f"{label} must not repeat a value.")


class Team(models.Model):
    """A team that agents belong to; its members share the orphans queue for those agents."""

    name = models.CharField(max_length=100, unique=True)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name", "id"]

    def __str__(self):
        return self.name

    def clean(self):
        validate_display_text(self, "name")


# Words the web UI uses after /agents/; no agent may take them as its slug.
RESERVED_AGENT_SLUGS = frozenset({"new", "import", "imports", "export", "search"})


def validate_agent_slug(value: str) -> None:
    """Refuse slugs that the web UI's URLs use (``/agents/new/`` is the register page)."""
    if value in RESERVED_AGENT_SLUGS:
        raise ValidationError(f"{value!r} is reserved; choose another slug.")


class Agent(models.Model):
    """An AI agent or other non-human identity with execution power, and its owner.

    Lifecycle: ``proposed → active ⇄ suspended → decommissioned`` (terminal). A live agent
    (active or suspended) always has an owner (database constraint); an agent found by an
    import starts proposed and ownerless until an IAM admin assigns one.
    """

    class Kind(models.TextChoices):
        AUTONOMOUS_AGENT = "autonomous_agent", "Autonomous agent"
        ASSISTANT = "assistant", "Assistant"
        WORKFLOW_BOT = "workflow_bot", "Workflow bot"
        SERVICE_ACCOUNT = "service_account", "Service account"

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        DECOMMISSIONED = "decommissioned", "Decommissioned"

    class Environment(models.TextChoices):
        DEVELOPMENT = "development", "Development"
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"

    class Autonomy(models.TextChoices):
        HUMAN_IN_THE_LOOP = "human_in_the_loop", "Human in the loop"
        HUMAN_ON_THE_LOOP = "human_on_the_loop", "Human on the loop"
        AUTONOMOUS = "autonomous", "Fully autonomous"

    class RiskTier(models.TextChoices):
        UNASSESSED = "unassessed", "Unassessed"
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    class Source(models.TextChoices):
        REGISTERED = "registered", "Registered by a person"
        AWS_CREDENTIAL_REPORT = "aws_credential_report", "AWS IAM credential report"

    LIVE_STATES = (State.ACTIVE, State.SUSPENDED)

    slug = models.SlugField(max_length=100, unique=True, validators=[validate_agent_slug])
    name = models.CharField(max_length=200)
    purpose = models.TextField(blank=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    platform = models.CharField(max_length=100, blank=True)
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.PRODUCTION)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="owned_agents"
    )
    backup_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="backed_up_agents"
    )
    team = models.ForeignKey(Team, on_delete=models.PROTECT, null=True, blank=True, related_name="agents")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSED, db_index=True)
    state_changed_at = models.DateTimeField()
    state_reason = models.TextField(blank=True)
    autonomy_level = models.CharField(max_length=24, choices=Autonomy.choices, default=Autonomy.HUMAN_IN_THE_LOOP)
    data_classes = models.JSONField(default=list, blank=True)
    risk_tier = models.CharField(max_length=16, choices=RiskTier.choices, default=RiskTier.UNASSESSED, db_index=True)
    source = models.CharField(max_length=32, choices=Source.choices, default=Source.REGISTERED)
    external_ref = models.CharField(
        max_length=300,
        null=True,
        blank=True,
        unique=True,
        help_text="The identifier at the source that found this agent (e.g. an IAM user ARN).",
    )
    next_attestation_due = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(state__in=["active", "suspended"]) | Q(owner__isnull=False),
                name="agent_live_has_owner",
            ),
            models.CheckConstraint(
                condition=Q(backup_owner__isnull=True) | ~Q(backup_owner=models.F("owner")),
                name="agent_backup_owner_differs",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        """Refuse control characters in names, unknown data classes, and a literal secret in the
        purpose (invariant 9; rules in ``inventory.secrets``)."""
        from .secrets import text_refusal

        validate_display_text(self, "name", "platform")
        validate_choice_list_field(self, "data_classes", DataClass, "data classes")
        refusal = text_refusal(self.purpose)
        if refusal:
            raise ValidationError({"purpose": refusal})

    @property
    def is_live(self) -> bool:
        return self.state in self.LIVE_STATES


def validate_choice_list_field(obj, field_name: str, choices_cls, label: str) -> None:
    """``validate_choice_list`` for a model field, raising a field-keyed ``ValidationError``."""
    try:
        validate_choice_list(getattr(obj, field_name), choices_cls, label)
    except ValidationError as exc:
        raise ValidationError({field_name: exc.messages}) from None


class WorkloadIdentity(models.Model):
    """How an agent proves what it is. Distinct per agent: one identity, one agent (NHI9)."""

    class Type(models.TextChoices):
        SPIFFE = "spiffe", "SPIFFE ID"
        OIDC = "oidc", "OIDC issuer + subject"
        AWS_IAM_USER = "aws_iam_user", "AWS IAM user"
        AWS_IAM_ROLE = "aws_iam_role", "AWS IAM role"
        GCP_SERVICE_ACCOUNT = "gcp_service_account", "GCP service account"
        AZURE_MANAGED_IDENTITY = "azure_managed_identity", "Azure managed identity"
        KUBERNETES_SERVICE_ACCOUNT = "kubernetes_service_account", "Kubernetes service account"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="identities")
    type = models.CharField(max_length=32, choices=Type.choices)
    issuer = models.CharField(max_length=300, blank=True, help_text="OIDC issuer URL; blank for other types.")
    identifier = models.CharField(max_length=500)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["type", "identifier", "id"]
        verbose_name_plural = "workload identities"
        constraints = [
            models.UniqueConstraint(fields=["type", "issuer", "identifier"], name="workload_identity_unique"),
            models.CheckConstraint(condition=~Q(type="oidc") | ~Q(issuer=""), name="workload_identity_oidc_issuer"),
        ]

    def __str__(self):
        if self.issuer:
            return f"{self.get_type_display()}: {self.issuer} {self.identifier}"
        return f"{self.get_type_display()}: {self.identifier}"

    def clean(self):
        if self.type == self.Type.SPIFFE and not self.identifier.startswith("spiffe://"):
            raise ValidationError({"identifier": "A SPIFFE ID starts with spiffe://."})
        if self.type == self.Type.OIDC and not self.issuer:
            raise ValidationError({"issuer": "An OIDC identity needs its issuer."})
        if self.type != self.Type.OIDC and self.issuer:
            raise ValidationError({"issuer": "Only OIDC identities have an issuer."})


class CredentialQuerySet(models.QuerySet):
    """Credential queries that carry a rule of their own."""

    def with_rotation_due(self, default_days: int) -> "CredentialQuerySet":
        """Annotate ``rotation_due_at`` (UTC): the last rotation (or creation) plus the
        credential's own ``rotation_period_days``, else ``default_days`` (the policy's).

        Periods are few, so the expression has one branch per distinct period, keeping the
        arithmetic to "datetime + constant interval", which every supported database computes.
        """
        own_periods = sorted(
            self.filter(rotation_period_days__isnull=False)
            .order_by()
            .values_list("rotation_period_days", flat=True)
            .distinct()
        )
        anchor = Coalesce("last_rotated_at", "created_at")

        def plus(days: int):
            return ExpressionWrapper(anchor + Value(timedelta(days=days)), output_field=models.DateTimeField())

        due_at = Case(
            *[When(rotation_period_days=days, then=plus(days)) for days in own_periods],
            default=plus(default_days),
            output_field=models.DateTimeField(),
        )
        return self.annotate(rotation_due_at=due_at)


class Credential(models.Model):
    """A credential an agent holds — never the secret itself.

    Usage (``last_used_at``) is as its source knew it at ``observed_at``; ``usage_tracked``
    says whether the source reports usage at all (AWS does for access keys, not for signing
    certificates). All datetimes are UTC.
    """

    class Kind(models.TextChoices):
        ACCESS_KEY = "access_key", "Access key"
        SIGNING_CERTIFICATE = "signing_certificate", "Signing certificate"
        CONSOLE_PASSWORD = "console_password", "Console password"
        API_KEY = "api_key", "API key"
        OAUTH_CLIENT_SECRET = "oauth_client_secret", "OAuth client secret"
        SSH_KEY = "ssh_key", "SSH key"
        X509_CERTIFICATE = "x509_certificate", "X.509 certificate"
        TOKEN = "token", "Token"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        INACTIVE = "inactive", "Inactive"
        REVOKED = "revoked", "Revoked"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="credentials")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    provider = models.CharField(max_length=64)
    external_id = models.CharField(
        max_length=300, help_text="The provider's id for it, or a slot such as ARN#access_key_1."
    )
    fingerprint = models.CharField(
        max_length=100, blank=True, help_text="sha256:… of the public part or key id; never the secret."
    )
    label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(help_text="When the credential was created at its provider (UTC).")
    last_rotated_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    usage_tracked = models.BooleanField(default=True)
    observed_at = models.DateTimeField(help_text="As of when usage data is known (e.g. the report's generation time).")
    expires_at = models.DateTimeField(null=True, blank=True)
    rotation_period_days = models.PositiveIntegerField(null=True, blank=True, help_text="Blank: the policy default.")
    ephemeral = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE, db_index=True)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField()

    objects = CredentialQuerySet.as_manager()

    class Meta:
        ordering = ["agent_id", "kind", "external_id", "id"]
        constraints = [
            models.UniqueConstraint(fields=["provider", "external_id"], name="credential_unique_external_id"),
            models.CheckConstraint(condition=~Q(rotation_period_days=0), name="credential_rotation_period_positive"),
        ]

    def __str__(self):
        return self.label or f"{self.get_kind_display()} {self.external_id}"

    @property
    def rotated_or_created_at(self):
        return self.last_rotated_at or self.created_at

    def clean(self):
        """Refuse a literal secret in ``external_id``, ``label`` or ``provider`` and a fingerprint that is not
        ``sha256:<64 hex>`` (invariant 9; rules in ``inventory.secrets``), then impossible dates."""
        from .secrets import credential_fingerprint_refusal, text_refusal

        refusals = {
            "provider": text_refusal(self.provider),
            "external_id": text_refusal(self.external_id),
            "label": text_refusal(self.label),
            "fingerprint": credential_fingerprint_refusal(self.fingerprint),
        }
        if any(refusals.values()):
            raise ValidationError({field: message for field, message in refusals.items() if message})
        if self.expires_at and self.created_at and self.expires_at <= self.created_at:
            raise ValidationError({"expires_at": "A credential expires after it is created."})
        if self.last_used_at and self.observed_at and self.last_used_at > self.observed_at:
            raise ValidationError({"last_used_at": "Last use cannot be after the time it was observed."})


class Tool(models.Model):
    """Something an agent can call: an MCP server's tools or an API.

    Access is split into ``read``, ``write`` and ``execute``; ``destination`` says whether
    calls leave the organisation.
    """

    class Transport(models.TextChoices):
        STDIO = "stdio", "stdio (local process)"
        HTTP = "http", "Streamable HTTP"
        SSE = "sse", "Server-sent events"
        API = "api", "HTTP API"

    class Destination(models.TextChoices):
        INTERNAL = "internal", "Internal"
        EXTERNAL = "external", "External"

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="tools")
    name = models.CharField(max_length=100)
    transport = models.CharField(max_length=16, choices=Transport.choices)
    command = models.CharField(max_length=500, blank=True)
    args = models.JSONField(default=list, blank=True)
    url = models.CharField(max_length=1000, blank=True)
    env_keys = models.JSONField(default=list, blank=True, help_text="Names of environment variables (never values).")
    access_levels = models.JSONField(default=list, blank=True)
    data_classes = models.JSONField(default=list, blank=True)
    destination = models.CharField(max_length=16, choices=Destination.choices, default=Destination.INTERNAL)
    source = models.CharField(
        max_length=200, blank=True, help_text="Where it was found, e.g. the imported file's name."
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["agent_id", "name", "id"]
        constraints = [models.UniqueConstraint(fields=["agent", "name"], name="tool_unique_per_agent")]

    def __str__(self):
        return f"{self.name} ({self.agent})" if self.agent_id else self.name

    def clean(self):
        """Refuse a literal secret in the name, command, arguments, URL or source, and ``env_keys`` that are
        not environment variable names (invariant 9; rules in ``inventory.secrets``), then the shape rules."""
        from .secrets import args_refusal, env_keys_refusal, text_refusal, url_refusal

        validate_display_text(self, "name")

        refusals = {
            "name": text_refusal(self.name),
            "command": text_refusal(self.command),
            "args": args_refusal(self.args),
            "url": url_refusal(self.url),
            "env_keys": env_keys_refusal(self.env_keys),
            "source": text_refusal(self.source),
        }
        if any(refusals.values()):
            raise ValidationError({field: message for field, message in refusals.items() if message})
        validate_choice_list_field(self, "access_levels", AccessLevel, "access levels")
        validate_choice_list_field(self, "data_classes", DataClass, "data classes")
        if self.transport == self.Transport.STDIO and not self.command:
            raise ValidationError({"command": "A stdio tool needs the command that starts it."})
        if self.transport in (self.Transport.HTTP, self.Transport.SSE, self.Transport.API) and not self.url:
            raise ValidationError({"url": "A remote tool needs its URL."})


class ImportRun(models.Model):
    """One import of a source file (an AWS IAM credential report, an MCP client configuration).

    Kept for every run, including a re-import that changed nothing: ``sha256`` identifies the
    file, ``observed_at`` is as of when its data was true (UTC; the report's generation time),
    ``summary`` holds the counts of what the run found and changed.
    """

    class Source(models.TextChoices):
        AWS_CREDENTIAL_REPORT = "aws-credential-report", "AWS IAM credential report"
        MCP_CONFIG = "mcp-config", "MCP client configuration"

    source = models.CharField(max_length=32, choices=Source.choices)
    filename = models.CharField(max_length=255, blank=True)
    sha256 = models.CharField(max_length=64, db_index=True, help_text="SHA-256 hex digest of the file's bytes.")
    observed_at = models.DateTimeField(null=True, blank=True, help_text="As of when the file's data was true (UTC).")
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, blank=True)
    actor_label = models.CharField(max_length=200)
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_runs")
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_source_display()} {self.filename or self.sha256[:12]} ({self.created_at:%Y-%m-%d %H:%M})"


def default_issuer_algorithms() -> list[str]:
    """The signature algorithms a new trusted issuer accepts unless told otherwise."""
    return ["RS256", "ES256"]


class TrustedIssuer(models.Model):
    """An issuer whose identity tokens prove a workload identity: an OIDC provider (matched by the
    token's exact ``iss``) or a SPIFFE trust domain (matched by the trust domain of a JWT-SVID's
    ``sub``), with where its public keys come from — ``jwks_url`` or a static ``jwks``, exactly one.

    Only asymmetric signature algorithms are accepted, never ``none`` or HS*. The rules for one
    row (URL schemes, the shape of a SPIFFE trust domain ID, public keys only) are in
    ``inventory.identity_proof``; verification is ``inventory.identity_proof.verify_identity_token``.
    """

    class Kind(models.TextChoices):
        OIDC = "oidc", "OIDC provider"
        SPIFFE = "spiffe", "SPIFFE trust domain"

    MAX_CLOCK_SKEW_SECONDS = 300

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    issuer = models.CharField(
        max_length=300,
        unique=True,
        help_text="OIDC: the exact iss URL (https://…). SPIFFE: the trust domain, spiffe://example.org.",
    )
    jwks_url = models.CharField(
        max_length=1000, blank=True, help_text="Where the issuer publishes its JWK Set (https://…); or give jwks."
    )
    jwks = models.JSONField(
        null=True, blank=True, help_text='A static JWK Set, {"keys": [...]}, public keys only; or give jwks_url.'
    )
    audiences = models.JSONField(default=list, blank=True, help_text="The aud values Warrant accepts (at least one).")
    algorithms = models.JSONField(default=default_issuer_algorithms, blank=True)
    clock_skew_seconds = models.PositiveSmallIntegerField(
        default=60,
        validators=[MaxValueValidator(MAX_CLOCK_SKEW_SECONDS)],
        help_text="Leeway for exp, nbf and iat, in seconds (0–300).",
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(kind__in=["oidc", "spiffe"]), name="trusted_issuer_kind_valid"),
            models.CheckConstraint(
                condition=(Q(jwks_url="") & Q(jwks__isnull=False)) | (~Q(jwks_url="") & Q(jwks__isnull=True)),
                name="trusted_issuer_one_key_source",
            ),
            models.CheckConstraint(
                condition=Q(clock_skew_seconds__gte=0, clock_skew_seconds__lte=300),
                name="trusted_issuer_clock_skew_range",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        """Refuse control characters in the name, then everything ``identity_proof.trusted_issuer_errors``
        finds wrong (issuer shape, key source, public keys only, audiences, algorithms)."""
        from .identity_proof import trusted_issuer_errors

        validate_display_text(self, "name")
        errors = trusted_issuer_errors(self)
        if errors:
            raise ValidationError(errors)
