"""Attestation and campaign pages: the permission matrix of every page and form, the owner's inbox
(overdue first), the checklist form (plain and htmx), campaign list, launch form and detail, and query counts."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance import attestations as att
from governance.audit import Actor
from governance.models import Attestation, AuditEvent, Campaign
from tests.factories import T0, AgentFactory, GrantFactory, OwnerFactory, TeamFactory
from tests.support import client_as, messages_of

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

TODAY = date(2026, 11, 15)
DAY = timedelta(days=1)
ANSWERS = {
    "still_needed": "yes",
    "owner_correct": "yes",
    "grants_appropriate": "yes",
    "credentials_rotated": "yes",
    "outcome": "keep",
}
ROLES = ("anonymous", "owner", "other_owner", "admin", "auditor")


def open_attestation(agent, due_on=TODAY + 3 * DAY, **kwargs):
    return Attestation.objects.create(agent=agent, due_on=due_on, opened_at=T0, **kwargs)


@pytest.fixture
def world(owner, other_owner, people):
    agent = AgentFactory(owner=owner, name="Invoice agent", slug="invoice-agent", risk_tier="high")
    return {"people": people, "agent": agent, "attestation": open_attestation(agent)}


def _status(role, world, method, url, data=None):
    client = client_as(world["people"][role])
    response = client.post(url, data or {}) if method == "post" else client.get(url)
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
        return 302
    return response.status_code


PAGES = [
    ("inbox", "get", lambda w: reverse("attestation-inbox"), None, dict.fromkeys(ROLES[1:], 200)),
    ("all", "get", lambda w: reverse("attestation-list"), None, dict.fromkeys(ROLES[1:], 200)),
    (
        "detail",
        "get",
        lambda w: reverse("attestation-detail", args=[w["attestation"].pk]),
        None,
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 200},
    ),
    (
        "attest",
        "post",
        lambda w: reverse("attestation-detail", args=[w["attestation"].pk]),
        ANSWERS,
        {"owner": 302, "other_owner": 404, "admin": 403, "auditor": 403},
    ),
    (
        "campaigns",
        "get",
        lambda w: reverse("campaign-list"),
        None,
        {"owner": 403, "other_owner": 403, "admin": 200, "auditor": 200},
    ),
    (
        "launch",
        "post",
        lambda w: reverse("campaign-list"),
        {"name": "Q4", "scope": "all", "deadline": "2026-12-15"},
        {"owner": 403, "other_owner": 403, "admin": 302, "auditor": 403},
    ),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES, ids=[p[0] for p in PAGES])
def test_permission_matrix(page, role, world):
    name, method, url, data, expected = page
    before = (list(Attestation.objects.values()), Campaign.objects.count(), AuditEvent.objects.count())
    status = _status(role, world, method, url(world), data)
    assert status == expected.get(role, 302), (name, role, status)
    if status >= 400 or role == "anonymous" or method == "get":
        assert (list(Attestation.objects.values()), Campaign.objects.count(), AuditEvent.objects.count()) == before


@pytest.mark.parametrize("role", ROLES)
def test_campaign_detail_permissions(role, world, admin_actor):
    campaign = att.campaign_launch(actor=admin_actor, name="Q4", scope_kind="all", deadline=TODAY + 30 * DAY)
    expected = {"owner": 403, "other_owner": 403, "admin": 200, "auditor": 200}
    assert _status(role, world, "get", reverse("campaign-detail", args=[campaign.pk])) == expected.get(role, 302)


def test_an_unknown_campaign_is_404(admin_user):
    assert client_as(admin_user).get(reverse("campaign-detail", args=[999])).status_code == 404


# --- the inbox ---------------------------------------------------------------------------------


def test_the_inbox_lists_my_open_attestations_most_overdue_first(owner, world, other_owner):
    backed = AgentFactory(owner=other_owner, backup_owner=owner, name="Backed agent")
    late = AgentFactory(owner=owner, name="Late agent")
    open_attestation(backed, due_on=TODAY + 10 * DAY)
    open_attestation(late, due_on=TODAY - 2 * DAY)
    done = AgentFactory(owner=owner, name="Done agent")
    open_attestation(done, status="attested", attested_at=T0, attested_by=owner, outcome="keep")
    open_attestation(AgentFactory(owner=other_owner, name="Not mine"))
    body = client_as(owner).get(reverse("attestation-inbox")).content.decode()
    order = [body.index(n) for n in ("Late agent", "Invoice agent", "Backed agent")]
    assert order == sorted(order)
    assert "Overdue 2 days" in body and "in 3 days" in body and "(backup owner)" in body
    assert "Done agent" not in body and "Not mine" not in body


def test_an_iam_admin_who_owns_nothing_has_an_empty_inbox(admin_user, world):
    body = client_as(admin_user).get(reverse("attestation-inbox")).content.decode()
    assert "Nothing to attest" in body and "Invoice agent" not in body


def test_the_inbox_refuses_unknown_parameters(owner, world):
    response = client_as(owner).get(reverse("attestation-inbox") + "?status=open")
    assert response.status_code == 400
    assert "Unknown parameter" in response.content.decode()


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", ["attestation-inbox", "attestation-list"])
def test_list_pages_run_a_constant_number_of_queries(url, owner, world):
    client = client_as(owner)
    few = _queries(client, reverse(url))
    for _ in range(6):
        open_attestation(AgentFactory(owner=owner, backup_owner=OwnerFactory(), team=TeamFactory()))
    assert _queries(client, reverse(url)) == few


def test_the_list_page_filters_strictly(admin_user, world):
    client = client_as(admin_user)
    Attestation.objects.filter(pk=world["attestation"].pk).update(due_on=TODAY - DAY)
    assert "Invoice agent" in client.get(reverse("attestation-list") + "?overdue=true").content.decode()
    assert "Invoice agent" not in client.get(reverse("attestation-list") + "?overdue=false").content.decode()
    assert client.get(reverse("attestation-list") + "?colour=red").status_code == 400


# --- the checklist form --------------------------------------------------------------------------


def test_the_owner_answers_the_checklist_and_is_sent_back_to_the_inbox(owner, world):
    client = client_as(owner)
    url = reverse("attestation-detail", args=[world["attestation"].pk])
    page = client.get(url).content.decode()
    assert "Is the agent still needed?" in page and "Submit attestation" in page
    response = client.post(url, {**ANSWERS, "comment": "Reviewed."}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("attestation-inbox")
    assert "Attested Invoice agent: keep as is." in messages_of(response)
    world["attestation"].refresh_from_db()
    assert (world["attestation"].status, world["attestation"].comment) == ("attested", "Reviewed.")
    world["agent"].refresh_from_db()
    assert world["agent"].next_attestation_due == TODAY + 90 * DAY
    answered = client.get(url).content.decode()
    assert "Answered" in answered and "Submit attestation" not in answered
    assert client.post(url, ANSWERS).status_code == 409


def test_the_form_offers_the_agents_active_grants_for_reduce(owner, world):
    grant = GrantFactory(agent=world["agent"], purpose="Read invoices")
    GrantFactory(agent=world["agent"], status="revoked", purpose="Old access")
    url = reverse("attestation-detail", args=[world["attestation"].pk])
    page = client_as(owner).get(url).content.decode()
    assert f"#{grant.pk} Read invoices" in page and "Old access" not in page
    response = client_as(owner).post(
        url, {**ANSWERS, "grants_appropriate": "no", "outcome": "reduce", "revoke_grants": [str(grant.pk)]}
    )
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.status == "revoked"


def test_the_grants_to_revoke_show_their_expiry_in_the_viewers_timezone(owner, world):
    grant = GrantFactory(agent=world["agent"], purpose="Read invoices", scopes=[("billing", "read", "")])
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    page = client.get(reverse("attestation-detail", args=[world["attestation"].pk])).content.decode()
    # Expires at T0 + 1 day = 2026-11-16 06:00 UTC, 07:00 in Berlin (CET).
    assert f"#{grant.pk} Read invoices (billing:read) until 2026-11-16 07:00 CET" in page
    assert "06:00 UTC" not in page


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"still_needed": ""}, "This field is required."),
        ({"still_needed": "no"}, "An agent that is no longer needed is decommissioned"),
        ({"credentials_rotated": "no"}, "Say when its credentials will be rotated"),
        ({"outcome": "reduce"}, "Choose at least one of the agent&#x27;s active grants"),
    ],
)
def test_invalid_answers_come_back_with_field_messages(changes, message, owner, world):
    url = reverse("attestation-detail", args=[world["attestation"].pk])
    response = client_as(owner).post(url, {**ANSWERS, **changes})
    assert response.status_code == 400
    assert message in response.content.decode()
    world["attestation"].refresh_from_db()
    assert world["attestation"].status == "open"


def test_htmx_gets_the_panel_back_or_a_client_redirect(owner, world):
    url = reverse("attestation-detail", args=[world["attestation"].pk])
    client = client_as(owner)
    bad = client.post(url, {**ANSWERS, "outcome": ""}, HTTP_HX_REQUEST="true")
    assert bad.status_code == 400
    body = bad.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="attest-panel">') and "<html" not in body
    good = client.post(url, ANSWERS, HTTP_HX_REQUEST="true")
    assert good.status_code == 200 and good["HX-Redirect"] == reverse("attestation-inbox")


def test_a_suspended_agent_says_attesting_does_not_reactivate_it(owner, world):
    Attestation.objects.filter(pk=world["attestation"].pk).update(due_on=TODAY - 20 * DAY)
    att.attestations_enforce_due(now=T0)
    page = client_as(owner).get(reverse("attestation-detail", args=[world["attestation"].pk])).content.decode()
    assert "Attesting does not reactivate it: an IAM admin does." in page


# --- campaigns ------------------------------------------------------------------------------------


def test_an_iam_admin_launches_a_campaign_from_the_list(admin_user, world):
    client = client_as(admin_user)
    page = client.get(reverse("campaign-list")).content.decode()
    assert "Launch a campaign" in page
    response = client.post(
        reverse("campaign-list"), {"name": "High tier", "scope": "tier:high", "deadline": "2026-12-01"}, follow=True
    )
    campaign = Campaign.objects.get()
    assert response.redirect_chain[-1][0] == reverse("campaign-detail", args=[campaign.pk])
    assert (campaign.scope_kind, campaign.scope_value, campaign.deadline) == ("tier", "high", date(2026, 12, 1))
    body = response.content.decode()
    assert "0 of 1 agent attested" in body and 'id="campaign-progress"' in body
    event = AuditEvent.objects.get(verb="campaign.launch")
    assert (event.actor_label, event.object_id) == ("iris.admin", str(campaign.pk))


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": "X", "scope": "all", "deadline": "2026-11-15"}, "The deadline must be after today"),
        ({"name": "X", "scope": "team:nobody", "deadline": "2026-12-01"}, "Select a valid choice"),
        ({"name": "", "scope": "all", "deadline": "2026-12-01"}, "This field is required."),
    ],
)
def test_a_refused_launch_shows_the_form_again(data, message, admin_user, world):
    response = client_as(admin_user).post(reverse("campaign-list"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Campaign.objects.exists()


def test_the_auditor_reads_campaigns_but_has_no_launch_form(auditor, world, admin_actor):
    att.campaign_launch(actor=admin_actor, name="Q4", scope_kind="all", deadline=TODAY + 30 * DAY)
    page = client_as(auditor).get(reverse("campaign-list")).content.decode()
    assert "Q4" in page and "Launch a campaign" not in page and "0%" in page


def test_the_campaign_page_shows_progress_per_team_and_who_is_outstanding(admin_user, admin_actor, owner, frozen_now):
    payments = TeamFactory(name="Payments", slug="payments")
    mine = AgentFactory(owner=owner, team=payments, name="Payer")
    AgentFactory(team=payments, name="Refunder")
    AgentFactory(team=None, name="Loner")
    campaign = att.campaign_launch(actor=admin_actor, name="Q4", scope_kind="all", deadline=TODAY + 30 * DAY)
    frozen_now.move_to(T0 + DAY)
    att.attestation_attest(
        actor=Actor.person(owner),
        attestation=mine.attestations.get(),
        still_needed=True,
        owner_correct=True,
        grants_appropriate=True,
        credentials_rotated=True,
        outcome="keep",
    )
    body = client_as(admin_user).get(reverse("campaign-detail", args=[campaign.pk])).content.decode()
    assert "<strong>33%</strong> — 1 of 3 agents attested" in body
    assert '<td>Payments</td><td class="num">2</td><td class="num">1</td><td class="num">50%</td>' in body
    assert "<td>No team</td>" in body
    outstanding = body[body.index('id="outstanding"') :]
    assert "Refunder" in outstanding and "Loner" in outstanding and "Payer" not in outstanding


def test_the_campaign_list_runs_a_constant_number_of_queries(admin_user, admin_actor, world):
    client = client_as(admin_user)
    att.campaign_launch(actor=admin_actor, name="C0", scope_kind="all", deadline=TODAY + 30 * DAY)
    few = _queries(client, reverse("campaign-list"))
    for i in range(4):
        att.campaign_launch(actor=admin_actor, name=f"C{i + 1}", scope_kind="all", deadline=TODAY + 30 * DAY)
    assert _queries(client, reverse("campaign-list")) == few


def test_the_nav_links_to_the_inbox(owner):
    body = client_as(owner).get(reverse("dashboard")).content.decode()
    assert f'href="{reverse("attestation-inbox")}"' in body
