"""Delegation pages: the approval queue (inline and bulk decisions over htmx), the request form, a grant's
page and its actions, the grant lists, an agent's grants, the dashboard panel, the policy settings.

Every page and action has its permission matrix (anonymous, owner, other owner, IAM admin,
auditor); every action calls its service and leaves its audit event; a refusal — a forged post
included — writes nothing; htmx gets only the part it swaps; local times are read in the
viewer's timezone and a time a daylight-saving change skips or repeats is a form error; the
queue and the list run a constant number of queries.
"""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from delegations import services
from delegations.models import Approval, DelegationGrant, GrantScope
from delegations.services import ScopeRequest
from governance.audit import Actor
from governance.models import AuditEvent, Policy
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, ToolFactory
from tests.support import Trail, client_as, messages_of

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
ROLES = ["owner", "other_owner", "admin", "auditor"]


def db_state():
    """Everything an action on a grant could write."""
    return (
        list(DelegationGrant.objects.order_by("id").values()),
        list(GrantScope.objects.order_by("id").values()),
        list(Approval.objects.order_by("id").values()),
        AuditEvent.objects.count(),
    )


@pytest.fixture
def trail(db):
    return Trail()


@pytest.fixture
def pending(low_agent, frozen_now):
    """A pending request for ``low_agent`` (read on github), made by its owner at T0, one approval needed."""
    return GrantFactory(agent=low_agent, status="pending", scopes=[("github", "read", "")])


@pytest.fixture
def active(low_agent, frozen_now):
    """An active grant of ``low_agent`` (read on github), T0 to T0 + 1 day."""
    return GrantFactory(agent=low_agent, scopes=[("github", "read", "")])


def request_grant(actor_user, agent, hours=24, tool="github", access="read", **extra):
    return services.grant_request(
        actor=Actor.person(actor_user),
        agent=agent,
        scopes=[ScopeRequest(tool, access)],
        purpose="Triage issues.",
        justification="Backlog review.",
        expires_at=T0 + timedelta(hours=hours),
        **extra,
    )


# --- permission matrix of the pages -----------------------------------------------------------

PAGES = {
    "approval-queue": (
        lambda g: reverse("approval-queue"),
        {"owner": 403, "other_owner": 403, "admin": 200, "auditor": 200},
    ),
    "grant-list": (lambda g: reverse("grant-list"), {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 200}),
    "grant-mine": (lambda g: reverse("grant-mine"), {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 200}),
    "grant-detail": (
        lambda g: reverse("grant-detail", args=[g.pk]),
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 200},
    ),
    "grant-create": (
        lambda g: reverse("grant-create") + f"?agent={g.agent.slug}",
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 403},
    ),
    "grant-create-pick": (
        lambda g: reverse("grant-create"),
        {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 403},
    ),
    "agent-grants": (
        lambda g: reverse("agent-grants", args=[g.agent.slug]),
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 200},
    ),
    "policy-settings": (
        lambda g: reverse("policy-settings"),
        {"owner": 403, "other_owner": 403, "admin": 200, "auditor": 200},
    ),
}


@pytest.mark.parametrize("page", sorted(PAGES))
def test_anonymous_is_sent_to_login(page, pending):
    response = client_as(None).get(PAGES[page][0](pending))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_permission_matrix(page, role, people, pending):
    url, expected = PAGES[page]
    response = client_as(people[role]).get(url(pending))
    assert response.status_code == expected[role]
    if expected[role] == 403:
        assert b"You may not do this" in response.content


def test_lists_show_only_what_the_viewer_may_see(people, pending, other_owner, frozen_now):
    theirs = GrantFactory(agent=AgentFactory(owner=other_owner))
    listed = {
        role: {g.pk for g in client_as(people[role]).get(reverse("grant-list")).context["page"].object_list}
        for role in ROLES
    }
    assert listed == {
        "owner": {pending.pk},
        "other_owner": {theirs.pk},
        "admin": {pending.pk, theirs.pk},
        "auditor": {pending.pk, theirs.pk},
    }


# --- permission matrix of the actions ---------------------------------------------------------


def _approve(pending, active):
    return pending, {"comment": "Fine."}, "grant.approve"


def _deny(pending, active):
    return pending, {"reason": "Too broad."}, "grant.deny"


def _cancel(pending, active):
    return pending, {"reason": "No longer needed."}, "grant.cancel"


def _revoke(pending, active):
    return active, {"reason": "Incident 42."}, "grant.revoke"


def _renew(pending, active):
    return active, {"length": "12", "unit": "hours"}, "grant.renew"


ACTIONS = {"approve": _approve, "deny": _deny, "cancel": _cancel, "revoke": _revoke, "renew": _renew}
# The owner requested the pending grant and owns its agent: separation of duties refuses them a decision.
EXPECTED = {
    "approve": {"anonymous": 302, "owner": 403, "other_owner": 404, "auditor": 403, "admin": 302},
    "deny": {"anonymous": 302, "owner": 403, "other_owner": 404, "auditor": 403, "admin": 302},
    "cancel": {"anonymous": 302, "owner": 302, "other_owner": 404, "auditor": 403, "admin": 302},
    "revoke": {"anonymous": 302, "owner": 302, "other_owner": 404, "auditor": 403, "admin": 302},
    "renew": {"anonymous": 302, "owner": 302, "other_owner": 404, "auditor": 403, "admin": 302},
}


@pytest.mark.parametrize("role", sorted(EXPECTED["approve"]))
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_action_permission_matrix_and_audit(action, role, people, pending, active, trail):
    grant, data, verb = ACTIONS[action](pending, active)
    user = people[role]
    before = db_state()
    response = client_as(user).post(reverse("grant-act", args=[grant.pk, action]), data)
    assert response.status_code == EXPECTED[action][role]
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login") + "?next=")
        assert db_state() == before
    elif response.status_code == 302:
        event = trail.one(verb, actor=Actor.person(user))
        if action == "renew":
            renewal = DelegationGrant.objects.get(renewal_of=grant)
            assert response["Location"] == reverse("grant-detail", args=[renewal.pk])
        else:
            assert event.object_id == str(grant.pk)
            assert response["Location"] == reverse("grant-detail", args=[grant.pk])
    else:
        assert db_state() == before, "a refused action wrote something"


def test_the_refusal_says_why(owner, pending):
    response = client_as(owner).post(reverse("grant-act", args=[pending.pk, "approve"]), {})
    assert response.status_code == 403
    assert b"Only IAM admins approve or deny grant requests." in response.content


