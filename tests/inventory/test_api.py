"""REST API of the inventory: agents, teams, workload identities, credentials, tools, imports."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from governance.models import AuditEvent, IntegrationToken
from inventory.models import Agent, Credential, ImportRun, Tool, WorkloadIdentity
from tests.api_support import (
    ADMIN_ONLY,
    ADMIN_ONLY_CREATE,
    ADMIN_ONLY_ON_OWN,
    CHANGE_OWN,
    CREATE_FOR_OWN_AGENT,
    DELETE_OWN,
    READ_ALL,
    READ_OWN,
    WRITE,
    Case,
    count_queries,
    expect,
    issue_token,
    matrix,
    matrix_ids,
    run_case,
    session_client,
    token_client,
)
from tests.factories import (
    AgentFactory,
    CredentialFactory,
    OwnerFactory,
    TeamFactory,
    ToolFactory,
    WorkloadIdentityFactory,
)

AGENTS = "/api/v1/agents/"
TEAMS = "/api/v1/teams/"
IDENTITIES = "/api/v1/workload-identities/"
CREDENTIALS = "/api/v1/credentials/"
TOOLS = "/api/v1/tools/"
IMPORTS = "/api/v1/imports/"

AWS_REPORT = (
    b"user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    b"password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,"
    b"access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,"
    b"access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,"
    b"access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n"
    b"svc-api-test,arn:aws:iam::123456789012:user/svc-api-test,2025-01-10T09:00:00+00:00,false,N/A,N/A,N/A,"
    b"false,true,2025-01-10T09:00:00+00:00,2026-11-01T10:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,"
    b"false,N/A,false,N/A\n"
)


def aws_upload(content: bytes = AWS_REPORT) -> SimpleUploadedFile:
    return SimpleUploadedFile("credential-report.csv", content, content_type="text/csv")


def mcp_upload() -> SimpleUploadedFile:
    config = b'{"mcpServers": {"fetch": {"command": "uvx", "args": ["mcp-server-fetch"]}}}'
    return SimpleUploadedFile("claude_desktop_config.json", config, content_type="application/json")


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor):
    team = TeamFactory(name="Payments", slug="payments")
    own = AgentFactory(slug="own", name="Invoice agent", owner=owner, team=team)
    departed = OwnerFactory(username="dora.departed", is_active=False)
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "team": team,
        "own": own,
        "others": AgentFactory(slug="others", owner=other_owner, team=team),
        "proposed": AgentFactory(slug="own-proposed", owner=owner, state=Agent.State.PROPOSED),
        "suspended": AgentFactory(slug="own-suspended", owner=owner, state=Agent.State.SUSPENDED),
        # ``owner`` backs these up: one owned by someone still here, one whose owner has left.
        "backed_up": AgentFactory(slug="backed-up", owner=other_owner, backup_owner=owner),
        "orphaned": AgentFactory(slug="orphaned", owner=departed, backup_owner=owner),
        "identity": WorkloadIdentityFactory(agent=own),
        "credential": CredentialFactory(agent=own, external_id="arn:aws:iam::123456789012:user/own#access_key_1"),
        "tool": ToolFactory(agent=own, name="filesystem"),
    }


CASES = [
    # agents
    Case("agents-list", "get", lambda w: AGENTS, READ_ALL),
    Case("agents-retrieve", "get", lambda w: f"{AGENTS}own/", READ_OWN),
    Case(
        "agents-create",
        "post",
        lambda w: AGENTS,
        expect(owner=201, other_owner=201, admin=201, auditor=403),
        body=lambda w: {"name": "Ticket triage", "kind": "assistant"},
        verb="agent.register",
        scope=WRITE,
    ),
    Case(
        "agents-create-for-another-owner",
        "post",
        lambda w: AGENTS,
        expect(owner=403, other_owner=201, admin=201, auditor=403),
        body=lambda w: {"name": "Ticket triage", "kind": "assistant", "owner": "oscar.owner"},
        verb="agent.register",
        scope=WRITE,
    ),
    Case(
        "agents-update",
        "patch",
        lambda w: f"{AGENTS}own/",
        CHANGE_OWN,
        body=lambda w: {"purpose": "Reconcile invoices.", "data_classes": ["payment"]},
        verb="agent.update",
        scope=WRITE,
    ),
    Case(
        "agents-activate",
        "post",
        lambda w: f"{AGENTS}own-proposed/activate/",
        ADMIN_ONLY_ON_OWN,
        body=lambda w: {},
        verb="agent.activate",
        scope=WRITE,
    ),
    Case(
        "agents-reactivate",
        "post",
        lambda w: f"{AGENTS}own-suspended/reactivate/",
        ADMIN_ONLY_ON_OWN,
        body=lambda w: {"reason": "Incident closed."},
        verb="agent.reactivate",
        scope=WRITE,
    ),
    Case(
        "agents-suspend",
        "post",
        lambda w: f"{AGENTS}own/suspend/",
        CHANGE_OWN,
        body=lambda w: {"reason": "Investigating odd calls."},
        verb="agent.suspend",
        scope=WRITE,
    ),
    Case(
        "agents-decommission",
        "post",
        lambda w: f"{AGENTS}own/decommission/",
        CHANGE_OWN,
        body=lambda w: {"reason": "Retired."},
        verb="agent.decommission",
        scope=WRITE,
    ),
    Case(
        "agents-create-with-risk-tier",
        "post",
        lambda w: AGENTS,
        ADMIN_ONLY_CREATE,
        body=lambda w: {
            "name": "Payments bot",
            "kind": "autonomous_agent",
            "risk_tier": "high",
            "owner": "olivia.owner",
        },
        verb="agent.register",
        scope=WRITE,
    ),
    Case(
        "agents-set-risk-tier-retired",
        "post",
        lambda w: f"{AGENTS}own/set-risk-tier/",
        expect(owner=409, other_owner=404, admin=409, auditor=403),
        body=lambda w: {"risk_tier": "high", "reason": "Moves money."},
        scope=WRITE,
    ),
    Case(
        "agents-assign-owner",
        "post",
        lambda w: f"{AGENTS}own/assign-owner/",
        CHANGE_OWN,
        body=lambda w: {"owner": "oscar.owner", "reason": "Team change."},
        verb="agent.assign_owner",
        scope=WRITE,
    ),
    # a backup owner may not take an agent from an owner who is still here …
    Case(
        "agents-assign-owner-backup-while-owner-active",
        "post",
        lambda w: f"{AGENTS}backed-up/assign-owner/",
        expect(owner=403, other_owner=200, admin=200, auditor=403),
        body=lambda w: {"owner": "olivia.owner"},
        verb="agent.assign_owner",
        scope=WRITE,
    ),
    # … but takes over once the owner has left
    Case(
        "agents-assign-owner-backup-of-departed-owner",
        "post",
        lambda w: f"{AGENTS}orphaned/assign-owner/",
        expect(owner=200, other_owner=404, admin=200, auditor=403),
        body=lambda w: {"owner": "olivia.owner"},
        verb="agent.assign_owner",
        scope=WRITE,
    ),
    # auditors never own agents (separation of duties)
    Case(
        "agents-assign-owner-to-auditor",
        "post",
        lambda w: f"{AGENTS}own/assign-owner/",
        expect(owner=400, other_owner=404, admin=400, auditor=403),
        body=lambda w: {"owner": "aude.auditor"},
        scope=WRITE,
    ),
    # teams
    Case("teams-list", "get", lambda w: TEAMS, READ_ALL),
    Case("teams-retrieve", "get", lambda w: f"{TEAMS}payments/", READ_ALL),
    Case(
        "teams-create",
        "post",
        lambda w: TEAMS,
        ADMIN_ONLY_CREATE,
        body=lambda w: {"name": "Research"},
        verb="team.create",
        scope=WRITE,
    ),
    Case(
        "teams-update",
        "patch",
        lambda w: f"{TEAMS}payments/",
        ADMIN_ONLY,
        body=lambda w: {"description": "Accounts payable."},
        verb="team.update",
        scope=WRITE,
    ),
    # workload identities
    Case("identities-list", "get", lambda w: IDENTITIES, READ_ALL),
    Case("identities-retrieve", "get", lambda w: f"{IDENTITIES}{w['identity'].pk}/", READ_OWN),
    Case(
        "identities-create",
        "post",
        lambda w: IDENTITIES,
        CREATE_FOR_OWN_AGENT,
        body=lambda w: {"agent": "own", "type": "spiffe", "identifier": "spiffe://example.org/invoice"},
        verb="workload_identity.add",
        scope=WRITE,
    ),
    Case(
        "identities-delete",
        "delete",
        lambda w: f"{IDENTITIES}{w['identity'].pk}/",
        DELETE_OWN,
        verb="workload_identity.remove",
        scope=WRITE,
    ),
    # credentials
    Case("credentials-list", "get", lambda w: CREDENTIALS, READ_ALL),
    Case("credentials-retrieve", "get", lambda w: f"{CREDENTIALS}{w['credential'].pk}/", READ_OWN),
    Case(
        "credentials-create",
        "post",
        lambda w: CREDENTIALS,
        CREATE_FOR_OWN_AGENT,
        body=lambda w: {
            "agent": "own",
            "kind": "api_key",
            "provider": "openai",
            "external_id": "key-123",
            "created_at": "2026-11-01T00:00:00Z",
            "fingerprint": "sha256:" + "ab" * 32,
        },
        verb="credential.record",
        scope=WRITE,
    ),
    Case(
        "credentials-rotate",
        "post",
        lambda w: f"{CREDENTIALS}{w['credential'].pk}/rotate/",
        CHANGE_OWN,
        body=lambda w: {"rotated_at": "2026-11-14T12:00:00+01:00"},
        verb="credential.rotate",
        scope=WRITE,
    ),
    Case(
        "credentials-revoke",
        "post",
        lambda w: f"{CREDENTIALS}{w['credential'].pk}/revoke/",
        CHANGE_OWN,
        body=lambda w: {"reason": "Leaked in a log."},
        verb="credential.revoke",
        scope=WRITE,
    ),
    # tools
    Case("tools-list", "get", lambda w: TOOLS, READ_ALL),
    Case("tools-retrieve", "get", lambda w: f"{TOOLS}{w['tool'].pk}/", READ_OWN),
    Case(
        "tools-create",
        "post",
        lambda w: TOOLS,
        CREATE_FOR_OWN_AGENT,
        body=lambda w: {
            "agent": "own",
            "name": "github",
            "transport": "http",
            "url": "https://api.githubcopilot.com/mcp/",
            "access_levels": ["read", "write"],
            "destination": "external",
        },
        verb="tool.add",
        scope=WRITE,
    ),
    Case(
        "tools-update",
        "patch",
        lambda w: f"{TOOLS}{w['tool'].pk}/",
        CHANGE_OWN,
        body=lambda w: {"access_levels": ["read", "execute"]},
        verb="tool.update",
        scope=WRITE,
    ),
    Case("tools-delete", "delete", lambda w: f"{TOOLS}{w['tool'].pk}/", DELETE_OWN, verb="tool.remove", scope=WRITE),
    # imports
    Case("imports-list", "get", lambda w: IMPORTS, READ_ALL),
    Case(
        "imports-create",
        "post",
        lambda w: IMPORTS,
        ADMIN_ONLY_CREATE,
        body=lambda w: {"source": "aws-credential-report", "file": aws_upload(), "observed_at": "2026-11-15T06:00:00Z"},
        verb="import.run",
        scope=IntegrationToken.Scope.IMPORTS_WRITE,
        format="multipart",
    ),
    Case(
        "imports-create-mcp-config",
        "post",
        lambda w: IMPORTS,
        CREATE_FOR_OWN_AGENT,
        body=lambda w: {"source": "mcp-config", "agent": "own", "file": mcp_upload()},
        verb="import.run",
        scope=IntegrationToken.Scope.IMPORTS_WRITE,
        format="multipart",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    """Every endpoint and action, as every kind of caller: status, audit event on success, nothing on refusal."""
    run_case(case, role, world)


# --- writes: strict input -----------------------------------------------------------------

WRITES = [
    ("post", AGENTS, lambda w: {"name": "New", "kind": "assistant"}),
    ("patch", f"{AGENTS}own/", lambda w: {"purpose": "x"}),
    ("post", f"{AGENTS}own/suspend/", lambda w: {"reason": "x"}),
    ("post", f"{AGENTS}own/assign-owner/", lambda w: {"owner": "oscar.owner"}),
    ("post", TEAMS, lambda w: {"name": "Research"}),
    ("patch", f"{TEAMS}payments/", lambda w: {"description": "x"}),
    ("post", IDENTITIES, lambda w: {"agent": "own", "type": "spiffe", "identifier": "spiffe://example.org/x"}),
    (
        "post",
        CREDENTIALS,
        lambda w: {
            "agent": "own",
            "kind": "api_key",
            "provider": "openai",
            "external_id": "k",
            "created_at": "2026-11-01T00:00:00Z",
        },
    ),
    ("post", "credential-rotate", lambda w: {}),
    ("post", "credential-revoke", lambda w: {"reason": "x"}),
    ("post", TOOLS, lambda w: {"agent": "own", "name": "fetch", "transport": "stdio", "command": "uvx"}),
    ("patch", "tool", lambda w: {"destination": "external"}),
]


def resolve_url(url: str, w: dict) -> str:
    return {
        "credential-rotate": f"{CREDENTIALS}{w['credential'].pk}/rotate/",
        "credential-revoke": f"{CREDENTIALS}{w['credential'].pk}/revoke/",
        "tool": f"{TOOLS}{w['tool'].pk}/",
    }.get(url, url)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "url", "body"), WRITES, ids=[f"{m}-{u}" for m, u, _ in WRITES])
def test_unknown_field_is_refused_and_named(method, url, body, world):
    client = session_client(world["people"]["admin"])
    before = AuditEvent.objects.count()
    response = getattr(client, method)(resolve_url(url, world), {**body(world), "colour": "blue"}, format="json")
    assert response.status_code == 400
    assert "Unknown field" in str(response.data["colour"][0])
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_unknown_field_is_refused_on_import(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        IMPORTS, {"source": "aws-credential-report", "file": aws_upload(), "dry_run": "1"}, format="multipart"
    )
    assert response.status_code == 400
    assert "dry_run" in response.data
    assert not ImportRun.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        ("post", AGENTS, {"name": "New", "kind": "assistant", "state": "active"}, "state"),
        ("post", AGENTS, {"name": "New", "kind": "assistant", "id": 7}, "id"),
        ("patch", f"{AGENTS}own/", {"state": "decommissioned"}, "state"),
        ("patch", f"{AGENTS}own/", {"owner": "oscar.owner"}, "owner"),
        ("patch", f"{AGENTS}own/", {"slug": "renamed"}, "slug"),
        (
            "post",
            CREDENTIALS,
            {
                "agent": "own",
                "kind": "api_key",
                "provider": "openai",
                "external_id": "k",
                "created_at": "2026-11-01T00:00:00Z",
                "status": "inactive",
            },
            "status",
        ),
        ("patch", "tool", {"agent": "others"}, "agent"),
        ("post", "credential-revoke", {"reason": "x", "status": "revoked"}, "status"),
    ],
)
def test_read_only_field_sent_on_write_is_refused(method, url, body, field, world):
    client = session_client(world["people"]["admin"])
    before = AuditEvent.objects.count()
    response = getattr(client, method)(resolve_url(url, world), body, format="json")
    assert response.status_code == 400
    assert str(response.data[field][0]) == "This field is read-only."
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            CREDENTIALS,
            {
                "agent": "own",
                "kind": "api_key",
                "provider": "openai",
                "external_id": "k",
                "created_at": "2026-11-30T10:00:00",
            },
            "created_at",
        ),
        (
            CREDENTIALS,
            {
                "agent": "own",
                "kind": "api_key",
                "provider": "openai",
                "external_id": "k",
                "created_at": "2026-11-01T00:00:00Z",
                "expires_at": "2027-01-01",
            },
            "expires_at",
        ),
        ("credential-rotate", {"rotated_at": "2026-11-14T10:00:00"}, "rotated_at"),
    ],
)
def test_datetime_without_utc_offset_is_refused(url, body, field, world):
    client = session_client(world["people"]["admin"])
    before = (Credential.objects.count(), AuditEvent.objects.count())
    response = client.post(resolve_url(url, world), body, format="json")
    assert response.status_code == 400
    assert "Include a UTC offset" in str(response.data[field][0])
    assert (Credential.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.django_db
def test_import_observed_at_without_offset_is_refused(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        IMPORTS,
        {"source": "aws-credential-report", "file": aws_upload(), "observed_at": "2026-11-15T06:00:00"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "Include a UTC offset" in str(response.data["observed_at"][0])
    assert not ImportRun.objects.exists()


@pytest.mark.django_db
def test_datetime_with_offset_is_stored_in_utc_and_rendered_in_utc(world):
    client = session_client(world["people"]["owner"])
    client.cookies["tz"] = "Europe/Paris"
    response = client.post(
        CREDENTIALS,
        {
            "agent": "own",
            "kind": "api_key",
            "provider": "openai",
            "external_id": "k",
            "created_at": "2026-11-01T10:00:00+02:00",
        },
        format="json",
    )
    assert response.status_code == 201, response.data
    assert Credential.objects.get(external_id="k").created_at == datetime(2026, 11, 1, 8, tzinfo=UTC)
    assert response.data["created_at"] == "2026-11-01T08:00:00Z"


@pytest.mark.django_db
def test_empty_patch_is_refused(world):
    response = session_client(world["people"]["owner"]).patch(f"{AGENTS}own/", {}, format="json")
    assert response.status_code == 400


@pytest.mark.django_db
def test_put_is_not_offered(world):
    response = session_client(world["people"]["admin"]).put(f"{AGENTS}own/", {"name": "x"}, format="json")
    assert response.status_code == 405


@pytest.mark.django_db
def test_bad_choice_and_unknown_reference_are_field_errors(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        AGENTS, {"name": "New", "kind": "robot", "team": "nope", "data_classes": ["gold"]}, format="json"
    )
    assert response.status_code == 400
    assert set(response.data) == {"kind", "team", "data_classes"}
    response = client.post(
        CREDENTIALS,
        {
            "agent": "ghost",
            "kind": "api_key",
            "provider": "p",
            "external_id": "k",
            "created_at": "2026-11-01T00:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 400 and "agent" in response.data


# --- service errors reach the client as 400 / 403 / 409 ------------------------------------


@pytest.mark.django_db
def test_state_conflict_is_409_and_writes_nothing(world):
    client = session_client(world["people"]["admin"])
    before = AuditEvent.objects.count()
    response = client.post(f"{AGENTS}own/activate/", {}, format="json")
    assert response.status_code == 409
    assert response.data["code"] == "conflict"
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_service_validation_error_is_field_keyed_400(world):
    response = session_client(world["people"]["owner"]).post(f"{AGENTS}own/suspend/", {"reason": "  "}, format="json")
    assert response.status_code == 400
    assert "reason" in response.data
    assert Agent.objects.get(slug="own").state == Agent.State.ACTIVE


@pytest.mark.django_db
def test_activate_needs_an_owner(world):
    Agent.objects.filter(slug="own-proposed").update(owner=None)
    response = session_client(world["people"]["admin"]).post(f"{AGENTS}own-proposed/activate/", {}, format="json")
    assert response.status_code == 400
    assert "owner" in response.data


@pytest.mark.django_db
def test_assign_owner_sets_and_clears_backup_owner(world, auditor):
    client = session_client(world["people"]["admin"])
    response = client.post(
        f"{AGENTS}own/assign-owner/", {"owner": "olivia.owner", "backup_owner": "oscar.owner"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert (response.data["owner"], response.data["backup_owner"]) == ("olivia.owner", "oscar.owner")
    response = client.post(f"{AGENTS}own/assign-owner/", {"owner": "olivia.owner"}, format="json")
    assert response.data["backup_owner"] == "oscar.owner"
    response = client.post(f"{AGENTS}own/assign-owner/", {"owner": "olivia.owner", "backup_owner": None}, format="json")
    assert response.data["backup_owner"] is None


@pytest.mark.django_db
def test_register_defaults_owner_to_caller_and_shows_allowed_actions(world):
    response = session_client(world["people"]["owner"]).post(
        AGENTS, {"name": "Ticket triage", "kind": "assistant"}, format="json"
    )
    assert response.status_code == 201
    assert response.data["owner"] == "olivia.owner"
    assert response.data["state"] == "proposed"
    assert response.data["allowed_actions"] == ["decommission"]
    event = AuditEvent.objects.get(verb="agent.register")
    assert event.object_id == str(response.data["id"]) and event.actor_label == "olivia.owner"


@pytest.mark.django_db
def test_token_write_is_audited_as_the_integration(world):
    token, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.INVENTORY_WRITE])
    response = token_client(clear).post(f"{AGENTS}own/suspend/", {"reason": "Runtime alarm."}, format="json")
    assert response.status_code == 200
    event = AuditEvent.objects.get(verb="agent.suspend")
    assert event.actor_type == "integration" and event.actor_id == str(token.pk)
    assert "olivia.owner" in event.actor_label


# --- reads: visibility, filters, order, query counts ---------------------------------------


@pytest.mark.django_db
def test_owner_lists_only_their_agents_and_their_objects(world):
    client = session_client(world["people"]["owner"])
    slugs = [a["slug"] for a in client.get(AGENTS).data["results"]]
    assert slugs == sorted(slugs, key=lambda s: Agent.objects.get(slug=s).name)
    assert "others" not in slugs and {"own", "own-proposed", "own-suspended"} <= set(slugs)
    CredentialFactory(agent=world["others"])
    assert [c["agent"] for c in client.get(CREDENTIALS).data["results"]] == ["own"]
    assert client.get(f"{AGENTS}others/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "query"),
    [
        (AGENTS, "colour=blue"),
        (AGENTS, "state=dreaming"),
        (AGENTS, "owner=nobody"),
        (AGENTS, "ordering=height"),
        (AGENTS, "risk_tier=extreme"),
        (AGENTS, "team=no-such-team"),
        (TEAMS, "colour=blue"),
        (IDENTITIES, "colour=blue"),
        (IDENTITIES, "type=passport"),
        (CREDENTIALS, "colour=blue"),
        (CREDENTIALS, "status=lost"),
        (CREDENTIALS, "kind=password"),
        (CREDENTIALS, "ordering=colour"),
        (TOOLS, "colour=blue"),
        (TOOLS, "transport=pigeon"),
        (TOOLS, "destination=moon"),
        (IMPORTS, "colour=blue"),
        (IMPORTS, "source=excel"),
        (IDENTITIES, "agent=no-such-agent"),
        (CREDENTIALS, "agent=no-such-agent"),
        (TOOLS, "agent=no-such-agent"),
        (IMPORTS, "agent=no-such-agent"),
    ],
)
def test_unknown_filter_or_value_is_400(url, query, world):
    response = session_client(world["people"]["admin"]).get(f"{url}?{query}")
    assert response.status_code == 400, response.data
    name = query.split("=")[0]
    assert name in response.data or "filters" in response.data


@pytest.mark.django_db
def test_unknown_filter_message_names_it(world):
    response = session_client(world["people"]["admin"]).get(f"{AGENTS}?colour=blue")
    assert "colour" in str(response.data["filters"][0])


@pytest.mark.django_db
def test_filters_and_ordering_apply(world):
    client = session_client(world["people"]["admin"])
    data = client.get(f"{AGENTS}?state=proposed&state=suspended&ordering=-name").data["results"]
    assert {a["slug"] for a in data} == {"own-proposed", "own-suspended"}
    assert [a["name"] for a in data] == sorted((a["name"] for a in data), reverse=True)
    assert {a["slug"] for a in client.get(f"{AGENTS}?owner=oscar.owner").data["results"]} == {"others", "backed-up"}
    assert [c["agent"] for c in client.get(f"{CREDENTIALS}?agent=own").data["results"]] == ["own"]


@pytest.mark.django_db
def test_list_order_is_total(world):
    same = [AgentFactory(name="Same name", owner=world["people"]["owner"]) for _ in range(3)]
    client = session_client(world["people"]["admin"])
    ascending = sorted(a.pk for a in same)
    for query, expected in (("", ascending), ("?ordering=name", ascending), ("?ordering=-state", ascending[::-1])):
        ids = [a["id"] for a in client.get(f"{AGENTS}{query}").data["results"] if a["name"] == "Same name"]
        assert ids == expected, query


def make_agents(owner, n):
    AgentFactory.create_batch(n, owner=owner)


def make_identities(owner, n):
    WorkloadIdentityFactory.create_batch(n, agent=AgentFactory(owner=owner))


def make_credentials(owner, n):
    CredentialFactory.create_batch(n, agent=AgentFactory(owner=owner))


def make_tools(owner, n):
    ToolFactory.create_batch(n, agent=AgentFactory(owner=owner))


def make_teams(owner, n):
    for team in TeamFactory.create_batch(n):
        AgentFactory(owner=owner, team=team)


def make_imports(owner, n):
    agent = AgentFactory(owner=owner)
    for i in range(n):
        ImportRun.objects.create(
            source="mcp-config",
            filename=f"{i}.json",
            sha256=f"{i:064x}",
            created_at=datetime(2026, 11, 15, tzinfo=UTC),
            actor_label="test",
            agent=agent,
            summary={"tools": 1},
        )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "make", "role"),
    [
        (AGENTS, make_agents, "owner"),
        (AGENTS, make_agents, "admin"),
        (TEAMS, make_teams, "owner"),
        (IDENTITIES, make_identities, "owner"),
        (CREDENTIALS, make_credentials, "owner"),
        (CREDENTIALS, make_credentials, "admin"),
        (TOOLS, make_tools, "owner"),
        (IMPORTS, make_imports, "admin"),
    ],
)
def test_list_query_count_does_not_grow_with_rows(url, make, role, owner, admin_user, frozen_now):
    client = session_client({"owner": owner, "admin": admin_user}[role])
    make(owner, 2)
    few = count_queries(client, url)
    make(owner, 18)
    assert len(client.get(url).data["results"]) >= 20
    assert count_queries(client, url) == few
    assert few <= 8


@pytest.mark.django_db
def test_token_list_query_count_does_not_grow(owner, frozen_now):
    _, clear = issue_token(owner, [IntegrationToken.Scope.INVENTORY_READ])
    client = token_client(clear)
    client.get(CREDENTIALS)  # the first use records the token's last use
    make_credentials(owner, 2)
    few = count_queries(client, CREDENTIALS)
    make_credentials(owner, 18)
    assert count_queries(client, CREDENTIALS) == few


# --- imports -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_aws_report_then_list_it(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        IMPORTS,
        {"source": "aws-credential-report", "file": aws_upload(), "observed_at": "2026-11-15T06:00:00Z"},
        format="multipart",
    )
    assert response.status_code == 201, response.data
    assert response.data["source"] == "aws-credential-report"
    assert response.data["filename"] == "credential-report.csv"
    assert response.data["observed_at"] == "2026-11-15T06:00:00Z"
    assert Agent.objects.filter(external_ref="arn:aws:iam::123456789012:user/svc-api-test").exists()
    listed = client.get(IMPORTS).data["results"]
    assert [r["id"] for r in listed] == [response.data["id"]]


@pytest.mark.django_db
def test_malformed_import_is_400_naming_the_line_and_writes_nothing(world):
    client = session_client(world["people"]["admin"])
    bad = AWS_REPORT.replace(b"2026-11-01T10:00:00+00:00", b"yesterday")
    counts = (Agent.objects.count(), Credential.objects.count(), AuditEvent.objects.count())
    response = client.post(
        IMPORTS,
        {"source": "aws-credential-report", "file": aws_upload(bad), "observed_at": "2026-11-15T06:00:00Z"},
        format="multipart",
    )
    assert response.status_code == 400
    assert "line 2" in str(response.data["file"][0])
    assert (Agent.objects.count(), Credential.objects.count(), AuditEvent.objects.count()) == counts
    assert not ImportRun.objects.exists()


@pytest.mark.django_db
def test_mcp_import_for_an_agent(world):
    client = session_client(world["people"]["admin"])
    response = client.post(IMPORTS, {"source": "mcp-config", "agent": "own", "file": mcp_upload()}, format="multipart")
    assert response.status_code == 201, response.data
    assert response.data["agent"] == "own"
    assert Tool.objects.filter(agent=world["own"], name="fetch").exists()


@pytest.mark.django_db
def test_owner_imports_into_own_agent_and_sees_only_those_runs(world):
    owner_client = session_client(world["people"]["owner"])
    response = owner_client.post(
        IMPORTS, {"source": "mcp-config", "agent": "own", "file": mcp_upload()}, format="multipart"
    )
    assert response.status_code == 201, response.data
    refused = owner_client.post(
        IMPORTS, {"source": "mcp-config", "agent": "others", "file": mcp_upload()}, format="multipart"
    )
    assert refused.status_code == 403
    admin_import = session_client(world["people"]["admin"]).post(
        IMPORTS,
        {"source": "aws-credential-report", "file": aws_upload(), "observed_at": "2026-11-15T06:00:00Z"},
        format="multipart",
    )
    assert admin_import.status_code == 201, admin_import.data
    assert session_client(world["people"]["auditor"]).get(IMPORTS).data["count"] == 2
    listed = owner_client.get(IMPORTS).data["results"]
    assert [run["agent"] for run in listed] == ["own"]
    assert session_client(world["people"]["other_owner"]).get(IMPORTS).data["results"] == []


@pytest.mark.django_db
def test_identity_taken_by_another_agent_is_400(world):
    WorkloadIdentityFactory(agent=world["others"], identifier="spiffe://example.org/shared")
    response = session_client(world["people"]["owner"]).post(
        IDENTITIES, {"agent": "own", "type": "spiffe", "identifier": "spiffe://example.org/shared"}, format="json"
    )
    assert response.status_code == 400 and "identifier" in response.data
    assert WorkloadIdentity.objects.filter(identifier="spiffe://example.org/shared").count() == 1


@pytest.mark.django_db
def test_write_carries_the_request_id_into_its_audit_event(world):
    client = session_client(world["people"]["owner"])
    response = client.post(
        f"{AGENTS}own/suspend/", {"reason": "Runtime alarm."}, format="json", HTTP_X_REQUEST_ID="req-4711"
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-4711"
    assert AuditEvent.objects.get(verb="agent.suspend").request_id == "req-4711"


# --- risk tier ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body", [{"risk_tier": "critical", "reason": "Moves money."}, {"risk_tier": "extreme"}, {}], ids=str
)
def test_set_risk_tier_is_retired_in_favour_of_assessments(body, world):
    """The tier is the latest risk assessment's: the action changes nothing and names the endpoint to use."""
    before = AuditEvent.objects.count()
    response = session_client(world["people"]["admin"]).post(f"{AGENTS}own/set-risk-tier/", body, format="json")
    assert response.status_code == 409 and response.data["code"] == "conflict"
    assert "POST /api/v1/assessments/" in response.data["detail"]
    assert Agent.objects.get(slug="own").risk_tier == Agent.RiskTier.UNASSESSED
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_registration_with_a_risk_tier(world):
    owner_client = session_client(world["people"]["owner"])
    before = (Agent.objects.count(), AuditEvent.objects.count())
    refused = owner_client.post(
        AGENTS, {"name": "Payments bot", "kind": "assistant", "risk_tier": "low"}, format="json"
    )
    assert refused.status_code == 403
    assert "risk tier" in str(refused.data["detail"])
    assert (Agent.objects.count(), AuditEvent.objects.count()) == before
    unassessed = owner_client.post(
        AGENTS, {"name": "Payments bot", "kind": "assistant", "risk_tier": "unassessed"}, format="json"
    )
    assert unassessed.status_code == 201 and unassessed.data["risk_tier"] == "unassessed"
    response = session_client(world["people"]["admin"]).post(
        AGENTS,
        {"name": "Payments bot", "kind": "assistant", "risk_tier": "high", "owner": "olivia.owner"},
        format="json",
    )
    assert response.status_code == 201, response.data
    assert (response.data["risk_tier"], response.data["owner"]) == ("high", "olivia.owner")


