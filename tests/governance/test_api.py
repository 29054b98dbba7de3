"""REST API of the governance domain: findings, audit events, token authentication, the OpenAPI schema."""

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from governance.api import error_views
from governance.audit import Actor
from governance.findings import Condition, finding_raise
from governance.models import AuditEvent, Finding, IntegrationToken
from governance.roles import AGENT_OWNER, AUDITOR
from governance.services import integration_token_revoke
from inventory import services as inventory_services
from inventory.services import credentials_flag_stale_due
from tests.api_support import (
    ADMIN_ONLY_ON_OWN,
    CHANGE_OWN,
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
from tests.factories import T0, AgentFactory, CredentialFactory, add_role

FINDINGS = "/api/v1/findings/"
AUDIT = "/api/v1/audit-events/"
AUDIT_READ = IntegrationToken.Scope.AUDIT_READ


def raise_finding(kind: str, subject, agent, detail: str = "") -> Finding:
    with transaction.atomic():
        finding, _ = finding_raise(
            actor=Actor.system("test job"), kind=kind, now=T0, condition=Condition(subject, agent.pk, detail=detail)
        )
    return finding


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor, admin_actor):
    own = AgentFactory(slug="own", name="Invoice agent", owner=owner)
    others = AgentFactory(slug="others", name="Build bot", owner=other_owner)
    credential = CredentialFactory(agent=own, external_id="arn:aws:iam::123456789012:user/own#access_key_1")
    finding = raise_finding("unrotated_credential", credential, own, "Last rotated long ago.")
    inventory_services.agent_update(actor=admin_actor, agent=own, purpose="Reconcile invoices.")
    inventory_services.agent_update(actor=admin_actor, agent=others, purpose="Build things.")
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "own": own,
        "others": others,
        "credential": credential,
        "finding": finding,
        "own_event": AuditEvent.objects.get(verb="agent.update", object_id=str(own.pk)),
        "others_event": AuditEvent.objects.get(verb="agent.update", object_id=str(others.pk)),
    }