def test_unknown_action_is_404(admin_user, pending):
    assert client_as(admin_user).post(reverse("grant-act", args=[pending.pk, "extend"]), {}).status_code == 404


def test_actions_are_post_only(admin_user, pending):
    assert client_as(admin_user).get(reverse("grant-act", args=[pending.pk, "approve"])).status_code == 405


# --- the approval queue --------------------------------------------------------------------------


def test_queue_lists_pending_oldest_first_with_what_approvers_need(approver, owner, low_agent, high_agent, frozen_now):
    GrantFactory(agent=low_agent)  # active: not in the queue
    late = GrantFactory(
        agent=low_agent, status="pending", requested_at=T0 - timedelta(hours=1), scopes=[("jira", "write", "PROJ-*")]
    )
    early = request_grant(owner, high_agent, hours=24)
    early.requested_at = T0 - timedelta(hours=3)
    early.save()
    response = client_as(approver).get(reverse("approval-queue"))
    assert [g.pk for g in response.context["page"].object_list] == [early.pk, late.pk]
    body = response.content.decode()
    row = body.split(f'id="grant-{early.pk}"')[1].split("</tr>")[0]
    assert "Deploy bot" in row and "tier-high" in row and "owner olivia.owner" in row and "by olivia.owner" in row
    assert "github:read" in row
    assert "24 h of 24 h cap" in row
    assert "0 of 2" in row
    assert "Backlog review." in row and "root" in row
    assert f'data-testid="approve-form-{early.pk}"' in row and f'data-testid="deny-form-{early.pk}"' in row
    assert f'id="select-{early.pk}"' in row
    other = body.split(f'id="grant-{late.pk}"')[1].split("</tr>")[0]
    assert "jira:write" in other and "on PROJ-*" in other and "24 h of 30 d cap" in other


def test_queue_shows_the_chain_of_a_child_request(approver, owner, low_agent, frozen_now):
    parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    helper = AgentFactory(owner=owner, name="Helper", slug="helper", risk_tier="low")
    ToolFactory(agent=helper, name="github", access_levels=["read"])
    child = request_grant(owner, helper, hours=12, parent=parent)
    row = client_as(approver).get(reverse("approval-queue")).content.decode().split(f'id="grant-{child.pk}"')[1]
    row = row.split("</tr>")[0]
    assert f'href="/grants/{parent.pk}/"' in row and "Ticket triage" in row and "depth 2" in row


def test_queue_shows_why_a_person_may_not_decide_and_offers_no_buttons(admin_user, approver, low_agent, frozen_now):
    own = request_grant(admin_user, low_agent)  # an IAM admin may request for any agent
    admins_agent = AgentFactory(owner=approver, risk_tier="low")
    ToolFactory(agent=admins_agent, name="github", access_levels=["read"])
    owned = request_grant(admin_user, admins_agent)
    body = client_as(approver).get(reverse("approval-queue")).content.decode()
    assert f'data-testid="approve-form-{own.pk}"' in body  # someone else's request: approver may decide
    row = body.split(f'id="grant-{owned.pk}"')[1].split("</tr>")[0]
    assert "You own or back up this agent" in row
    assert "approve-form" not in row and 'id="select-' not in row

    body = client_as(admin_user).get(reverse("approval-queue")).content.decode()
    row = body.split(f'id="grant-{own.pk}"')[1].split("</tr>")[0]
    assert "You requested this grant; someone else must decide it (separation of duties)." in row
    assert "approve-form" not in row


def test_auditor_reads_the_queue_without_actions(auditor, pending):
    body = client_as(auditor).get(reverse("approval-queue")).content.decode()
    assert f'id="grant-{pending.pk}"' in body
    assert "only IAM admins approve or deny" in body
    assert "approve-form" not in body and "bulk-approve" not in body