# --- ownership ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (f"{AGENTS}own/assign-owner/", {"owner": "aude.auditor"}, "owner"),
        (f"{AGENTS}own/assign-owner/", {"owner": "olivia.owner", "backup_owner": "aude.auditor"}, "backup_owner"),
        (f"{AGENTS}own/assign-owner/", {"owner": "dora.departed"}, "owner"),
        (AGENTS, {"name": "Audit bot", "kind": "assistant", "owner": "aude.auditor"}, "owner"),
        (
            AGENTS,
            {"name": "Audit bot", "kind": "assistant", "owner": "olivia.owner", "backup_owner": "aude.auditor"},
            "backup_owner",
        ),
    ],
)
def test_auditors_and_inactive_people_never_own_agents(url, body, field, world):
    before = (Agent.objects.count(), AuditEvent.objects.count())
    response = session_client(world["people"]["admin"]).post(url, body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data
    assert (Agent.objects.count(), AuditEvent.objects.count()) == before
    own = Agent.objects.get(slug="own")
    assert (own.owner.username, own.backup_owner) == ("olivia.owner", None)


@pytest.mark.django_db
def test_backup_owner_takes_over_only_once_the_owner_has_left(world):
    client = session_client(world["people"]["owner"])
    url = f"{AGENTS}backed-up/assign-owner/"
    refused = client.post(url, {"owner": "olivia.owner"}, format="json")
    assert refused.status_code == 403
    assert "backup owner" in str(refused.data["detail"])
    assert Agent.objects.get(slug="backed-up").owner.username == "oscar.owner"
    oscar = world["people"]["other_owner"]
    oscar.is_active = False
    oscar.save(update_fields=["is_active"])
    response = client.post(url, {"owner": "olivia.owner", "reason": "Oscar left."}, format="json")
    assert response.status_code == 200, response.data
    assert (response.data["owner"], response.data["backup_owner"]) == ("olivia.owner", None)
    event = AuditEvent.objects.get(verb="agent.assign_owner")
    assert event.actor_label == "olivia.owner" and event.after["reason"] == "Oscar left."


@pytest.mark.django_db
def test_owner_hands_their_agent_to_an_iam_admin(world):
    response = session_client(world["people"]["owner"]).post(
        f"{AGENTS}own/assign-owner/", {"owner": "iris.admin", "backup_owner": "olivia.owner"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert (response.data["owner"], response.data["backup_owner"]) == ("iris.admin", "olivia.owner")


# --- filters: surrounding whitespace in a reference --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "query", "expected"),
    [
        (AGENTS, "owner=oscar.owner%20", {"others", "backed-up"}),
        (AGENTS, "owner=%20oscar.owner%09", {"others", "backed-up"}),
        (AGENTS, "team=payments%20", {"own", "others"}),
        (CREDENTIALS, "agent=%20own%20", {"own"}),
        (TOOLS, "agent=own%20", {"own"}),
        (IDENTITIES, "agent=own%20", {"own"}),
    ],
)
def test_reference_filters_ignore_surrounding_whitespace(url, query, expected, world):
    response = session_client(world["people"]["admin"]).get(f"{url}?{query}")
    assert response.status_code == 200, response.data
    key = "slug" if url == AGENTS else "agent"
    assert {row[key] for row in response.data["results"]} == expected


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["owner=oscar%20owner", "owner=%20", "team=pay%20ments"])
def test_reference_filters_keep_inner_whitespace_and_blank_means_unfiltered(query, world):
    response = session_client(world["people"]["admin"]).get(f"{AGENTS}?{query}")
    if query == "owner=%20":
        assert response.status_code == 200 and response.data["count"] == Agent.objects.count()
    else:
        assert response.status_code == 400 and query.split("=")[0] in response.data


@pytest.mark.django_db
def test_parameter_names_are_not_stripped(world):
    response = session_client(world["people"]["admin"]).get(f"{AGENTS}?owner%20=oscar.owner")
    assert response.status_code == 400
    assert "owner " in str(response.data["filters"][0])


# --- auditors' tokens -----------------------------------------------------------------------


@pytest.mark.django_db
def test_auditor_token_reads_but_can_never_carry_a_write_scope(world):
    auditor = world["people"]["auditor"]
    with pytest.raises(ValidationError) as refused:
        issue_token(auditor, [IntegrationToken.Scope.INVENTORY_WRITE])
    assert "scopes" in refused.value.message_dict
    _, clear = issue_token(auditor, [IntegrationToken.Scope.INVENTORY_READ])
    client = token_client(clear)
    assert client.get(f"{AGENTS}own/").status_code == 200
    before = AuditEvent.objects.count()
    response = client.post(f"{AGENTS}own/suspend/", {"reason": "x"}, format="json")
    assert response.status_code == 403
    assert AuditEvent.objects.count() == before


# --- deeply nested JSON ---------------------------------------------------------------------


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("depth", [40, 5000, 100_000])
def test_deeply_nested_json_is_a_json_400_and_writes_nothing(depth, debug, world, settings):
    settings.DEBUG = debug
    before = (AuditEvent.objects.count(), Agent.objects.count())
    response = session_client(world["people"]["admin"]).post(AGENTS, nested(depth), content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["detail"].startswith("JSON nests too deeply")
    assert (AuditEvent.objects.count(), Agent.objects.count()) == before


@pytest.mark.django_db
def test_nesting_within_the_bound_reaches_the_serializer(world):
    response = session_client(world["people"]["admin"]).post(AGENTS, nested(30), content_type="application/json")
    assert response.status_code == 400
    assert "Unknown field" in str(response.data["a"][0])


@pytest.mark.django_db
def test_malformed_json_is_still_a_parse_error(world):
    response = session_client(world["people"]["admin"]).post(AGENTS, b'{"name": ', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("JSON parse error")


# --- with or without the trailing slash -----------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_writes_work_without_the_trailing_slash(world, settings, debug):
    settings.DEBUG = debug  # under DEBUG, APPEND_SLASH would raise instead of redirecting a POST
    client = session_client(world["people"]["admin"])
    created = client.post(AGENTS.rstrip("/"), {"name": "Ticket triage", "kind": "assistant"}, format="json")
    assert created.status_code == 201, created.content
    slug = created.data["slug"]
    assert Agent.objects.filter(slug=slug, name="Ticket triage").exists()

    changed = client.patch(f"{AGENTS}{slug}", {"purpose": "Sort tickets."}, format="json")
    assert changed.status_code == 200, changed.content
    assert Agent.objects.get(slug=slug).purpose == "Sort tickets."

    suspended = client.post(f"{AGENTS}own/suspend", {"reason": "Investigating."}, format="json")
    assert suspended.status_code == 200, suspended.content
    assert Agent.objects.get(slug="own").state == Agent.State.SUSPENDED

    tool = world["tool"]
    assert client.delete(f"{TOOLS}{tool.pk}").status_code == 204
    assert not Tool.objects.filter(pk=tool.pk).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("url", [AGENTS, f"{AGENTS}own/", TEAMS, f"{AGENTS}?kind=assistant"])
def test_reads_answer_with_or_without_the_trailing_slash(url, world):
    client = session_client(world["people"]["admin"])
    path, _, query = url.partition("?")
    without = f"{path.rstrip('/')}?{query}" if query else path.rstrip("/")
    with_slash, without_slash = client.get(url), client.get(without)
    assert with_slash.status_code == without_slash.status_code == 200
    assert with_slash.json() == without_slash.json()


@pytest.mark.django_db
def test_import_without_the_trailing_slash(world):
    response = session_client(world["people"]["admin"]).post(
        IMPORTS.rstrip("/"),
        {"source": "aws-credential-report", "file": aws_upload(), "observed_at": "2026-11-15T06:00:00Z"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert ImportRun.objects.count() == 1


# --- JSON types are not coerced -------------------------------------------------------------

NEW_CREDENTIAL = {
    "agent": "own",
    "kind": "api_key",
    "provider": "openai",
    "external_id": "k-typed",
    "created_at": "2026-11-01T00:00:00Z",
}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body", "field", "message"),
    [
        ("post", AGENTS, {"name": 123, "kind": "assistant"}, "name", "Must be a JSON string, not a number."),
        ("post", AGENTS, {"name": "New", "kind": True}, "kind", "Must be a JSON string, not true or false."),
        ("post", AGENTS, {"name": "New", "kind": "assistant", "owner": 7}, "owner", "Must be a JSON string"),
        ("post", AGENTS, {"name": ["New"], "kind": "assistant"}, "name", "Must be a JSON string, not an array."),
        ("patch", f"{AGENTS}own/", {"purpose": 42}, "purpose", "Must be a JSON string, not a number."),
        (
            "post",
            CREDENTIALS,
            {**NEW_CREDENTIAL, "rotation_period_days": "30"},
            "rotation_period_days",
            "Must be a JSON integer, not a string.",
        ),
        (
            "post",
            CREDENTIALS,
            {**NEW_CREDENTIAL, "rotation_period_days": 30.0},
            "rotation_period_days",
            "Must be a JSON integer, not a number.",
        ),
        (
            "post",
            CREDENTIALS,
            {**NEW_CREDENTIAL, "rotation_period_days": True},
            "rotation_period_days",
            "Must be a JSON integer, not true or false.",
        ),
        (
            "post",
            CREDENTIALS,
            {**NEW_CREDENTIAL, "ephemeral": "yes"},
            "ephemeral",
            "Must be true or false, not a string.",
        ),
        (
            "post",
            CREDENTIALS,
            {**NEW_CREDENTIAL, "usage_tracked": 1},
            "usage_tracked",
            "Must be true or false, not a number.",
        ),
        ("post", CREDENTIALS, {**NEW_CREDENTIAL, "external_id": 99}, "external_id", "Must be a JSON string"),
        ("post", "credential-revoke", {"reason": False}, "reason", "Must be a JSON string, not true or false."),
        ("post", TEAMS, {"name": {"en": "Research"}}, "name", "Must be a JSON string, not an object."),
    ],
)
def test_wrong_json_type_is_a_field_error_and_writes_nothing(method, url, body, field, message, world):
    client = session_client(world["people"]["admin"])
    before = (AuditEvent.objects.count(), Agent.objects.count(), Credential.objects.count())
    response = getattr(client, method)(resolve_url(url, world), body, format="json")
    assert response.status_code == 400
    assert str(response.data[field][0]).startswith(message)
    assert (AuditEvent.objects.count(), Agent.objects.count(), Credential.objects.count()) == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "url", "body", "field"),
    [
        (
            "post",
            TOOLS,
            {"agent": "own", "name": "fetch", "transport": "stdio", "command": "uvx", "args": ["-p", 8080]},
            "args",
        ),
        ("patch", f"{AGENTS}own/", {"data_classes": ["payment", 3]}, "data_classes"),
    ],
)
def test_wrong_json_type_in_a_list_names_the_item(method, url, body, field, world):
    response = getattr(session_client(world["people"]["admin"]), method)(url, body, format="json")
    assert response.status_code == 400
    assert list(response.data[field]) == [1]
    assert str(response.data[field][1][0]) == "Must be a JSON string, not a number."


@pytest.mark.django_db
def test_well_typed_json_is_accepted(world):
    client = session_client(world["people"]["admin"])
    body = {**NEW_CREDENTIAL, "rotation_period_days": 30, "ephemeral": True, "usage_tracked": False}
    response = client.post(CREDENTIALS, body, format="json")
    assert response.status_code == 201, response.data
    credential = Credential.objects.get(external_id="k-typed")
    assert (credential.rotation_period_days, credential.ephemeral, credential.usage_tracked) == (30, True, False)
    renamed = client.patch(f"{AGENTS}own/", {"name": "Invoice agent v2", "team": None}, format="json")
    assert renamed.status_code == 200, renamed.data


@pytest.mark.django_db
def test_form_input_keeps_its_string_parsing(world):
    response = session_client(world["people"]["admin"]).post(
        f"{AGENTS}own/suspend/", {"reason": "Form post."}, format="multipart"
    )
    assert response.status_code == 200, response.data
