"""Inventory pages: the permission matrix of every view, forms that call the services (and leave
their audit events), htmx partials, strict filters, constant query counts, imports."""

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from governance.models import AuditEvent, Finding
from inventory.models import Agent, Credential, ImportRun
from tests.factories import T0, AgentFactory, CredentialFactory, TeamFactory, ToolFactory, WorkloadIdentityFactory
from tests.support import audit_verbs, client_as

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

pytestmark = pytest.mark.django_db


@pytest.fixture
def others_agent(other_owner):
    return AgentFactory(owner=other_owner, name="Invoice agent", slug="invoice-agent")


# --- permission matrix of the pages ---------------------------------------------------------

PAGES = {
    # name: (url builder, expected status per role)
    "agent-list": (lambda a: reverse("agent-list"), {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 200}),
    "agent-detail": (
        lambda a: reverse("agent-detail", args=[a.slug]),
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 200},
    ),
    "agent-create": (
        lambda a: reverse("agent-create"),
        {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 403},
    ),
    "import-create": (
        lambda a: reverse("import-create"),
        {"owner": 403, "other_owner": 403, "admin": 200, "auditor": 403},
    ),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_anonymous_is_sent_to_login(page, agent):
    url = PAGES[page][0](agent)
    response = client_as(None).get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("role", ["owner", "other_owner", "admin", "auditor"])
@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_permission_matrix(page, role, people, agent):
    url, expected = PAGES[page]
    response = client_as(people[role]).get(url(agent))
    assert response.status_code == expected[role]
    if expected[role] == 403:
        assert b"You may not do this" in response.content
        assert b"Only IAM admins" in response.content


def test_agent_list_shows_owners_only_their_agents(owner, agent, others_agent, auditor):
    body = client_as(owner).get(reverse("agent-list")).content.decode()
    assert "Ticket triage" in body and "Invoice agent" not in body
    body = client_as(auditor).get(reverse("agent-list")).content.decode()
    assert "Ticket triage" in body and "Invoice agent" in body


def test_unknown_agent_is_a_404_that_says_so(owner):
    response = client_as(owner).get(reverse("agent-detail", args=["no-such-agent"]))
    assert response.status_code == 404
    assert b"No agent with this name that you may see." in response.content


# --- the agent list: filters, htmx, query counts ----------------------------------------------


def test_agent_list_filters_search_and_sort(admin_user):
    team = TeamFactory(slug="payments", name="Payments")
    AgentFactory(name="Alpha bot", slug="alpha", team=team, state=Agent.State.SUSPENDED)
    AgentFactory(name="Beta bot", slug="beta", environment=Agent.Environment.STAGING)
    AgentFactory(name="Gamma", slug="gamma", purpose="reads invoices", risk_tier=Agent.RiskTier.HIGH)
    client = client_as(admin_user)

    def names(**params):
        response = client.get(reverse("agent-list"), params)
        assert response.status_code == 200
        return [a.name for a in response.context["page"].object_list]

    assert names(state="suspended") == ["Alpha bot"]
    assert names(team="payments") == ["Alpha bot"]
    assert names(environment="staging") == ["Beta bot"]
    assert names(risk_tier="high") == ["Gamma"]
    assert names(q="invoices") == ["Gamma"]
    assert names(ordering="-name") == ["Gamma", "Beta bot", "Alpha bot"]
    assert names(state="", q="") == ["Alpha bot", "Beta bot", "Gamma"]  # an empty box means "any"
    assert names(page_size="2", page="2") == ["Gamma"]


def test_agent_list_filters_by_owner_username(admin_user, agent, others_agent):
    response = client_as(admin_user).get(reverse("agent-list"), {"owner": "oscar.owner"})
    assert [a.slug for a in response.context["page"].object_list] == ["invoice-agent"]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"colour": "blue"}, "Unknown filter &#x27;colour&#x27;"),
        ({"state": "retired"}, "state: Select a valid choice"),
        ({"owner": "nobody"}, "owner: Select a valid choice"),
        ({"ordering": "password"}, "ordering: Select a valid choice"),
        ({"page_size": "5000"}, "page_size: give a whole number from 1 to 100."),
    ],
)
def test_agent_list_rejects_unknown_or_invalid_filters(admin_user, agent, params, message):
    response = client_as(admin_user).get(reverse("agent-list"), params)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert "This filter was not applied" in body
    assert "Ticket triage" not in body  # never silently ignored: nothing is listed