CASES = [
    Case("findings-list", "get", lambda w: FINDINGS, READ_ALL),
    Case("findings-retrieve", "get", lambda w: f"{FINDINGS}{w['finding'].pk}/", READ_OWN),
    Case(
        "findings-acknowledge",
        "post",
        lambda w: f"{FINDINGS}{w['finding'].pk}/acknowledge/",
        CHANGE_OWN,
        body=lambda w: {"note": "Looking into it."},
        verb="finding.acknowledge",
        scope=WRITE,
    ),
    Case(
        "findings-resolve",
        "post",
        lambda w: f"{FINDINGS}{w['finding'].pk}/resolve/",
        CHANGE_OWN,
        body=lambda w: {"note": "Rotated the key."},
        verb="finding.resolve",
        scope=WRITE,
    ),
    Case(
        "findings-accept-risk",
        "post",
        lambda w: f"{FINDINGS}{w['finding'].pk}/accept-risk/",
        ADMIN_ONLY_ON_OWN,
        body=lambda w: {"until": "2026-12-15T00:00:00Z", "note": "Vendor fix due."},
        verb="finding.accept_risk",
        scope=WRITE,
    ),
    Case("audit-events-list", "get", lambda w: AUDIT, READ_ALL, scope=AUDIT_READ),
    Case(
        "audit-events-retrieve-own-agent", "get", lambda w: f"{AUDIT}{w['own_event'].pk}/", READ_OWN, scope=AUDIT_READ
    ),
    Case(
        "audit-events-retrieve-other-agent",
        "get",
        lambda w: f"{AUDIT}{w['others_event'].pk}/",
        expect(owner=404, other_owner=200, admin=200, auditor=200),
        scope=AUDIT_READ,
    ),
    Case(
        "audit-events-are-read-only",
        "post",
        lambda w: AUDIT,
        expect(owner=405, other_owner=405, admin=405, auditor=403),
        body=lambda w: {"verb": "x"},
        scope=WRITE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    """Every endpoint and action, as every kind of caller: status, audit event on success, nothing on refusal."""
    run_case(case, role, world)


# --- findings ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_finding_shows_agent_name_and_credential_external_id(world):
    data = session_client(world["people"]["owner"]).get(f"{FINDINGS}{world['finding'].pk}/").data
    assert data["kind"] == "unrotated_credential"
    assert data["severity"] == "medium"
    assert data["status"] == "open"
    assert data["title"] == "Credential not rotated within its period"
    assert data["detail"] == "Last rotated long ago."
    assert data["framework_refs"] == ["NHI7"]
    assert data["subject_type"] == "inventory.credential"
    assert data["subject_id"] == world["credential"].pk
    assert data["agent"] == "own"
    assert data["agent_name"] == "Invoice agent"
    assert data["credential_external_id"] == "arn:aws:iam::123456789012:user/own#access_key_1"
    assert data["first_seen_at"] == data["last_seen_at"] == "2026-11-15T06:00:00Z"


@pytest.mark.django_db
def test_finding_about_an_agent_has_no_credential_external_id(world):
    finding = raise_finding("unowned_agent", world["own"], world["own"])
    data = session_client(world["people"]["admin"]).get(f"{FINDINGS}{finding.pk}/").data
    assert data["subject_type"] == "inventory.agent"
    assert data["agent_name"] == "Invoice agent"
    assert data["credential_external_id"] is None


@pytest.mark.django_db
def test_findings_filters(world):
    raise_finding("unowned_agent", world["others"], world["others"])
    client = session_client(world["people"]["admin"])
    assert [f["agent"] for f in client.get(f"{FINDINGS}?agent=own").data["results"]] == ["own"]
    assert [f["kind"] for f in client.get(f"{FINDINGS}?framework=NHI7").data["results"]] == ["unrotated_credential"]
    assert len(client.get(f"{FINDINGS}?status=open&severity=high&severity=medium").data["results"]) == 2
    assert client.get(f"{FINDINGS}?status=resolved").data["results"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "colour=blue",
        "kind=sunburn",
        "severity=extreme",
        "status=forgotten",
        "framework=NHI11",
        "ordering=colour",
        "agent=no-such-agent",
    ],
)
def test_findings_unknown_filter_or_value_is_400(query, world):
    assert session_client(world["people"]["admin"]).get(f"{FINDINGS}?{query}").status_code == 400


@pytest.mark.django_db
def test_accept_risk_needs_a_utc_offset(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        f"{FINDINGS}{world['finding'].pk}/accept-risk/",
        {"until": "2026-11-30T10:00:00", "note": "Vendor fix due."},
        format="json",
    )
    assert response.status_code == 400
    assert "Include a UTC offset" in str(response.data["until"][0])
    assert Finding.objects.get(pk=world["finding"].pk).status == "open"


@pytest.mark.django_db
def test_accept_risk_with_offset_is_stored_in_utc(world):
    client = session_client(world["people"]["admin"])
    response = client.post(
        f"{FINDINGS}{world['finding'].pk}/accept-risk/",
        {"until": "2026-12-15T10:00:00+05:00", "note": "Vendor fix due."},
        format="json",
    )
    assert response.status_code == 200, response.data
    assert response.data["status"] == "risk_accepted"
    assert response.data["risk_accepted_until"] == "2026-12-15T05:00:00Z"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("action", "body", "field", "message"),
    [
        ("acknowledge", {"status": "acknowledged"}, "status", "This field is read-only."),
        ("acknowledge", {"note": "x", "assignee": "me"}, "assignee", "Unknown field"),
        ("resolve", {"note": "x", "severity": "low"}, "severity", "This field is read-only."),
        ("accept-risk", {"until": "2026-12-15T00:00:00Z", "note": "x", "colour": "red"}, "colour", "Unknown field"),
    ],
)
def test_finding_actions_refuse_unknown_and_read_only_fields(action, body, field, message, world):
    before = AuditEvent.objects.count()
    response = session_client(world["people"]["admin"]).post(
        f"{FINDINGS}{world['finding'].pk}/{action}/", body, format="json"
    )
    assert response.status_code == 400
    assert message in str(response.data[field][0])
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_finding_state_conflict_is_409(world):
    client = session_client(world["people"]["owner"])
    url = f"{FINDINGS}{world['finding'].pk}/acknowledge/"
    assert client.post(url, {}, format="json").status_code == 200
    response = client.post(url, {}, format="json")
    assert response.status_code == 409
    assert "open" in response.data["detail"]


@pytest.mark.django_db
def test_resolve_needs_a_note(world):
    response = session_client(world["people"]["owner"]).post(
        f"{FINDINGS}{world['finding'].pk}/resolve/", {"note": ""}, format="json"
    )
    assert response.status_code == 400 and "note" in response.data


# --- audit events --------------------------------------------------------------------------


