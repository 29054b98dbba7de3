"""Evidence for auditors: the export builders (contents as CSV and JSON, formula-injection escape,
UTC timestamps, streaming), the audit event each export writes, the web pages' permission matrix
and query counts, and the framework view's counts."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.http import QueryDict, StreamingHttpResponse
from django.urls import reverse

from governance import evidence
from governance.assessments import FACTORS
from governance.audit import Actor, PendingEvent, audit_record, audit_record_many
from governance.errors import PermissionDenied, ValidationError
from governance.models import Attestation, AuditEvent, Finding, IntegrationToken
from inventory.models import Agent
from tests.api_support import issue_token
from tests.factories import T0, AgentFactory, TeamFactory
from tests.governance.evidence_support import (
    LOW_ANSWERS,
    attested,
    csv_rows,
    json_body,
    make_assessment,
    make_attestation,
    make_campaign,
    make_finding,
    streamed,
)
from tests.support import Trail, client_as

pytestmark = pytest.mark.django_db


# --- cells ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, cell",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\r=1", "'\r=1"),
        ("plain = text", "plain = text"),
        ("", ""),
        (None, ""),
        (True, "true"),
        (False, "false"),
        (-5, "-5"),
        (7, "7"),
        (datetime(2026, 11, 15, 7, 30, tzinfo=ZoneInfo("Europe/Berlin")), "2026-11-15T06:30:00Z"),
        (datetime(2026, 11, 15, 6, 0, 0, 250000, tzinfo=UTC), "2026-11-15T06:00:00.250000Z"),
        (date(2026, 12, 1), "2026-12-01"),
        ({"b": 1, "a": "=x"}, '{"a":"=x","b":1}'),
        (["-x"], '["-x"]'),
    ],
)
def test_csv_cell(value, cell):
    assert evidence.csv_cell(value) == cell


def test_a_csv_row_round_trips_through_the_dialect():
    writer_out = io.StringIO()
    writer = csv.writer(writer_out, dialect=evidence.CsvDialect)
    nasty = ["a,b", 'say "hi"', "two\nlines", "=1+1", "ünïcode"]
    writer.writerow([evidence.csv_cell(v) for v in nasty])
    text = writer_out.getvalue()
    assert text.endswith("\r\n")
    assert list(csv.reader(io.StringIO(text, newline=""))) == [["a,b", 'say "hi"', "two\nlines", "'=1+1", "ünïcode"]]


# --- the exports' contents ------------------------------------------------------------------------


@pytest.fixture
def world(owner, other_owner, admin_user, auditor, frozen_now):
    team = TeamFactory(name="Payments", slug="payments")
    mine = AgentFactory(owner=owner, backup_owner=other_owner, team=team, name="Invoice agent", slug="invoice-agent")
    theirs = AgentFactory(owner=other_owner, name="Deploy bot", slug="deploy-bot", risk_tier="high")
    return {"team": team, "mine": mine, "theirs": theirs}


def _rows_of(export: evidence.Export, fmt: str):
    response = evidence.export_response(export, fmt)
    return csv_rows(response) if fmt == "csv" else json_body(response)


def test_campaign_attestations_export(world, admin_user, auditor):
    campaign = make_campaign(admin_user, name="Q4 review")
    other = make_campaign(admin_user, name="Other")
    done = attested(world["mine"], world["mine"].owner, campaign=campaign, comment="=cmd|' /C calc'!A0")
    pending = make_attestation(world["theirs"], campaign=campaign)
    make_attestation(AgentFactory(), campaign=other)

    export = evidence.campaign_attestations_export(user=auditor, campaign=campaign, now=T0)
    assert export.count == 2
    rows = _rows_of(export, "csv")
    assert list(rows[0]) == list(evidence.ATTESTATION_COLUMNS)
    assert [r["attestation_id"] for r in rows] == [str(done.pk), str(pending.pk)]
    first = rows[0]
    assert first["campaign_name"] == "Q4 review" and first["agent_slug"] == "invoice-agent"
    assert first["owner"] == "olivia.owner" and first["backup_owner"] == "oscar.owner" and first["team"] == "payments"
    assert first["status"] == "attested" and first["outcome"] == "keep"
    assert (first["still_needed"], first["credentials_rotated"]) == ("true", "false")
    assert first["attested_by"] == "olivia.owner" and first["attested_at"] == "2026-11-15T07:00:00Z"
    assert first["due_on"] == "2026-12-01" and first["opened_at"] == "2026-11-15T06:00:00Z"
    assert first["comment"] == "'=cmd|' /C calc'!A0"  # a formula is shown as text
    assert rows[1]["still_needed"] == "" and rows[1]["attested_at"] == "" and rows[1]["risk_tier"] == "high"

    body = _rows_of(evidence.campaign_attestations_export(user=auditor, campaign=campaign, now=T0), "json")
    assert body["export"] == "campaign-attestations" and body["count"] == 2
    assert body["generated_at"] == "2026-11-15T06:00:00Z"
    assert body["campaign"]["name"] == "Q4 review" and body["campaign"]["deadline"] == "2026-12-15"
    # Progress as the campaign pages count it: the live agents in scope at launch, those attested since.
    assert body["campaign"]["progress"] == {"agents": 3, "attested": 1, "share": 0.3333}
    payments = next(t for t in body["campaign"]["teams"] if t["team"] == "payments")
    assert (payments["agents"], payments["attested"]) == (1, 1)
    assert body["items"][0]["comment"] == "=cmd|' /C calc'!A0"  # JSON keeps the text as it is
    assert body["items"][0]["still_needed"] is True and body["items"][1]["still_needed"] is None


def test_assessments_in_force_export(world, owner, admin_user, auditor):
    mine, theirs = world["mine"], world["theirs"]
    make_assessment(mine, admin_user, at=T0 - timedelta(days=40), tier="low", score=2)
    latest = make_assessment(
        mine,
        owner,
        at=T0 - timedelta(days=1),
        tier="high",
        score=13,
        answers={**LOW_ANSWERS, "data_classes": ["pii", "payment"], "autonomy": "=1+1"},
        notes="@owner please review",
    )
    make_assessment(theirs, admin_user, at=T0 - timedelta(days=200), days=180)  # lapsed: not in force
    gone = AgentFactory(state=Agent.State.DECOMMISSIONED)
    make_assessment(gone, admin_user)  # decommissioned: not in force

    export = evidence.assessments_in_force_export(user=auditor, now=T0)
    assert export.count == 1
    rows = _rows_of(export, "csv")
    assert [r["assessment_id"] for r in rows] == [str(latest.pk)]
    row = rows[0]
    assert row["tier"] == "high" and row["score"] == "13" and row["assessed_by"] == "olivia.owner"
    assert row["assessed_at"] == "2026-11-14T06:00:00Z" and row["valid_until"] == "2027-11-14T06:00:00Z"
    assert row["data_classes_answer"] == "pii;payment" and row["data_classes_points"] == "1"
    assert row["autonomy_answer"] == "'=1+1" and row["notes"] == "'@owner please review"
    assert all(f"{code}_answer" in row and f"{code}_points" in row for code in FACTORS)

    item = _rows_of(evidence.assessments_in_force_export(user=auditor, now=T0), "json")["items"][0]
    by_code = {f["code"]: f for f in item["factors"]}
    assert by_code["data_classes"]["answer"] == ["pii", "payment"]
    assert by_code["autonomy"]["owasp"] == list(FACTORS["autonomy"].framework_refs)
    assert by_code["autonomy"]["nist_ai_rmf"] == list(FACTORS["autonomy"].nist)


def _history(finding, *events):
    """Write audit events about ``finding`` (verb, actor label) in order."""
    from django.db import transaction

    with transaction.atomic():
        audit_record_many(
            actor=Actor.system("stale-credential check"),
            events=[PendingEvent(verb, "governance.finding", str(finding.pk), str(finding)) for verb in events],
        )


def test_findings_export_carries_each_findings_history(world, admin_user, auditor):
    resolved = make_finding(
        world["mine"],
        severity="high",
        status=Finding.Status.RESOLVED,
        resolved_at=T0 + timedelta(minutes=5),
        resolved_by="iris.admin",
        resolution_note="-rotated",
        evidence={"last_rotated_at": "2026-01-01T00:00:00Z"},
    )
    _history(resolved, "finding.open")
    from django.db import transaction

    with transaction.atomic():
        audit_record(
            actor=Actor.person(admin_user),
            verb="finding.resolve",
            object_type="governance.finding",
            object_id=str(resolved.pk),
            before={"status": "open"},
            after={"status": "resolved", "note": "-rotated"},
        )
    quiet = make_finding(world["theirs"], kind="orphaned_agent", severity="low")

    export = evidence.findings_export(user=auditor, params=QueryDict(), now=T0)
    rows = _rows_of(export, "csv")
    assert list(rows[0]) == list(evidence.FINDING_COLUMNS + evidence.HISTORY_COLUMNS)
    assert [(r["finding_id"], r["event_verb"]) for r in rows] == [
        (str(resolved.pk), "finding.open"),
        (str(resolved.pk), "finding.resolve"),
        (str(quiet.pk), ""),
    ]
    assert rows[0]["resolution_note"] == "'-rotated"
    assert rows[1]["event_actor"] == "iris.admin" and rows[1]["event_actor_type"] == "person"
    assert rows[1]["event_after"] == '{"note":"-rotated","status":"resolved"}'
    assert rows[0]["framework_refs"] == '["NHI7"]' and rows[0]["agent_slug"] == "invoice-agent"
    assert rows[0]["subject_type"] == "inventory.agent" and rows[0]["resolved_at"] == "2026-11-15T06:05:00Z"

    body = _rows_of(evidence.findings_export(user=auditor, params=QueryDict(), now=T0), "json")
    assert body["count"] == 2
    first, second = body["items"]
    assert [e["event_verb"] for e in first["history"]] == ["finding.open", "finding.resolve"]
    assert first["history"][1]["event_after"] == {"status": "resolved", "note": "-rotated"}
    assert first["evidence"] == {"last_rotated_at": "2026-01-01T00:00:00Z"}
    assert first["history"][0]["event_hash"] == AuditEvent.objects.get(verb="finding.open").hash
    assert second["history"] == []


def test_findings_export_filters_like_the_findings_queue(world, auditor):
    high = make_finding(world["mine"], severity="high")
    make_finding(world["theirs"], kind="orphaned_agent", severity="low")
    make_finding(world["theirs"], severity="high", status=Finding.Status.RESOLVED)
    export = evidence.findings_export(user=auditor, params=QueryDict("severity=high&status=open&format=csv"), now=T0)
    assert export.count == 1 and export.scope == {"severity": "high", "status": "open"}
    assert [item["finding_id"] for item in export.items()] == [high.pk]
    with pytest.raises(ValidationError) as info:
        evidence.findings_export(user=auditor, params=QueryDict("severity=urgent&colour=red"), now=T0)
    assert set(info.value.message_dict) == {"severity", "filters"}


def test_exports_are_read_in_chunks_with_constant_queries_per_chunk(
    world, auditor, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr(evidence, "CHUNK", 2)
    findings = [make_finding(AgentFactory(owner=world["mine"].owner), kind="orphaned_agent") for _ in range(5)]
    for f in findings:
        _history(f, "finding.open", "finding.acknowledge")
    export = evidence.findings_export(user=auditor, params=QueryDict(), now=T0)
    # 3 chunks of at most 2 findings: (findings, their events) each, and one empty read to end.
    with django_assert_num_queries(3 * 2 + 1):
        rows = list(csv.DictReader(io.StringIO("".join(evidence.stream_csv(export)), newline="")))
    assert [r["finding_id"] for r in rows] == [str(f.pk) for f in findings for _ in range(2)]


def test_builders_refuse_anyone_but_iam_admins_and_auditors(world, owner, admin_user):
    campaign = make_campaign(admin_user)
    with pytest.raises(PermissionDenied):
        evidence.campaign_attestations_export(user=owner, campaign=campaign, now=T0)
    with pytest.raises(PermissionDenied):
        evidence.assessments_in_force_export(user=owner, now=T0)
    with pytest.raises(PermissionDenied):
        evidence.findings_export(user=owner, params=QueryDict(), now=T0)
    with pytest.raises(PermissionDenied):
        evidence.framework_view(user=owner)


def test_the_export_record_audits_what_was_exported(world, auditor, admin_user):
    campaign = make_campaign(admin_user, name="Q4 review")
    attested(world["mine"], world["mine"].owner, campaign=campaign)
    trail = Trail()
    export = evidence.campaign_attestations_export(user=auditor, campaign=campaign, now=T0)
    evidence.evidence_export_record(actor=Actor.person(auditor), export=export, fmt="csv")
    event = trail.only("evidence.export", actor=Actor.person(auditor), obj=campaign)
    assert event.after == {
        "export": "campaign-attestations",
        "format": "csv",
        "scope": {"campaign": campaign.pk},
        "rows": 1,
        "filename": f"warrant-campaign-{campaign.pk}-attestations-20261115T060000Z.csv",
    }
    assert event.occurred_at == T0


def test_the_export_record_refuses_and_writes_nothing(world, owner, auditor):
    export = evidence.assessments_in_force_export(user=auditor, now=T0)
    trail = Trail()
    with pytest.raises(PermissionDenied):
        evidence.evidence_export_record(actor=Actor.person(owner), export=export, fmt="csv")
    assert trail.new() == []
    with pytest.raises(ValidationError) as info:
        evidence.evidence_export_record(actor=Actor.person(auditor), export=export, fmt="xlsx")
    assert "format" in info.value.message_dict
    assert trail.new() == []
    without_scope, _ = issue_token(auditor, [IntegrationToken.Scope.INVENTORY_READ])
    with_scope, _ = issue_token(auditor, [IntegrationToken.Scope.AUDIT_READ])
    trail.reset()  # issuing tokens is audited
    with pytest.raises(PermissionDenied, match="audit:read"):
        evidence.evidence_export_record(actor=Actor.integration(without_scope), export=export, fmt="csv")
    assert trail.new() == []
    evidence.evidence_export_record(actor=Actor.integration(with_scope), export=export, fmt="json")
    assert trail.only("evidence.export").actor_type == "integration"


def test_export_response_streams_a_download(world, auditor):
    export = evidence.assessments_in_force_export(user=auditor, now=T0)
    response = evidence.export_response(export, "csv")
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="warrant-assessments-20261115T060000Z.csv"'
    assert response["Cache-Control"] == "no-store"
    assert evidence.export_response(export, "json")["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        evidence.export_response(export, "xml")


# --- the web pages --------------------------------------------------------------------------------

PAGES = {
    "index": lambda w: reverse("evidence"),
    "frameworks": lambda w: reverse("evidence-frameworks"),
    "findings.csv": lambda w: reverse("evidence-findings", args=["csv"]),
    "findings.json": lambda w: reverse("evidence-findings", args=["json"]),
    "assessments.csv": lambda w: reverse("evidence-assessments", args=["csv"]),
    "assessments.json": lambda w: reverse("evidence-assessments", args=["json"]),
    "campaign.csv": lambda w: reverse("evidence-campaign-attestations", args=[w["campaign"].pk, "csv"]),
    "campaign.json": lambda w: reverse("evidence-campaign-attestations", args=[w["campaign"].pk, "json"]),
}
EXPECTED = {"anonymous": 302, "owner": 403, "other_owner": 403, "admin": 200, "auditor": 200}


@pytest.fixture
def page_world(world, admin_user):
    campaign = make_campaign(admin_user)
    attested(world["mine"], world["mine"].owner, campaign=campaign)
    make_finding(world["mine"])
    return {**world, "campaign": campaign}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("page", list(PAGES))
def test_permission_matrix_of_the_pages(page_world, people, role, page):
    trail = Trail()
    response = client_as(people[role]).get(PAGES[page](page_world))
    assert response.status_code == EXPECTED[role], (page, role)
    download = page not in ("index", "frameworks")
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("login"))
    if download and response.status_code == 200:
        body = streamed(response)
        assert body
        event = trail.only("evidence.export")
        assert (event.actor_type, event.actor_label) == ("person", people[role].username)
        assert event.after["format"] == page.rsplit(".", 1)[1]
    else:
        assert trail.new() == []


def test_every_download_is_audited_once(page_world, auditor):
    client = client_as(auditor)
    trail = Trail()
    for page, url in PAGES.items():
        if page in ("index", "frameworks"):
            continue
        streamed(client.get(url(page_world)))
    events = trail.new()
    assert [(e.verb, e.after["export"], e.after["format"]) for e in events] == [
        ("evidence.export", "findings", "csv"),
        ("evidence.export", "findings", "json"),
        ("evidence.export", "assessments", "csv"),
        ("evidence.export", "assessments", "json"),
        ("evidence.export", "campaign-attestations", "csv"),
        ("evidence.export", "campaign-attestations", "json"),
    ]
    assert {(e.object_type, e.object_id) for e in events[:4]} == {
        ("governance.evidence", "findings"),
        ("governance.evidence", "assessments"),
    }
    assert (events[4].object_type, events[4].object_id) == ("governance.campaign", str(page_world["campaign"].pk))


def test_findings_download_uses_the_findings_filters(page_world, auditor):
    make_finding(page_world["theirs"], kind="orphaned_agent", severity="high")
    trail = Trail()
    url = reverse("evidence-findings", args=["csv"]) + "?severity=high&status=open&agent=&kind="
    rows = csv_rows(client_as(auditor).get(url))
    assert {r["kind"] for r in rows} == {"orphaned_agent"}
    assert trail.only("evidence.export").after["scope"] == {"severity": "high", "status": "open"}


@pytest.mark.parametrize("query", ["severity=urgent", "colour=red", "agent=no-such-agent"])
def test_a_bad_filter_is_a_400_and_exports_nothing(page_world, auditor, query):
    trail = Trail()
    response = client_as(auditor).get(reverse("evidence-findings", args=["csv"]) + "?" + query)
    assert response.status_code == 400
    assert trail.new() == []


def test_unknown_format_or_campaign_is_a_404(page_world, auditor):
    client = client_as(auditor)
    trail = Trail()
    assert client.get("/evidence/findings.xlsx").status_code == 404
    assert client.get(reverse("evidence-campaign-attestations", args=[999999, "csv"])).status_code == 404
    assert trail.new() == []


def test_the_index_lists_campaigns_with_progress(page_world, auditor, admin_user):
    make_attestation(AgentFactory(), campaign=page_world["campaign"])
    make_attestation(AgentFactory(), campaign=page_world["campaign"], status=Attestation.Status.CANCELLED)
    body = client_as(auditor).get(reverse("evidence")).content.decode()
    assert "1 of 4" in body  # the live agents in scope, those attested since the launch
    assert reverse("evidence-campaign-attestations", args=[page_world["campaign"].pk, "csv"]) in body
    assert reverse("evidence-assessments", args=["json"]) in body


@pytest.mark.parametrize("campaigns", [1, 30])
def test_the_index_makes_a_constant_number_of_queries(auditor, admin_user, django_assert_max_num_queries, campaigns):
    for i in range(campaigns):
        c = make_campaign(admin_user, name=f"Campaign {i}")
        attested(AgentFactory(), admin_user, campaign=c)
    client = client_as(auditor)
    with django_assert_max_num_queries(8):
        assert client.get(reverse("evidence")).status_code == 200


@pytest.mark.parametrize("findings", [1, 20])
def test_a_download_makes_a_constant_number_of_queries(page_world, auditor, django_assert_max_num_queries, findings):
    for _ in range(findings):
        f = make_finding(AgentFactory(), kind="orphaned_agent")
        _history(f, "finding.open")
    client = client_as(auditor)
    with django_assert_max_num_queries(14):
        streamed(client.get(reverse("evidence-findings", args=["json"])))


def test_navigation_shows_evidence_to_auditors_and_iam_admins(people):
    for role, shown in [("auditor", True), ("admin", True), ("owner", False)]:
        body = client_as(people[role]).get(reverse("dashboard")).content.decode()
        assert (f'href="{reverse("evidence")}"' in body) is shown, role


# --- the framework view ---------------------------------------------------------------------------


def test_the_framework_view_counts_open_findings_per_item(world, auditor):
    mine, theirs = world["mine"], world["theirs"]
    make_finding(mine, kind="unrotated_credential")  # NHI7
    make_finding(mine, kind="expiring_credential", status=Finding.Status.ACKNOWLEDGED, severity="low")  # NHI7
    make_finding(theirs, kind="unused_credential")  # NHI1 and NHI7
    make_finding(theirs, kind="orphaned_agent")  # NHI1
    make_finding(
        theirs,
        kind="shared_workload_identity",
        status=Finding.Status.RISK_ACCEPTED,
        risk_accepted_until=T0 + timedelta(days=3),
    )  # not open
    make_finding(AgentFactory(), kind="unrotated_credential", status=Finding.Status.RESOLVED)  # not open

    views = evidence.framework_view(user=auditor)
    items = {iv.item.id: iv for v in views for iv in v.items}
    assert [v.framework.code for v in views] == ["nhi", "asi"]
    assert list(items) == [*(f"NHI{i}" for i in range(1, 11)), *(f"ASI{i:02d}" for i in range(1, 11))]
    assert items["NHI7"].open == 3 and items["NHI1"].open == 2 and items["NHI9"].open == 0
    assert {k.code: k.open for k in items["NHI7"].kinds}["unrotated_credential"] == 1
    assert items["ASI01"].open == 0

    body = client_as(auditor).get(reverse("evidence-frameworks")).content.decode()
    for item in items.values():
        assert f'id="item-{item.item.id}"' in body and item.item.title.replace("&", "&amp;") in body
    nhi7_url = items["NHI7"].url.replace("&", "&amp;")
    assert f'<a href="{nhi7_url}" class="open-count">3</a>' in body


def test_the_framework_views_links_lead_to_the_findings_it_counts(world, auditor):
    make_finding(world["mine"], kind="unrotated_credential")
    make_finding(world["theirs"], kind="orphaned_agent", status=Finding.Status.ACKNOWLEDGED)
    make_finding(world["theirs"], kind="unused_credential", status=Finding.Status.RESOLVED)
    items = {iv.item.id: iv for v in evidence.framework_view(user=auditor) for iv in v.items}
    listed = client_as(auditor).get(items["NHI1"].url).context["page"].object_list
    assert len(listed) == items["NHI1"].open == 1


@pytest.mark.parametrize("rows", [1, 20])
def test_the_framework_view_makes_a_constant_number_of_queries(auditor, django_assert_max_num_queries, rows):
    for _ in range(rows):
        make_finding(AgentFactory(), kind="orphaned_agent")
    client = client_as(auditor)
    with django_assert_max_num_queries(5):
        assert client.get(reverse("evidence-frameworks")).status_code == 200
