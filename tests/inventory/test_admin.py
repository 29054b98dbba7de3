"""The inventory admin: every write calls the inventory service for it and leaves an audit event."""

import pytest
from django.urls import reverse

from governance.models import AuditEvent, Finding
from inventory.models import Agent, Credential, Team, Tool, WorkloadIdentity
from tests.factories import AgentFactory, CredentialFactory, OwnerFactory, TeamFactory, ToolFactory
from tests.support import audit_verbs, messages_of


def _action(client, model: str, action: str, objs, **extra):
    url = reverse(f"admin:inventory_{model}_changelist")
    data = {"action": action, "_selected_action": [o.pk for o in objs], "index": 0, **extra}
    return client.post(url, data, follow=True)


@pytest.mark.django_db
def test_adding_an_agent_registers_it(admin_client, superuser):
    owner, backup, team = OwnerFactory(), OwnerFactory(), TeamFactory()
    response = admin_client.post(
        reverse("admin:inventory_agent_add"),
        {
            "name": "Invoice agent",
            "slug": "",
            "kind": "autonomous_agent",
            "purpose": "Match invoices.",
            "platform": "crewai",
            "environment": "production",
            "owner": owner.pk,
            "backup_owner": backup.pk,
            "team": team.pk,
            "autonomy_level": "human_in_the_loop",
            "data_classes": ["payment", "pii"],
            "risk_tier": "high",
        },
    )
    assert response.status_code == 302, response.content
    agent = Agent.objects.get()
    assert (agent.slug, agent.state, agent.owner, agent.backup_owner) == ("invoice-agent", "proposed", owner, backup)
    assert agent.data_classes == ["payment", "pii"]
    event = AuditEvent.objects.get(verb="agent.register")
    assert event.actor_label == "root.admin" and event.object_id == str(agent.pk)


