"""Attestation campaigns: launching one over a scope with a deadline (who may, which input), the
attestations it opens or attaches, and its progress — overall and per team."""

from datetime import date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from governance import attestations as att
from governance.audit import Actor
from governance.errors import PermissionDenied, ValidationError
from governance.models import Attestation, AuditEvent, Campaign
from inventory import services as inventory_services
from inventory.models import Agent
from tests.factories import T0, AgentFactory, TeamFactory
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

TODAY = date(2026, 11, 15)
DEADLINE = date(2026, 12, 15)
DAY = timedelta(days=1)
refuses = refusal_checker(Campaign, Attestation, Agent, AuditEvent)
KEEP = {"still_needed": True, "owner_correct": True, "grants_appropriate": True, "credentials_rotated": True}


def launch(actor, scope_kind="all", scope_value="", deadline=DEADLINE, name="Q4 review", **kwargs):
    return att.campaign_launch(
        actor=actor, name=name, scope_kind=scope_kind, scope_value=scope_value, deadline=deadline, **kwargs
    )


def open_attestation(agent, due_on, **kwargs):
    return Attestation.objects.create(agent=agent, due_on=due_on, opened_at=T0 - 20 * DAY, **kwargs)


def attest(agent, **answers):
    opened = agent.attestations.get(status="open")
    return att.attestation_attest(
        actor=Actor.person(agent.owner), attestation=opened, **{**KEEP, "outcome": "keep", **answers}
    )


# --- launching -----------------------------------------------------------------------------------


def test_a_launch_opens_an_attestation_due_on_the_deadline_for_each_live_agent(admin_actor, admin_user):
    plain = AgentFactory()
    suspended = AgentFactory(state=Agent.State.SUSPENDED)
    proposed = AgentFactory(state=Agent.State.PROPOSED, owner=None)
    gone = AgentFactory(state=Agent.State.DECOMMISSIONED)
    due_earlier = AgentFactory(next_attestation_due=TODAY + 5 * DAY)
    trail = Trail()

    campaign = launch(admin_actor, description="  Year-end.  ")

    assert (campaign.launched_by, campaign.launched_at, campaign.description) == (admin_user, T0, "Year-end.")
    opened = {a.agent_id: a for a in campaign.attestations.all()}
    assert set(opened) == {plain.pk, suspended.pk, due_earlier.pk}
    assert opened[plain.pk].due_on == DEADLINE
    assert opened[due_earlier.pk].due_on == TODAY + 5 * DAY  # an earlier due date is kept
    for a in (proposed, gone):
        assert not a.attestations.exists()
    plain.refresh_from_db()
    due_earlier.refresh_from_db()
    assert (plain.next_attestation_due, due_earlier.next_attestation_due) == (DEADLINE, TODAY + 5 * DAY)
    event = trail.one("campaign.launch", actor=admin_actor, obj=campaign)
    assert event.after == {
        "name": "Q4 review",
        "scope_kind": "all",
        "scope_value": "",
        "deadline": "2026-12-15",
        "opened": 3,
        "attached": 0,
        "rescheduled": 0,
    }
    assert sorted(trail.verbs()).count("attestation.open") == 3
    assert sorted(trail.verbs()).count("agent.attestation_due") == 2  # plain and suspended had none


def test_a_launch_attaches_open_attestations_and_brings_later_ones_forward(admin_actor):
    later = AgentFactory()
    later_open = open_attestation(later, due_on=DEADLINE + 10 * DAY)
    sooner = AgentFactory()
    sooner_open = open_attestation(sooner, due_on=TODAY + 2 * DAY)
    other_campaign = launch(admin_actor, name="Earlier", scope_kind="team", scope_value=sooner.team.slug)
    trail = Trail()

    campaign = launch(admin_actor)

    later_open.refresh_from_db()
    sooner_open.refresh_from_db()
    assert (later_open.campaign, later_open.due_on) == (campaign, DEADLINE)
    assert (sooner_open.campaign, sooner_open.due_on) == (other_campaign, TODAY + 2 * DAY)
    assert Attestation.objects.filter(status="open").count() == 2  # nothing opened twice
    assert trail.one("attestation.reschedule", obj=later_open).before == {"due_on": "2026-12-25"}
    assert trail.one("attestation.attach", obj=later_open).after == {"campaign": campaign.pk}
    assert trail.one("campaign.launch").after["attached"] == 1


@pytest.mark.parametrize(
    "scope_kind, scope_value, expected",
    [
        ("tier", "critical", {"critical-prod"}),
        ("team", "payments", {"payments-dev", "critical-prod"}),
        ("environment", "development", {"payments-dev"}),
        ("all", "", {"payments-dev", "critical-prod", "low-staging"}),
    ],
)
def test_the_scope_chooses_the_agents(scope_kind, scope_value, expected, admin_actor):
    payments = TeamFactory(slug="payments", name="Payments")
    AgentFactory(slug="payments-dev", team=payments, environment="development", risk_tier="low")
    AgentFactory(slug="critical-prod", team=payments, environment="production", risk_tier="critical")
    AgentFactory(slug="low-staging", environment="staging", risk_tier="low")
    campaign = launch(admin_actor, scope_kind=scope_kind, scope_value=scope_value)
    assert set(campaign.attestations.values_list("agent__slug", flat=True)) == expected
    assert att.campaign_progress(campaign).total == len(expected)


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": "  "}, "name"),
        ({"scope_kind": "everything"}, "scope_kind"),
        ({"scope_kind": "all", "scope_value": "x"}, "scope_value"),
        ({"scope_kind": "tier", "scope_value": ""}, "scope_value"),
        ({"scope_kind": "tier", "scope_value": "extreme"}, "scope_value"),
        ({"scope_kind": "team", "scope_value": "nobody"}, "scope_value"),
        ({"scope_kind": "environment", "scope_value": "moon"}, "scope_value"),
        ({"deadline": TODAY}, "deadline"),
        ({"deadline": TODAY - DAY}, "deadline"),
        ({"deadline": TODAY + 366 * DAY}, "deadline"),
        ({"deadline": datetime(2026, 12, 15, 12, 0)}, "deadline"),
        ({"deadline": "2026-12-15"}, "deadline"),
    ],
)
def test_invalid_input_is_refused_field_by_field(changes, field, admin_actor):
    AgentFactory()
    refuses(ValidationError, launch, field=field, actor=admin_actor, **changes)


