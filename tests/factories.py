"""factory_boy factories for Warrant's models. Datetimes are UTC and fixed unless a test sets them."""

from datetime import UTC, datetime, timedelta

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from delegations.models import DelegationGrant, GrantScope
from governance import roles
from inventory.models import Agent, Credential, Team, Tool, TrustedIssuer, WorkloadIdentity

T0 = datetime(2026, 11, 15, 6, 0, tzinfo=UTC)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"person{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct-horse-battery")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        """``UserFactory(role="IAM admin")`` puts the person in that role's group."""
        if create and extracted:
            add_role(self, extracted)


def add_role(user, role_name: str) -> None:
    group, _ = Group.objects.get_or_create(name=role_name)
    user.groups.add(group)


class IamAdminFactory(UserFactory):
    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create:
            add_role(self, extracted or roles.IAM_ADMIN)


class OwnerFactory(UserFactory):
    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create:
            add_role(self, extracted or roles.AGENT_OWNER)


class AuditorFactory(UserFactory):
    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create:
            add_role(self, extracted or roles.AUDITOR)


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class AgentFactory(factory.django.DjangoModelFactory):
    """An active, owned agent unless told otherwise."""

    class Meta:
        model = Agent

    slug = factory.Sequence(lambda n: f"agent-{n}")
    name = factory.Sequence(lambda n: f"Agent {n}")
    purpose = "Triage support tickets."
    kind = Agent.Kind.AUTONOMOUS_AGENT
    platform = "langgraph"
    environment = Agent.Environment.PRODUCTION
    owner = factory.SubFactory(OwnerFactory)
    team = factory.SubFactory(TeamFactory)
    state = Agent.State.ACTIVE
    state_changed_at = T0
    created_at = T0
    updated_at = T0


class WorkloadIdentityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WorkloadIdentity

    agent = factory.SubFactory(AgentFactory)
    type = WorkloadIdentity.Type.SPIFFE
    identifier = factory.Sequence(lambda n: f"spiffe://example.org/agent/{n}")
    created_at = T0


class CredentialFactory(factory.django.DjangoModelFactory):
    """An active, recently rotated, recently used access key."""

    class Meta:
        model = Credential

    agent = factory.SubFactory(AgentFactory)
    kind = Credential.Kind.ACCESS_KEY
    provider = "aws"
    external_id = factory.Sequence(lambda n: f"arn:aws:iam::123456789012:user/agent-{n}#access_key_1")
    created_at = datetime(2026, 11, 1, tzinfo=UTC)
    last_rotated_at = datetime(2026, 11, 1, tzinfo=UTC)
    last_used_at = datetime(2026, 11, 14, tzinfo=UTC)
    observed_at = T0
    recorded_at = T0
    status = Credential.Status.ACTIVE


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tool

    agent = factory.SubFactory(AgentFactory)
    name = factory.Sequence(lambda n: f"tool-{n}")
    transport = Tool.Transport.STDIO
    command = "npx"
    args = factory.LazyFunction(lambda: ["-y", "mcp-server"])
    access_levels = factory.LazyFunction(lambda: ["read"])
    created_at = T0
    updated_at = T0


class GrantFactory(factory.django.DjangoModelFactory):
    """An active grant to an agent, one day long from T0, approved, without scopes unless given
    (``GrantFactory(scopes=[("github", "read", "")])`` adds scope rows for the agent's tools of those names)."""

    class Meta:
        model = DelegationGrant
        skip_postgeneration_save = True

    agent = factory.SubFactory(AgentFactory)
    purpose = "Read the issue tracker."
    justification = "Needed for ticket triage."
    requested_by = factory.LazyAttribute(lambda o: o.agent.owner)
    requested_at = T0
    starts_at = T0
    expires_at = factory.LazyAttribute(lambda o: o.starts_at + timedelta(days=1))
    status = DelegationGrant.Status.ACTIVE
    parent = None
    decided_at = factory.LazyAttribute(
        lambda o: o.requested_at if o.status in ("active", "expired", "revoked", "denied") else None
    )
    depth = factory.LazyAttribute(lambda o: o.parent.depth + 1 if o.parent else 1)

    @factory.post_generation
    def scopes(self, create, extracted, **kwargs):
        for tool_name, access, pattern in extracted or ():
            tool = Tool.objects.filter(agent=self.agent, name=tool_name).first()
            GrantScope.objects.create(
                grant=self,
                tool=tool,
                tool_name=tool_name,
                access=access,
                resource_pattern=pattern,
                data_classes=list(tool.data_classes) if tool else [],
            )


def ec_public_jwks(kid: str = "factory-key") -> dict:
    """A JWK Set of one fresh EC P-256 public key (its private half is thrown away)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    public_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return {"keys": [{**ECAlgorithm.to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig"}]}


class TrustedIssuerFactory(factory.django.DjangoModelFactory):
    """An enabled OIDC issuer with a static JWK Set of one EC P-256 public key, audience ``warrant``."""

    class Meta:
        model = TrustedIssuer

    name = factory.Sequence(lambda n: f"Issuer {n}")
    kind = TrustedIssuer.Kind.OIDC
    issuer = factory.Sequence(lambda n: f"https://issuer-{n}.example.com")
    jwks_url = ""
    jwks = factory.LazyFunction(ec_public_jwks)
    audiences = factory.LazyFunction(lambda: ["warrant"])
    algorithms = factory.LazyFunction(lambda: ["RS256", "ES256"])
    clock_skew_seconds = 60
    enabled = True
    created_at = T0
    updated_at = T0
