"""REST API of attestations and campaigns: the permission matrix (people and tokens), the attest action's
rules and refusals, strict filters, and query counts of the list endpoints."""

from datetime import date, timedelta

import pytest

from governance import attestations as att
from governance.audit import Actor
from governance.models import Attestation, AuditEvent, Campaign
from tests.api_support import (
    ADMIN_ONLY_CREATE,
    READ_ALL,
    READ_OWN,
    WRITE,
    Case,
    count_queries,
    expect,
    matrix,
    matrix_ids,
    run_case,
    session_client,
)
from tests.factories import T0, AgentFactory, GrantFactory, TeamFactory

ATTESTATIONS = "/api/v1/attestations/"
CAMPAIGNS = "/api/v1/campaigns/"
TODAY = date(2026, 11, 15)
DAY = timedelta(days=1)
KEEP = {
    "still_needed": True,
    "owner_correct": True,
    "grants_appropriate": True,
    "credentials_rotated": True,
    "outcome": "keep",
}


def open_attestation(agent, due_on=TODAY + 3 * DAY, **kwargs):
    return Attestation.objects.create(agent=agent, due_on=due_on, opened_at=T0, **kwargs)


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor):
    team = TeamFactory(slug="payments", name="Payments")
    own = AgentFactory(slug="own", name="Invoice agent", owner=owner, team=team, risk_tier="high")
    others = AgentFactory(slug="others", name="Their agent", owner=other_owner)
    campaign = att.campaign_launch(
        actor=Actor.person(admin_user), name="Q4", scope_kind="all", deadline=TODAY + 30 * DAY
    )
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "own": own,
        "others": others,
        "mine": own.attestations.get(),
        "theirs": others.attestations.get(),
        "campaign": campaign,
    }


ATTEST = expect(owner=200, other_owner=404, admin=403, auditor=403)

