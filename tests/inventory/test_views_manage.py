"""Managing an agent from its page: description, credentials, workload identities and tools.

Every form calls its service and leaves the service's audit event; the permission matrix of
every action; field errors shown next to the field with nothing written; htmx gets only the
section; 403/409 shown in place; datetimes read in the viewer's timezone; constant queries.
"""

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from governance.models import AuditEvent, Finding
from inventory.forms import IMPORT_MAX_MB
from inventory.importers.base import MAX_BYTES
from inventory.models import Agent, Credential, Tool, WorkloadIdentity
from tests.factories import T0, AgentFactory, CredentialFactory, ToolFactory, WorkloadIdentityFactory
from tests.support import client_as

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def verbs() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("verb", flat=True))


# Each action: (url name, how to build its URL arguments and form data for an agent, its audit verb).


def _describe(agent):
    return [agent.slug], {
        "name": "Ticket triage v2",
        "kind": "assistant",
        "environment": "staging",
        "platform": agent.platform,
        "team": agent.team.slug,
        "autonomy_level": "human_on_the_loop",
        "data_classes": ["pii"],
        "purpose": "Triage.",
    }


FINGERPRINT = "sha256:" + "ab12" * 16
NEW_FINGERPRINT = "sha256:" + "f" * 64


def _record(agent):
    return [agent.slug], {
        "kind": "api_key",
        "provider": "openai",
        "external_id": "key-triage-1",
        "fingerprint": FINGERPRINT,
        "label": "OpenAI key",
        "created_at": "2026-11-01T10:00",
        "rotation_period_days": "30",
        "usage_tracked": "on",
    }


def _rotate(agent):
    c = CredentialFactory(agent=agent)
    return [agent.slug, c.pk], {"rotated_at": "2026-11-14T10:00"}


def _revoke(agent):
    c = CredentialFactory(agent=agent)
    return [agent.slug, c.pk], {"reason": "Leaked in a log."}


def _bind(agent):
    return [agent.slug], {
        "type": "oidc",
        "issuer": "https://token.actions.githubusercontent.com",
        "identifier": "repo:acme/triage:ref:refs/heads/main",
    }


def _unbind(agent):
    i = WorkloadIdentityFactory(agent=agent)
    return [agent.slug, i.pk], {}


def _tool_add(agent):
    return [agent.slug], {
        "name": "github",
        "transport": "stdio",
        "endpoint": "npx -y @modelcontextprotocol/server-github",
        "access_levels": ["read", "write"],
        "data_classes": ["source_code"],
        "destination": "external",
    }


def _tool_update(agent):
    t = ToolFactory(agent=agent)
    return [agent.slug, t.pk], {"access_levels": ["read", "execute"], "destination": "internal"}


def _tool_remove(agent):
    t = ToolFactory(agent=agent)
    return [agent.slug, t.pk], {}


ACTIONS = {
    "agent-update": (_describe, "agent.update"),
    "credential-record": (_record, "credential.record"),
    "credential-rotate": (_rotate, "credential.rotate"),
    "credential-revoke": (_revoke, "credential.revoke"),
    "workload-identity-add": (_bind, "workload_identity.add"),
    "workload-identity-remove": (_unbind, "workload_identity.remove"),
    "tool-add": (_tool_add, "tool.add"),
    "tool-update": (_tool_update, "tool.update"),
    "tool-remove": (_tool_remove, "tool.remove"),
}

EXPECTED = {"anonymous": 302, "owner": 302, "other_owner": 404, "auditor": 403, "admin": 302}


@pytest.mark.parametrize("role", sorted(EXPECTED))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_permission_matrix_and_audit(action, role, people, agent, frozen_now):
    build, verb = ACTIONS[action]
    args, data = build(agent)
    user = people[role]
    response = client_as(user).post(reverse(action, args=args), data)
    assert response.status_code == EXPECTED[role]
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login") + "?next=")
    if EXPECTED[role] == 302 and user is not None:
        assert response["Location"].startswith(reverse("agent-detail", args=[agent.slug]) + "#")
        event = AuditEvent.objects.get(verb=verb)
        assert event.actor_label == user.username
    else:
        assert verb not in verbs()
    if role == "auditor":
        assert b"You may change only agents you own or back up." in response.content