def test_agent_list_htmx_gets_only_the_results_partial_and_the_url_to_push(admin_user, agent):
    response = client_as(admin_user).get(
        reverse("agent-list"), {"state": "active", "q": ""}, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results"')
    assert "<html" not in body and 'role="search"' not in body
    assert "Ticket triage" in body
    assert response["HX-Push-Url"] == "/agents/?state=active"
    assert "HX-Request" in response["Vary"]


def test_agent_list_htmx_history_restore_gets_the_whole_page(admin_user, agent):
    response = client_as(admin_user).get(
        reverse("agent-list"), headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    )
    assert b"<html" in response.content


def test_agent_list_htmx_with_an_unknown_filter_gets_the_error_in_the_partial(admin_user):
    response = client_as(admin_user).get(reverse("agent-list"), {"bogus": "1"}, headers={"HX-Request": "true"})
    assert response.status_code == 400
    assert b"<html" not in response.content
    assert b"Unknown filter" in response.content


@pytest.mark.parametrize("rows", [2, 30])
def test_agent_list_query_count_is_constant(admin_user, django_assert_max_num_queries, rows):
    team = TeamFactory()
    for _ in range(rows):
        AgentFactory(team=team, backup_owner=AgentFactory.create().owner)
    client = client_as(admin_user)
    with django_assert_max_num_queries(7):
        response = client.get(reverse("agent-list"), {"page_size": "100"})
    assert len(response.context["page"].object_list) == rows * 2


# --- agent detail ---------------------------------------------------------------------------


def test_agent_detail_shows_everything_about_the_agent(owner, agent, frozen_now):
    WorkloadIdentityFactory(agent=agent, identifier="spiffe://example.org/triage")
    CredentialFactory(agent=agent, external_id="AKIAEXAMPLE1", last_used_at=None)
    ToolFactory(agent=agent, name="github")
    Finding.objects.create(
        kind="unowned_agent",
        severity="high",
        subject=agent,
        subject_label=agent.name,
        agent_id=agent.pk,
        title="Agent has no owner",
        framework_refs=["NHI1"],
        first_seen_at=T0,
        last_seen_at=T0,
    )
    response = client_as(owner).get(reverse("agent-detail", args=[agent.slug]))
    body = response.content.decode()
    for text in (
        "olivia.owner",
        "spiffe://example.org/triage",
        "AKIAEXAMPLE1",
        "github",
        "Agent has no owner",
        "NHI1",
        "14 d",
        "never",
    ):
        assert text in body, text
    # the owner may suspend or decommission, not activate
    assert [a["name"] for a in response.context["actions"]] == ["suspend", "decommission"]


def test_agent_detail_offers_auditors_no_action(auditor, agent):
    response = client_as(auditor).get(reverse("agent-detail", args=[agent.slug]))
    assert response.context["actions"] == []
    assert response.context["owner_form"] is None
    assert b"Your role allows no lifecycle action" in response.content


# --- lifecycle actions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role, status",
    [("owner", 302), ("other_owner", 404), ("admin", 302), ("auditor", 403)],
)
def test_suspend_permission_matrix(people, agent, role, status):
    response = client_as(people[role]).post(
        reverse("agent-transition", args=[agent.slug, "suspend"]), {"reason": "Leaking tickets."}
    )
    assert response.status_code == status
    agent.refresh_from_db()
    if status == 302:
        assert agent.state == Agent.State.SUSPENDED
        assert audit_verbs(agent)[-1] == "agent.suspend"
        assert AuditEvent.objects.get(verb="agent.suspend").actor_label == people[role].username
    else:
        assert agent.state == Agent.State.ACTIVE
        assert "agent.suspend" not in audit_verbs(agent)
    if status == 403:
        assert b"You may change only agents you own or back up." in response.content