@pytest.mark.django_db
def test_audit_events_cursor_pagination_is_stable(world, admin_actor):
    for i in range(5):
        inventory_services.agent_update(actor=admin_actor, agent=world["own"], purpose=f"Purpose {i}.")
    expected = list(AuditEvent.objects.order_by("-id").values_list("id", flat=True))
    client = session_client(world["people"]["auditor"])
    response = client.get(f"{AUDIT}?page_size=3")
    assert response.data["previous"] is None
    assert "cursor=" in response.data["next"]
    seen = [e["id"] for e in response.data["results"]]
    inventory_services.agent_update(actor=admin_actor, agent=world["own"], purpose="Appended meanwhile.")
    next_url = response.data["next"]
    while next_url:
        page = client.get(next_url).data
        seen += [e["id"] for e in page["results"]]
        next_url = page["next"]
    assert seen == expected


@pytest.mark.django_db
def test_audit_event_fields_and_filters(world):
    client = session_client(world["people"]["auditor"])
    results = client.get(f"{AUDIT}?verb=agent.update&object_type=inventory.agent").data["results"]
    assert [e["object_id"] for e in results] == [str(world["others"].pk), str(world["own"].pk)]
    event = results[-1]
    assert event["actor_type"] == "person" and event["actor_label"] == "iris.admin"
    assert event["after"] == {"purpose": "Reconcile invoices."}
    assert event["occurred_at"] == "2026-11-15T06:00:00Z"
    assert len(event["hash"]) == 64 and len(event["prev_hash"]) == 64


@pytest.mark.django_db
def test_owner_reads_only_the_audit_trail_of_their_agents(world):
    results = session_client(world["people"]["owner"]).get(AUDIT).data["results"]
    assert [(e["object_type"], e["object_id"]) for e in results] == [("inventory.agent", str(world["own"].pk))]


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["colour=blue", "actor_type=robot", "since=yesterday", "until=2026-11-15T06:00:00"])
def test_audit_events_unknown_filter_or_value_is_400(query, world):
    assert session_client(world["people"]["auditor"]).get(f"{AUDIT}?{query}").status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["page=2", "page=1", "page=", "page=2&page_size=3"])
def test_audit_events_refuse_a_page_number_and_point_at_the_cursor(query, world):
    response = session_client(world["people"]["auditor"]).get(f"{AUDIT}?{query}")
    assert response.status_code == 400
    assert "cursor" in str(response.data["page"][0])


@pytest.mark.django_db
def test_audit_events_follow_the_cursor_without_a_page_number(world, admin_actor):
    for i in range(3):
        inventory_services.agent_update(actor=admin_actor, agent=world["own"], purpose=f"Purpose {i}.")
    client = session_client(world["people"]["auditor"])
    first = client.get(f"{AUDIT}?page_size=2").data
    assert "page=" not in first["next"].replace("page_size=", "")
    second = client.get(first["next"])
    assert second.status_code == 200
    assert {e["id"] for e in second.data["results"]}.isdisjoint({e["id"] for e in first["results"]})


@pytest.mark.django_db
def test_audit_events_time_window_needs_an_offset(world):
    client = session_client(world["people"]["auditor"])
    response = client.get(f"{AUDIT}?since=2026-11-15T06:00:00")
    assert "Include a UTC offset" in str(response.data["since"][0])
    assert len(client.get(f"{AUDIT}?since=2026-11-15T06:00:00Z").data["results"]) == AuditEvent.objects.count()
    assert client.get(f"{AUDIT}?until=2026-11-15T06:00:00%2B01:00").data["results"] == []


# --- query counts ---------------------------------------------------------------------------


def make_findings(owner, n):
    for _ in range(n):
        agent = AgentFactory(owner=owner)
        raise_finding("unrotated_credential", CredentialFactory(agent=agent), agent)


def make_events(owner, n):
    actor = Actor.person(owner)
    agent = AgentFactory(owner=owner)
    for i in range(n):
        inventory_services.agent_update(actor=actor, agent=agent, purpose=f"Purpose {i}.")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "make", "role"),
    [
        (FINDINGS, make_findings, "owner"),
        (FINDINGS, make_findings, "admin"),
        (AUDIT, make_events, "owner"),
        (AUDIT, make_events, "auditor"),
    ],
)
def test_list_query_count_does_not_grow_with_rows(url, make, role, owner, admin_user, auditor, frozen_now):
    client = session_client({"owner": owner, "admin": admin_user, "auditor": auditor}[role])
    make(owner, 2)
    few = count_queries(client, url)
    make(owner, 18)
    assert len(client.get(url).data["results"]) >= 20
    assert count_queries(client, url) == few
    assert few <= 8


