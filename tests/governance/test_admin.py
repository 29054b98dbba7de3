"""The Django admin: every changelist loads with constant queries; governance writes go through services."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from governance.audit import Actor
from governance.models import AuditEvent, Finding, IntegrationToken, Policy
from governance.services import integration_token_issue, token_digest
from inventory import services as inventory_services
from inventory.models import Credential, ImportRun
from tests.factories import (
    AgentFactory,
    AuditorFactory,
    CredentialFactory,
    ToolFactory,
    UserFactory,
    WorkloadIdentityFactory,
)
from tests.support import messages_of


def _make_batch(actor: Actor, n: int) -> None:
    """n of everything the admin lists, written the way the app writes it."""
    for i in range(n):
        agent = AgentFactory(backup_owner=UserFactory())
        WorkloadIdentityFactory(agent=agent)
        ToolFactory(agent=agent)
        CredentialFactory(
            agent=agent, created_at=datetime(2024, 1, 1, tzinfo=UTC), last_rotated_at=None, last_used_at=None
        )
        integration_token_issue(
            actor=actor,
            user=agent.owner,
            name=f"siem {agent.pk}",
            scopes=["inventory:read"],
            expires_at=timezone.now() + timedelta(days=30),
        )
        ImportRun.objects.create(
            source="mcp-config",
            filename=f"mcp-{i}.json",
            sha256=f"{i:064x}",
            created_at=timezone.now(),
            actor_label="test",
            agent=agent,
            summary={},
        )
        inventory_services.agent_suspend(actor=actor, agent=agent, reason="batch")
    inventory_services.credentials_flag_stale_due(now=timezone.now(), actor=actor)


def _changelist_urls() -> list[str]:
    return [reverse(f"admin:{m._meta.app_label}_{m._meta.model_name}_changelist") for m in admin.site._registry]


def _ours(url: str) -> bool:
    return "/governance/" in url or "/inventory/" in url


@pytest.mark.django_db
def test_every_changelist_and_add_page_loads_for_a_superuser(admin_client, superuser):
    _make_batch(Actor.person(superuser), 2)
    for url in _changelist_urls():
        response = admin_client.get(url, follow=True)
        assert response.status_code == 200, url
    for model, model_admin in admin.site._registry.items():
        if model_admin.has_add_permission(type("R", (), {"user": superuser})()):
            url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
            assert admin_client.get(url).status_code == 200, url


@pytest.mark.django_db
def test_changelists_run_a_constant_number_of_queries(admin_client, superuser):
    actor = Actor.person(superuser)
    _make_batch(actor, 2)
    urls = [u for u in _changelist_urls() if _ours(u)]
    before = {}
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url, follow=True).status_code == 200
        before[url] = len(ctx)
    _make_batch(actor, 4)
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            admin_client.get(url, follow=True)
        assert len(ctx) == before[url], f"{url}: {before[url]} queries with 2 rows, {len(ctx)} with 6"


@pytest.mark.django_db
def test_audit_events_are_read_only(admin_client, superuser):
    inventory_services.team_create(actor=Actor.person(superuser), name="Platform")
    event = AuditEvent.objects.get()
    assert admin_client.get(reverse("admin:governance_auditevent_add")).status_code == 403
    assert admin_client.get(reverse("admin:governance_auditevent_delete", args=[event.pk])).status_code == 403
    page = admin_client.get(reverse("admin:governance_auditevent_change", args=[event.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    response = admin_client.post(reverse("admin:governance_auditevent_change", args=[event.pk]), {"verb": "x"})
    assert response.status_code == 403
    assert AuditEvent.objects.get().verb == "team.create"


def _policy_form_data(policy) -> dict:
    """The admin form's fields as the browser posts them unchanged (a cleared checkbox is absent)."""
    from governance.services import POLICY_FIELDS

    values = {name: getattr(policy, name) for name in POLICY_FIELDS}
    return {name: ("on" if v is True else v) for name, v in values.items() if v is not False}


@pytest.mark.django_db
def test_policy_edit_goes_through_policy_update(admin_client):
    policy = Policy.current()
    assert admin_client.get(reverse("admin:governance_policy_changelist")).status_code == 302
    data = {**_policy_form_data(policy), "unused_after_days": 60}
    response = admin_client.post(reverse("admin:governance_policy_change", args=[policy.pk]), data)
    assert response.status_code == 302
    assert Policy.current().unused_after_days == 60
    event = AuditEvent.objects.get(verb="policy.update")
    assert event.before == {"unused_after_days": 90} and event.after == {"unused_after_days": 60}
    assert event.actor_label == "root.admin"