# --- each form does what it says ---------------------------------------------------------------


def test_describe_changes_only_what_differs_and_says_when_nothing_did(owner, agent, frozen_now):
    client = client_as(owner)
    args, data = _describe(agent)
    client.post(reverse("agent-update", args=args), data)
    agent.refresh_from_db()
    assert (agent.name, agent.kind, agent.environment, agent.data_classes) == (
        "Ticket triage v2",
        "assistant",
        "staging",
        ["pii"],
    )
    event = AuditEvent.objects.get(verb="agent.update")
    assert set(event.after) == {"name", "kind", "environment", "autonomy_level", "data_classes", "purpose"}
    assert event.before["name"] == "Ticket triage" and event.after["name"] == "Ticket triage v2"

    response = client.post(reverse("agent-update", args=args), data, follow=True)
    assert b"Nothing was changed" in response.content
    assert verbs().count("agent.update") == 1


def test_recorded_credential_keeps_what_was_entered(owner, agent, frozen_now):
    args, data = _record(agent)
    client_as(owner).post(reverse("credential-record", args=args), data)
    c = Credential.objects.get(external_id="key-triage-1")
    assert (c.kind, c.provider, c.fingerprint, c.label, c.rotation_period_days, c.usage_tracked, c.ephemeral) == (
        "api_key",
        "openai",
        FINGERPRINT,
        "OpenAI key",
        30,
        True,
        False,
    )
    assert c.observed_at == T0  # now


def test_a_local_datetime_is_read_in_the_viewers_timezone(owner, agent, frozen_now):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    args, data = _record(agent)
    client.post(
        reverse("credential-record", args=args),
        {**data, "created_at": "2026-11-01T10:00", "expires_at": "2027-07-01T12:00"},
    )
    c = Credential.objects.get(external_id="key-triage-1")
    assert c.created_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)  # CET, UTC+1
    assert c.expires_at == datetime(2027, 7, 1, 10, 0, tzinfo=UTC)  # CEST, UTC+2

    credential = CredentialFactory(agent=agent)
    client.post(reverse("credential-rotate", args=[agent.slug, credential.pk]), {"rotated_at": "2026-11-15T06:30"})
    credential.refresh_from_db()
    assert credential.last_rotated_at == datetime(2026, 11, 15, 5, 30, tzinfo=UTC)


def test_rotating_defaults_to_now_and_resolves_the_rotation_finding(owner, agent, frozen_now):
    credential = CredentialFactory(
        agent=agent, last_rotated_at=datetime(2025, 1, 1, tzinfo=UTC), created_at=datetime(2025, 1, 1, tzinfo=UTC)
    )
    Finding.objects.create(
        kind="unrotated_credential",
        severity="medium",
        subject=credential,
        subject_label=str(credential),
        agent_id=agent.pk,
        title="Credential past rotation",
        first_seen_at=T0,
        last_seen_at=T0,
    )
    client_as(owner).post(
        reverse("credential-rotate", args=[agent.slug, credential.pk]),
        {"rotated_at": "", "fingerprint": NEW_FINGERPRINT},
    )
    credential.refresh_from_db()
    assert credential.last_rotated_at == T0 and credential.fingerprint == NEW_FINGERPRINT
    assert Finding.objects.get().status == Finding.Status.RESOLVED


def test_a_tool_command_line_is_split_into_command_and_arguments(owner, agent, frozen_now):
    args, data = _tool_add(agent)
    client_as(owner).post(reverse("tool-add", args=args), data)
    tool = Tool.objects.get(agent=agent, name="github")
    assert (tool.command, tool.args, tool.url) == ("npx", ["-y", "@modelcontextprotocol/server-github"], "")
    assert (tool.access_levels, tool.data_classes, tool.destination) == (["read", "write"], ["source_code"], "external")


