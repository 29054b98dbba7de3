"""REST API of risk assessments: the permission matrix (people and tokens), recording one, bad input,
strict filters, the questionnaire endpoint, and query counts."""

from datetime import timedelta

import pytest

from governance.assessments import FACTORS
from governance.models import AuditEvent, IntegrationToken, RiskAssessment
from inventory.models import Agent
from tests.api_support import (
    READ_ALL,
    READ_OWN,
    WRITE,
    Case,
    count_queries,
    expect,
    issue_token,
    matrix,
    matrix_ids,
    run_case,
    session_client,
    token_client,
)
from tests.factories import T0, AgentFactory

ASSESSMENTS = "/api/v1/assessments/"
FACTORS_URL = "/api/v1/assessments/factors/"

LOW = {
    "autonomy": "human_in_the_loop",
    "data_classes": ["none"],
    "access": "read",
    "destinations": "internal",
    "delegation": "none",
    "oversight": "continuous",
    "supply_chain": "in_house",
}
HIGH = {
    **LOW,
    "autonomy": "autonomous",
    "data_classes": ["payment"],
    "access": "write",
    "destinations": "named_external",
}


def make_assessment(agent, by, *, at=T0, tier="medium", days=365, answers=None) -> RiskAssessment:
    return RiskAssessment.objects.create(
        agent=agent,
        assessed_by=by,
        assessed_at=at,
        answers=answers or LOW,
        factor_scores={code: 0 for code in FACTORS},
        score=7,
        tier=tier,
        valid_until=at + timedelta(days=days),
    )


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor):
    own = AgentFactory(slug="own", name="Invoice agent", owner=owner)
    high = AgentFactory(slug="own-high", name="Payments bot", owner=owner, risk_tier="high")
    others = AgentFactory(slug="others", name="Their agent", owner=other_owner)
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "own": own,
        "high": high,
        "others": others,
        "assessment": make_assessment(own, owner),
        "gone": AgentFactory(slug="own-gone", owner=owner, state=Agent.State.DECOMMISSIONED),
    }


CREATE_FOR_OWN = expect(owner=201, other_owner=403, admin=201, auditor=403)

CASES = [
    Case("assessments-list", "get", lambda w: ASSESSMENTS, READ_ALL),
    Case("assessments-retrieve", "get", lambda w: f"{ASSESSMENTS}{w['assessment'].pk}/", READ_OWN),
    Case("assessments-factors", "get", lambda w: FACTORS_URL, READ_ALL),
    Case(
        "assessments-create",
        "post",
        lambda w: ASSESSMENTS,
        CREATE_FOR_OWN,
        body=lambda w: {"agent": "own", "answers": HIGH, "notes": "Design review."},
        verb="risk_assessment.record",
        scope=WRITE,
    ),
    Case(
        "assessments-create-lowering",
        "post",
        lambda w: ASSESSMENTS,
        expect(owner=403, other_owner=403, admin=201, auditor=403),
        body=lambda w: {"agent": "own-high", "answers": LOW},
        verb="risk_assessment.record",
        scope=WRITE,
    ),
    Case(
        "assessments-create-decommissioned",
        "post",
        lambda w: ASSESSMENTS,
        expect(owner=409, other_owner=403, admin=409, auditor=403),
        body=lambda w: {"agent": "own-gone", "answers": LOW},
        scope=WRITE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    before = (RiskAssessment.objects.count(), dict(Agent.objects.values_list("slug", "risk_tier")))
    response = run_case(case, role, world)
    if response.status_code >= 400:
        assert (RiskAssessment.objects.count(), dict(Agent.objects.values_list("slug", "risk_tier"))) == before


@pytest.mark.django_db
def test_recording_returns_the_assessment_and_sets_the_agents_tier(world):
    client = session_client(world["people"]["owner"])
    response = client.post(ASSESSMENTS, {"agent": "own", "answers": HIGH, "notes": "Design review."}, format="json")
    assert response.status_code == 201, response.data
    data = response.data
    assert (data["agent"], data["agent_name"], data["assessed_by"]) == ("own", "Invoice agent", "olivia.owner")
    assert (data["score"], data["tier"], data["triggers"]) == (12, "high", [])
    assert data["answers"] == HIGH and data["factor_scores"]["autonomy"] == 4
    assert data["assessed_at"] == "2026-11-15T06:00:00Z" and data["valid_until"] == "2027-05-14T06:00:00Z"
    assert client.get("/api/v1/agents/own/").data["risk_tier"] == "high"
    event = AuditEvent.objects.get(verb="agent.set_risk_tier")
    assert event.actor_label == "olivia.owner" and event.after["assessment"] == data["id"]


@pytest.mark.django_db
def test_a_token_records_as_the_integration(world):
    token, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.INVENTORY_WRITE])
    response = token_client(clear).post(ASSESSMENTS, {"agent": "own", "answers": LOW}, format="json")
    assert response.status_code == 201, response.data
    event = AuditEvent.objects.get(verb="risk_assessment.record")
    assert (event.actor_type, event.actor_id) == ("integration", str(token.pk))