CASES = [
    Case("attestations-list", "get", lambda w: ATTESTATIONS, READ_ALL),
    Case("attestations-retrieve", "get", lambda w: f"{ATTESTATIONS}{w['mine'].pk}/", READ_OWN),
    Case(
        "attestations-attest",
        "post",
        lambda w: f"{ATTESTATIONS}{w['mine'].pk}/attest/",
        ATTEST,
        body=lambda w: KEEP,
        verb="attestation.attest",
        scope=WRITE,
    ),
    Case("campaigns-list", "get", lambda w: CAMPAIGNS, READ_ALL),
    Case(
        "campaigns-retrieve",
        "get",
        lambda w: f"{CAMPAIGNS}{w['campaign'].pk}/",
        expect(owner=404, other_owner=404, admin=200, auditor=200),
    ),
    Case(
        "campaigns-create",
        "post",
        lambda w: CAMPAIGNS,
        ADMIN_ONLY_CREATE,
        body=lambda w: {"name": "High tier", "scope_kind": "tier", "scope_value": "high", "deadline": "2026-12-01"},
        verb="campaign.launch",
        scope=WRITE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    before = (
        list(Attestation.objects.order_by("pk").values()),
        list(Campaign.objects.order_by("pk").values()),
    )
    response = run_case(case, role, world)
    if response.status_code >= 400:
        after = (list(Attestation.objects.order_by("pk").values()), list(Campaign.objects.order_by("pk").values()))
        assert after == before


@pytest.mark.django_db
def test_each_caller_lists_what_they_may_see(world):
    seen = {}
    for role, user in world["people"].items():
        data = session_client(user).get(ATTESTATIONS).json()
        seen[role] = sorted(row["agent"] for row in data["results"])
    assert seen == {
        "owner": ["own"],
        "other_owner": ["others"],
        "admin": ["others", "own"],
        "auditor": ["others", "own"],
    }
    assert session_client(world["people"]["owner"]).get(CAMPAIGNS).json()["count"] == 0
    assert session_client(world["people"]["auditor"]).get(CAMPAIGNS).json()["count"] == 1


@pytest.mark.django_db
def test_an_attestation_as_the_api_shows_it(world):
    data = session_client(world["people"]["owner"]).get(f"{ATTESTATIONS}{world['mine'].pk}/").json()
    assert {k: data[k] for k in ("agent", "agent_name", "campaign", "due_on", "status", "overdue", "can_attest")} == {
        "agent": "own",
        "agent_name": "Invoice agent",
        "campaign": world["campaign"].pk,
        "due_on": "2026-12-15",
        "status": "open",
        "overdue": False,
        "can_attest": True,
    }
    admin_view = session_client(world["people"]["admin"]).get(f"{ATTESTATIONS}{world['mine'].pk}/").json()
    assert admin_view["can_attest"] is False


@pytest.mark.django_db
def test_attesting_answers_once_and_moves_the_due_date(world):
    client = session_client(world["people"]["owner"])
    url = f"{ATTESTATIONS}{world['mine'].pk}/attest/"
    response = client.post(url, {**KEEP, "comment": "Reviewed."}, format="json")
    assert response.status_code == 200, response.data
    assert (response.data["status"], response.data["outcome"], response.data["attested_by"]) == (
        "attested",
        "keep",
        "olivia.owner",
    )
    world["own"].refresh_from_db()
    assert world["own"].next_attestation_due == TODAY + 90 * DAY
    again = client.post(url, KEEP, format="json")
    assert again.status_code == 409
    assert again.json()["code"] == "conflict" and "not rewritten" in again.json()["detail"]


@pytest.mark.django_db
def test_reduce_through_the_api_revokes_the_chosen_grant(world):
    grant = GrantFactory(agent=world["own"])
    response = session_client(world["people"]["owner"]).post(
        f"{ATTESTATIONS}{world['mine'].pk}/attest/",
        {**KEEP, "grants_appropriate": False, "outcome": "reduce", "revoke_grants": [grant.pk]},
        format="json",
    )
    assert response.status_code == 200, response.data
    grant.refresh_from_db()
    assert grant.status == "revoked"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({k: v for k, v in KEEP.items() if k != "owner_correct"}, "owner_correct"),
        ({**KEEP, "still_needed": "yes"}, "still_needed"),
        ({**KEEP, "outcome": "archive"}, "outcome"),
        ({**KEEP, "status": "attested"}, "status"),
        ({**KEEP, "signed_by": "me"}, "signed_by"),
        ({**KEEP, "revoke_grants": "1"}, "revoke_grants"),
        ({**KEEP, "still_needed": False}, "outcome"),
        ({**KEEP, "credentials_rotated": False}, "comment"),
        ({**KEEP, "outcome": "reduce"}, "revoke_grants"),
        ({**KEEP, "outcome": "reduce", "revoke_grants": [999999]}, "revoke_grants"),
    ],
)
def test_bad_answers_are_400_and_change_nothing(body, field, world):
    before = list(Attestation.objects.order_by("pk").values())
    events = AuditEvent.objects.count()
    response = session_client(world["people"]["owner"]).post(
        f"{ATTESTATIONS}{world['mine'].pk}/attest/", body, format="json"
    )
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert list(Attestation.objects.order_by("pk").values()) == before
    assert AuditEvent.objects.count() == events


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, expected",
    [
        ("status=open", ["others", "own"]),
        ("agent=own", ["own"]),
        ("team=payments", ["own"]),
        ("overdue=true", []),
        ("overdue=false", ["others", "own"]),
        ("due_before=2026-12-14", []),
        ("due_after=2026-12-15&due_before=2026-12-15", ["others", "own"]),
        ("outcome=keep", []),
        ("ordering=-due_on", ["others", "own"]),
    ],
)
def test_attestation_filters(query, expected, world):
    data = session_client(world["people"]["admin"]).get(f"{ATTESTATIONS}?{query}").json()
    assert sorted(row["agent"] for row in data["results"]) == expected


@pytest.mark.django_db
def test_the_overdue_filter_reads_the_organisations_today(world):
    Attestation.objects.filter(pk=world["mine"].pk).update(due_on=TODAY - DAY)
    data = session_client(world["people"]["admin"]).get(f"{ATTESTATIONS}?overdue=true").json()
    assert [(row["agent"], row["overdue"]) for row in data["results"]] == [("own", True)]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query, param",
    [
        ("state=open", "filters"),
        ("status=bogus", "status"),
        ("overdue=maybe", "overdue"),
        ("due_before=yesterday", "due_before"),
        ("agent=nobody", "agent"),
        ("team=nobody", "team"),
        ("campaign=x", "campaign"),
        ("ordering=name", "ordering"),
    ],
)
def test_unknown_filters_and_values_are_400(query, param, world):
    response = session_client(world["people"]["admin"]).get(f"{ATTESTATIONS}?{query}")
    assert response.status_code == 400
    assert param in response.json(), response.json()


