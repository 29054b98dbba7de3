"""The evidence endpoints of the REST API: the permission matrix (people and tokens), JSON and CSV
by content negotiation, errors always JSON, one audit event per export, constant queries, the schema."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse

from governance.models import AuditEvent, Finding, IntegrationToken
from tests.api_support import ROLES, caller, issue_token, session_client, token_client
from tests.factories import AgentFactory, TeamFactory
from tests.governance.evidence_support import (
    attested,
    csv_rows,
    json_body,
    make_assessment,
    make_campaign,
    make_finding,
    streamed,
)

pytestmark = pytest.mark.django_db

AUDIT_READ = IntegrationToken.Scope.AUDIT_READ

#: Who is answered: IAM admins and auditors, in person or by a token with audit:read.
EXPECTED = {
    "anonymous": 401,
    "owner": 403,
    "other_owner": 403,
    "admin": 200,
    "auditor": 200,
    "token": 403,  # an owner's token: the scope is there, the role is not
    "token_without_scope": 403,
    "admin_token": 200,
    "auditor_token": 200,
}
assert set(EXPECTED) == set(ROLES)

ENDPOINTS = {
    "findings": lambda w: reverse("api:evidence-findings"),
    "assessments": lambda w: reverse("api:evidence-assessments"),
    "campaign": lambda w: reverse("api:evidence-campaign-attestations", args=[w["campaign"].pk]),
    "frameworks": lambda w: reverse("api:evidence-frameworks"),
}
EXPORTS = {"findings": "findings", "assessments": "assessments", "campaign": "campaign-attestations"}


@pytest.fixture
def world(people, admin_user, frozen_now):
    team = TeamFactory(slug="payments")
    agent = AgentFactory(owner=people["owner"], team=team, name="Invoice agent", slug="invoice-agent")
    campaign = make_campaign(admin_user)
    attested(agent, people["owner"], campaign=campaign)
    make_assessment(agent, admin_user)
    make_finding(agent, severity="high")
    return {"people": people, "agent": agent, "campaign": campaign}


def _last_event_id() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_permission_matrix(world, endpoint, role):
    client, is_caller = caller(role, world["people"], AUDIT_READ)
    last = _last_event_id()
    response = client.get(ENDPOINTS[endpoint](world))
    assert response.status_code == EXPECTED[role], (endpoint, role, response.status_code)
    events = list(AuditEvent.objects.filter(id__gt=last).order_by("id"))
    if response.status_code != 200:
        assert response["Content-Type"].startswith("application/json")
        assert events == []
        return
    body = json_body(response)
    if endpoint == "frameworks":
        assert [f["framework"] for f in body["frameworks"]] == ["nhi", "asi"]
        assert events == []  # a read, not an export
        return
    assert body["export"] == EXPORTS[endpoint] and body["count"] == 1
    assert [e.verb for e in events] == ["evidence.export"] and is_caller(events[0])
    assert events[0].after["format"] == "json" and events[0].after["export"] == EXPORTS[endpoint]


def test_an_auditors_token_needs_the_audit_read_scope(world, auditor):
    _, clear = issue_token(auditor, [IntegrationToken.Scope.INVENTORY_READ])
    last = _last_event_id()
    response = token_client(clear).get(reverse("api:evidence-findings"))
    assert response.status_code == 403 and "audit:read" in response.json()["detail"]
    assert _last_event_id() == last


@pytest.mark.parametrize("how", ["accept", "query"])
def test_csv_by_content_negotiation(world, auditor, how):
    client = session_client(auditor)
    url = reverse("api:evidence-campaign-attestations", args=[world["campaign"].pk])
    response = client.get(url, HTTP_ACCEPT="text/csv") if how == "accept" else client.get(url + "?format=csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="warrant-campaign-{world["campaign"].pk}-attestations-20261115T060000Z.csv"'
    )
    rows = csv_rows(response)
    assert [(r["agent_slug"], r["outcome"], r["attested_by"]) for r in rows] == [
        ("invoice-agent", "keep", "olivia.owner")
    ]
    event = AuditEvent.objects.get(verb="evidence.export")
    assert event.after["format"] == "csv" and event.actor_label == "aude.auditor"


def test_findings_filters_and_their_errors_are_json_even_when_csv_is_asked(world, auditor):
    make_finding(AgentFactory(), kind="orphaned_agent", severity="low")
    client = session_client(auditor)
    url = reverse("api:evidence-findings")
    rows = csv_rows(client.get(url + "?format=csv&severity=low"))
    assert {r["kind"] for r in rows} == {"orphaned_agent"}
    assert AuditEvent.objects.get(verb="evidence.export").after["scope"] == {"severity": "low"}

    last = _last_event_id()
    refused = client.get(url + "?severity=urgent&colour=red", HTTP_ACCEPT="text/csv")
    assert refused.status_code == 400 and refused["Content-Type"].startswith("application/json")
    assert set(refused.json()) == {"severity", "filters"}
    missing = client.get(reverse("api:evidence-campaign-attestations", args=[999999]), HTTP_ACCEPT="text/csv")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")
    assert _last_event_id() == last


@pytest.mark.parametrize("request_", ["format=xml", "head", "post"])
def test_other_formats_and_methods_are_refused_without_an_export(world, auditor, request_):
    client = session_client(auditor)
    url = reverse("api:evidence-assessments")
    last = _last_event_id()
    if request_ == "head":
        response = client.head(url)
    elif request_ == "post":
        response = client.post(url, {}, format="json")
    else:
        response = client.get(url + "?" + request_)
    assert response.status_code in (404, 405)
    assert _last_event_id() == last


@pytest.mark.parametrize("path", ["/api/v1/evidence/findings", "/api/v1/evidence/findings/"])
def test_with_or_without_the_slash(world, auditor, path):
    assert session_client(auditor).get(path).status_code == 200


@pytest.mark.parametrize("findings", [1, 25])
def test_an_export_makes_a_constant_number_of_queries(world, auditor, django_assert_max_num_queries, findings):
    for _ in range(findings):
        make_finding(AgentFactory(), kind="orphaned_agent")
    _, clear = issue_token(auditor, [AUDIT_READ])
    client = token_client(clear)
    with django_assert_max_num_queries(14):
        body = json_body(client.get(reverse("api:evidence-findings")))
    assert body["count"] == Finding.objects.count()


def test_the_frameworks_endpoint_counts_open_findings(world, auditor):
    body = session_client(auditor).get(reverse("api:evidence-frameworks")).json()
    items = {i["id"]: i for f in body["frameworks"] for i in f["items"]}
    assert len(items) == 20
    assert items["NHI7"]["open_findings"] == 1  # the unrotated-credential finding
    assert items["NHI7"]["title"] == "Long-Lived Secrets"
    assert {"code": "credential_hygiene"}.items() <= items["NHI7"]["controls"][0].items()


def test_the_schema_documents_the_evidence_endpoints(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (
        "/api/v1/evidence/findings",
        "/api/v1/evidence/assessments",
        "/api/v1/evidence/campaigns/{id}/attestations",
        "/api/v1/evidence/frameworks",
    ):
        assert path in text, path
    assert "text/csv" in text
    findings = text.split("/api/v1/evidence/findings/:")[1].split("/api/v1/evidence/frameworks/:")[0]
    for name in ("name: kind", "name: severity", "name: status", "name: agent", "name: framework", "- NHI7"):
        assert name in findings, name


def test_streamed_json_is_one_document(world, admin_user):
    response = session_client(admin_user).get(reverse("api:evidence-assessments"))
    text = streamed(response)
    assert text.startswith('{"export":"assessments"') and text.endswith("]}\n")