@pytest.mark.parametrize("who", ["owner", "auditor", "system"])
def test_only_iam_admins_launch(who, people):
    actor = Actor.system("job") if who == "system" else Actor.person(people[who])
    refuses(PermissionDenied, launch, match="Only IAM admins", actor=actor)


def test_a_launch_emails_the_owners(admin_actor, owner, mailoutbox, django_capture_on_commit_callbacks):
    AgentFactory(owner=owner, name="Payer")
    with django_capture_on_commit_callbacks(execute=True):
        launch(admin_actor)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["olivia.owner@example.com"]
    assert mailoutbox[0].subject == "[Warrant] Attest to Payer by 2026-12-15 (Q4 review)"


def test_the_opening_job_opens_nothing_more_for_agents_in_a_campaign(admin_actor):
    AgentFactory(next_attestation_due=TODAY)
    launch(admin_actor)
    assert att.attestations_open_due(now=T0) == {"scheduled": 0, "opened": 0}


# --- progress ------------------------------------------------------------------------------------


def test_progress_is_the_share_of_the_campaigns_agents_attested_since_the_launch(admin_actor, frozen_now):
    a, b, c = AgentFactory(), AgentFactory(), AgentFactory()
    earlier = open_attestation(a, due_on=TODAY - DAY)
    att.attestation_attest(actor=Actor.person(a.owner), attestation=earlier, outcome="keep", **KEEP)
    frozen_now.move_to(T0 + timedelta(hours=1))
    campaign = launch(admin_actor)
    assert att.campaign_progress(campaign) == att.Progress(total=3, attested=0)  # a's attestation predates it

    frozen_now.move_to(T0 + 2 * DAY)
    attest(b)
    progress = att.campaign_progress(campaign)
    assert (progress.total, progress.attested, progress.percent) == (3, 1, 33)
    assert progress.share == pytest.approx(1 / 3)

    attest(c, still_needed=False, outcome="decommission", comment="Retired.")
    assert att.campaign_progress(campaign) == att.Progress(total=3, attested=2)  # decommissioned by it: counted
    AgentFactory(created_at=T0 + 3 * DAY)  # registered after the launch: not measured
    assert att.campaign_progress(campaign).total == 3


def test_an_agent_decommissioned_before_the_launch_is_not_measured(admin_actor, frozen_now):
    AgentFactory()
    gone = AgentFactory()
    inventory_services.agent_decommission(actor=admin_actor, agent=gone, reason="Retired.")
    frozen_now.move_to(T0 + DAY)
    assert att.campaign_progress(launch(admin_actor, deadline=DEADLINE)).total == 1


def test_the_list_annotations_match_the_detail_progress_in_one_query(admin_actor, auditor, frozen_now):
    payments = TeamFactory(slug="payments", name="Payments")
    agents = [AgentFactory(team=payments, risk_tier="high"), AgentFactory(risk_tier="high"), AgentFactory()]
    campaigns = [
        launch(admin_actor, name="All"),
        launch(admin_actor, name="High", scope_kind="tier", scope_value="high"),
        launch(admin_actor, name="Payments", scope_kind="team", scope_value="payments"),
        launch(admin_actor, name="Staging", scope_kind="environment", scope_value="staging"),
    ]
    frozen_now.move_to(T0 + DAY)
    attest(agents[0])
    with CaptureQueriesContext(connection) as ctx:
        listed = {c.name: (c.agents_total, c.agents_attested) for c in att.campaign_list(user=auditor)}
    assert len(ctx.captured_queries) <= 2  # the auditor's groups, then one query for the whole list
    assert listed == {"All": (3, 1), "High": (2, 1), "Payments": (1, 1), "Staging": (0, 0)}
    for c in campaigns:
        fresh = Campaign.objects.get(pk=c.pk)
        progress = att.campaign_progress(fresh)
        assert (progress.total, progress.attested) == listed[c.name]


def test_owners_see_no_campaigns(admin_actor, owner):
    launch(admin_actor)
    assert not att.campaign_list(user=owner).exists()


def test_the_team_breakdown(admin_actor, frozen_now):
    payments = TeamFactory(slug="payments", name="Payments")
    apps_team = TeamFactory(slug="apps", name="Apps")
    p1, p2 = AgentFactory(team=payments), AgentFactory(team=payments)
    AgentFactory(team=apps_team)
    AgentFactory(team=None)
    campaign = launch(admin_actor)
    frozen_now.move_to(T0 + DAY)
    attest(p1)
    rows = att.campaign_team_breakdown(campaign)
    assert [(t.slug, t.name, t.total, t.attested, t.percent) for t in rows] == [
        ("apps", "Apps", 1, 0, 0),
        ("payments", "Payments", 2, 1, 50),
        ("", "", 1, 0, 0),
    ]
    outstanding = list(att.campaign_outstanding(campaign))
    assert p1 not in outstanding and p2 in outstanding and len(outstanding) == 3
    assert all(a.open_due_on == DEADLINE for a in outstanding)