@pytest.mark.django_db
def test_adding_an_agent_with_backup_same_as_owner_is_refused(admin_client):
    owner = OwnerFactory()
    response = admin_client.post(
        reverse("admin:inventory_agent_add"),
        {
            "name": "Invoice agent",
            "kind": "autonomous_agent",
            "environment": "production",
            "owner": owner.pk,
            "backup_owner": owner.pk,
            "autonomy_level": "human_in_the_loop",
            "risk_tier": "unassessed",
        },
    )
    assert response.status_code == 200
    assert not Agent.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_editing_an_agent_goes_through_agent_update(admin_client):
    agent = AgentFactory(name="Old name", data_classes=["pii"])
    response = admin_client.post(
        reverse("admin:inventory_agent_change", args=[agent.pk]),
        {
            "name": "New name",
            "purpose": agent.purpose,
            "kind": agent.kind,
            "platform": agent.platform,
            "environment": "staging",
            "team": agent.team_id,
            "autonomy_level": agent.autonomy_level,
            "data_classes": ["pii"],
            # Not editable here: ignored even when posted.
            "state": "decommissioned",
            "owner": "",
        },
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert (agent.name, agent.environment, agent.state) == ("New name", "staging", "active")
    event = AuditEvent.objects.get(verb="agent.update")
    assert event.before == {"name": "Old name", "environment": "production"}
    assert event.after == {"name": "New name", "environment": "staging"}


@pytest.mark.django_db
def test_lifecycle_actions_need_a_reason_and_are_audited(admin_client):
    agent = AgentFactory()
    response = _action(admin_client, "agent", "suspend", [agent], reason="")
    assert any("Give a reason" in m for m in messages_of(response))
    agent.refresh_from_db()
    assert agent.state == "active" and not AuditEvent.objects.exists()

    _action(admin_client, "agent", "suspend", [agent], reason="Leaking data")
    _action(admin_client, "agent", "reactivate", [agent], reason="Fixed")
    credential = CredentialFactory(agent=agent)
    _action(admin_client, "agent", "decommission", [agent], reason="Retired")
    agent.refresh_from_db()
    assert (agent.state, agent.state_reason) == ("decommissioned", "Retired")
    assert audit_verbs(agent) == ["agent.suspend", "agent.reactivate", "agent.decommission"]
    assert Finding.objects.filter(kind="credential_on_decommissioned_agent", subject_id=credential.pk).exists()
    # Decommissioned is terminal: the admin refuses with the service's message.
    response = _action(admin_client, "agent", "activate", [agent])
    assert any("Cannot activate" in m for m in messages_of(response))


@pytest.mark.django_db
def test_assign_owner_action(admin_client):
    agent = AgentFactory(state=Agent.State.PROPOSED, owner=None)
    new_owner = OwnerFactory(username="nora")
    response = _action(admin_client, "agent", "activate", [agent])
    assert any("Assign an owner" in m for m in messages_of(response))
    response = _action(admin_client, "agent", "assign_owner", [agent], owner="", reason="")
    assert any("Choose an active person" in m for m in messages_of(response))
    _action(admin_client, "agent", "assign_owner", [agent], owner=new_owner.pk, reason="Nora runs it now")
    _action(admin_client, "agent", "activate", [agent])
    agent.refresh_from_db()
    assert (agent.owner, agent.state) == (new_owner, "active")
    assert audit_verbs(agent) == ["agent.assign_owner", "agent.activate"]
    assert AuditEvent.objects.get(verb="agent.assign_owner").after["reason"] == "Nora runs it now"


@pytest.mark.django_db
def test_agents_cannot_be_deleted(admin_client):
    agent = AgentFactory()
    assert admin_client.get(reverse("admin:inventory_agent_delete", args=[agent.pk])).status_code == 403


@pytest.mark.django_db
def test_team_create_and_rename(admin_client):
    admin_client.post(reverse("admin:inventory_team_add"), {"name": "Platform", "slug": "platform", "description": ""})
    team = Team.objects.get()
    admin_client.post(
        reverse("admin:inventory_team_change", args=[team.pk]),
        {"name": "Platform engineering", "slug": "platform", "description": ""},
    )
    team.refresh_from_db()
    assert team.name == "Platform engineering"
    assert audit_verbs(team) == ["team.create", "team.update"]


@pytest.mark.django_db
def test_team_members_change_through_the_service(admin_client):
    team = Team.objects.create(name="Platform", slug="platform")
    member = OwnerFactory(username="nora")
    response = admin_client.post(
        reverse("admin:inventory_team_change", args=[team.pk]),
        {"name": "Platform", "slug": "platform", "description": "", "members": [member.pk]},
    )
    assert response.status_code == 302
    assert list(team.members.all()) == [member]
    assert audit_verbs(team) == ["team.set_members"]


@pytest.mark.django_db
def test_workload_identity_add_and_remove(admin_client):
    agent, other = AgentFactory(), AgentFactory()
    data = {"agent": agent.pk, "type": "spiffe", "issuer": "", "identifier": "spiffe://example.org/a"}
    assert admin_client.post(reverse("admin:inventory_workloadidentity_add"), data).status_code == 302
    identity = WorkloadIdentity.objects.get()
    # The same identity for another agent is refused (NHI9).
    admin_client.post(reverse("admin:inventory_workloadidentity_add"), {**data, "agent": other.pk})
    assert WorkloadIdentity.objects.count() == 1
    admin_client.post(reverse("admin:inventory_workloadidentity_delete", args=[identity.pk]), {"post": "yes"})
    assert not WorkloadIdentity.objects.exists()
    assert audit_verbs(identity) == ["workload_identity.add", "workload_identity.remove"]


@pytest.mark.django_db
def test_credential_record_rotate_and_revoke(admin_client):
    agent = AgentFactory()
    response = admin_client.post(
        reverse("admin:inventory_credential_add"),
        {
            "agent": agent.pk,
            "kind": "access_key",
            "provider": "aws",
            "external_id": "AKIA-demo",
            "fingerprint": "",
            "label": "",
            "created_at_0": "2026-01-01",
            "created_at_1": "00:00:00",
            "usage_tracked": "on",
        },
    )
    assert response.status_code == 302, response.content
    credential = Credential.objects.get()
    _action(admin_client, "credential", "rotate_now", [credential])
    response = _action(admin_client, "credential", "revoke", [credential], reason="")
    assert any("Give a reason" in m for m in messages_of(response))
    _action(admin_client, "credential", "revoke", [credential], reason="Key leaked")
    credential.refresh_from_db()
    assert credential.status == "revoked" and credential.last_rotated_at is not None
    assert audit_verbs(credential) == ["credential.record", "credential.rotate", "credential.revoke"]
    assert admin_client.get(reverse("admin:inventory_credential_delete", args=[credential.pk])).status_code == 403


@pytest.mark.django_db
def test_tool_add_change_remove(admin_client):
    agent = AgentFactory()
    base = {
        "agent": agent.pk,
        "name": "github",
        "transport": "http",
        "command": "",
        "args": "[]",
        "url": "https://api.example.com/mcp",
        "env_keys": "[]",
        "access_levels": ["read"],
        "destination": "external",
        "source": "",
    }
    assert admin_client.post(reverse("admin:inventory_tool_add"), base).status_code == 302
    tool = Tool.objects.get()
    admin_client.post(
        reverse("admin:inventory_tool_change", args=[tool.pk]), {**base, "access_levels": ["read", "write"]}
    )
    tool.refresh_from_db()
    assert tool.access_levels == ["read", "write"]
    admin_client.post(reverse("admin:inventory_tool_delete", args=[tool.pk]), {"post": "yes"})
    assert not Tool.objects.exists()
    assert audit_verbs(tool) == ["tool.add", "tool.update", "tool.remove"]
    update = AuditEvent.objects.get(verb="tool.update")
    assert update.before == {"access_levels": ["read"]} and update.after == {"access_levels": ["read", "write"]}


@pytest.mark.django_db
def test_bulk_delete_of_tools_uses_the_service(admin_client):
    tools = [ToolFactory(), ToolFactory()]
    _action(admin_client, "tool", "delete_selected", tools, post="yes")
    assert not Tool.objects.exists()
    assert AuditEvent.objects.filter(verb="tool.remove").count() == 2