def test_a_remote_tool_keeps_its_url(owner, agent, frozen_now):
    client_as(owner).post(
        reverse("tool-add", args=[agent.slug]),
        {
            "name": "linear",
            "transport": "http",
            "endpoint": "https://mcp.linear.app/mcp",
            "access_levels": ["read"],
            "destination": "external",
        },
    )
    assert Tool.objects.get(name="linear").url == "https://mcp.linear.app/mcp"


# --- bad input: the field's message, nothing written -----------------------------------------


@pytest.mark.parametrize(
    "action, data, field, message",
    [
        (
            "credential-record",
            {"fingerprint": "AKIASECRETVALUE"},
            "fingerprint",
            "Give a fingerprint as sha256:&lt;hex&gt;, never the secret.",
        ),
        ("credential-record", {"created_at": "yesterday"}, "created_at", "Enter a valid date/time."),
        (
            "credential-record",
            {"expires_at": "2026-10-01T00:00"},
            "expires_at",
            "A credential expires after it is created.",
        ),
        (
            "workload-identity-add",
            {"type": "spiffe", "issuer": "", "identifier": "triage"},
            "identifier",
            "A SPIFFE ID starts with spiffe://.",
        ),
        (
            "workload-identity-add",
            {"type": "oidc", "issuer": "", "identifier": "sub"},
            "issuer",
            "An OIDC identity needs its issuer.",
        ),
        ("tool-add", {"endpoint": ""}, "endpoint", "Give the command line that starts it (stdio) or its URL."),
        ("tool-add", {"access_levels": ["admin"]}, "access_levels", "Select a valid choice."),
        ("tool-add", {"endpoint": "npx 'unclosed"}, "endpoint", "The command line cannot be read"),
        ("agent-update", {"name": ""}, "name", "This field is required."),
    ],
)
def test_a_field_error_is_shown_next_to_the_field_and_writes_nothing(
    owner, agent, frozen_now, action, data, field, message
):
    args, base = ACTIONS[action][0](agent)
    before = (Credential.objects.count(), WorkloadIdentity.objects.count(), Tool.objects.count())
    response = client_as(owner).post(reverse(action, args=args), {**base, **data})
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    # the message sits in the field's own block, and the disclosure holding the form is open
    after_input = body[body.index(f'name="{field}"') :]
    next_field = after_input.find('<div class="field ')
    assert message in (after_input[:next_field] if next_field != -1 else after_input)
    assert '<details class="manage" open>' in body
    assert AuditEvent.objects.count() == 0
    assert (Credential.objects.count(), WorkloadIdentity.objects.count(), Tool.objects.count()) == before
    agent.refresh_from_db()
    assert agent.name == "Ticket triage"


def test_a_duplicate_identity_names_the_holder_only_to_those_who_may_see_it(owner, agent, other_owner, admin_user):
    WorkloadIdentityFactory(agent=AgentFactory(owner=other_owner, slug="billing"), identifier="spiffe://x/billing")
    url = reverse("workload-identity-add", args=[agent.slug])
    response = client_as(owner).post(url, {"type": "spiffe", "identifier": "spiffe://x/billing"})
    assert response.status_code == 400
    assert b"already belongs to another agent (one you cannot see" in response.content
    assert b"billing" not in response.content.replace(b"spiffe://x/billing", b"")
    assert not agent.identities.exists()
    response = client_as(admin_user).post(url, {"type": "spiffe", "identifier": "spiffe://x/billing"})
    assert b"This identity already belongs to agent billing" in response.content


