"""``python manage.py seed_demo`` loads Warrant's demo data once, through the services.

People (password ``warrant-demo``): ``admin`` (superuser, IAM admin), ``ines`` (IAM admin, the
second approver), ``olivia`` and ``oscar`` (agent owners), ``aude`` (auditor). Teams, agents in
every lifecycle state with backup owners and varied risk tiers, environments and data classes,
workload identities, credentials of every age (fresh, unused, never used, unrotated, expiring,
expired but active, a console password, one left active on a decommissioned agent), and MCP
tools (stdio and remote, internal and external). Delegation grants: active (one ending within
days), pending with none or one of two approvals, denied and revoked. Then the stale-credential
job runs once, so that findings exist.

Idempotent: people, teams, agents, identities, credentials and tools are looked up by their
natural keys and only missing ones are created; the job runs only when something was created.
Running it twice changes nothing. Credential dates are relative to the time of the first run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from governance import roles
from governance.audit import Actor
from inventory import services
from inventory.models import Agent, Credential, Team, Tool, WorkloadIdentity

DEMO_PASSWORD = "warrant-demo"

PEOPLE = [
    # username, first name, last name, role, superuser
    ("admin", "Ada", "Admin", roles.IAM_ADMIN, True),
    ("ines", "Ines", "Iverson", roles.IAM_ADMIN, False),
    ("olivia", "Olivia", "Owens", roles.AGENT_OWNER, False),
    ("oscar", "Oscar", "Ortiz", roles.AGENT_OWNER, False),
    ("aude", "Aude", "Auditor", roles.AUDITOR, False),
]

TEAMS = [
    ("Platform", "platform", "Build, deploy and developer tooling agents."),
    ("Customer Support", "customer-support", "Agents that help the support desk."),
    ("Finance", "finance", "Agents that touch invoices, payments and ledgers."),
]


@dataclass
class Cred:
    """A demo credential; ages in days before the first run (``None``: not set)."""

    key: str
    kind: str = Credential.Kind.ACCESS_KEY
    provider: str = "aws"
    label: str = ""
    created_days_ago: int = 30
    rotated_days_ago: int | None = None
    used_days_ago: int | None = 1
    expires_in_days: int | None = None
    rotation_period_days: int | None = None
    usage_tracked: bool = True


@dataclass
class DemoTool:
    name: str
    transport: str
    command: str = ""
    args: list = field(default_factory=list)
    url: str = ""
    env_keys: list = field(default_factory=list)
    access_levels: list = field(default_factory=lambda: ["read"])
    data_classes: list = field(default_factory=list)
    destination: str = Tool.Destination.INTERNAL


@dataclass
class DemoAgent:
    slug: str
    name: str
    kind: str
    owner: str
    state: str
    purpose: str
    team: str | None = None
    backup_owner: str | None = None
    platform: str = ""
    environment: str = Agent.Environment.PRODUCTION
    autonomy_level: str = Agent.Autonomy.HUMAN_IN_THE_LOOP
    data_classes: list = field(default_factory=list)
    risk_tier: str = Agent.RiskTier.UNASSESSED
    identities: list = field(default_factory=list)  # (type, identifier, issuer)
    credentials: list = field(default_factory=list)
    tools: list = field(default_factory=list)
    state_reason: str = ""


S = Agent.State
K = Agent.Kind
WI = WorkloadIdentity.Type
T = Tool.Transport
EXT = Tool.Destination.EXTERNAL

AGENTS = [
    DemoAgent(
        slug="support-triage",
        name="Support ticket triage",
        kind=K.AUTONOMOUS_AGENT,
        owner="olivia",
        backup_owner="oscar",
        team="customer-support",
        state=S.ACTIVE,
        platform="langgraph",
        autonomy_level=Agent.Autonomy.HUMAN_ON_THE_LOOP,
        data_classes=["pii"],
        risk_tier=Agent.RiskTier.MEDIUM,
        purpose="Reads new support tickets, tags and routes them, drafts first replies for review.",
        identities=[(WI.SPIFFE, "spiffe://warrant.example/ns/support/sa/ticket-triage", "")],
        credentials=[
            Cred(
                "zendesk-api-key",
                kind=Credential.Kind.API_KEY,
                provider="zendesk",
                label="Zendesk API key",
                created_days_ago=10,
                used_days_ago=0,
            ),
            Cred(
                "slack-bot-token",
                kind=Credential.Kind.TOKEN,
                provider="slack",
                label="Slack bot token",
                created_days_ago=30,
                used_days_ago=None,
            ),
        ],
        tools=[
            DemoTool(
                "zendesk",
                T.HTTP,
                url="https://mcp.zendesk.example/mcp",
                access_levels=["read", "write"],
                data_classes=["pii"],
                destination=EXT,
            ),
            DemoTool(
                "knowledge-base",
                T.STDIO,
                command="npx",
                args=["-y", "@warrant-demo/kb-server"],
                env_keys=["KB_INDEX_PATH"],
                access_levels=["read"],
            ),
        ],
    ),
    DemoAgent(
        slug="invoice-agent",
        name="Invoice reconciliation agent",
        kind=K.AUTONOMOUS_AGENT,
        owner="oscar",
        backup_owner="olivia",
        team="finance",
        state=S.ACTIVE,
        platform="crewai",
        autonomy_level=Agent.Autonomy.HUMAN_IN_THE_LOOP,
        data_classes=["payment", "pii"],
        risk_tier=Agent.RiskTier.HIGH,
        purpose="Matches supplier invoices to purchase orders and proposes payments for approval.",
        identities=[(WI.AWS_IAM_ROLE, "arn:aws:iam::123456789012:role/invoice-agent", "")],
        credentials=[
            Cred("invoice-agent#access_key_1", label="AWS access key 1", created_days_ago=400, used_days_ago=1),
            Cred(
                "erp-client-cert",
                kind=Credential.Kind.X509_CERTIFICATE,
                provider="internal-pki",
                label="ERP client certificate",
                created_days_ago=355,
                rotated_days_ago=None,
                used_days_ago=0,
                expires_in_days=10,
                rotation_period_days=365,
            ),
        ],
        tools=[
            DemoTool(
                "ledger-db",
                T.STDIO,
                command="uvx",
                args=["mcp-server-postgres", "--read-only"],
                env_keys=["PGHOST", "PGDATABASE"],
                access_levels=["read"],
                data_classes=["payment"],
            ),
            DemoTool(
                "payments-api",
                T.API,
                url="https://payments.internal.example/api",
                access_levels=["read", "write"],
                data_classes=["payment"],
            ),
        ],
    ),
    DemoAgent(
        slug="code-review-bot",
        name="Code review bot",
        kind=K.ASSISTANT,
        owner="olivia",
        backup_owner="oscar",
        team="platform",
        state=S.ACTIVE,
        platform="github-actions",
        environment=Agent.Environment.PRODUCTION,
        autonomy_level=Agent.Autonomy.HUMAN_IN_THE_LOOP,
        data_classes=["source_code"],
        risk_tier=Agent.RiskTier.LOW,
        purpose="Reviews pull requests and comments on likely defects.",
        identities=[
            (WI.OIDC, "repo:warrant-demo/app:ref:refs/heads/main", "https://token.actions.githubusercontent.com")
        ],
        credentials=[
            Cred(
                "code-review-bot#app-key",
                kind=Credential.Kind.TOKEN,
                provider="github",
                label="GitHub app key",
                created_days_ago=20,
                rotated_days_ago=5,
                used_days_ago=0,
                expires_in_days=60,
            ),
        ],
        tools=[
            DemoTool(
                "github",
                T.HTTP,
                url="https://api.githubcopilot.example/mcp/",
                access_levels=["read", "write"],
                data_classes=["source_code"],
                destination=EXT,
            ),
        ],
    ),
    DemoAgent(
        slug="deploy-pipeline",
        name="Deploy pipeline",
        kind=K.WORKFLOW_BOT,
        owner="oscar",
        backup_owner="olivia",
        team="platform",
        state=S.SUSPENDED,
        platform="argo-workflows",
        autonomy_level=Agent.Autonomy.AUTONOMOUS,
        data_classes=["production", "secrets"],
        risk_tier=Agent.RiskTier.CRITICAL,
        state_reason="Suspended while its expired key is replaced.",
        purpose="Rolls out releases to the production cluster.",
        identities=[(WI.KUBERNETES_SERVICE_ACCOUNT, "system:serviceaccount:deploy:pipeline", "")],
        credentials=[
            Cred(
                "deploy-pipeline#access_key_1",
                label="AWS access key 1",
                created_days_ago=60,
                used_days_ago=3,
                expires_in_days=-5,
            ),
            Cred(
                "deploy-pipeline#password",
                kind=Credential.Kind.CONSOLE_PASSWORD,
                label="AWS console password",
                created_days_ago=45,
                used_days_ago=12,
            ),
        ],
        tools=[
            DemoTool(
                "kubectl",
                T.STDIO,
                command="kubectl-mcp",
                args=["--context", "prod"],
                env_keys=["KUBECONFIG"],
                access_levels=["read", "write", "execute"],
                data_classes=["production"],
            ),
        ],
    ),
    DemoAgent(
        slug="hr-onboarding",
        name="HR onboarding assistant",
        kind=K.ASSISTANT,
        owner="oscar",
        backup_owner="olivia",
        team=None,
        state=S.ACTIVE,
        platform="copilot-studio",
        environment=Agent.Environment.STAGING,
        data_classes=["pii", "health"],
        risk_tier=Agent.RiskTier.HIGH,
        purpose="Prepares onboarding checklists for new hires.",
        identities=[(WI.AZURE_MANAGED_IDENTITY, "/subscriptions/demo/resourceGroups/hr/identities/onboarding", "")],
        credentials=[
            Cred(
                "hr-onboarding#client-secret",
                kind=Credential.Kind.OAUTH_CLIENT_SECRET,
                provider="entra-id",
                label="Entra ID client secret",
                created_days_ago=150,
                rotated_days_ago=60,
                used_days_ago=120,
            ),
        ],
        tools=[
            DemoTool(
                "hris",
                T.SSE,
                url="https://hris.internal.example/sse",
                access_levels=["read"],
                data_classes=["pii", "health"],
            ),
        ],
    ),
    DemoAgent(
        slug="research-assistant",
        name="Research assistant",
        kind=K.ASSISTANT,
        owner="olivia",
        team=None,
        state=S.PROPOSED,
        platform="claude-desktop",
        environment=Agent.Environment.DEVELOPMENT,
        data_classes=["public"],
        purpose="Searches the web and summarises papers for the data team.",
        tools=[
            DemoTool(
                "web-search",
                T.HTTP,
                url="https://search.example.com/mcp",
                access_levels=["read"],
                data_classes=["public"],
                destination=EXT,
            ),
            DemoTool(
                "filesystem",
                T.STDIO,
                command="npx",
                args=["-y", "@modelcontextprotocol/server-filesystem", "/home/olivia/papers"],
                access_levels=["read", "write"],
            ),
        ],
    ),
    DemoAgent(
        slug="data-sync",
        name="Warehouse data sync",
        kind=K.SERVICE_ACCOUNT,
        owner="oscar",
        team="finance",
        state=S.PROPOSED,
        platform="airflow",
        environment=Agent.Environment.STAGING,
        data_classes=["confidential"],
        risk_tier=Agent.RiskTier.MEDIUM,
        purpose="Copies ledger extracts into the analytics warehouse nightly.",
        identities=[(WI.GCP_SERVICE_ACCOUNT, "data-sync@warrant-demo.iam.gserviceaccount.com", "")],
        credentials=[
            Cred(
                "data-sync-sa-key",
                kind=Credential.Kind.ACCESS_KEY,
                provider="gcp",
                label="Service account key",
                created_days_ago=20,
                used_days_ago=None,
            ),
        ],
    ),
    DemoAgent(
        slug="legacy-etl",
        name="Legacy ETL",
        kind=K.SERVICE_ACCOUNT,
        owner="oscar",
        backup_owner="olivia",
        team="finance",
        state=S.DECOMMISSIONED,
        platform="cron",
        data_classes=["payment"],
        risk_tier=Agent.RiskTier.MEDIUM,
        state_reason="Replaced by the warehouse data sync.",
        purpose="Nightly export of invoices to the old reporting database.",
        identities=[(WI.AWS_IAM_USER, "arn:aws:iam::123456789012:user/legacy-etl", "")],
        credentials=[
            Cred(
                "legacy-etl#access_key_1",
                label="AWS access key 1",
                created_days_ago=700,
                rotated_days_ago=200,
                used_days_ago=200,
            ),
        ],
    ),
]


class Command(BaseCommand):
    help = "Load the demo data (people, teams, agents, identities, credentials, tools, findings) if missing."

    def handle(self, *args, **options):
        now = timezone.now()
        with transaction.atomic():
            created = seed(now=now)
        if created:
            self.stdout.write(self.style.SUCCESS(f"Demo data loaded ({created} objects created)."))
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        self.stdout.write(
            f"Demo logins (password {DEMO_PASSWORD}): admin, ines (IAM admins), olivia, oscar (agent owners), "
            "aude (auditor)."
        )


def seed(*, now) -> int:
    """Create whatever demo object is missing, as of ``now`` (UTC); returns how many were created."""
    created = 0
    roles.ensure_groups()
    people = {}
    for username, first, last, role, superuser in PEOPLE:
        person, made = _person(username, first, last, role, superuser)
        people[username] = person
        created += made
    actor = Actor.person(people["admin"])

    teams = {}
    for name, slug, description in TEAMS:
        team = Team.objects.filter(slug=slug).first()
        if team is None:
            team = services.team_create(actor=actor, name=name, slug=slug, description=description)
            created += 1
        teams[slug] = team

    for spec in AGENTS:
        created += _agent(spec, actor=actor, people=people, teams=teams, now=now)

    created += _grants(people=people, now=now)
    created += _decisions(people=people, now=now)

    if created:
        services.credentials_flag_stale_due(now=now, actor=Actor.system("stale-credential job"))
    return created


def _grants(*, people, now) -> int:
    """Demo delegation grants through the delegation services, once (when no grant exists yet)."""
    from delegations import services as grants
    from delegations.models import DelegationGrant
    from delegations.services import ScopeRequest

    if DelegationGrant.objects.exists():
        return 0
    olivia, oscar = Actor.person(people["olivia"]), Actor.person(people["oscar"])
    admin, ines = Actor.person(people["admin"]), Actor.person(people["ines"])
    slugs = ["support-triage", "invoice-agent", "code-review-bot", "hr-onboarding"]
    agent = {a.slug: a for a in Agent.objects.filter(slug__in=slugs)}

    def ask(actor, slug, scopes, purpose, justification, hours, **kwargs):
        return grants.grant_request(
            actor=actor,
            agent=agent[slug],
            scopes=[ScopeRequest(*s) for s in scopes],
            purpose=purpose,
            justification=justification,
            expires_at=now + timedelta(hours=hours),
            **kwargs,
        )

    triage = ask(olivia, "support-triage", [("zendesk", "read"), ("knowledge-base", "read")],
                 "Triage the support queue", "Reads new tickets and the knowledge base to route them.", 3 * 24,
                 intents=["ticket-triage"])  # fmt: skip
    grants.grant_approve(actor=admin, grant=triage, comment="Read-only, within the medium-tier cap.")
    review = ask(olivia, "code-review-bot", [("github", "read", "repo:warrant-demo/*")],
                 "Review pull requests", "Comments on pull requests in the demo organisation.", 20 * 24)  # fmt: skip
    grants.grant_approve(actor=ines, grant=review, comment="Scoped to our repositories.")
    ask(olivia, "code-review-bot", [("github", "write", "repo:warrant-demo/docs")],
        "Fix typos in the docs", "Opens small documentation fixes for review.", 7 * 24)  # fmt: skip
    payments = ask(oscar, "invoice-agent", [("payments-api", "write")],
                   "Propose supplier payments", "Quarter-end close: propose matched invoices for payment.", 8,
                   intents=["invoice-reconciliation"])  # fmt: skip
    grants.grant_approve(actor=ines, grant=payments, comment="Checked the supplier list.")
    ask(oscar, "invoice-agent", [("ledger-db", "read")],
        "Reconcile the ledger", "Monthly reconciliation of the ledger against purchase orders.", 24)  # fmt: skip
    hr = ask(oscar, "hr-onboarding", [("hris", "read")],
             "Export all employee records", "Bulk export for a spreadsheet.", 24)  # fmt: skip
    grants.grant_deny(actor=admin, grant=hr, reason="Health data in bulk is out of scope; ask per new hire instead.")
    stale = ask(olivia, "support-triage", [("zendesk", "write")],
                "Close duplicate tickets", "Clean-up of duplicates.", 48)  # fmt: skip
    grants.grant_approve(actor=admin, grant=stale)
    grants.grant_revoke(actor=olivia, grant=stale, reason="Clean-up done early.")
    return DelegationGrant.objects.count()


def _decisions(*, people, now) -> int:
    """A few decisions of the support-triage agent in the decision log, once (when it is empty): asked
    through ``decide`` as the demo gateway would, once the demo grants have started, so the log and the
    agent page have something to show. Returns how many entries were written."""
    from delegations.decisions import DecisionRequest, Subject, decide, decision_log_write
    from delegations.models import DecisionLog

    if DecisionLog.objects.exists() or not Agent.objects.filter(slug="support-triage").exists():
        return 0
    subject = Subject(WI.SPIFFE, "spiffe://warrant.example/ns/support/sa/ticket-triage")
    asks = [
        DecisionRequest(tool="zendesk", access="read", subject=subject, resource="ticket/4711", intent="ticket-triage"),
        DecisionRequest(
            tool="knowledge-base", access="write", subject=subject, resource="article/12", intent="ticket-triage"
        ),
        DecisionRequest(tool="zendesk", access="read", subject=subject, resource="ticket/4712", intent="refunds"),
        DecisionRequest(tool="zendesk", access="write", subject=subject, resource="ticket/4712"),
    ]
    written = 0
    asked_at = max(now, timezone.now())  # after the demo grants started (they start when approved)
    for request in asks:
        decision = decide(request, now=asked_at)
        written += decision_log_write(request, decision, requested_by=people["olivia"], requested_via="demo gateway")
    return written


def _person(username, first, last, role, superuser) -> tuple[object, int]:
    User = get_user_model()
    person = User.objects.filter(username=username).first()
    if person is not None:
        return person, 0
    person = User(
        username=username,
        first_name=first,
        last_name=last,
        email=f"{username}@warrant.example",
        is_staff=superuser,
        is_superuser=superuser,
    )
    person.set_password(DEMO_PASSWORD)
    person.save()
    person.groups.add(Group.objects.get(name=role))
    return person, 1


def _ago(now, days):
    return None if days is None else now - timedelta(days=days)


def _agent(spec: DemoAgent, *, actor: Actor, people, teams, now) -> int:
    created = 0
    agent = Agent.objects.filter(slug=spec.slug).first()
    new_agent = agent is None
    if new_agent:
        agent = services.agent_register(
            actor=actor,
            slug=spec.slug,
            name=spec.name,
            kind=spec.kind,
            owner=people[spec.owner],
            purpose=spec.purpose,
            platform=spec.platform,
            environment=spec.environment,
            backup_owner=people.get(spec.backup_owner) if spec.backup_owner else None,
            team=teams.get(spec.team) if spec.team else None,
            autonomy_level=spec.autonomy_level,
            data_classes=spec.data_classes,
            risk_tier=spec.risk_tier,
        )
        created += 1
    if agent.state == S.DECOMMISSIONED:
        return created

    for type_, identifier, issuer in spec.identities:
        if not WorkloadIdentity.objects.filter(type=type_, issuer=issuer, identifier=identifier).exists():
            services.workload_identity_add(actor=actor, agent=agent, type=type_, identifier=identifier, issuer=issuer)
            created += 1

    for c in spec.credentials:
        external_id = f"demo:{c.key}"
        if Credential.objects.filter(provider=c.provider, external_id=external_id).exists():
            continue
        services.credential_record(
            actor=actor,
            agent=agent,
            kind=c.kind,
            provider=c.provider,
            external_id=external_id,
            label=c.label,
            created_at=_ago(now, c.created_days_ago),
            last_rotated_at=_ago(now, c.rotated_days_ago),
            last_used_at=_ago(now, c.used_days_ago),
            usage_tracked=c.usage_tracked,
            observed_at=now,
            expires_at=_ago(now, -c.expires_in_days) if c.expires_in_days is not None else None,
            rotation_period_days=c.rotation_period_days,
        )
        created += 1

    for t in spec.tools:
        if Tool.objects.filter(agent=agent, name=t.name).exists():
            continue
        services.tool_add(
            actor=actor,
            agent=agent,
            name=t.name,
            transport=t.transport,
            command=t.command,
            args=t.args,
            url=t.url,
            env_keys=t.env_keys,
            access_levels=t.access_levels,
            data_classes=t.data_classes,
            destination=t.destination,
            source="demo data",
        )
        created += 1

    if new_agent:
        _bring_to_state(agent, spec, actor=actor)
    return created


def _bring_to_state(agent: Agent, spec: DemoAgent, *, actor: Actor) -> None:
    """Walk a newly registered agent through the lifecycle to its demo state, with reasons."""
    if spec.state in (S.ACTIVE, S.SUSPENDED):
        agent = services.agent_activate(actor=actor, agent=agent, reason="Reviewed and approved for the demo.")
    if spec.state == S.SUSPENDED:
        services.agent_suspend(actor=actor, agent=agent, reason=spec.state_reason or "Suspended for review.")
    if spec.state == S.DECOMMISSIONED:
        agent = services.agent_activate(actor=actor, agent=agent, reason="Reviewed and approved for the demo.")
        services.agent_decommission(actor=actor, agent=agent, reason=spec.state_reason or "No longer needed.")