def test_anonymous_cannot_act(agent):
    response = client_as(None).post(reverse("agent-transition", args=[agent.slug, "suspend"]), {"reason": "x"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    agent.refresh_from_db()
    assert agent.state == Agent.State.ACTIVE


def test_owner_cannot_activate(owner):
    agent = AgentFactory(owner=owner, state=Agent.State.PROPOSED)
    response = client_as(owner).post(reverse("agent-transition", args=[agent.slug, "activate"]), {"reason": ""})
    assert response.status_code == 403
    assert b"Only IAM admins may activate an agent." in response.content


def test_admin_activates_with_audit(admin_user, owner):
    agent = AgentFactory(owner=owner, state=Agent.State.PROPOSED)
    response = client_as(admin_user).post(reverse("agent-transition", args=[agent.slug, "activate"]), {"reason": ""})
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.state == Agent.State.ACTIVE
    assert audit_verbs(agent) == ["agent.activate"]


def test_a_missing_reason_is_a_400_that_changes_nothing(owner, agent):
    response = client_as(owner).post(reverse("agent-transition", args=[agent.slug, "decommission"]), {"reason": " "})
    assert response.status_code == 400
    assert b"Give a reason; it is kept in the audit trail." in response.content
    agent.refresh_from_db()
    assert agent.state == Agent.State.ACTIVE and audit_verbs(agent) == []


def test_a_transition_from_the_wrong_state_is_a_409(admin_user, owner):
    agent = AgentFactory(owner=owner, state=Agent.State.PROPOSED)
    response = client_as(admin_user).post(reverse("agent-transition", args=[agent.slug, "suspend"]), {"reason": "x"})
    assert response.status_code == 409
    assert b"Cannot suspend an agent that is proposed." in response.content


def test_an_unknown_transition_is_a_404(admin_user, agent):
    response = client_as(admin_user).post(reverse("agent-transition", args=[agent.slug, "explode"]), {"reason": "x"})
    assert response.status_code == 404


def test_decommission_raises_findings_for_active_credentials(owner, agent):
    CredentialFactory(agent=agent)
    response = client_as(owner).post(
        reverse("agent-transition", args=[agent.slug, "decommission"]), {"reason": "Replaced."}
    )
    assert response.status_code == 302
    assert Finding.objects.filter(kind="credential_on_decommissioned_agent").count() == 1


# --- ownership ------------------------------------------------------------------------------


def test_admin_assigns_an_owner_to_an_imported_agent(admin_user, owner):
    agent = AgentFactory(owner=None, state=Agent.State.PROPOSED, source=Agent.Source.AWS_CREDENTIAL_REPORT)
    response = client_as(admin_user).post(
        reverse("agent-assign-owner", args=[agent.slug]), {"owner": owner.username, "reason": "Runs it."}
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.owner == owner
    assert audit_verbs(agent) == ["agent.assign_owner"]


@pytest.mark.parametrize("role, status", [("owner", 302), ("other_owner", 404), ("admin", 302), ("auditor", 403)])
def test_transfer_permission_matrix(people, agent, role, status):
    new_owner = people["other_owner"] if role != "other_owner" else people["admin"]
    response = client_as(people[role]).post(
        reverse("agent-assign-owner", args=[agent.slug]), {"owner": new_owner.username, "reason": "Moving team."}
    )
    assert response.status_code == status
    agent.refresh_from_db()
    if status == 302:
        assert agent.owner == new_owner and audit_verbs(agent) == ["agent.assign_owner"]
    else:
        assert agent.owner == people["owner"] and audit_verbs(agent) == []


def test_transfer_to_the_backup_as_owner_is_a_field_error(admin_user, agent, other_owner):
    response = client_as(admin_user).post(
        reverse("agent-assign-owner", args=[agent.slug]),
        {"owner": other_owner.username, "backup_owner": other_owner.username},
    )
    assert response.status_code == 400
    assert b"The backup owner must be someone other than the owner." in response.content


# --- register an agent ----------------------------------------------------------------------


def test_owner_registers_an_agent_they_own(owner):
    response = client_as(owner).post(
        reverse("agent-create"),
        {
            "name": "Code review bot",
            "kind": "assistant",
            "environment": "production",
            "autonomy_level": "human_in_the_loop",
            "data_classes": ["source_code"],
        },
    )
    agent = Agent.objects.get(name="Code review bot")
    assert response.status_code == 302 and response["Location"] == reverse("agent-detail", args=[agent.slug])
    assert agent.owner == owner and agent.state == Agent.State.PROPOSED
    assert agent.data_classes == ["source_code"]
    assert audit_verbs(agent) == ["agent.register"]


def test_admin_registers_an_agent_for_an_owner(admin_user, owner):
    team = TeamFactory(slug="platform")
    client_as(admin_user).post(
        reverse("agent-create"),
        {
            "name": "Deployer",
            "kind": "service_account",
            "environment": "production",
            "autonomy_level": "autonomous",
            "owner": owner.username,
            "team": "platform",
        },
    )
    agent = Agent.objects.get(name="Deployer")
    assert agent.owner == owner and agent.team == team


def test_register_with_bad_input_is_a_400_that_writes_nothing(owner):
    response = client_as(owner).post(reverse("agent-create"), {"name": "", "kind": "robot"})
    assert response.status_code == 400
    assert Agent.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_auditor_cannot_register(auditor):
    response = client_as(auditor).post(reverse("agent-create"), {"name": "x", "kind": "assistant"})
    assert response.status_code == 403
    assert Agent.objects.count() == 0


# --- imports and the stale-credential check ------------------------------------------------


def _upload(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content if content is not None else (FIXTURES / name).read_bytes())


def test_admin_imports_a_credential_report_and_sees_the_summary(admin_user):
    client = client_as(admin_user)
    response = client.post(
        reverse("import-create"),
        {"source": "aws-credential-report", "file": _upload("get-credential-report.json")},
    )
    run = ImportRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"{reverse('import-create')}?run={run.pk}"
    assert run.actor_label == admin_user.username
    assert Agent.objects.filter(source=Agent.Source.AWS_CREDENTIAL_REPORT).exists()
    page = client.get(response["Location"])
    assert page.context["shown"] == run
    assert b"get-credential-report.json" in page.content


def test_a_malformed_file_shows_the_importers_message_and_writes_nothing(admin_user):
    response = client_as(admin_user).post(
        reverse("import-create"),
        {
            "source": "aws-credential-report",
            "observed_at": "2026-11-15T06:00",
            "file": _upload("broken.csv", b'user,arn\n"unterminated\n'),
        },
    )
    assert response.status_code == 400
    errors = response.context["form"].errors["file"]
    assert errors and "line" in errors[0].lower()
    assert errors[0] in response.content.decode()
    assert ImportRun.objects.count() == 0 and Agent.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_an_mcp_config_is_imported_as_tools_of_the_chosen_agent(admin_user, agent):
    response = client_as(admin_user).post(
        reverse("import-create"),
        {"source": "mcp-config", "agent": agent.slug, "file": _upload("claude_desktop_config.json")},
    )
    assert response.status_code == 302
    assert agent.tools.exists()


@pytest.mark.parametrize("role", ["owner", "auditor"])
def test_only_admins_import(people, role):
    response = client_as(people[role]).post(
        reverse("import-create"), {"source": "aws-credential-report", "file": _upload("get-credential-report.json")}
    )
    assert response.status_code == 403
    assert ImportRun.objects.count() == 0


def test_admin_runs_the_stale_credential_check(admin_user, agent, frozen_now):
    cred = CredentialFactory(agent=agent, last_rotated_at=None, created_at=agent.created_at.replace(year=2025))
    response = client_as(admin_user).post(reverse("stale-check-run"))
    assert response.status_code == 302 and response["Location"] == reverse("finding-list")
    finding = Finding.objects.get(kind="unrotated_credential", subject_id=cred.pk)
    assert audit_verbs(finding) == ["finding.open"]
    assert AuditEvent.objects.get(verb="finding.open").actor_label == admin_user.username


@pytest.mark.parametrize("role, status", [("owner", 403), ("auditor", 403), ("anonymous", 302)])
def test_only_admins_run_the_stale_credential_check(people, role, status, agent):
    CredentialFactory(
        agent=agent,
        last_rotated_at=None,
        created_at=agent.created_at.replace(year=2020),
        status=Credential.Status.ACTIVE,
    )
    response = client_as(people.get(role)).post(reverse("stale-check-run"))
    assert response.status_code == status
    assert Finding.objects.count() == 0