def test_a_row_error_reopens_that_rows_form(owner, agent, frozen_now):
    credential = CredentialFactory(agent=agent)
    response = client_as(owner).post(
        reverse("credential-rotate", args=[agent.slug, credential.pk]), {"rotated_at": "2026-12-01T00:00"}, headers=HTMX
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A rotation cannot be in the future." in body
    row = body[body.index(f'id="credential-{credential.pk}"') :]
    assert row.index('<details class="actions" open>') < row.index("A rotation cannot be in the future.")
    credential.refresh_from_db()
    assert credential.last_rotated_at == datetime(2026, 11, 1, tzinfo=UTC)
    assert AuditEvent.objects.count() == 0


def test_a_revocation_needs_a_reason(owner, agent):
    credential = CredentialFactory(agent=agent)
    response = client_as(owner).post(reverse("credential-revoke", args=[agent.slug, credential.pk]), {"reason": ""})
    assert response.status_code == 400
    assert b"Give a reason; it is kept in the audit trail." in response.content
    credential.refresh_from_db()
    assert credential.status == Credential.Status.ACTIVE


# --- htmx: only the section, refusals in place ----------------------------------------------


def test_htmx_gets_only_the_credentials_section_and_the_findings_out_of_band(owner, agent, frozen_now):
    args, data = _record(agent)
    response = client_as(owner).post(reverse("credential-record", args=args), data, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="credentials">')
    assert '<section class="panel" id="findings" style="margin-top:1.25rem" hx-swap-oob="true">' in body
    assert "<html" not in body and "Audit trail" not in body
    assert "Credential recorded." in body and "key-triage-1" in body
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize(
    "action, section",
    [
        ("agent-update", "profile"),
        ("workload-identity-add", "identities"),
        ("tool-add", "tools"),
        ("tool-update", "tools"),
        ("credential-revoke", "credentials"),
    ],
)
def test_htmx_gets_only_the_sections_partial(owner, agent, frozen_now, action, section):
    args, data = ACTIONS[action][0](agent)
    response = client_as(owner).post(reverse(action, args=args), data, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith(f'<section class="panel" id="{section}">')
    assert "<html" not in body and "<h2>Actions</h2>" not in body
    if section == "profile":
        assert '<div class="page-head" id="agent-head" hx-swap-oob="true">' in body
        assert "<h1>Ticket triage v2</h1>" in body


def test_htmx_field_error_comes_back_in_the_section(owner, agent):
    ToolFactory(agent=agent, name="github")
    response = client_as(owner).post(reverse("tool-add", args=[agent.slug]), _tool_add(agent)[1], headers=HTMX)
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="tools">')
    assert "Tool with this Agent and Name already exists." in body
    assert agent.tools.count() == 1 and AuditEvent.objects.count() == 0


def test_a_conflict_is_shown_in_place_over_htmx_and_as_a_page_otherwise(owner, agent):
    credential = CredentialFactory(agent=agent, status=Credential.Status.REVOKED)
    url = reverse("credential-revoke", args=[agent.slug, credential.pk])
    response = client_as(owner).post(url, {"reason": "again"}, headers=HTMX)
    assert response.status_code == 409
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="credentials">')
    assert "This credential is already revoked. Nothing was changed." in body
    page = client_as(owner).post(url, {"reason": "again"})
    assert page.status_code == 409 and b"Refused in the current state" in page.content
    assert AuditEvent.objects.count() == 0


def test_a_refusal_is_shown_in_place_over_htmx(auditor, agent):
    response = client_as(auditor).post(reverse("tool-add", args=[agent.slug]), _tool_add(agent)[1], headers=HTMX)
    assert response.status_code == 403
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="tools">')
    assert "You may change only agents you own or back up." in body
    assert not Tool.objects.exists()


def test_an_item_of_another_agent_is_a_404(owner, agent, other_owner):
    theirs = CredentialFactory(agent=AgentFactory(owner=other_owner))
    response = client_as(owner).post(reverse("credential-revoke", args=[agent.slug, theirs.pk]), {"reason": "x"})
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Credential.Status.ACTIVE


# --- what each viewer is offered ------------------------------------------------------------

CONTROLS = (
    "Edit description",
    "Record a credential",
    "Bind a workload identity",
    "Add a tool",
    "Record rotation",
    "Revoke",
    "Unbind",
    "Save access",
    "Remove tool",
)


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_people_who_may_change_the_agent_see_every_control(people, role, agent):
    CredentialFactory(agent=agent)
    WorkloadIdentityFactory(agent=agent)
    ToolFactory(agent=agent)
    body = client_as(people[role]).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    for text in CONTROLS:
        assert text in body, text


def test_auditors_see_no_control(auditor, agent):
    CredentialFactory(agent=agent)
    WorkloadIdentityFactory(agent=agent)
    ToolFactory(agent=agent)
    body = client_as(auditor).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    for text in CONTROLS:
        assert text not in body, text
    assert "hx-post" not in body


def test_a_decommissioned_agent_offers_only_the_remedies(owner, agent, frozen_now):
    credential = CredentialFactory(agent=agent)
    WorkloadIdentityFactory(agent=agent)
    ToolFactory(agent=agent)
    client = client_as(owner)
    client.post(reverse("agent-transition", args=[agent.slug, "decommission"]), {"reason": "Replaced."})
    finding = Finding.objects.get(kind="credential_on_decommissioned_agent")

    body = client.get(reverse("agent-detail", args=[agent.slug])).content.decode()
    for text in ("Revoke", "Unbind"):
        assert text in body, text
    for text in (
        "Edit description",
        "Record a credential",
        "Bind a workload identity",
        "Add a tool",
        "Record rotation",
        "Save access",
        "Remove tool",
    ):
        assert text not in body, text

    response = client.post(
        reverse("credential-revoke", args=[agent.slug, credential.pk]), {"reason": "Revoked at AWS."}, headers=HTMX
    )
    assert response.status_code == 200
    finding.refresh_from_db()
    assert finding.status == Finding.Status.RESOLVED
    # the findings panel comes back out of band, now without the finding
    assert "No unresolved findings." in response.content.decode()

    refused = client.post(reverse("credential-record", args=[agent.slug]), _record(agent)[1], headers=HTMX)
    assert refused.status_code == 409
    assert b"A decommissioned agent cannot be given credentials." in refused.content


# --- query counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 15])
def test_agent_page_query_count_is_constant(admin_user, agent, django_assert_max_num_queries, rows, frozen_now):
    for _ in range(rows):
        CredentialFactory(agent=agent)
        WorkloadIdentityFactory(agent=agent)
        ToolFactory(agent=agent)
    client = client_as(admin_user)
    client.get(reverse("agent-detail", args=[agent.slug]))  # warm the session
    with django_assert_max_num_queries(14):  # 13, and the approval queue's count in an IAM admin's navigation
        response = client.get(reverse("agent-detail", args=[agent.slug]))
    assert len(response.context["credentials"]) == rows
    assert response.content.decode().count("Record rotation") == rows


# --- the import page states the importers' limit -------------------------------------------


def test_the_import_page_states_the_importers_size_limit(admin_user):
    assert IMPORT_MAX_MB == MAX_BYTES // (1024 * 1024)
    body = client_as(admin_user).get(reverse("import-create")).content.decode()
    assert f"At most {MAX_BYTES // (1024 * 1024)} MB." in body


def test_the_agent_state_is_unchanged_by_management(owner, agent, frozen_now):
    args, data = _tool_add(agent)
    client_as(owner).post(reverse("tool-add", args=args), data)
    agent.refresh_from_db()
    assert agent.state == Agent.State.ACTIVE


def test_agent_page_renders_a_trail_with_revocations_under_debug_templates(settings, admin_user, frozen_now):
    """A revoke's audit event has ``reason`` but no ``state_reason``; debug templates must not fail on it."""
    from django.test import Client

    from governance.audit import Actor
    from inventory import services
    from tests.factories import AgentFactory, CredentialFactory

    settings.TEMPLATES = [{**settings.TEMPLATES[0], "OPTIONS": {**settings.TEMPLATES[0]["OPTIONS"], "debug": True}}]
    agent = AgentFactory()
    credential = CredentialFactory(agent=agent)
    services.credential_revoke(actor=Actor.person(admin_user), credential=credential, reason="rotated out")
    client = Client()
    client.force_login(admin_user)
    response = client.get(f"/agents/{agent.slug}/")
    assert response.status_code == 200
    assert b"rotated out" in response.content