@pytest.mark.django_db
def test_an_owner_lowering_the_tier_is_told_why(world):
    response = session_client(world["people"]["owner"]).post(
        ASSESSMENTS, {"agent": "own-high", "answers": LOW}, format="json"
    )
    assert response.status_code == 403
    assert "only an IAM admin may lower a tier" in str(response.data["detail"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"agent": "own", "answers": {**LOW, "autonomy": "sometimes"}}, "autonomy"),
        ({"agent": "own", "answers": {k: v for k, v in LOW.items() if k != "supply_chain"}}, "supply_chain"),
        ({"agent": "own", "answers": {**LOW, "telepathy": "yes"}}, "telepathy"),
        ({"agent": "own", "answers": {**LOW, "data_classes": "pii"}}, "data_classes"),
        ({"agent": "own", "answers": ["autonomous"]}, "answers"),
        ({"agent": "own"}, "answers"),
        ({"answers": LOW}, "agent"),
        ({"agent": "no-such-agent", "answers": LOW}, "agent"),
        ({"agent": "own", "answers": LOW, "tier": "low"}, "tier"),
        ({"agent": "own", "answers": LOW, "colour": "blue"}, "colour"),
        ({"agent": "own", "answers": LOW, "notes": 12}, "notes"),
        ({"agent": "own", "answers": LOW, "notes": "x" * 5001}, "notes"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(body, field, world):
    before = (RiskAssessment.objects.count(), AuditEvent.objects.count())
    response = session_client(world["people"]["admin"]).post(ASSESSMENTS, body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert (RiskAssessment.objects.count(), AuditEvent.objects.count()) == before
    assert Agent.objects.get(slug="own").risk_tier == Agent.RiskTier.UNASSESSED


# --- reads --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_owners_read_the_assessments_of_their_agents_only(world):
    theirs = make_assessment(world["others"], world["people"]["other_owner"])
    client = session_client(world["people"]["owner"])
    assert [a["id"] for a in client.get(ASSESSMENTS).data["results"]] == [world["assessment"].pk]
    assert client.get(f"{ASSESSMENTS}{theirs.pk}/").status_code == 404
    auditor = session_client(world["people"]["auditor"])
    assert {a["id"] for a in auditor.get(ASSESSMENTS).data["results"]} == {world["assessment"].pk, theirs.pk}


@pytest.mark.django_db
def test_filters_and_order(world):
    owner = world["people"]["owner"]
    older = make_assessment(world["high"], owner, at=T0 - timedelta(days=3), tier="high")
    newer = make_assessment(world["high"], owner, at=T0 - timedelta(days=1), tier="critical")
    client = session_client(world["people"]["admin"])
    assert [a["id"] for a in client.get(ASSESSMENTS).data["results"]] == [world["assessment"].pk, newer.pk, older.pk]
    assert [a["id"] for a in client.get(f"{ASSESSMENTS}?agent=own-high").data["results"]] == [newer.pk, older.pk]
    tiers = client.get(f"{ASSESSMENTS}?tier=high&tier=critical").data["results"]
    assert [a["id"] for a in tiers] == [newer.pk, older.pk]
    ordered = client.get(f"{ASSESSMENTS}?ordering=assessed").data["results"]
    assert [a["id"] for a in ordered] == [older.pk, newer.pk, world["assessment"].pk]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["colour=blue", "tier=extreme", "agent=no-such-agent", "ordering=colour"])
def test_unknown_filters_and_values_are_400(query, world):
    response = session_client(world["people"]["admin"]).get(f"{ASSESSMENTS}?{query}")
    assert response.status_code == 400, response.data
    name = query.split("=")[0]
    assert name in response.data or "filters" in response.data


@pytest.mark.django_db
def test_the_questionnaire_endpoint(world):
    data = session_client(world["people"]["auditor"]).get(FACTORS_URL).data
    assert [f["code"] for f in data["factors"]] == list(FACTORS)
    assert data["max_score"] == 25 and data["tiers"][0] == {"tier": "low", "min_score": 0, "max_score": 5}
    data_classes = next(f for f in data["factors"] if f["code"] == "data_classes")
    assert data_classes["multiple"] is True and {"value": "none", "label": "None of these"}.items() <= (
        data_classes["answers"][-1].items()
    )
    assert session_client(world["people"]["admin"]).get(f"{FACTORS_URL}?colour=blue").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin"])
def test_list_query_count_does_not_grow_with_rows(role, world):
    client = session_client(world["people"][role])
    owner = world["people"]["owner"]
    few = count_queries(client, ASSESSMENTS)
    for days in range(1, 16):
        make_assessment(world["own"] if days % 2 else world["high"], owner, at=T0 - timedelta(days=days))
    assert len(client.get(ASSESSMENTS).data["results"]) == 16
    assert count_queries(client, ASSESSMENTS) == few
    assert few <= 6


@pytest.mark.django_db
def test_the_schema_documents_the_endpoints(tmp_path):
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert "/api/v1/assessments/factors/" in text and "/api/v1/assessments/{id}/" in text
