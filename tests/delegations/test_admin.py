"""The delegations admin: grants are shown read-only; cancel and revoke go through the services."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from delegations.models import Approval, DelegationGrant, GrantScope
from governance.models import AuditEvent
from tests.factories import T0, AgentFactory, GrantFactory, ToolFactory
from tests.support import messages_of

CHANGELIST = "admin:delegations_delegationgrant_changelist"


def db_state():
    return [list(m.objects.order_by("id").values()) for m in (DelegationGrant, GrantScope, Approval, AuditEvent)]


def _action(client, action: str, grants, **extra):
    data = {"action": action, "_selected_action": [g.pk for g in grants], "index": 0, **extra}
    return client.post(reverse(CHANGELIST), data, follow=True)


@pytest.fixture
def grants(frozen_now, low_agent, approver):
    active = GrantFactory(agent=low_agent, scopes=[("github", "read", "repo:acme/*"), ("jira", "write", "")])
    pending = GrantFactory(
        agent=low_agent, status="pending", purpose="Move jira tickets.", scopes=[("jira", "write", "")]
    )
    Approval.objects.create(grant=pending, approver=approver, decision="approve", comment="Fine by me.", decided_at=T0)
    return {"active": active, "pending": pending}


@pytest.mark.django_db
def test_changelist_search_and_filters_load(admin_client, grants):
    url = reverse(CHANGELIST)
    page = admin_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert f"Grant #{grants['active'].pk} to Ticket triage" in body and "Move jira tickets" not in body
    for query in (
        "?q=github",
        "?q=ticket-triage",
        "?q=olivia.owner",
        "?status__exact=pending",
        "?agent__risk_tier=low",
    ):
        assert admin_client.get(url + query).status_code == 200, query
    only_pending = admin_client.get(url + "?status__exact=pending").content.decode()
    assert f"Grant #{grants['pending'].pk} " in only_pending and f"Grant #{grants['active'].pk} " not in only_pending
    searched = admin_client.get(url + "?q=github").content.decode()
    assert f"Grant #{grants['active'].pk} " in searched and f"Grant #{grants['pending'].pk} " not in searched


@pytest.mark.django_db
def test_state_column_follows_time_before_the_job(admin_client, grants, frozen_now):
    frozen_now.move_to(T0 + timedelta(days=2))
    page = admin_client.get(reverse(CHANGELIST) + "?status__exact=active").content.decode()
    assert 'class="field-state_now">expired<' in page


@pytest.mark.django_db
def test_detail_shows_scopes_and_approvals_read_only(admin_client, grants):
    pending = grants["pending"]
    page = admin_client.get(reverse("admin:delegations_delegationgrant_change", args=[pending.pk]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Move jira tickets." in body and "Fine by me." in body and "amara.approver" in body
    assert 'name="_save"' not in body and 'name="purpose"' not in body
    assert 'name="scopes-0-access"' not in body and 'name="approvals-0-comment"' not in body


@pytest.mark.django_db
def test_no_admin_path_adds_changes_or_deletes_a_grant(admin_client, grants):
    active = grants["active"]
    before = db_state()
    assert admin_client.get(reverse("admin:delegations_delegationgrant_add")).status_code == 403
    assert admin_client.post(reverse("admin:delegations_delegationgrant_add"), {"purpose": "x"}).status_code == 403
    delete_url = reverse("admin:delegations_delegationgrant_delete", args=[active.pk])
    assert admin_client.get(delete_url).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    change = admin_client.post(
        reverse("admin:delegations_delegationgrant_change", args=[active.pk]),
        {"status": "revoked", "expires_at_0": "2030-01-01", "expires_at_1": "00:00:00"},
    )
    assert change.status_code == 403
    response = _action(admin_client, "delete_selected", [active])
    assert response.status_code == 200
    assert db_state() == before


@pytest.mark.django_db
def test_revoke_action_goes_through_the_service(admin_client, grants, low_agent):
    active = grants["active"]
    helper = AgentFactory(owner=low_agent.owner, risk_tier="low")
    ToolFactory(agent=helper, name="github")
    child = GrantFactory(agent=helper, parent=active)
    # without a reason: refused, nothing changes
    before = db_state()
    response = _action(admin_client, "revoke", [active], reason="")
    assert any("reason" in m for m in messages_of(response))
    assert db_state() == before
    # with one: revoked, its child too, one audit event each, by the person in the admin
    response = _action(admin_client, "revoke", [active, child], reason="Incident 7.")
    active.refresh_from_db()
    child.refresh_from_db()
    assert (active.status, child.status) == ("revoked", "revoked")
    assert active.end_reason == "Incident 7." and active.ended_by == "root.admin"
    events = AuditEvent.objects.filter(verb="grant.revoke").order_by("id")
    assert [(e.object_id, e.actor_label) for e in events] == [
        (str(active.pk), "root.admin"),
        (str(child.pk), "root.admin"),
    ]
    texts = messages_of(response)
    assert any("Revoked (with their descendants): 1." in m for m in texts)
    assert any("Only an active grant can be revoked" in m for m in texts)  # the child, already revoked


@pytest.mark.django_db
def test_cancel_action_goes_through_the_service(admin_client, grants):
    pending, active = grants["pending"], grants["active"]
    response = _action(admin_client, "cancel", [pending, active], reason="Asked in error.")
    pending.refresh_from_db()
    active.refresh_from_db()
    assert (pending.status, pending.end_reason, active.status) == ("cancelled", "Asked in error.", "active")
    assert list(AuditEvent.objects.values_list("verb", "object_id")) == [("grant.cancel", str(pending.pk))]
    assert any("Only a pending request can be cancelled" in m for m in messages_of(response))


def _make_grants(agent, approver, n):
    for _ in range(n):
        grant = GrantFactory(agent=agent, status="pending", scopes=[("github", "read", "")], decided_by=None)
        Approval.objects.create(grant=grant, approver=approver, decision="approve", decided_at=T0)


@pytest.mark.django_db
def test_changelist_runs_a_constant_number_of_queries(admin_client, grants, low_agent, approver):
    url = reverse(CHANGELIST)
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(url).status_code == 200
    few = len(ctx)
    _make_grants(low_agent, approver, 8)
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(url).status_code == 200
    assert len(ctx) == few
