"""Risk assessment pages: the questionnaire (who may open and answer it, prefill, refusals that keep the
answers), the result page, the agent page's history section (htmx and plain), the list page, and
the agent page's risk-tier control; permission matrices and query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from governance.assessments import FACTORS
from governance.models import AuditEvent, RiskAssessment
from inventory.models import Agent
from tests.factories import T0, AgentFactory, ToolFactory
from tests.support import client_as, messages_of

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
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


@pytest.fixture
def agent(frozen_now, owner, other_owner):
    """An active agent of ``owner``; ``other_owner`` owns another agent and may not see this one."""
    AgentFactory(owner=other_owner, slug="theirs")
    return AgentFactory(owner=owner, name="Invoice agent", slug="invoice-agent", autonomy_level="human_on_the_loop")


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


def snapshot():
    return (RiskAssessment.objects.count(), AuditEvent.objects.count(), list(Agent.objects.values("risk_tier")))


# --- the questionnaire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 302), ("owner", 200), ("other_owner", 404), ("admin", 200), ("auditor", 403)],
)
def test_who_may_open_the_questionnaire(people, agent, role, status):
    response = client_as(people[role]).get(reverse("assessment-create", args=[agent.slug]))
    assert response.status_code == status
    if status == 302:
        assert response["Location"].startswith(reverse("login"))


def test_the_backup_owner_may_open_it(agent, other_owner):
    agent.backup_owner = other_owner
    agent.save(update_fields=["backup_owner"])
    assert client_as(other_owner).get(reverse("assessment-create", args=[agent.slug])).status_code == 200


def test_a_decommissioned_agent_is_409(admin_user, owner):
    gone = AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED)
    response = client_as(admin_user).get(reverse("assessment-create", args=[gone.slug]))
    assert response.status_code == 409 and "no longer assessed" in response.content.decode()


def test_the_questionnaire_shows_each_factor_its_points_rule_and_references(owner, agent):
    ToolFactory(agent=agent, access_levels=["read", "execute"], data_classes=["payment"], destination="external")
    response = client_as(owner).get(reverse("assessment-create", args=[agent.slug]))
    body = response.content.decode()
    for factor in FACTORS.values():
        assert f'id="factor-{factor.code}"' in body and factor.rule in body.replace("&#x27;", "'")
    assert "ASI04" in body and "NHI3" in body and "MAESTRO L1" in body and "GOVERN" in body
    assert '<span class="tag">4 pt</span>' in body
    assert "Critical combinations" not in body and "set a floor" in body
    # prefilled from the inventory: autonomy, data classes, strongest access, an external destination
    form = response.context["form"]
    assert form.initial == {
        "autonomy": "human_on_the_loop",
        "data_classes": ["payment"],
        "access": "execute",
        "destinations": "named_external",
    }
    assert 'name="autonomy" value="human_on_the_loop" id="id_autonomy_1" checked' in body


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 302), ("owner", 302), ("other_owner", 404), ("admin", 302), ("auditor", 403)],
)
def test_answering_the_questionnaire_permission_matrix(people, agent, role, status):
    before = snapshot()
    response = client_as(people[role]).post(reverse("assessment-create", args=[agent.slug]), {**HIGH, "notes": "x"})
    assert response.status_code == status
    if role in ("owner", "admin"):
        assessment = RiskAssessment.objects.get()
        assert response["Location"] == reverse("assessment-detail", args=[assessment.pk])
        agent.refresh_from_db()
        assert agent.risk_tier == assessment.tier == "high"
        event = AuditEvent.objects.get(verb="risk_assessment.record")
        assert (event.actor_type, event.actor_label) == ("person", people[role].username)
    else:
        assert snapshot() == before


def test_the_result_follows_the_answers(owner, agent):
    client = client_as(owner)
    response = client.post(reverse("assessment-create", args=[agent.slug]), {**HIGH, "notes": "Design review."})
    assert "Invoice agent assessed: score 12 of 25, high risk." in messages_of(response)
    page = client.get(response["Location"]).content.decode()
    assert "<strong>12</strong> of 25" in page and "In force" in page and "Design review." in page
    assert "Fully autonomous" in page and "Payment data" in page


def test_missing_answers_are_400_under_each_factor_and_write_nothing(owner, agent):
    before = snapshot()
    response = client_as(owner).post(
        reverse("assessment-create", args=[agent.slug]), {"autonomy": "autonomous", "access": "write"}
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert set(form.errors) == {"data_classes", "destinations", "delegation", "oversight", "supply_chain"}
    assert "Answer this factor" in response.content.decode()
    assert 'value="autonomous" id="id_autonomy_2" checked' in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({**LOW, "autonomy": "sometimes"}, "autonomy"),
        ({**LOW, "data_classes": ["none", "pii"]}, "data_classes"),
        ({**LOW, "notes": "x" * 5001}, "notes"),
    ],
)
def test_bad_answers_are_400_next_to_the_factor(owner, agent, data, field):
    before = snapshot()
    response = client_as(owner).post(reverse("assessment-create", args=[agent.slug]), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert snapshot() == before


def test_an_owner_lowering_the_tier_sees_why_on_the_form_with_the_answers_kept(owner, agent):
    Agent.objects.filter(pk=agent.pk).update(risk_tier="high")
    before = snapshot()
    response = client_as(owner).post(reverse("assessment-create", args=[agent.slug]), {**LOW, "notes": "Quiet now."})
    assert response.status_code == 403
    body = response.content.decode()
    assert "only an IAM admin may lower a tier" in body and "Quiet now." in body
    assert 'value="in_house" id="id_supply_chain_0" checked' in body
    assert snapshot() == before


def test_an_iam_admin_may_lower_the_tier(admin_user, agent):
    Agent.objects.filter(pk=agent.pk).update(risk_tier="high")
    response = client_as(admin_user).post(reverse("assessment-create", args=[agent.slug]), LOW)
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.risk_tier == "low"


# --- one assessment -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 302), ("owner", 200), ("other_owner", 404), ("admin", 200), ("auditor", 200)],
)
def test_who_may_read_an_assessment(people, agent, owner, role, status):
    assessment = make_assessment(agent, owner)
    assert client_as(people[role]).get(reverse("assessment-detail", args=[assessment.pk])).status_code == status


def test_the_result_page_shows_points_per_factor_triggers_and_status(owner, agent, auditor):
    answers = {**LOW, "autonomy": "autonomous", "access": "execute", "oversight": "none"}
    old = make_assessment(agent, owner, at=T0 - timedelta(days=5), answers=answers, tier="critical")
    old.factor_scores = {**old.factor_scores, "autonomy": 4, "access": 4, "oversight": 3}
    old.save()
    make_assessment(agent, owner, at=T0 - timedelta(days=1))
    body = client_as(auditor).get(reverse("assessment-detail", args=[old.pk])).content.decode()
    assert "Superseded" in body and "no routine review of its actions" in body
    assert "4 / 4" in body and "3 / 3" in body and "0 / 5" in body
    assert "Reassess" not in body  # auditors never assess


def test_a_lapsed_latest_assessment_is_not_in_force(owner, agent):
    lapsed = make_assessment(agent, owner, at=T0 - timedelta(days=40), days=30)
    body = client_as(owner).get(reverse("assessment-detail", args=[lapsed.pk])).content.decode()
    assert "Lapsed or not live" in body and "Reassess" in body


# --- the agent page's section -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status", "may_assess"),
    [
        ("anonymous", 302, False),
        ("owner", 200, True),
        ("other_owner", 404, False),
        ("admin", 200, True),
        ("auditor", 200, False),
    ],
)
def test_who_may_read_the_history(people, agent, role, status, may_assess):
    response = client_as(people[role]).get(reverse("agent-assessments", args=[agent.slug]), headers=HTMX)
    assert response.status_code == status
    if status == 200:
        body = response.content.decode()
        assert body.lstrip().startswith('<section class="panel" id="risk-assessment"')
        assert (reverse("assessment-create", args=[agent.slug]) in body) == may_assess


def test_the_history_lists_the_assessments_newest_first(owner, agent):
    old = make_assessment(agent, owner, at=T0 - timedelta(days=30), tier="high")
    new = make_assessment(agent, owner, at=T0 - timedelta(days=1), tier="low")
    response = client_as(owner).get(reverse("agent-assessments", args=[agent.slug]))
    assert response.status_code == 200 and "<h1>Risk assessments</h1>" in response.content.decode()
    assert response.context["history"] == [new, old] and response.context["latest"] == new
    assert not response.context["due"]


def test_an_agent_never_assessed_is_said_to_be_treated_as_high(owner, agent):
    body = client_as(owner).get(reverse("agent-assessments", args=[agent.slug]), headers=HTMX).content.decode()
    assert "has never been assessed" in body and "Assess risk" in body
    assert "treated as high risk" in body and "set at registration" not in body


def test_a_provisional_tier_from_registration_is_said_to_apply_until_the_first_assessment(owner):
    agent = AgentFactory(owner=owner, name="Quote agent", risk_tier="medium")
    body = client_as(owner).get(reverse("agent-assessments", args=[agent.slug]), headers=HTMX).content.decode()
    assert "treated as high risk" not in body
    assert (
        "Quote agent has never been assessed: its medium tier was set at registration and applies "
        "(grant caps, approvals, attestation cadence) until its first assessment, which is due." in body
    )
    assert "Reassessment due" in body and '<span class="badge tier-medium">Medium</span>' in body


def test_a_lapsed_assessment_shows_reassessment_due(owner, agent):
    make_assessment(agent, owner, at=T0 - timedelta(days=40), days=30)
    body = client_as(owner).get(reverse("agent-assessments", args=[agent.slug]), headers=HTMX).content.decode()
    assert "Reassessment due" in body and "Reassess" in body


def test_a_long_history_links_to_the_full_list(owner, agent):
    for days in range(12):
        make_assessment(agent, owner, at=T0 - timedelta(days=days + 1))
    response = client_as(owner).get(reverse("agent-assessments", args=[agent.slug]), headers=HTMX)
    assert len(response.context["history"]) == 10
    assert f"{reverse('assessment-list')}?agent=invoice-agent" in response.content.decode()


def test_the_history_query_count_does_not_grow(owner, agent):
    client = client_as(owner)
    url = reverse("agent-assessments", args=[agent.slug])
    make_assessment(agent, owner)
    with CaptureQueriesContext(connection) as few:
        client.get(url, headers=HTMX)
    for days in range(9):
        make_assessment(agent, owner, at=T0 - timedelta(days=days + 1))
    with CaptureQueriesContext(connection) as many:
        client.get(url, headers=HTMX)
    assert len(many) == len(few) <= 8


# --- the list page ------------------------------------------------------------------------------


def test_the_list_shows_visible_assessments_and_filters(owner, other_owner, agent, auditor):
    mine = make_assessment(agent, owner, tier="high")
    theirs = make_assessment(Agent.objects.get(slug="theirs"), other_owner, at=T0 - timedelta(days=1))
    assert list(client_as(owner).get(reverse("assessment-list")).context["page"].object_list) == [mine]
    client = client_as(auditor)
    assert list(client.get(reverse("assessment-list")).context["page"].object_list) == [mine, theirs]
    assert list(client.get(reverse("assessment-list"), {"tier": "medium"}).context["page"].object_list) == [theirs]
    assert list(client.get(reverse("assessment-list"), {"agent": "invoice-agent"}).context["page"].object_list) == [
        mine
    ]
    partial = client.get(reverse("assessment-list"), {"tier": "high"}, headers=HTMX)
    assert partial.content.decode().lstrip().startswith('<div id="results"')


@pytest.mark.parametrize("query", [{"colour": "blue"}, {"tier": "extreme"}, {"agent": "nobody"}])
def test_the_list_refuses_unknown_filters(admin_user, agent, query):
    response = client_as(admin_user).get(reverse("assessment-list"), query)
    assert response.status_code == 400 and response.context["page"] is None


def test_the_list_query_count_does_not_grow(admin_user, owner, agent):
    client = client_as(admin_user)
    make_assessment(agent, owner)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("assessment-list"))
    for days in range(15):
        make_assessment(agent, owner, at=T0 - timedelta(days=days + 1))
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("assessment-list"))
    assert len(many) == len(few)


def test_anonymous_is_sent_to_sign_in_from_the_list(agent):
    assert client_as(None).get(reverse("assessment-list")).status_code == 302


# --- the agent page -----------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "offered"), [("owner", True), ("admin", True), ("auditor", False)])
def test_the_agent_page_loads_the_section_and_links_to_the_questionnaire(people, agent, role, offered):
    body = client_as(people[role]).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    history = reverse("agent-assessments", args=[agent.slug])
    assert f'hx-get="{history}" hx-trigger="load"' in body and f'<a href="{history}">' in body
    assert (f'<a href="{reverse("assessment-create", args=[agent.slug])}">Assess risk</a>' in body) == offered
