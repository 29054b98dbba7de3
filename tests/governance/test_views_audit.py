"""The audit log page: who may read it, filters (the shared AuditEventFilterSet), htmx partial,
times in the viewer's timezone, compact before/after, and verifying the hash chain."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse

from governance.audit import Actor, audit_record, event_digest
from governance.models import AuditEvent
from tests.factories import T0, AgentFactory
from tests.support import client_as

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def trail(admin_user, owner, frozen_now):
    """Three events: an agent registered (no before), its tier changed, a token revoked by the system."""
    agent = AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage")
    actor = Actor.person(admin_user)
    audit_record(actor=actor, verb="agent.register", obj=agent, after={"name": "Ticket triage", "state": "proposed"})
    audit_record(
        actor=actor,
        verb="agent.set_risk_tier",
        obj=agent,
        before={"risk_tier": "unassessed"},
        after={"risk_tier": "high", "reason": "Touches payment data."},
    )
    audit_record(
        actor=Actor.system("token expiry"),
        verb="token.revoke",
        object_type="governance.integrationtoken",
        object_id="7",
        object_label="CI",
        before={"revoked_at": None},
        after={"revoked_at": T0.isoformat()},
    )
    return agent


@contextmanager
def append_only_trigger_disabled():
    """On PostgreSQL, tamper as the database superuser would: with the table's triggers disabled."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


# --- who may read it -----------------------------------------------------------------------


@pytest.mark.parametrize("role, status", [("admin", 200), ("auditor", 200), ("owner", 403), ("anonymous", 302)])
def test_audit_log_permission_matrix(people, role, status, trail):
    response = client_as(people[role]).get(reverse("audit-list"))
    assert response.status_code == status
    if status == 403:
        assert "Only IAM admins and auditors read the audit log" in response.content.decode()


@pytest.mark.parametrize("role, status", [("admin", 200), ("auditor", 200), ("owner", 403), ("anonymous", 302)])
def test_verify_chain_permission_matrix(people, role, status, trail):
    before = AuditEvent.objects.count()
    response = client_as(people[role]).post(reverse("audit-verify"), headers=HTMX)
    assert response.status_code == status
    assert AuditEvent.objects.count() == before  # verifying writes nothing


@pytest.mark.parametrize("role, shown", [("admin", True), ("auditor", True), ("owner", False)])
def test_only_readers_see_the_nav_link(people, role, shown):
    body = client_as(people[role]).get(reverse("dashboard")).content.decode()
    assert (f'href="{reverse("audit-list")}"' in body) == shown


# --- the list ------------------------------------------------------------------------------


def test_events_show_time_actor_verb_object_and_a_compact_change(auditor, trail):
    client = client_as(auditor)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.get(reverse("audit-list"))
    body = response.content.decode()
    assert [e.verb for e in response.context["page"].object_list] == [
        "token.revoke",
        "agent.set_risk_tier",
        "agent.register",
    ]  # newest first
    # T0 (06:00 UTC) in the viewer's zone, with the zone named.
    assert '<time datetime="2026-11-15T06:00:00+00:00" title="Europe/Berlin">2026-11-15 07:00:00 CET</time>' in body
    assert "iris.admin" in body and "token expiry" in body and "System" in body
    assert "agent.set_risk_tier" in body and "inventory.agent" in body
    # Only what changed, before → after; a datetime value in the viewer's zone too.
    assert (
        '<span class="key">risk_tier</span> <span class="old">unassessed</span> → <span class="new">high</span>'
    ) in body
    assert '<span class="key">reason</span> <span class="new">Touches payment data.</span>' in body
    assert (
        '<span class="key">revoked_at</span> <span class="old">—</span> → <span class="new">2026-11-15 07:00 CET</span>'
    ) in body


def test_filters_use_the_shared_filterset(admin_user, trail):
    client = client_as(admin_user)
    by_verb = client.get(reverse("audit-list"), {"verb": "agent.set_risk_tier"}).context["page"].object_list
    assert [e.verb for e in by_verb] == ["agent.set_risk_tier"]
    by_object = (
        client.get(reverse("audit-list"), {"object_type": "inventory.agent", "object_id": str(trail.pk)})
        .context["page"]
        .object_list
    )
    assert [e.verb for e in by_object] == ["agent.set_risk_tier", "agent.register"]
    by_actor = client.get(reverse("audit-list"), {"actor_type": "system"}).context["page"].object_list
    assert [e.verb for e in by_actor] == ["token.revoke"]