@pytest.mark.django_db
def test_policy_edit_with_bad_value_changes_nothing(admin_client):
    policy = Policy.current()
    data = {**_policy_form_data(policy), "unused_after_days": 0}
    response = admin_client.post(reverse("admin:governance_policy_change", args=[policy.pk]), data)
    assert response.status_code == 200  # the form comes back with its error
    assert Policy.current().unused_after_days == 90
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_issuing_a_token_shows_it_once_and_stores_its_digest(admin_client, superuser):
    person = AuditorFactory(username="siem.reader")
    expires = timezone.now() + timedelta(days=30)
    response = admin_client.post(
        reverse("admin:governance_integrationtoken_add"),
        {
            "name": "SIEM export",
            "user": person.pk,
            "scopes": ["inventory:read", "audit:read"],
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
        follow=True,
    )
    assert response.status_code == 200
    token = IntegrationToken.objects.get()
    shown = [m for m in messages_of(response) if "shown only once" in m]
    assert len(shown) == 1
    clear = next(w for w in shown[0].split() if w.startswith("wrt_"))
    assert token.digest == token_digest(clear) and clear not in (token.prefix, token.digest)
    assert token.user == person and token.scopes == ["audit:read", "inventory:read"]
    assert token.created_by == superuser
    assert AuditEvent.objects.filter(verb="token.issue", object_id=str(token.pk)).exists()
    # The clear token is not shown again.
    page = admin_client.get(reverse("admin:governance_integrationtoken_change", args=[token.pk]))
    assert clear.encode() not in page.content


@pytest.mark.django_db
def test_token_issue_refused_by_the_service_writes_nothing(admin_client):
    person = UserFactory(username="gone", is_active=False)
    expires = timezone.now() + timedelta(days=30)
    response = admin_client.post(
        reverse("admin:governance_integrationtoken_add"),
        {
            "name": "SIEM export",
            "user": person.pk,
            "scopes": ["inventory:read"],
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
        follow=True,
    )
    assert any("active" in m for m in messages_of(response))
    assert not IntegrationToken.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_revoke_action_revokes_through_the_service(admin_client, superuser):
    token, _ = integration_token_issue(
        actor=Actor.person(superuser),
        user=superuser,
        name="ci",
        scopes=["inventory:read"],
        expires_at=timezone.now() + timedelta(days=1),
    )
    response = admin_client.post(
        reverse("admin:governance_integrationtoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk], "index": 0},
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(verb="token.revoke", object_id=str(token.pk)).exists()


@pytest.fixture
def open_finding(superuser):
    credential = CredentialFactory(created_at=datetime(2020, 1, 1, tzinfo=UTC), last_rotated_at=None)
    inventory_services.credentials_flag_stale_due(now=timezone.now())
    return Finding.objects.get(kind="unrotated_credential", subject_id=credential.pk)


@pytest.mark.django_db
def test_finding_actions_go_through_the_services(admin_client, open_finding):
    url = reverse("admin:governance_finding_changelist")
    admin_client.post(
        url, {"action": "acknowledge", "_selected_action": [open_finding.pk], "index": 0, "reason": "Looking into it"}
    )
    open_finding.refresh_from_db()
    assert open_finding.status == Finding.Status.ACKNOWLEDGED
    assert AuditEvent.objects.filter(verb="finding.acknowledge", object_id=str(open_finding.pk)).exists()

    # Resolving needs a note: refused with a message, nothing changes.
    response = admin_client.post(
        url, {"action": "resolve", "_selected_action": [open_finding.pk], "index": 0, "reason": ""}, follow=True
    )
    assert any("Say what was done" in m for m in messages_of(response))
    open_finding.refresh_from_db()
    assert open_finding.status == Finding.Status.ACKNOWLEDGED

    admin_client.post(
        url,
        {
            "action": "accept_risk",
            "_selected_action": [open_finding.pk],
            "index": 0,
            "reason": "Vendor rotates it next quarter",
            "days": 30,
        },
    )
    open_finding.refresh_from_db()
    assert open_finding.status == Finding.Status.RISK_ACCEPTED
    assert open_finding.risk_accepted_until > timezone.now() + timedelta(days=29)
    assert AuditEvent.objects.filter(verb="finding.accept_risk").exists()


@pytest.mark.django_db
def test_findings_cannot_be_added_edited_or_deleted(admin_client, open_finding):
    assert admin_client.get(reverse("admin:governance_finding_add")).status_code == 403
    assert admin_client.get(reverse("admin:governance_finding_delete", args=[open_finding.pk])).status_code == 403
    response = admin_client.post(
        reverse("admin:governance_finding_change", args=[open_finding.pk]), {"status": "resolved"}
    )
    assert response.status_code == 403
    listing = admin_client.get(reverse("admin:governance_finding_changelist") + "?status__exact=open&severity=medium")
    assert listing.status_code == 200 and open_finding.title.encode() in listing.content
    assert Credential.objects.count() == 1