@pytest.mark.django_db
def test_the_attestation_list_query_count_does_not_grow(world):
    client = session_client(world["people"]["admin"])
    few = count_queries(client, ATTESTATIONS)
    for _ in range(8):
        open_attestation(AgentFactory())
    assert count_queries(client, ATTESTATIONS) == few


# --- campaigns -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_campaign_as_the_api_shows_it(world):
    owner_client = session_client(world["people"]["owner"])
    owner_client.post(f"{ATTESTATIONS}{world['mine'].pk}/attest/", KEEP, format="json")
    data = session_client(world["people"]["auditor"]).get(f"{CAMPAIGNS}{world['campaign'].pk}/").json()
    assert {k: data[k] for k in ("name", "scope_kind", "scope_value", "deadline", "launched_by")} == {
        "name": "Q4",
        "scope_kind": "all",
        "scope_value": "",
        "deadline": "2026-12-15",
        "launched_by": "iris.admin",
    }
    assert (data["agents"], data["attested"], data["share"]) == (2, 1, 0.5)
    by_team = {row["team"]: (row["agents"], row["attested"]) for row in data["teams"]}
    assert by_team[world["own"].team.slug] == (1, 1)
    listed = session_client(world["people"]["auditor"]).get(CAMPAIGNS).json()["results"][0]
    assert (listed["agents"], listed["attested"], listed["share"]) == (2, 1, 0.5)
    assert "teams" not in listed


@pytest.mark.django_db
def test_launching_through_the_api(world):
    response = session_client(world["people"]["admin"]).post(
        CAMPAIGNS,
        {"name": "Payments", "scope_kind": "team", "scope_value": "payments", "deadline": "2026-12-01"},
        format="json",
    )
    assert response.status_code == 201, response.data
    assert (response.data["agents"], response.data["attested"]) == (1, 0)
    world["mine"].refresh_from_db()
    assert world["mine"].due_on == date(2026, 12, 1)  # brought forward to the earlier deadline


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "X", "scope_kind": "team", "scope_value": "nobody", "deadline": "2026-12-01"}, "scope_value"),
        ({"name": "X", "scope_kind": "galaxy", "deadline": "2026-12-01"}, "scope_kind"),
        ({"name": "X", "scope_kind": "all", "deadline": "2026-11-15"}, "deadline"),
        ({"name": "X", "scope_kind": "all", "deadline": "2026-12-01T00:00:00Z"}, "deadline"),
        ({"name": "X", "scope_kind": "all"}, "deadline"),
        ({"name": "X", "scope_kind": "all", "deadline": "2026-12-01", "launched_by": "me"}, "launched_by"),
    ],
)
def test_bad_launches_are_400_and_write_nothing(body, field, world):
    campaigns, events = Campaign.objects.count(), AuditEvent.objects.count()
    response = session_client(world["people"]["admin"]).post(CAMPAIGNS, body, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert (Campaign.objects.count(), AuditEvent.objects.count()) == (campaigns, events)


@pytest.mark.django_db
def test_the_campaign_list_query_count_does_not_grow(world):
    client = session_client(world["people"]["auditor"])
    few = count_queries(client, CAMPAIGNS)
    for i in range(5):
        att.campaign_launch(
            actor=Actor.person(world["people"]["admin"]),
            name=f"C{i}",
            scope_kind="tier",
            scope_value="high",
            deadline=TODAY + (10 + i) * DAY,
        )
    assert count_queries(client, CAMPAIGNS) == few


@pytest.mark.django_db
def test_campaign_filters(world):
    client = session_client(world["people"]["admin"])
    assert client.get(f"{CAMPAIGNS}?scope_kind=all").json()["count"] == 1
    assert client.get(f"{CAMPAIGNS}?scope_kind=team").json()["count"] == 0
    assert client.get(f"{CAMPAIGNS}?scope=all").status_code == 400
    assert client.get(f"{CAMPAIGNS}?scope_kind=galaxy").status_code == 400