# --- integration tokens --------------------------------------------------------------------


@pytest.mark.django_db
def test_anonymous_is_401_with_a_bearer_challenge(world):
    response = APIClient().get(FINDINGS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.django_db
def test_expired_token_is_401(world, frozen_now):
    _, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.INVENTORY_READ], days=1)
    client = token_client(clear)
    assert client.get(FINDINGS).status_code == 200
    frozen_now.move_to(T0 + timedelta(days=1))
    response = client.get(FINDINGS)
    assert response.status_code == 401
    assert "expired" in str(response.data["detail"])


@pytest.mark.django_db
def test_revoked_token_is_401_at_once(world, admin_actor):
    token, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.INVENTORY_READ])
    client = token_client(clear)
    assert client.get(FINDINGS).status_code == 200
    integration_token_revoke(actor=admin_actor, token=token)
    response = client.get(FINDINGS)
    assert response.status_code == 401
    assert "revoked" in str(response.data["detail"])


@pytest.mark.django_db
def test_token_of_an_inactive_person_is_401(world):
    owner = world["people"]["owner"]
    _, clear = issue_token(owner, [IntegrationToken.Scope.INVENTORY_READ])
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert token_client(clear).get(FINDINGS).status_code == 401


@pytest.mark.django_db
@pytest.mark.parametrize("header", ["Bearer wrt_not-a-real-token", "Bearer abc", "Bearer wrt_a wrt_b"])
def test_unknown_or_malformed_token_is_401(header, world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert client.get(FINDINGS).status_code == 401


@pytest.mark.django_db
def test_admin_token_is_limited_to_its_scopes(world):
    _, clear = issue_token(world["people"]["admin"], [IntegrationToken.Scope.INVENTORY_READ])
    client = token_client(clear)
    before = AuditEvent.objects.count()
    response = client.post(f"{FINDINGS}{world['finding'].pk}/acknowledge/", {}, format="json")
    assert response.status_code == 403
    assert "inventory:write" in str(response.data["detail"])
    assert client.get(AUDIT).status_code == 403
    assert AuditEvent.objects.count() == before


# --- OpenAPI --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_openapi_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (
        "/api/v1/agents/{slug}/assign-owner/",
        "/api/v1/agents/{slug}/set-risk-tier/",
        "/api/v1/findings/{id}/accept-risk/",
        "/api/v1/audit-events/",
        "/api/v1/imports/",
        "/api/v1/workload-identities/{id}/",
    ):
        assert path in text
    assert "integrationToken" in text