def test_approve_inline_over_htmx_re_renders_the_row(
    approver, second_approver, owner, high_agent, trail, django_capture_on_commit_callbacks, mailoutbox, frozen_now
):
    grant = request_grant(owner, high_agent)
    trail.reset()
    url = reverse("grant-act", args=[grant.pk, "approve"])
    response = client_as(approver).post(url, {"from": "queue", "comment": "Looks right."}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith(f'<tr id="grant-{grant.pk}"')
    assert "Approved (1 of 2 approvals)" in body and "1 of 2" in body
    assert "You already decided this request" not in body  # the outcome is shown once, not twice
    assert "approve-form" not in body
    # The navigation's count of requests waiting for this admin is replaced out of band: this one still
    # waits for a second approver, but no longer for them.
    assert '<template><span class="nav-count" id="nav-pending-count"' in body and 'hx-swap-oob="true">0</span>' in body
    event = trail.only("grant.approve", actor=Actor.person(approver), obj=grant)
    assert event.after["comment"] == "Looks right."

    with django_capture_on_commit_callbacks(execute=True):
        response = client_as(second_approver).post(url, {"from": "queue"}, headers=HTMX)
    assert response.status_code == 200
    assert f"Approved: grant #{grant.pk} is active." in response.content.decode()
    assert "grant-active" in response.content.decode()
    assert 'hidden hx-swap-oob="true">0</span>' in response.content.decode()
    grant.refresh_from_db()
    assert grant.status == "active" and grant.decided_by == second_approver
    assert [m.to for m in mailoutbox] == [["olivia.owner@example.com"]]


def test_approve_may_shorten_the_expiry_in_the_viewers_timezone(approver, pending, trail):
    client = client_as(approver)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.post(
        reverse("grant-act", args=[pending.pk, "approve"]), {"expires_at": "2026-11-15T19:00"}
    )  # CET = UTC+1
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "active" and pending.expires_at == datetime(2026, 11, 15, 18, 0, tzinfo=UTC)
    trail.one("grant.approve")


def test_approve_never_lengthens_and_shows_the_error_under_the_field(approver, pending):
    before = db_state()
    response = client_as(approver).post(
        reverse("grant-act", args=[pending.pk, "approve"]),
        {"from": "queue", "expires_at": "2026-11-17T06:00", "comment": "kept"},
        headers=HTMX,
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "An approver may shorten a grant, never lengthen it" in body
    assert (
        '<details class="actions" open>' in body and 'value="2026-11-17T06:00"' in body and ">kept</textarea>" in body
    )
    assert db_state() == before


def test_a_shorter_expiry_in_a_dst_gap_is_a_form_error(approver, pending):
    client = client_as(approver)
    client.cookies["tz"] = "Europe/Berlin"
    before = db_state()
    response = client.post(reverse("grant-act", args=[pending.pk, "approve"]), {"expires_at": "2027-03-28T02:30"})
    assert response.status_code == 400
    assert "does not exist in Europe/Berlin" in response.content.decode()
    assert db_state() == before


def test_deny_needs_a_reason_shown_in_the_row(approver, pending):
    before = db_state()
    response = client_as(approver).post(
        reverse("grant-act", args=[pending.pk, "deny"]), {"from": "queue", "reason": "  "}, headers=HTMX
    )
    assert response.status_code == 400
    assert "Give the requester a reason for the denial." in response.content.decode()
    assert db_state() == before


def test_deny_inline(approver, pending, trail, django_capture_on_commit_callbacks, mailoutbox):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_as(approver).post(
            reverse("grant-act", args=[pending.pk, "deny"]), {"from": "queue", "reason": "Too broad."}, headers=HTMX
        )
    assert response.status_code == 200
    assert "Denied: grant" in response.content.decode() and "grant-denied" in response.content.decode()
    pending.refresh_from_db()
    assert (pending.status, pending.decision_reason, pending.decided_by) == ("denied", "Too broad.", approver)
    trail.only("grant.deny", actor=Actor.person(approver), obj=pending)
    assert "Too broad." in mailoutbox[0].body


def test_plain_queue_post_redirects_back_to_the_queue(approver, pending):
    response = client_as(approver).post(reverse("grant-act", args=[pending.pk, "approve"]), {"from": "queue"})
    assert response.status_code == 302 and response["Location"] == reverse("approval-queue")
    assert messages_of(response) == [f"Approved: grant #{pending.pk} is active."]


@pytest.mark.parametrize("htmx", [False, True])
def test_forged_posts_are_refused_and_write_nothing(approver, owner, low_agent, high_agent, htmx, frozen_now):
    own = request_grant(approver, low_agent)
    twice = request_grant(owner, high_agent)
    services.grant_approve(actor=Actor.person(approver), grant=twice)
    denied = GrantFactory(agent=low_agent, status="denied", scopes=[("github", "read", "")])
    client = client_as(approver)
    headers = HTMX if htmx else {}
    cases = [
        (own, "approve", 403, "You requested this grant"),
        (own, "deny", 403, "You requested this grant"),
        (twice, "approve", 409, "You already decided this request"),
        (twice, "deny", 409, "You already decided this request"),
        (denied, "approve", 409, "no longer pending"),
    ]
    for grant, action, status, message in cases:
        before = db_state()
        response = client.post(
            reverse("grant-act", args=[grant.pk, action]), {"from": "queue", "reason": "x"}, headers=headers
        )
        assert response.status_code == status, (action, grant)
        assert message in response.content.decode()
        assert db_state() == before
        if htmx:
            assert response.content.decode().lstrip().startswith(f'<tr id="grant-{grant.pk}"')


def test_the_queue_is_ordered_and_paginated_with_filters(approver, owner, low_agent, frozen_now):
    grants = [GrantFactory(agent=low_agent, status="pending", requested_at=T0 - timedelta(minutes=i)) for i in range(3)]
    client = client_as(approver)
    page = client.get(reverse("approval-queue"), {"page_size": "2"}).context["page"]
    assert [g.pk for g in page.object_list] == [grants[2].pk, grants[1].pk]
    assert client.get(reverse("approval-queue"), {"agent": "nobody-here"}).status_code == 400
    response = client.get(reverse("approval-queue"), {"requested_by": "olivia.owner"}, headers=HTMX)
    assert response.status_code == 200 and b"<html" not in response.content
    assert response["HX-Push-Url"] == "/approvals/?requested_by=olivia.owner"


@pytest.mark.parametrize("rows", [2, 20])
def test_queue_query_count_is_constant(approver, owner, low_agent, django_assert_max_num_queries, rows, frozen_now):
    parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    for _ in range(rows):
        agent = AgentFactory(owner=owner, risk_tier="high")
        g = GrantFactory(
            agent=agent, status="pending", parent=parent, on_behalf_of=owner, approvals_required=2,
            scopes=[("github", "read", ""), ("jira", "write", "x*")],
        )  # fmt: skip
        Approval.objects.create(grant=g, approver=IamAdminFactory(), decision="approve", decided_at=T0)
    client = client_as(approver)
    client.get(reverse("approval-queue"))  # warm the session and groups
    with django_assert_max_num_queries(12):
        response = client.get(reverse("approval-queue"), {"page_size": "100"})
    assert len(response.context["page"].object_list) == rows
    assert response.content.decode().count('data-testid="approve-form-') == rows


# --- bulk approval -------------------------------------------------------------------------------


def test_bulk_approve_gives_one_outcome_per_request(approver, owner, low_agent, high_agent, trail, frozen_now):
    low = request_grant(owner, low_agent)
    high = request_grant(owner, high_agent)
    own = request_grant(approver, low_agent, tool="jira")
    trail.reset()
    response = client_as(approver).post(
        reverse("approval-bulk-approve"),
        {"grant": [str(low.pk), str(high.pk), str(own.pk), "999999"], "comment": "Weekly review."},
        headers=HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<div id="results"')
    outcome = lambda pk: body.split(f'data-testid="bulk-outcome-{pk}"')[1].split("</li>")[0]  # noqa: E731
    assert f"Approved: grant #{low.pk} is active." in outcome(low.pk)
    assert "Approved (1 of 2 approvals)" in outcome(high.pk)
    assert "refused" in outcome(own.pk) and "You requested this grant" in outcome(own.pk)
    assert "No grant with this number" in outcome(999999)
    events = [e for e in trail.new() if e.verb == "grant.approve"]
    assert sorted(int(e.object_id) for e in events) == sorted([low.pk, high.pk])
    assert all(e.after["comment"] == "Weekly review." for e in events)
    assert not Approval.objects.filter(grant=own).exists()
    # What remains in the queue: the high one (still needs a second approver) and the approver's own.
    assert [g.pk for g in response.context["page"].object_list] == [high.pk, own.pk]


def test_bulk_approve_without_htmx_redirects_with_a_message_per_request(approver, owner, low_agent, frozen_now):
    low = request_grant(owner, low_agent)
    own = request_grant(approver, low_agent, tool="jira")
    response = client_as(approver).post(reverse("approval-bulk-approve"), {"grant": [low.pk, own.pk]})
    assert response.status_code == 302 and response["Location"] == reverse("approval-queue")
    texts = messages_of(response)
    assert texts[0] == f"#{low.pk}: Approved: grant #{low.pk} is active."
    assert texts[1].startswith(f"#{own.pk}: You requested this grant")


def test_the_owner_never_approves_their_own_renewal_in_bulk(low_agent, frozen_now, trail):
    admin_owner = IamAdminFactory(username="ada.admin-owner")
    agent = AgentFactory(owner=admin_owner, risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read"])
    grant = GrantFactory(agent=agent, scopes=[("github", "read", "")])
    client = client_as(admin_owner)
    client.post(reverse("grant-act", args=[grant.pk, "renew"]), {"length": "1", "unit": "days"})
    renewal = DelegationGrant.objects.get(renewal_of=grant)
    trail.reset()
    before = db_state()
    response = client.post(reverse("approval-bulk-approve"), {"grant": [renewal.pk]}, headers=HTMX)
    assert response.status_code == 200
    assert "You requested this grant" in response.content.decode()
    assert db_state() == before
    renewal.refresh_from_db()
    assert renewal.status == "pending"


@pytest.mark.parametrize("role, status", [("owner", 403), ("auditor", 403), ("other_owner", 403)])
def test_bulk_approve_is_for_iam_admins(people, role, status, pending):
    before = db_state()
    response = client_as(people[role]).post(reverse("approval-bulk-approve"), {"grant": [pending.pk]})
    assert response.status_code == status
    assert db_state() == before


def test_bulk_approve_with_nothing_selected_says_so(approver, pending):
    response = client_as(approver).post(reverse("approval-bulk-approve"), {}, headers=HTMX)
    assert response.status_code == 400
    assert "Select at least one request to approve." in response.content.decode()
    assert client_as(approver).post(reverse("approval-bulk-approve"), {}).status_code == 400


# --- requesting a grant ----------------------------------------------------------------------------


def request_data(low_agent, **overrides):
    github = low_agent.tools.get(name="github")
    jira = low_agent.tools.get(name="jira")
    data = {
        "scopes": [f"{github.pk}:read", f"{jira.pk}:write"],
        f"pattern_{jira.pk}_write": "PROJ-*",
        "purpose": "Triage the backlog.",
        "intents": "triage, reporting , ",
        "justification": "Weekly backlog review.",
        "on_behalf_of": "",
        "parent": "",
        "expires_at": "2026-11-16T07:00",
    }
    data.update(overrides)
    return data


def test_request_form_shows_the_scope_grid_and_the_cap(owner, low_agent, high_agent, frozen_now):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    body = client.get(reverse("grant-create"), {"agent": low_agent.slug}).content.decode()
    github = low_agent.tools.get(name="github")
    assert f'id="scope-{github.pk}-read"' in body and f'id="scope-{github.pk}-write"' in body
    assert f'id="scope-{github.pk}-execute"' not in body  # github offers read and write only
    assert 'data-testid="scope-jira-execute"' in body
    assert "Cap for a low-tier agent: <strong>30 d</strong>" in body
    assert 'value="2026-11-16T07:00"' in body  # 24 h ahead, in Berlin time
    body = client.get(reverse("grant-create"), {"agent": high_agent.slug}).content.decode()
    assert "Cap for a high-tier agent: <strong>24 h</strong>" in body
    assert "Needs 2 approvals" in body


def test_request_form_creates_the_request_read_in_the_viewers_timezone(owner, low_agent, trail, frozen_now):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.post(reverse("grant-create") + f"?agent={low_agent.slug}", request_data(low_agent))
    grant = DelegationGrant.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("grant-detail", args=[grant.pk])
    assert grant.expires_at == datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
    assert (grant.status, grant.requested_by, grant.intents) == ("pending", owner, ["reporting", "triage"])
    assert sorted(str(s) for s in grant.scopes.all()) == ["github:read", "jira:write on PROJ-*"]
    event = trail.only("grant.request", actor=Actor.person(owner), obj=grant)
    assert event.after["scopes"] == ["github:read", "jira:write on PROJ-*"]
    assert messages_of(response)[0].startswith(f"Grant #{grant.pk} requested for Ticket triage; it needs 1 approval")


def test_request_over_the_cap_is_refused_not_trimmed(owner, high_agent, frozen_now):
    github = high_agent.tools.get(name="github")
    data = {"scopes": [f"{github.pk}:read"], "purpose": "p", "justification": "j", "expires_at": "2026-11-16T06:01"}
    response = client_as(owner).post(reverse("grant-create") + f"?agent={high_agent.slug}", data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "is longer than the 1 d allowed for a high-tier agent" in errors["expires_at"][0]
    assert not DelegationGrant.objects.exists() and not AuditEvent.objects.exists()


def test_request_without_scopes_or_expiry_shows_the_field_errors(owner, low_agent, frozen_now):
    response = client_as(owner).post(
        reverse("grant-create") + f"?agent={low_agent.slug}",
        request_data(low_agent, scopes=[], expires_at=""),
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "Every grant ends: give its expiry." in errors["expires_at"]
    assert not DelegationGrant.objects.exists()
    response = client_as(owner).post(
        reverse("grant-create") + f"?agent={low_agent.slug}", request_data(low_agent, scopes=[])
    )
    assert response.context["form"].errors["scopes"] == ["Ask for at least one scope (a tool and an access level)."]
    assert "Ask for at least one scope" in response.content.decode()
    assert not DelegationGrant.objects.exists() and not AuditEvent.objects.exists()


def test_request_form_marks_purpose_and_justification_required(owner, low_agent, frozen_now):
    body = client_as(owner).get(reverse("grant-create"), {"agent": low_agent.slug}).content.decode()
    assert re.search(r'<label for="id_purpose">Purpose</label>\s*<input[^>]* required', body)
    assert re.search(r'<label for="id_justification">Justification</label>\s*<textarea[^>]* required', body)
    assert "Intents <span" in body and "(optional)" in body  # intents stays optional


def test_request_without_scopes_purpose_or_justification_shows_every_error_at_once(owner, low_agent, frozen_now):
    data = request_data(low_agent, scopes=[], purpose="", justification=" ", expires_at="2026-11-15T05:00")
    response = client_as(owner).post(reverse("grant-create") + f"?agent={low_agent.slug}", data)
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["scopes"] == ["Ask for at least one scope (a tool and an access level)."]
    assert errors["purpose"] == ["Say what the grant is for."]
    assert errors["justification"] == ["Justify the request; approvers read it."]
    assert errors["expires_at"] == ["The expiry is already past."]
    body = response.content.decode()
    assert "Ask for at least one scope" in body and "The expiry is already past." in body
    assert not DelegationGrant.objects.exists() and not AuditEvent.objects.exists()


def test_a_bad_resource_pattern_is_shown_and_what_was_typed_is_kept(owner, low_agent, frozen_now):
    jira = low_agent.tools.get(name="jira")
    response = client_as(owner).post(
        reverse("grant-create") + f"?agent={low_agent.slug}",
        request_data(low_agent, **{f"pattern_{jira.pk}_write": "a*b"}),
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "A resource pattern may hold one &#x27;*&#x27;, and only at its end" in body
    assert 'value="a*b"' in body and f'value="{jira.pk}:write" id="scope-{jira.pk}-write"' in body
    assert 'value="Triage the backlog."' in body
    assert not DelegationGrant.objects.exists()


@pytest.mark.parametrize(
    "local, message",
    [
        ("2027-03-28T02:30", "2027-03-28 02:30 does not exist in Europe/Berlin"),  # clocks go forward
        ("2026-10-25T02:30", "2026-10-25 02:30 happens twice in Europe/Berlin"),  # clocks go back
    ],
)
def test_an_expiry_in_a_dst_gap_or_overlap_is_a_clear_form_error(owner, low_agent, frozen_now, local, message):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.post(
        reverse("grant-create") + f"?agent={low_agent.slug}", request_data(low_agent, expires_at=local)
    )
    assert response.status_code == 400
    assert message in response.context["form"].errors["expires_at"][0]
    assert message in response.content.decode()
    assert not DelegationGrant.objects.exists() and not AuditEvent.objects.exists()


def test_request_for_an_agent_that_is_not_active_is_refused(owner, low_agent, frozen_now):
    low_agent.state = "suspended"
    low_agent.save()
    page = client_as(owner).get(reverse("grant-create"), {"agent": low_agent.slug})
    assert page.status_code == 200 and b"only an active agent may be granted scopes" in page.content
    assert b"grant-request-form" not in page.content
    response = client_as(owner).post(reverse("grant-create") + f"?agent={low_agent.slug}", request_data(low_agent))
    assert response.status_code == 409
    assert not DelegationGrant.objects.exists()


def test_request_with_a_parent_hands_on_part_of_it(owner, low_agent, trail, frozen_now):
    parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    helper = AgentFactory(owner=owner, name="Helper", slug="helper", risk_tier="low")
    tool = ToolFactory(agent=helper, name="github", access_levels=["read", "write"])
    page = client_as(owner).get(reverse("grant-create"), {"agent": "helper", "parent": parent.pk})
    assert f'<option value="{parent.pk}" selected>#{parent.pk} to Ticket triage (github:read)' in page.content.decode()
    url = reverse("grant-create") + "?agent=helper"
    base = {"purpose": "p", "justification": "j", "parent": str(parent.pk), "expires_at": "2026-11-15T18:00"}
    response = client_as(owner).post(url, {**base, "scopes": [f"{tool.pk}:write"]})
    assert response.status_code == 400
    assert "github:write is not within the parent grant's scopes" in html.unescape(response.content.decode())
    response = client_as(owner).post(url, {**base, "scopes": [f"{tool.pk}:read"]})
    child = DelegationGrant.objects.get(parent=parent)
    assert response.status_code == 302 and child.depth == 2
    trail.one("grant.request", obj=child)


def test_the_agent_picker_lists_only_agents_the_viewer_may_request_for(owner, other_owner, low_agent, frozen_now):
    AgentFactory(owner=other_owner, name="Not hers")
    AgentFactory(owner=owner, name="Still proposed", state="proposed")
    body = client_as(owner).get(reverse("grant-create"), {"parent": "7"}).content.decode()
    assert "Ticket triage" in body and "Not hers" not in body and "Still proposed" not in body
    assert '<input type="hidden" name="parent" value="7">' in body


# --- a grant's page and its actions -----------------------------------------------------------------


def test_detail_shows_state_chain_children_approvals_and_history(approver, owner, low_agent, frozen_now):
    root = GrantFactory(agent=low_agent, scopes=[("github", "read", ""), ("jira", "read", "")])
    helper = AgentFactory(owner=owner, name="Helper", slug="helper", risk_tier="low")
    ToolFactory(agent=helper, name="github", access_levels=["read"])
    middle = request_grant(owner, helper, hours=12, parent=root)
    services.grant_approve(actor=Actor.person(approver), grant=middle, comment="OK for the sprint.")
    third = AgentFactory(owner=owner, name="Third", slug="third", risk_tier="low")
    ToolFactory(agent=third, name="github", access_levels=["read"])
    child = request_grant(owner, third, hours=6, parent=middle)
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.get(reverse("grant-detail", args=[middle.pk]))
    body = response.content.decode()
    assert '<span class="badge grant-active" data-testid="grant-state-' in body
    chain = body.split('id="grant-chain"')[1].split("</section>")[0]
    assert chain.index(f"#{root.pk}</a>") < chain.index(f"#{middle.pk} (this grant)")
    assert f'href="/grants/{child.pk}/"' in chain and "Third" in chain
    approvals = body.split('id="grant-approvals"')[1].split("</section>")[0]
    assert "amara.approver" in approvals and "OK for the sprint." in approvals
    history = body.split('id="grant-history"')[1].split("</section>")[0]
    assert history.index("grant.request") < history.index("grant.approve")
    assert "2026-11-15 19:00 CET" in body  # expires at 18:00Z, shown in Berlin time


def test_detail_offers_only_the_actions_the_viewer_may_take(people, pending, active):
    def testids(role, grant):
        body = client_as(people[role]).get(reverse("grant-detail", args=[grant.pk])).content.decode()
        return {t for t in ("approve-form", "grant-cancel-form", "grant-revoke-form", "grant-renew-form") if t in body}

    assert testids("owner", pending) == {"grant-cancel-form"}
    assert testids("admin", pending) == {"approve-form", "grant-cancel-form"}
    assert testids("auditor", pending) == set()
    assert testids("owner", active) == {"grant-revoke-form", "grant-renew-form"}
    assert testids("auditor", active) == set()


def _form_tag(body: str, testid: str) -> str:
    """The opening tag of the form marked ``data-testid="<testid>"``."""
    return re.search(r'<form[^>]*data-testid="' + re.escape(testid) + r'"[^>]*>', body).group(0)


def test_revoke_and_deny_each_ask_for_confirmation_once(people, pending, active, approver):
    body = client_as(people["owner"]).get(reverse("grant-detail", args=[active.pk])).content.decode()
    revoke = _form_tag(body, "grant-revoke-form")
    assert "data-confirm" not in revoke and revoke.count("hx-confirm=") == 1
    assert f'hx-confirm="Revoke grant #{active.pk}? It stops authorising at once' in revoke
    for url in (reverse("grant-detail", args=[pending.pk]), reverse("approval-queue")):
        body = client_as(approver).get(url).content.decode()
        deny = _form_tag(body, f"deny-form-{pending.pk}")
        assert "data-confirm" not in deny and deny.count("hx-confirm=") == 1
        assert f'hx-confirm="Deny grant #{pending.pk} for Ticket triage? This is final' in deny


def test_revoke_cascades_and_says_so(owner, low_agent, trail, frozen_now):
    parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    helper = AgentFactory(owner=owner, risk_tier="low")
    child = GrantFactory(agent=helper, parent=parent, scopes=[("github", "read", "")])
    response = client_as(owner).post(
        reverse("grant-act", args=[parent.pk, "revoke"]), {"reason": "Incident 42."}, headers=HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="grant-body">')
    assert f"Grant #{parent.pk} revoked. With it, 1 grant down its chain ended." in body
    assert [e.object_id for e in trail.new() if e.verb == "grant.revoke"] == [str(parent.pk), str(child.pk)]
    child.refresh_from_db()
    assert child.status == "revoked" and child.end_reason == "Incident 42."


def test_revoke_needs_a_reason(owner, active):
    before = db_state()
    response = client_as(owner).post(reverse("grant-act", args=[active.pk, "revoke"]), {"reason": ""}, headers=HTMX)
    assert response.status_code == 400
    assert "Give a reason; it is kept in the audit trail." in response.content.decode()
    assert db_state() == before
    response = client_as(owner).post(reverse("grant-act", args=[active.pk, "revoke"]), {"reason": ""})
    assert response.status_code == 400 and b"<html" in response.content  # the page again, with the error
    assert b"Give a reason; it is kept in the audit trail." in response.content


def test_revoking_an_expired_grant_is_a_conflict(owner, active, frozen_now):
    frozen_now.move_to(T0 + timedelta(days=2))
    services.grants_expire_due(now=T0 + timedelta(days=2))
    before = db_state()
    response = client_as(owner).post(reverse("grant-act", args=[active.pk, "revoke"]), {"reason": "late"}, headers=HTMX)
    assert response.status_code == 409
    assert "Only an active grant can be revoked; this one is expired." in response.content.decode()
    assert db_state() == before


def test_cancel_a_pending_request(owner, pending, trail):
    response = client_as(owner).post(reverse("grant-act", args=[pending.pk, "cancel"]), {"reason": ""})
    assert response.status_code == 302
    pending.refresh_from_db()
    assert pending.status == "cancelled" and pending.end_reason == "Cancelled."
    trail.only("grant.cancel", obj=pending)


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({}, "length", "Give the renewal's length (a duration) or its expiry, exactly one; there is no default."),
        (
            {"length": "2", "unit": "days", "expires_at": "2026-11-17T06:00"},
            "length",
            "Give the renewal's length (a duration) or its expiry, exactly one",
        ),
        ({"length": "31", "unit": "days"}, "expires_at", "is longer than the 30 d allowed for a low-tier agent"),
        ({"length": "0"}, "length", "Ensure this value is greater than or equal to 1."),
    ],
)
def test_renew_refusals_show_under_their_fields(owner, active, data, field, message):
    before = db_state()
    response = client_as(owner).post(reverse("grant-act", args=[active.pk, "renew"]), data, headers=HTMX)
    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())
    assert db_state() == before


def test_renew_asks_again_from_the_end_of_the_grant(owner, active, trail):
    response = client_as(owner).post(
        reverse("grant-act", args=[active.pk, "renew"]),
        {"length": "7", "unit": "days", "justification": "Next sprint."},
    )
    renewal = DelegationGrant.objects.get(renewal_of=active)
    assert response.status_code == 302 and response["Location"] == reverse("grant-detail", args=[renewal.pk])
    assert (renewal.status, renewal.starts_at, renewal.expires_at) == (
        "pending",
        active.expires_at,
        active.expires_at + timedelta(days=7),
    )
    assert renewal.justification == "Next sprint."
    trail.only("grant.renew", obj=renewal)


def test_approving_a_renewal_that_starts_later_says_it_has_not_started(owner, approver, active, frozen_now):
    client_as(owner).post(reverse("grant-act", args=[active.pk, "renew"]), {"length": "2", "unit": "days"})
    renewal = DelegationGrant.objects.get(renewal_of=active)
    client = client_as(approver)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.post(reverse("grant-act", args=[renewal.pk, "approve"]), {"from": "queue"})
    renewal.refresh_from_db()
    assert renewal.status == "active" and renewal.starts_at == T0 + timedelta(days=1)
    assert messages_of(response) == [
        f"Approved: grant #{renewal.pk} starts at 2026-11-16 07:00 CET (approved, not started); "
        "it does not authorise before then."
    ]


def test_decisions_from_the_grant_page_re_render_its_body(approver, pending):
    response = client_as(approver).post(
        reverse("grant-act", args=[pending.pk, "approve"]), {"from": "detail"}, headers=HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="grant-body">') and "<html" not in body
    assert f"Approved: grant #{pending.pk} is active." in body
    assert "grant.approve" in body.split('id="grant-history"')[1]
    assert 'hidden hx-swap-oob="true">0</span>' in body  # the navigation's count, out of band


# --- lists -----------------------------------------------------------------------------------------


def test_list_filters(admin_user, owner, low_agent, high_agent, frozen_now):
    active = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    pending = GrantFactory(
        agent=high_agent, status="pending", expires_at=T0 + timedelta(hours=5), scopes=[("github", "write", "")]
    )
    scheduled = GrantFactory(agent=low_agent, starts_at=T0 + timedelta(hours=1), scopes=[("jira", "read", "")])
    by_admin = GrantFactory(agent=low_agent, requested_by=admin_user, status="denied")
    client = client_as(admin_user)

    def listed(**params):
        response = client.get(reverse("grant-list"), params)
        assert response.status_code == 200, response.content
        return {g.pk for g in response.context["page"].object_list}

    assert listed() == {active.pk, pending.pk, scheduled.pk, by_admin.pk}
    assert listed(status="active") == {active.pk}
    assert listed(status="scheduled") == {scheduled.pk}
    assert listed(agent="deploy-bot") == {pending.pk}
    assert listed(tool="jira") == {scheduled.pk}
    assert listed(requested_by="iris.admin") == {by_admin.pk}
    assert listed(expires_before="2026-11-15T12:00") == {pending.pk}
    assert listed(expires_after="2026-11-15T12:00", status="pending") == set()
    client.cookies["tz"] = "Asia/Tokyo"  # UTC+9: 15:00 local is 06:00Z, before every expiry
    assert listed(expires_before="2026-11-15T15:00") == set()
    assert listed(expires_before="2026-11-15T15:00:00Z") == {pending.pk}  # with an offset: as given


def test_list_refuses_unknown_filters_and_dst_gaps(admin_user, active):
    client = client_as(admin_user)
    response = client.get(reverse("grant-list"), {"expiry": "2026-11-15T00:00Z"})
    assert response.status_code == 400 and b"Unknown filter" in response.content
    client.cookies["tz"] = "Europe/Berlin"
    response = client.get(reverse("grant-list"), {"expires_before": "2027-03-28T02:30"})
    assert response.status_code == 400
    assert "expires_before: 2027-03-28T02:30 does not exist in Europe/Berlin" in response.content.decode()
    assert response.context["page"] is None


def test_my_grants(owner, other_owner, admin_user, low_agent, frozen_now):
    theirs = AgentFactory(owner=other_owner, risk_tier="low")
    ToolFactory(agent=theirs, name="github", access_levels=["read"])
    of_my_agent = GrantFactory(agent=low_agent, requested_by=admin_user)
    i_asked = GrantFactory(agent=theirs, requested_by=owner)
    GrantFactory(agent=theirs)  # neither mine nor of my agent
    for url in (reverse("grant-mine"), reverse("grant-list") + "?mine=1"):
        page = client_as(owner).get(url).context["page"]
        assert {g.pk for g in page.object_list} == {of_my_agent.pk, i_asked.pk}
    assert {g.pk for g in client_as(admin_user).get(reverse("grant-mine")).context["page"].object_list} == {
        of_my_agent.pk
    }


def test_the_list_shows_time_left_only_for_grants_that_authorise_or_will(owner, low_agent, frozen_now):
    active = GrantFactory(agent=low_agent, starts_at=T0 - timedelta(hours=2))  # ends at T0 + 22 h
    scheduled = GrantFactory(agent=low_agent, starts_at=T0 + timedelta(hours=1), expires_at=T0 + timedelta(hours=5))
    pending = GrantFactory(agent=low_agent, status="pending", expires_at=T0 + timedelta(hours=8))
    ended = {
        status: GrantFactory(agent=low_agent, status=status, ended_at=T0 if status == "revoked" else None)
        for status in ("revoked", "denied", "cancelled")
    }
    ended["expired"] = GrantFactory(agent=low_agent, starts_at=T0 - timedelta(days=2))
    body = client_as(owner).get(reverse("grant-list")).content.decode()
    assert f'data-testid="time-left-{active.pk}">22 h left</div>' in body
    assert f'data-testid="length-{scheduled.pk}">for 4 h</div>' in body
    assert f'data-testid="length-{pending.pk}">for 8 h</div>' in body
    for grant in ended.values():
        row = body.split(f'data-testid="grant-row-{grant.pk}"')[1].split("</tr>")[0]
        assert " left</div>" not in row and "for 24 h" not in row and "24 h</div>" not in row


def test_list_htmx_gets_the_results_partial(admin_user, active):
    response = client_as(admin_user).get(reverse("grant-list"), {"status": "active"}, headers=HTMX)
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<div id="results"')
    assert response["HX-Push-Url"] == "/grants/?status=active"


@pytest.mark.parametrize("rows", [2, 30])
def test_list_query_count_is_constant(owner, low_agent, django_assert_max_num_queries, rows, frozen_now):
    for i in range(rows):
        parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")]) if i % 2 else None
        g = GrantFactory(agent=low_agent, parent=parent, on_behalf_of=owner, scopes=[("jira", "read", "")])
        Approval.objects.create(grant=g, approver=IamAdminFactory(), decision="approve", decided_at=T0)
    client = client_as(owner)
    client.get(reverse("grant-list"))  # warm the session and groups
    with django_assert_max_num_queries(10):
        response = client.get(reverse("grant-list"), {"page_size": "100"})
    assert response.context["page"].paginator.count == rows + rows // 2


# --- an agent's grants ---------------------------------------------------------------------------------


def test_agent_page_loads_its_grants_with_a_plain_link_fallback(owner, low_agent, active):
    body = client_as(owner).get(reverse("agent-detail", args=[low_agent.slug])).content.decode()
    section = body.split('id="grants"')[1].split("</section>")[0]
    url = reverse("agent-grants", args=[low_agent.slug])
    assert f'hx-get="{url}"' in section and 'hx-trigger="load"' in section and f'href="{url}"' in section


def test_agent_grants_partial_and_page(owner, low_agent, active, pending):
    client = client_as(owner)
    response = client.get(reverse("agent-grants", args=[low_agent.slug]), headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="grants"') and "<html" not in body
    assert f'href="/grants/{active.pk}/"' in body and f'href="/grants/{pending.pk}/"' in body
    assert 'data-testid="agent-request-grant"' in body
    page = client.get(reverse("agent-grants", args=[low_agent.slug]))
    assert b"<html" in page.content and b"Grants of Ticket triage" in page.content


def test_auditor_sees_an_agents_grants_without_request_link(auditor, low_agent, active):
    body = client_as(auditor).get(reverse("agent-grants", args=[low_agent.slug]), headers=HTMX).content.decode()
    assert f'href="/grants/{active.pk}/"' in body and "agent-request-grant" not in body


# --- dashboard and navigation ------------------------------------------------------------------------


def test_dashboard_lists_grants_expiring_within_seven_days(owner, other_owner, low_agent, frozen_now):
    soon = GrantFactory(agent=low_agent, expires_at=T0 + timedelta(days=2), scopes=[("github", "read", "")])
    GrantFactory(agent=low_agent, expires_at=T0 + timedelta(days=8))  # later
    GrantFactory(agent=low_agent, status="pending", expires_at=T0 + timedelta(days=1))  # not active
    GrantFactory(agent=AgentFactory(owner=other_owner), expires_at=T0 + timedelta(days=1))  # not hers
    response = client_as(owner).get(reverse("dashboard"))
    assert [g.pk for g in response.context["expiring_rows"]] == [soon.pk]
    panel = response.content.decode().split('id="grants-expiring"')[1].split("</section>")[0]
    assert f'href="/grants/{soon.pk}/"' in panel and "github:read" in panel and "2\xa0days" in panel


def test_dashboard_query_count_does_not_grow_with_the_grants(admin_user, owner, frozen_now):
    client = client_as(admin_user)

    def queries_for(rows):
        for i in range(rows):
            agent = AgentFactory(owner=owner)
            GrantFactory(agent=agent, expires_at=T0 + timedelta(hours=i + 1), scopes=[("github", "read", "")])
        client.get(reverse("dashboard"))  # warm the session and groups
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("dashboard"))
        return len(captured), response

    few, response = queries_for(1)
    assert [len(response.context["expiring_rows"]), response.context["expiring_count"]] == [1, 1]
    many, response = queries_for(11)
    assert [len(response.context["expiring_rows"]), response.context["expiring_count"]] == [8, 12]
    assert many <= few + 1  # the count of what is not shown, once there are more than 8


def test_navigation_counts_pending_requests_for_iam_admins(people, pending):
    admin_nav = client_as(people["admin"]).get(reverse("grant-list")).content.decode()
    assert 'data-testid="nav-pending-count"' in admin_nav and ">1</span>" in admin_nav
    owner_nav = client_as(people["owner"]).get(reverse("grant-list")).content.decode()
    owner_nav = owner_nav.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert ">Grants</a>" in owner_nav and "Approvals" not in owner_nav


def test_the_navigation_count_leaves_out_requests_the_admin_may_not_decide(owner, approver, low_agent):
    """Their own request, their own agent's, one acting for them, one they already decided: not theirs to do."""
    mine = AgentFactory(owner=approver, slug="approvers-bot")
    ToolFactory(agent=mine, name="github", access_levels=["read"])
    GrantFactory(agent=low_agent, requested_by=approver, status="pending")
    GrantFactory(agent=mine, requested_by=owner, status="pending")
    GrantFactory(agent=low_agent, requested_by=owner, on_behalf_of=approver, status="pending")
    decided = GrantFactory(agent=low_agent, requested_by=owner, status="pending", approvals_required=2)
    Approval.objects.create(grant=decided, approver=approver, decision="approve", decided_at=T0)
    waiting = GrantFactory(agent=low_agent, requested_by=owner, status="pending")
    nav = client_as(approver).get(reverse("grant-list")).content.decode()
    assert 'data-testid="nav-pending-count" title="1 request waiting for your decision">1</span>' in nav
    waiting.delete()
    nav = client_as(approver).get(reverse("grant-list")).content.decode()
    assert 'title="0 requests waiting for your decision" hidden>0</span>' in nav


# --- policy settings -------------------------------------------------------------------------------------


def policy_data(**overrides):
    from governance.services import POLICY_FIELDS

    policy = Policy.current()
    data = {name: str(getattr(policy, name)) for name in POLICY_FIELDS}
    data.update({k: str(v) for k, v in overrides.items()})
    return data


def test_policy_page_shows_every_setting(admin_user):
    from governance.services import POLICY_FIELDS

    body = client_as(admin_user).get(reverse("policy-settings")).content.decode()
    for name in POLICY_FIELDS:
        assert f'name="{name}"' in body
    assert 'data-testid="policy-save"' in body


def test_policy_update_is_audited(admin_user, trail):
    response = client_as(admin_user).post(
        reverse("policy-settings"), policy_data(grant_max_hours_high=12, unused_after_days=60)
    )
    assert response.status_code == 302 and response["Location"] == reverse("policy-settings")
    policy = Policy.current()
    assert (policy.grant_max_hours_high, policy.unused_after_days) == (12, 60)
    event = trail.only("policy.update", actor=Actor.person(admin_user))
    assert event.before == {"unused_after_days": 90, "grant_max_hours_high": 24}
    assert event.after == {"unused_after_days": 60, "grant_max_hours_high": 12}


def test_policy_bad_value_is_shown_under_its_field_and_changes_nothing(admin_user, trail):
    Policy.current()
    response = client_as(admin_user).post(reverse("policy-settings"), policy_data(grant_approvals_elevated=1))
    assert response.status_code == 400
    assert response.context["form"].errors["grant_approvals_elevated"] == [
        "Ensure this value is greater than or equal to 2."
    ]
    assert Policy.current().grant_approvals_elevated == 2
    assert trail.new() == []
    response = client_as(admin_user).post(reverse("policy-settings"), policy_data(grant_max_depth="three"))
    assert response.status_code == 400 and "grant_max_depth" in response.context["form"].errors


def test_policy_unchanged_writes_nothing(admin_user, trail):
    response = client_as(admin_user).post(reverse("policy-settings"), policy_data())
    assert response.status_code == 302
    assert messages_of(response) == ["Nothing was changed: the values are the same as before."]
    assert trail.new() == []


def test_policy_is_read_only_for_auditors(auditor, trail):
    body = client_as(auditor).get(reverse("policy-settings")).content.decode()
    assert 'name="grant_max_hours_high"' in body and "disabled" in body and "policy-save" not in body
    response = client_as(auditor).post(reverse("policy-settings"), policy_data(grant_max_hours_high=1))
    assert response.status_code == 403
    assert Policy.current().grant_max_hours_high == 24 and trail.new() == []


def test_a_changed_cap_shows_on_the_request_form(admin_user, owner, high_agent, frozen_now):
    client_as(admin_user).post(reverse("policy-settings"), policy_data(grant_max_hours_high=12))
    body = client_as(owner).get(reverse("grant-create"), {"agent": high_agent.slug}).content.decode()
    assert "Cap for a high-tier agent: <strong>12 h</strong>" in body