def test_a_time_without_offset_is_read_in_the_viewers_timezone(admin_user, trail):
    later = AuditEvent.objects.create(
        occurred_at=T0 + timedelta(hours=2),
        actor_type="system",
        actor_label="job",
        verb="late.event",
        object_type="x",
        object_id="1",
        prev_hash="p",
        hash="h" * 64,
    )
    client = client_as(admin_user)
    client.cookies["tz"] = "Europe/Berlin"
    # 08:00 in Berlin is 07:00 UTC: after T0, before the later event.
    listed = client.get(reverse("audit-list"), {"since": "2026-11-15T08:00"}).context["page"].object_list
    assert [e.pk for e in listed] == [later.pk]
    listed = client.get(reverse("audit-list"), {"until": "2026-11-15T08:00"}).context["page"].object_list
    assert later.pk not in [e.pk for e in listed] and len(listed) == 3
    # An explicit offset is taken as given.
    listed = client.get(reverse("audit-list"), {"since": "2026-11-15T07:00:00Z"}).context["page"].object_list
    assert [e.pk for e in listed] == [later.pk]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"colour": "red"}, "Unknown filter &#x27;colour&#x27;"),
        ({"actor_type": "robot"}, "actor_type: Select a valid choice."),
        ({"since": "yesterday"}, "since: Enter a valid date/time."),
        ({"page_size": "500"}, "page_size: give a whole number from 1 to 100."),
    ],
)
def test_bad_filters_are_a_400_that_lists_nothing(admin_user, trail, params, message):
    response = client_as(admin_user).get(reverse("audit-list"), params)
    assert response.status_code == 400
    assert message in response.content.decode() and response.context["page"] is None


def test_htmx_gets_only_the_results_and_the_url_to_push(admin_user, trail):
    response = client_as(admin_user).get(reverse("audit-list"), {"verb": "token.revoke"}, headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results"') and "<html" not in body
    assert response["HX-Push-Url"] == f"{reverse('audit-list')}?verb=token.revoke"


def test_paginated(admin_user, trail):
    client = client_as(admin_user)
    first = client.get(reverse("audit-list"), {"page_size": "2"}).context["page"]
    second = client.get(reverse("audit-list"), {"page_size": "2", "page": "2"}).context["page"]
    assert first.paginator.count == 3 and len(first.object_list) == 2 and len(second.object_list) == 1


@pytest.mark.parametrize("rows", [2, 20])
def test_query_count_is_constant(admin_user, django_assert_max_num_queries, rows, frozen_now):
    actor = Actor.person(admin_user)
    for i in range(rows):
        audit_record(
            actor=actor, verb="team.create", object_type="inventory.team", object_id=str(i), after={"name": f"Team {i}"}
        )
    client = client_as(admin_user)
    client.get(reverse("audit-list"))  # warm the session and groups
    with django_assert_max_num_queries(6):
        assert client.get(reverse("audit-list")).status_code == 200


# --- verifying the chain -------------------------------------------------------------------


def test_verify_says_intact_with_the_number_of_events(auditor, trail):
    response = client_as(auditor).post(reverse("audit-verify"), headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="verify-result"')
    assert "intact: 3 events" in body


def test_verify_names_the_first_broken_row(admin_user, trail):
    events = list(AuditEvent.objects.order_by("id"))
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[1].pk).update(actor_label="someone else")
    response = client_as(admin_user).post(reverse("audit-verify"), headers=HTMX)
    body = response.content.decode()
    assert "Chain broken" in body and f"first broken row: event {events[1].pk}" in body
    assert "content does not match its hash" in body and "agent.set_risk_tier" in body


def test_verify_without_htmx_redirects_with_the_result(admin_user, trail):
    client = client_as(admin_user)
    response = client.post(reverse("audit-verify"), follow=True)
    assert response.redirect_chain == [(reverse("audit-list"), 302)]
    assert "Audit chain intact: 3 events." in response.content.decode()


def test_verify_reports_a_forged_link(admin_user, trail):
    events = list(AuditEvent.objects.order_by("id"))
    forged = events[2]
    forged.prev_hash = "f" * 64
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=forged.pk).update(prev_hash=forged.prev_hash, hash=event_digest(forged))
    body = client_as(admin_user).post(reverse("audit-verify"), headers=HTMX).content.decode()
    assert f"first broken row: event {forged.pk}" in body and "previous-hash link broken" in body


def test_verify_is_a_post(admin_user):
    assert client_as(admin_user).get(reverse("audit-verify")).status_code == 405


def test_an_empty_log_is_intact(admin_user):
    assert not AuditEvent.objects.exists()
    body = client_as(admin_user).post(reverse("audit-verify"), headers=HTMX).content.decode()
    assert "intact: 0 events" in body