@pytest.mark.django_db
def test_schema_and_docs_are_served_offline(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "drf_spectacular_sidecar" in html
    assert "cdn." not in html and "unpkg" not in html


# --- end to end on the sample AWS credential report ----------------------------------------


@pytest.mark.django_db
def test_sample_report_import_and_job_show_the_nine_credential_findings(admin_user, frozen_now):
    sample = Path(__file__).resolve().parent.parent / "fixtures" / "get-credential-report.json"
    client = session_client(admin_user)
    upload = SimpleUploadedFile("get-credential-report.json", sample.read_bytes(), content_type="application/json")
    response = client.post("/api/v1/imports/", {"source": "aws-credential-report", "file": upload}, format="multipart")
    assert response.status_code == 201, response.data
    credentials_flag_stale_due(now=T0)
    findings = client.get(f"{FINDINGS}?page_size=100").data["results"]
    credential_findings = sorted(
        (f["agent_name"], f["credential_external_id"].rsplit("#", 1)[-1], f["kind"])
        for f in findings
        if f["subject_type"] == "inventory.credential"
    )
    assert credential_findings == [
        ("ci-deployer", "access_key_1", "unrotated_credential"),
        ("ci-deployer", "access_key_2", "unrotated_credential"),
        ("ci-deployer", "console_password", "console_password_on_nhi"),
        ("legacy-etl", "cert_1", "unrotated_credential"),
        ("svc-invoice-agent", "access_key_1", "unrotated_credential"),
        ("svc-report-builder", "access_key_1", "unrotated_credential"),
        ("svc-report-builder", "access_key_1", "unused_credential"),
        ("svc-ticket-triage", "access_key_1", "unrotated_credential"),
        ("svc-ticket-triage", "access_key_1", "unused_credential"),
    ]
    assert {f["kind"] for f in findings if f["subject_type"] == "inventory.agent"} == {"unowned_agent"}


# --- the API root and its namespace ----------------------------------------------------------


@pytest.mark.django_db
def test_every_link_of_the_api_root_is_under_api_v1(world):
    client = session_client(world["people"]["admin"])
    links = client.get("/api/v1/").data
    assert {
        "agents",
        "teams",
        "workload-identities",
        "credentials",
        "tools",
        "findings",
        "audit-events",
        "imports",
    } <= set(links)
    post_only = {"decisions"}  # asked with POST only; GET says so (405) with the methods allowed
    for name, url in links.items():
        assert url.startswith("http://testserver/api/v1/"), (name, url)
        response = client.get(url)
        if name in post_only:
            assert response.status_code == 405 and "POST" in response["Allow"], (name, url)
            continue
        assert response.status_code == 200, (name, url)
        assert response["Content-Type"].startswith("application/json"), (name, url)


def test_api_route_names_are_namespaced_and_leave_the_ui_names_alone():
    assert reverse("api:agent-list") == "/api/v1/agents"
    assert reverse("api:finding-list") == "/api/v1/findings"
    assert reverse("api:agent-set-risk-tier", kwargs={"slug": "own"}) == "/api/v1/agents/own/set-risk-tier"
    assert reverse("agent-list") == "/agents/"
    assert reverse("finding-list") == "/findings/"


# --- errors under /api/ are JSON ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nope/",
        "/api/v1/credentials/abc/",
        "/api/v1/agents/own/no-such-action/",
        "/api/v2/agents/",
        "/api/",
    ],
)
def test_unknown_api_path_is_a_json_404(path, method, debug, world, settings):
    settings.DEBUG = debug
    client = session_client(world["people"]["owner"])
    client.handler.enforce_csrf_checks = True  # a session without a CSRF token still gets the 404, not a 403 page
    response = getattr(client, method)(path, {"x": 1}, format="json") if method != "get" else client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert path in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/agents/own/no-such-action", "/api"])
def test_unknown_api_path_without_its_slash_is_a_json_404_not_a_redirect(path, method, debug, world, settings):
    settings.DEBUG = debug  # under DEBUG, APPEND_SLASH would raise on a POST it cannot redirect
    client = session_client(world["people"]["owner"])
    response = getattr(client, method)(path, {"x": 1}, format="json") if method != "get" else client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert path in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/schema", "/api/schema/", "/api/docs", "/api/docs/", "/api/redoc"])
def test_schema_and_docs_answer_with_or_without_the_slash(path, client):
    assert client.get(path).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_load_nothing_from_other_sites(path, client):
    page = client.get(path).content.decode()
    assert "googleapis" not in page and "cdn." not in page and "https://" not in page
    if path == "/api/redoc/":  # ReDoc's bundle names its maker's logo: the page's policy keeps images here
        assert "img-src 'self' data:" in page


@pytest.mark.django_db
def test_api_root_without_its_slash_leads_to_the_root(world):
    response = session_client(world["people"]["owner"]).get("/api/v1", follow=True)
    assert response.redirect_chain[-1][0] == "/api/v1/"
    assert response.status_code == 200 and "agents" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_finding_action_without_the_trailing_slash_works(world, settings, debug):
    settings.DEBUG = debug
    finding = world["finding"]
    response = session_client(world["people"]["owner"]).post(
        f"{FINDINGS}{finding.pk}/acknowledge", {"note": "Looking."}, format="json"
    )
    assert response.status_code == 200, response.content
    finding.refresh_from_db()
    assert finding.status == Finding.Status.ACKNOWLEDGED


@pytest.mark.django_db
def test_unknown_object_is_a_json_404(world):
    response = session_client(world["people"]["owner"]).get(f"{FINDINGS}999999/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json" and "detail" in response.json()


@pytest.mark.django_db
def test_web_ui_keeps_its_html_404_page(world):
    response = session_client(world["people"]["owner"]).get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "Not found" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_body_over_the_limit_is_a_json_413_and_writes_nothing(world, settings, debug):
    settings.DEBUG = debug
    client = session_client(world["people"]["owner"])
    before = AuditEvent.objects.count()
    body = '{"name": "%s", "kind": "assistant"}' % ("x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1))
    response = client.generic("POST", "/api/v1/agents/", body, content_type="application/json")
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in response.json()["detail"]
    form = client.post(
        "/api/v1/imports/", {"source": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}, format="multipart"
    )
    assert form.status_code == 413 and "detail" in form.json()
    assert AuditEvent.objects.count() == before


@pytest.mark.django_db
def test_too_many_form_fields_is_a_json_400(world, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    client = session_client(world["people"]["admin"])
    response = client.post("/api/v1/imports/", {f"f{i}": "x" for i in range(20)}, format="multipart")
    assert response.status_code == 400
    assert "detail" in response.json()


@pytest.mark.parametrize(
    ("handler", "args", "status"),
    [
        (error_views.bad_request, (RequestDataTooBig("too big"),), 413),
        (error_views.bad_request, (ValueError("bad"),), 400),
        (error_views.permission_denied, (None,), 403),
        (error_views.page_not_found, (None,), 404),
        (error_views.server_error, (), 500),
    ],
)
def test_error_handlers_answer_json_under_api_and_html_elsewhere(handler, args, status):
    factory = RequestFactory()
    api = handler(factory.get("/api/v1/agents/"), *args)
    assert api.status_code == status
    assert api["Content-Type"] == "application/json"
    assert api.content.startswith(b'{"detail": ')
    page = handler(factory.get("/agents/"), *args)
    assert page.status_code == (400 if status == 413 else status)
    assert page["Content-Type"].startswith("text/html")


# --- paging ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "query", "param", "allowed"),
    [
        (FINDINGS, "page_size=-1", "page_size", "from 1 to 500"),
        (FINDINGS, "page_size=0", "page_size", "from 1 to 500"),
        (FINDINGS, "page_size=501", "page_size", "from 1 to 500"),
        (FINDINGS, "page_size=100000", "page_size", "from 1 to 500"),
        (FINDINGS, "page_size=ten", "page_size", "from 1 to 500"),
        (FINDINGS, "page_size=2.5", "page_size", "from 1 to 500"),
        ("/api/v1/agents/", "page_size=-1", "page_size", "from 1 to 500"),
        (FINDINGS, "page=abc", "page", "from 1"),
        (FINDINGS, "page=0", "page", "from 1"),
        (FINDINGS, "page=-2", "page", "from 1"),
        (FINDINGS, "page=last", "page", "from 1"),
        (AUDIT, "page_size=1001", "page_size", "from 1 to 1000"),
        (AUDIT, "page_size=-1", "page_size", "from 1 to 1000"),
    ],
)
def test_invalid_paging_is_a_400_giving_the_allowed_range(url, query, param, allowed, world):
    response = session_client(world["people"]["admin"]).get(f"{url}?{query}")
    assert response.status_code == 400, response.data
    assert allowed in str(response.data[param][0])


@pytest.mark.django_db
def test_valid_paging(world):
    client = session_client(world["people"]["admin"])
    assert client.get(f"{FINDINGS}?page_size=500").status_code == 200
    assert client.get(f"{FINDINGS}?page_size=1&page=1").data["count"] == 1
    assert client.get(f"{FINDINGS}?page=").status_code == 200
    assert client.get(f"{AUDIT}?page_size=1000").status_code == 200
    beyond = client.get(f"{FINDINGS}?page=2")
    assert beyond.status_code == 404
    assert beyond["Content-Type"] == "application/json" and "detail" in beyond.json()


# --- tokens follow their person's role -------------------------------------------------------


@pytest.mark.django_db
def test_token_scope_lapses_when_its_person_loses_the_role(world):
    owner = world["people"]["owner"]
    _, clear = issue_token(owner, [IntegrationToken.Scope.INVENTORY_READ, IntegrationToken.Scope.INVENTORY_WRITE])
    client = token_client(clear)
    url = f"{FINDINGS}{world['finding'].pk}/acknowledge/"
    owner.groups.clear()
    add_role(owner, AUDITOR)
    before = AuditEvent.objects.count()
    response = client.post(url, {}, format="json")
    assert response.status_code == 403
    assert "no longer allows the inventory:write scope" in str(response.data["detail"])
    assert client.get(FINDINGS).status_code == 200  # an auditor still reads
    owner.groups.clear()
    assert client.get(FINDINGS).status_code == 403
    add_role(owner, AGENT_OWNER)
    assert client.post(url, {}, format="json").status_code == 200
    assert AuditEvent.objects.count() == before + 1
