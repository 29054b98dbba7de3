"""The importers: AWS IAM credential reports and MCP client configurations, good files and bad."""

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied

from governance.errors import Conflict
from governance.models import AuditEvent, Finding
from inventory.importers import ImportFailed, run_import
from inventory.models import Agent, Credential, ImportRun, Tool, WorkloadIdentity
from inventory.secrets import fingerprint
from inventory.services import credentials_flag_stale_due
from tests.factories import T0, AgentFactory, ToolFactory, WorkloadIdentityFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REPORT_JSON = (FIXTURES / "get-credential-report.json").read_bytes()
REPORT_CSV = (FIXTURES / "credential-report.csv").read_bytes()
CLAUDE = (FIXTURES / "claude_desktop_config.json").read_bytes()
PROJECT = (FIXTURES / "project.mcp.json").read_bytes()
VSCODE = (FIXTURES / "vscode-mcp.json").read_bytes()
ACCOUNT = "arn:aws:iam::123456789012:user"
AWS = "aws-credential-report"
MCP = "mcp-config"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

AGENT_SLUGS = {
    "svc-invoice-agent",
    "svc-ticket-triage",
    "svc-code-review-bot",
    "svc-report-builder",
    "ci-deployer",
    "legacy-etl",
}
# (agent slug, slot) → (kind, status)
CREDENTIALS = {
    ("svc-invoice-agent", "access_key_1"): ("access_key", "active"),
    ("svc-invoice-agent", "access_key_2"): ("access_key", "active"),
    ("svc-ticket-triage", "access_key_1"): ("access_key", "active"),
    ("svc-code-review-bot", "access_key_1"): ("access_key", "active"),
    ("svc-report-builder", "access_key_1"): ("access_key", "active"),
    ("ci-deployer", "access_key_1"): ("access_key", "active"),
    ("ci-deployer", "access_key_2"): ("access_key", "active"),
    ("ci-deployer", "console_password"): ("console_password", "active"),
    ("legacy-etl", "access_key_1"): ("access_key", "inactive"),
    ("legacy-etl", "cert_1"): ("signing_certificate", "active"),
}


def aws_import(actor, content=REPORT_JSON, filename="get-credential-report.json", **kwargs):
    return run_import(actor=actor, source=AWS, content=content, filename=filename, **kwargs)


def row_counts() -> dict[str, int]:
    return {
        "agents": Agent.objects.count(),
        "identities": WorkloadIdentity.objects.count(),
        "credentials": Credential.objects.count(),
        "tools": Tool.objects.count(),
        "findings": Finding.objects.count(),
        "audit_events": AuditEvent.objects.count(),
        "import_runs": ImportRun.objects.count(),
    }


def inventory_state() -> list[tuple]:
    """Every inventory row's content (not ids), to compare two imports or one import before and after."""
    agents = [
        (a.slug, a.name, a.kind, a.platform, a.state, a.owner_id, a.source, a.external_ref, a.updated_at)
        for a in Agent.objects.order_by("slug")
    ]
    identities = [(i.agent.slug, i.type, i.identifier) for i in WorkloadIdentity.objects.order_by("identifier")]
    credentials = [
        (
            c.agent.slug,
            c.external_id,
            c.kind,
            c.status,
            c.created_at,
            c.last_rotated_at,
            c.last_used_at,
            c.usage_tracked,
            c.observed_at,
            c.status_changed_at,
            c.recorded_at,
        )
        for c in Credential.objects.select_related("agent").order_by("external_id")
    ]
    tools = [
        (
            t.agent_id,
            t.name,
            t.transport,
            t.command,
            t.args,
            t.url,
            t.env_keys,
            t.access_levels,
            t.destination,
            t.source,
            t.updated_at,
        )
        for t in Tool.objects.order_by("agent_id", "name")
    ]
    findings = [(f.kind, f.subject_label, f.status, f.evidence) for f in Finding.objects.order_by("id")]
    return [agents, identities, credentials, tools, findings]


def slot_of(credential: Credential) -> str:
    return credential.external_id.rsplit("#", 1)[1]


def open_findings(kind=None):
    qs = Finding.objects.filter(status__in=Finding.UNRESOLVED)
    return qs.filter(kind=kind) if kind else qs


def csv_variant(data: bytes = REPORT_CSV) -> bytes:
    """The sample report with a UTF-8 BOM, CRLF line ends and booleans in other cases."""
    lines = data.decode().splitlines()
    case = {"true": "TRUE", "false": "False"}
    out = [lines[0]] + [",".join(case.get(f, f) for f in line.split(",")) for line in lines[1:]]
    return b"\xef\xbb\xbf" + ("\r\n".join(out) + "\r\n").encode()


def json_report(csv_bytes: bytes, generated: str | None = "2026-11-15T06:00:00+00:00", **extra) -> bytes:
    doc = {"Content": base64.b64encode(csv_bytes).decode(), "ReportFormat": "text/csv"}
    if generated is not None:
        doc["GeneratedTime"] = generated
    doc.update(extra)
    return json.dumps(doc, indent=2).encode()


def edit_csv(user: str, data: bytes = REPORT_CSV, **changes) -> bytes:
    """The report ``data`` (default: the sample CSV) with cells of ``user``'s line changed, by column name."""
    lines = data.decode().splitlines()
    header = lines[0].split(",")
    for i, line in enumerate(lines):
        fields = line.split(",")
        if fields[0] == user:
            for col, value in changes.items():
                fields[header.index(col)] = value
            lines[i] = ",".join(fields)
    return ("\n".join(lines) + "\n").encode()


# --- AWS credential report: the sample ------------------------------------------------------


def test_report_json_becomes_ownerless_proposed_agents(admin_actor):
    run = aws_import(admin_actor)

    agents = {a.slug: a for a in Agent.objects.all()}
    assert set(agents) == AGENT_SLUGS
    for slug, agent in agents.items():
        assert agent.owner_id is None
        assert agent.state == Agent.State.PROPOSED
        assert agent.kind == Agent.Kind.SERVICE_ACCOUNT
        assert agent.source == Agent.Source.AWS_CREDENTIAL_REPORT
        assert agent.platform == "AWS IAM"
        assert agent.name == slug
        assert agent.external_ref.startswith(ACCOUNT) and agent.external_ref.endswith("/" + slug)
        identity = agent.identities.get()
        assert (identity.type, identity.identifier) == (WorkloadIdentity.Type.AWS_IAM_USER, agent.external_ref)
    assert agents["ci-deployer"].external_ref == f"{ACCOUNT}/ci/ci-deployer"

    assert run.source == AWS
    assert run.sha256 == hashlib.sha256(REPORT_JSON).hexdigest()
    assert run.observed_at == datetime(2026, 11, 15, 6, 0, tzinfo=UTC)
    assert run.actor_label == "iris.admin"
    assert run.summary["people_skipped"] == 1  # alice.admin: console password, no active key
    assert run.summary["root_skipped"] == 1
    assert run.summary["agents_created"] == 6
    assert not Agent.objects.filter(name__in=["alice.admin", "<root_account>"]).exists()


def test_report_credentials_per_agent(admin_actor):
    aws_import(admin_actor)

    got = {(c.agent.slug, slot_of(c)): (c.kind, c.status) for c in Credential.objects.select_related("agent")}
    assert got == CREDENTIALS
    for c in Credential.objects.select_related("agent"):
        assert c.provider == "aws"
        assert c.external_id == f"{c.agent.external_ref}#{slot_of(c)}"
        assert c.observed_at == T0
        assert c.usage_tracked == (c.kind == Credential.Kind.ACCESS_KEY)

    triage = Credential.objects.get(external_id=f"{ACCOUNT}/agents/svc-ticket-triage#access_key_1")
    assert triage.created_at == triage.last_rotated_at == datetime(2024, 1, 10, 7, 6, tzinfo=UTC)
    assert triage.last_used_at == datetime(2026, 7, 15, 3, 10, tzinfo=UTC)
    never_used = Credential.objects.get(external_id=f"{ACCOUNT}/agents/svc-invoice-agent#access_key_2")
    assert never_used.last_used_at is None
    password = Credential.objects.get(external_id=f"{ACCOUNT}/ci/ci-deployer#console_password")
    assert password.created_at == datetime(2023, 3, 15, 8, 5, tzinfo=UTC)
    assert password.last_used_at is None  # no_information
    cert = Credential.objects.get(external_id=f"{ACCOUNT}/legacy-etl#cert_1")
    assert cert.last_used_at is None and cert.created_at == datetime(2021, 1, 1, tzinfo=UTC)


def test_report_raises_one_unowned_finding_per_agent_and_audits(admin_actor):
    before = AuditEvent.objects.count()
    run = aws_import(admin_actor)

    unowned = open_findings("unowned_agent")
    assert unowned.count() == 6
    assert {f.subject_id for f in unowned} == set(Agent.objects.values_list("pk", flat=True))
    assert all(f.subject_type == ContentType.objects.get_for_model(Agent) for f in unowned)
    assert Finding.objects.count() == 6
    verbs = list(AuditEvent.objects.filter(id__gt=0).order_by("id").values_list("verb", flat=True))[before:]
    assert verbs.count("agent.import") == 6
    assert verbs.count("workload_identity.add") == 6
    assert verbs.count("credential.record") == 10
    assert verbs.count("finding.open") == 6
    assert verbs[-1] == "import.run"
    event = AuditEvent.objects.get(verb="import.run")
    assert event.object_id == str(run.pk)
    assert event.after["sha256"] == run.sha256
    assert event.after["summary"]["agents_created"] == 6


def test_stale_credential_job_on_the_sample_report_opens_exactly_nine_findings(admin_actor):
    """The acceptance case of issue 2: import get-credential-report.json, run the job as of its generation."""
    aws_import(admin_actor)

    credentials_flag_stale_due(now=datetime(2026, 11, 15, 6, tzinfo=UTC))

    credential_ct = ContentType.objects.get_for_model(Credential)
    found = set()
    for f in open_findings().filter(subject_type=credential_ct):
        c = Credential.objects.select_related("agent").get(pk=f.subject_id)
        found.add((c.agent.slug, slot_of(c), f.kind))
    assert found == {
        ("svc-ticket-triage", "access_key_1", "unused_credential"),
        ("svc-ticket-triage", "access_key_1", "unrotated_credential"),
        ("svc-report-builder", "access_key_1", "unused_credential"),
        ("svc-report-builder", "access_key_1", "unrotated_credential"),
        ("svc-invoice-agent", "access_key_1", "unrotated_credential"),
        ("ci-deployer", "console_password", "console_password_on_nhi"),
        ("ci-deployer", "access_key_1", "unrotated_credential"),
        ("ci-deployer", "access_key_2", "unrotated_credential"),
        ("legacy-etl", "cert_1", "unrotated_credential"),
    }
    assert open_findings().filter(subject_type=credential_ct).count() == 9
    assert open_findings("unowned_agent").count() == 6


def test_raw_csv_with_observed_at_imports_the_same_as_the_json(admin_actor):
    aws_import(admin_actor)
    from_json = inventory_state()
    Finding.objects.all().delete()
    Credential.objects.all().delete()
    WorkloadIdentity.objects.all().delete()
    Agent.objects.all().delete()

    run = aws_import(admin_actor, REPORT_CSV, "credential-report.csv", observed_at=T0)

    assert run.summary["format"] == "csv"
    assert run.observed_at == T0
    assert inventory_state()[:3] == from_json[:3]


def test_bom_crlf_and_mixed_case_booleans_parse_identically(admin_actor):
    aws_import(admin_actor, json_report(csv_variant()))
    variant = inventory_state()
    for model in (Finding, Credential, WorkloadIdentity, Agent):
        model.objects.all().delete()
    aws_import(admin_actor)
    assert inventory_state()[:3] == variant[:3]
    # and the same as a raw CSV file
    reimport = aws_import(admin_actor, csv_variant(), "variant.csv", observed_at=T0)
    assert reimport.summary["credentials_unchanged"] == 10
    assert reimport.summary["agents_created"] == 0


def test_raw_csv_without_observed_at_is_refused(admin_actor):
    before = row_counts()
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, REPORT_CSV, "credential-report.csv")
    assert exc.value.field == "observed_at"
    assert "observed_at" in exc.value.message_dict and "generated" in str(exc.value)
    assert row_counts() == before


def test_observed_at_without_offset_is_refused(admin_actor):
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, REPORT_CSV, "credential-report.csv", observed_at=datetime(2026, 11, 15, 6))
    assert exc.value.field == "observed_at"


def test_reimporting_the_same_report_changes_nothing(admin_actor):
    aws_import(admin_actor)
    state, counts = inventory_state(), row_counts()

    run = aws_import(admin_actor)
    aws_import(admin_actor, REPORT_CSV, "credential-report.csv", observed_at=T0)

    assert inventory_state() == state
    assert row_counts() == {**counts, "audit_events": counts["audit_events"] + 2, "import_runs": 3}
    assert run.summary["credentials_unchanged"] == 10
    assert run.summary["agents_matched"] == 6
    assert run.summary["agents_created"] == run.summary["credentials_created"] == 0
    assert list(AuditEvent.objects.order_by("-id").values_list("verb", flat=True)[:2]) == ["import.run", "import.run"]


def test_newer_report_updates_rotates_and_revokes_and_older_never_goes_back(admin_actor, frozen_now):
    aws_import(admin_actor)
    credentials_flag_stale_due(now=T0)
    key2 = Credential.objects.get(external_id=f"{ACCOUNT}/ci/ci-deployer#access_key_2")
    assert open_findings("unrotated_credential").filter(subject_id=key2.pk).exists()

    frozen_now.move_to(T0 + timedelta(days=2))
    newer = edit_csv(
        "ci-deployer", access_key_2_last_rotated="2026-11-16T00:00:00+00:00", access_key_2_last_used_date="N/A"
    )
    newer = edit_csv("svc-ticket-triage", newer, access_key_1_last_used_date="2026-11-16T01:00:00+00:00")
    newer = edit_csv("svc-invoice-agent", newer, access_key_2_active="false", access_key_2_last_rotated="N/A")
    newer = edit_csv("legacy-etl", newer, access_key_1_active="true")
    run = aws_import(admin_actor, json_report(newer, generated="2026-11-16T06:00:00+00:00"))

    assert run.summary["credentials_rotated"] == 1
    assert run.summary["credentials_revoked"] == 1
    key2.refresh_from_db()
    assert key2.last_rotated_at == datetime(2026, 11, 16, tzinfo=UTC)
    assert key2.last_used_at is None
    assert key2.observed_at == datetime(2026, 11, 16, 6, tzinfo=UTC)
    assert not open_findings("unrotated_credential").filter(subject_id=key2.pk).exists()
    rotate = AuditEvent.objects.get(verb="credential.rotate")
    assert rotate.object_id == str(key2.pk)
    assert rotate.before == {"last_rotated_at": "2025-09-01T00:00:00Z"}
    triage = Credential.objects.get(external_id=f"{ACCOUNT}/agents/svc-ticket-triage#access_key_1")
    assert triage.last_used_at == datetime(2026, 11, 16, 1, tzinfo=UTC)
    gone = Credential.objects.get(external_id=f"{ACCOUNT}/agents/svc-invoice-agent#access_key_2")
    assert gone.status == Credential.Status.REVOKED
    legacy = Credential.objects.get(external_id=f"{ACCOUNT}/legacy-etl#access_key_1")
    assert legacy.status == Credential.Status.ACTIVE

    state = inventory_state()
    older = aws_import(admin_actor)  # the 2026-11-15 report again
    assert older.summary["credentials_older_report"] == 10
    assert inventory_state()[:3] == state[:3]


def test_user_deleted_at_aws_has_its_credentials_revoked_by_a_newer_report(admin_actor, frozen_now):
    aws_import(admin_actor)
    credentials_flag_stale_due(now=T0)
    ci_keys = Credential.objects.filter(external_id__startswith=f"{ACCOUNT}/ci/ci-deployer#")
    assert ci_keys.filter(status=Credential.Status.ACTIVE).count() == 3
    without_ci = b"\n".join(line for line in REPORT_CSV.splitlines() if not line.startswith(b"ci-deployer,")) + b"\n"
    frozen_now.move_to(T0 + timedelta(days=1))
    run = aws_import(admin_actor, json_report(without_ci, generated="2026-11-16T06:00:00+00:00"))

    assert run.summary["credentials_revoked"] == 3
    assert set(ci_keys.values_list("status", flat=True)) == {Credential.Status.REVOKED}
    assert (
        not open_findings()
        .filter(subject_id__in=ci_keys.values("pk"), kind__in=["unrotated_credential", "console_password_on_nhi"])
        .exists()
    )
    reasons = AuditEvent.objects.filter(verb="credential.revoke").values_list("after__reason", flat=True)
    assert set(reasons) == {"Its IAM user is no longer in the AWS credential report."}
    # A report of another account says nothing about this one's users.
    other = edit_csv("svc-invoice-agent", REPORT_CSV, arn="arn:aws:iam::999999999999:user/agents/svc-invoice-agent")
    other = b"\n".join(line for line in other.splitlines() if line.startswith((b"user,", b"svc-invoice-agent,")))
    frozen_now.move_to(T0 + timedelta(days=2))
    assert (
        aws_import(admin_actor, json_report(other + b"\n", generated="2026-11-17T06:00:00+00:00")).summary[
            "credentials_revoked"
        ]
        == 0
    )


def test_existing_agent_keeps_its_owner_and_state(admin_actor, owner):
    arn = f"{ACCOUNT}/agents/svc-ticket-triage"
    agent = AgentFactory(slug="ticket-triage", name="Ticket triage", owner=owner, state=Agent.State.ACTIVE)
    WorkloadIdentityFactory(agent=agent, type=WorkloadIdentity.Type.AWS_IAM_USER, identifier=arn)
    ownerless = AgentFactory(
        slug="report-builder",
        owner=None,
        state=Agent.State.PROPOSED,
        external_ref=f"{ACCOUNT}/agents/svc-report-builder",
    )

    run = aws_import(admin_actor)

    agent.refresh_from_db()
    assert (agent.owner, agent.state, agent.slug, agent.external_ref) == (
        owner,
        Agent.State.ACTIVE,
        "ticket-triage",
        None,
    )
    assert agent.credentials.count() == 1
    assert not Agent.objects.filter(slug="svc-ticket-triage").exists()
    assert run.summary["agents_matched"] == 2 and run.summary["agents_created"] == 4
    assert not open_findings("unowned_agent").filter(subject_id=agent.pk).exists()
    assert open_findings("unowned_agent").filter(subject_id=ownerless.pk).exists()
    assert ownerless.identities.get().identifier == ownerless.external_ref
    assert open_findings("unowned_agent").count() == 5


def test_slug_taken_by_another_agent_gets_a_suffix(admin_actor):
    AgentFactory(slug="legacy-etl")
    aws_import(admin_actor)
    assert Agent.objects.get(name="legacy-etl", source=Agent.Source.AWS_CREDENTIAL_REPORT).slug == "legacy-etl-2"


def test_only_iam_admins_import_credential_reports(owner_actor, auditor):
    from governance.audit import Actor

    before = row_counts()
    for actor in (owner_actor, Actor.person(auditor)):
        with pytest.raises(PermissionDenied):
            aws_import(actor)
    assert row_counts() == before


def test_system_actor_imports(system_actor):
    run = aws_import(system_actor)
    assert run.actor_label == "test job" and run.actor_type == "system"


# --- AWS credential report: bad files ------------------------------------------------------


def _lines(data: bytes = REPORT_CSV) -> list[str]:
    return data.decode().splitlines()


def _join(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def _drop_field(line_no: int) -> bytes:
    lines = _lines()
    lines[line_no - 1] = lines[line_no - 1].rsplit(",", 1)[0]
    return _join(lines)


def _duplicate_line(line_no: int) -> bytes:
    lines = _lines()
    return _join(lines + [lines[line_no - 1]])


def _header(old: str, new: str) -> bytes:
    lines = _lines()
    lines[0] = lines[0].replace(old, new)
    return _join(lines)


BAD_REPORTS = {
    # name: (content, as csv?, expected fragments of the message)
    "empty": (b"", True, ["line 1, column 1", "empty"]),
    "blank lines": (b"\n \r\n", True, ["line 1, column 1", "empty"]),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", True, ["line 1, column 1", "not UTF-8"]),
    "prose": (b"Quarterly access review\nall good\n", True, ["line 1, column 1", "lacks the columns user, arn"]),
    "missing column": (
        _header(",arn,", ",amazon_resource_name,"),
        True,
        ["line 1, column 2 (amazon_resource_name)", "lacks the column arn"],
    ),
    "repeated column": (_header("mfa_active", "user"), True, ["line 1, column 8 (user)", "repeats column"]),
    "short row": (_drop_field(4), True, ["line 4, column 22", "21 fields where the header has 22"]),
    "bad timestamp": (
        edit_csv("svc-ticket-triage", access_key_1_last_rotated="2024-13-10T07:06:00+00:00"),
        True,
        ["line 4, column 10 (access_key_1_last_rotated)", "2024-13-10T07:06:00+00:00"],
    ),
    "timestamp without offset": (
        edit_csv("svc-ticket-triage", access_key_1_last_used_date="2026-07-15T03:10:00"),
        True,
        ["line 4, column 11 (access_key_1_last_used_date)", "no UTC offset"],
    ),
    "date only": (
        edit_csv("legacy-etl", user_creation_time="2020-05-05"),
        True,
        ["line 8, column 3 (user_creation_time)"],
    ),
    "bad boolean": (
        edit_csv("svc-code-review-bot", mfa_active="yes"),
        True,
        ["line 5, column 8 (mfa_active)", "'yes' is not true or false"],
    ),
    "duplicate user": (_duplicate_line(3), True, ["line 10, column 1 (user)", "first on line 3"]),
    "bad arn": (
        edit_csv("legacy-etl", arn="arn:aws:iam::123456789012:user/someone-else"),
        True,
        ["line 8, column 2 (arn)", "not 'legacy-etl'"],
    ),
    "use after generation": (
        edit_csv("ci-deployer", access_key_1_last_used_date="2026-11-20T00:00:00+00:00"),
        True,
        ["line 7, column 11 (access_key_1_last_used_date)", "after the report was generated"],
    ),
    "active key without rotation": (
        edit_csv("svc-report-builder", access_key_2_active="true"),
        True,
        ["line 6, column 14 (access_key_2_active)"],
    ),
    "unterminated quote": (REPORT_CSV + b'"bob,arn\n', True, ["line 10, column 1", "CSV"]),
    "json syntax": (
        b'{\n  "Content": "abc",\n  "ReportFormat": "text/csv",\n}',
        False,
        ["line 4, column 1", "Not valid JSON"],
    ),
    "json not an object": (b"[1, 2]", False, ["line 1, column 1"]),
    "json without Content": (
        json.dumps({"ReportFormat": "text/csv", "GeneratedTime": "2026-11-15T06:00:00+00:00"}).encode(),
        False,
        ["line 1, column 1", "no Content"],
    ),
    "json bad base64": (
        json_report(b"").replace(b'"Content": ""', b'"Content": "not*base64!"'),
        False,
        ["line 2, column 3", "not valid base64"],
    ),
    "json wrong format": (
        json_report(REPORT_CSV, ReportFormat="application/pdf"),
        False,
        ["line 3, column 3", "ReportFormat is 'application/pdf'"],
    ),
    "json GeneratedTime without offset": (
        json_report(REPORT_CSV, generated="2026-11-15T06:00:00"),
        False,
        ["line 4, column 3", "GeneratedTime"],
    ),
    "json content with bad row": (
        json_report(edit_csv("svc-code-review-bot", cert_1_active="maybe")),
        False,
        ["Content (line 2 of the JSON), decoded line 5, column 19 (cert_1_active)"],
    ),
    "json empty content": (json_report(b""), False, ["decoded line 1, column 1", "empty"]),
}


@pytest.mark.parametrize("name", list(BAD_REPORTS))
def test_bad_credential_report_writes_nothing(admin_actor, name):
    content, is_csv, fragments = BAD_REPORTS[name]
    aws_import(admin_actor, REPORT_JSON)  # an inventory to leave untouched
    before, state = row_counts(), inventory_state()

    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, content, "bad.csv" if is_csv else "bad.json", observed_at=T0 if is_csv else None)

    message = " ".join(exc.value.messages)
    assert exc.value.field == "file" and exc.value.message_dict.keys() == {"file"}
    assert re.search(r"line \d+, column \d+", message), message
    for fragment in fragments:
        assert fragment in message, message
    assert row_counts() == before
    assert inventory_state() == state


@pytest.mark.parametrize("name", ["bad timestamp", "duplicate user", "short row"])
def test_bad_credential_report_on_an_empty_inventory_writes_nothing(admin_actor, name):
    before = row_counts()
    with pytest.raises(ImportFailed):
        aws_import(admin_actor, BAD_REPORTS[name][0], "bad.csv", observed_at=T0)
    assert row_counts() == before == dict.fromkeys(before, 0)


def test_report_from_the_future_is_refused(admin_actor):
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, json_report(REPORT_CSV, generated="2026-12-01T00:00:00+00:00"))
    assert "in the future" in str(exc.value)
    assert Agent.objects.count() == 0


# --- MCP client configurations --------------------------------------------------------------


@pytest.fixture
def agent(owner):
    return AgentFactory(slug="support-triage", name="Support triage", owner=owner)


def mcp_import(actor, agent, content, filename="mcp.json"):
    return run_import(actor=actor, source=MCP, content=content, filename=filename, agent=agent)


def tools_of(agent) -> dict[str, Tool]:
    return {t.name: t for t in agent.tools.all()}


def test_claude_desktop_config_adds_tools_and_exactly_one_secret_finding(owner_actor, agent):
    run = mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")

    tools = tools_of(agent)
    assert set(tools) == {"filesystem", "github", "postgres"}
    fs = tools["filesystem"]
    assert (fs.transport, fs.command, fs.destination) == ("stdio", "npx", "internal")
    assert fs.args == ["-y", "@modelcontextprotocol/server-filesystem", "/srv/reports", "/srv/inbox"]
    assert fs.access_levels == ["read", "write", "execute"]
    assert fs.source == "claude_desktop_config.json"
    github = tools["github"]
    assert github.env_keys == ["GITHUB_PERSONAL_ACCESS_TOKEN"]
    assert tools["postgres"].args[-1] == "postgresql://reporting@db.internal.example:5432/finance"

    secrets = open_findings("literal_secret_in_config")
    assert secrets.count() == 1
    finding = secrets.get()
    assert finding.subject_id == github.pk and finding.agent_id == agent.pk
    token = "ghp_EXAMPLEexampleEXAMPLEexample0000"
    assert finding.evidence["secrets"] == [
        {
            "location": "env.GITHUB_PERSONAL_ACCESS_TOKEN",
            "kind": "a GitHub token",
            "fingerprint": fingerprint(token),
        }
    ]
    assert fingerprint(token).startswith("hmac-sha256:") and len(fingerprint(token)) == len("hmac-sha256:") + 16
    assert hashlib.sha256(token.encode()).hexdigest()[:16] not in json.dumps(finding.evidence)
    assert run.summary["secret_findings_opened"] == 1 and run.agent == agent
    assert_nowhere(token)


def assert_nowhere(secret: str) -> None:
    """The clear secret is stored in no tool, finding, audit event or import run."""
    for model in (Tool, Finding, AuditEvent, ImportRun):
        for row in model.objects.values():
            assert secret not in json.dumps(row, default=str), (model, row)


def test_project_and_vscode_configs_add_no_findings(owner_actor, agent):
    mcp_import(owner_actor, agent, PROJECT, ".mcp.json")
    mcp_import(owner_actor, agent, VSCODE, "mcp.json")

    assert Finding.objects.count() == 0
    tools = tools_of(agent)
    assert set(tools) == {"sentry", "payments-api", "kubectl", "jira", "docs-search", "shell"}
    sentry = tools["sentry"]
    assert (sentry.transport, sentry.url, sentry.destination) == (
        "sse",
        "https://mcp.sentry.example.com/sse",
        "external",
    )
    payments = tools["payments-api"]
    assert payments.transport == "http"
    assert payments.url == "${PAYMENTS_MCP_URL:-https://payments.internal.example/mcp}"
    assert payments.destination == "internal"  # its default URL is an internal host
    assert payments.env_keys == []
    kubectl = tools["kubectl"]
    assert kubectl.env_keys == ["KUBECONFIG"]
    assert kubectl.access_levels == ["read", "write", "execute"]  # --read-only=false
    jira = tools["jira"]
    assert (jira.transport, jira.command, jira.env_keys) == ("stdio", "uvx", ["JIRA_URL", "JIRA_API_TOKEN"])
    assert tools["docs-search"].destination == "external"
    assert tools["shell"].destination == "internal"


def test_reimporting_a_config_is_a_no_op(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    state, counts = inventory_state(), row_counts()

    run = mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")

    assert inventory_state() == state
    assert row_counts() == {**counts, "audit_events": counts["audit_events"] + 1, "import_runs": 2}
    assert run.summary["tools_unchanged"] == 3 and run.summary["secret_findings_opened"] == 0


def test_removing_the_secret_resolves_its_finding(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    fixed = CLAUDE.replace(b'"ghp_EXAMPLEexampleEXAMPLEexample0000"', b'"${GITHUB_TOKEN}"')

    run = mcp_import(owner_actor, agent, fixed, "claude_desktop_config.json")

    assert run.summary["secret_findings_resolved"] == 1
    assert run.summary["tools_unchanged"] == 3
    finding = Finding.objects.get(kind="literal_secret_in_config")
    assert finding.status == Finding.Status.RESOLVED
    assert finding.resolution_note == "Literal secret removed from the configuration."


def test_a_changed_secret_replaces_the_finding(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    rotated = CLAUDE.replace(b"example0000", b"example1111")
    mcp_import(owner_actor, agent, rotated, "claude_desktop_config.json")
    assert Finding.objects.filter(kind="literal_secret_in_config").count() == 2
    assert open_findings("literal_secret_in_config").count() == 1


SECRETS_EVERYWHERE = b"""{
  // every place a secret hides
  "servers": {
    "remote": {
      "type": "http",
      "url": "https://bot:hunter2hunter2@mcp.example.com/mcp?api_key=abc123def456&region=eu&sig=${SIG}",
      "headers": {"Authorization": "Bearer abcdef1234567890", "X-Trace": "on"},
    },
    "cli": {
      "command": "run-mcp",
      "args": ["--token", "s3cr3t-value", "--password=opensesame", "--url", "postgres://u:pw0rd123@db.lan/x",
               "xoxb-1234567890-abcdefgh", "--read-only"],
      "env": {"OPENAI_API_KEY": "sk-proj-abcdefghijklmnop1234", "LOG_LEVEL": "debug", "PGPASSWORD": "${PGPASS}",
              "AWS_ACCESS_KEY_ID": "AKIAABCDEFGHIJKLMNOP", "SSH_KEY_PATH": "/home/bot/.ssh/id_ed25519",
              "MAX_TOKENS": "4096"},
    },
  },
}"""


def test_literal_secrets_in_urls_headers_args_and_env_are_found_and_redacted(admin_actor, agent):
    mcp_import(admin_actor, agent, SECRETS_EVERYWHERE, "mcp.json")

    tools = tools_of(agent)
    remote, cli = tools["remote"], tools["cli"]
    assert remote.url == "https://bot:REDACTED@mcp.example.com/mcp?api_key=REDACTED&region=eu&sig=${SIG}"
    assert cli.args == [
        "--token",
        "REDACTED",
        "--password=REDACTED",
        "--url",
        "postgres://u:REDACTED@db.lan/x",
        "REDACTED",
        "--read-only",
    ]
    assert cli.access_levels == ["read"]
    assert remote.destination == "external"
    locations = {
        name: [
            s["location"] for s in open_findings("literal_secret_in_config").get(subject_id=tool.pk).evidence["secrets"]
        ]
        for name, tool in tools.items()
    }
    assert locations == {
        "remote": ["headers.Authorization", "url.password", "url.query.api_key"],
        # an AWS access key id names a key (it is a credential's external id), it is not the secret
        "cli": ["args[1]", "args[2]", "args[4].password", "args[5]", "env.OPENAI_API_KEY"],
    }
    for secret in (
        "hunter2hunter2",
        "abc123def456",
        "abcdef1234567890",
        "s3cr3t-value",
        "opensesame",
        "pw0rd123",
        "xoxb-1234567890-abcdefgh",
        "sk-proj-abcdefghijklmnop1234",
        "AKIAABCDEFGHIJKLMNOP",
    ):
        assert_nowhere(secret)


@pytest.mark.parametrize(
    ("url", "destination"),
    [
        ("http://localhost:3000/mcp", "internal"),
        ("http://127.0.0.1:8080/mcp", "internal"),
        ("http://[::1]/mcp", "internal"),
        ("https://10.1.2.3/mcp", "internal"),
        ("https://192.168.0.10/mcp", "internal"),
        ("https://tools.internal/mcp", "internal"),
        ("https://build.corp/mcp", "internal"),
        ("https://printer.lan/mcp", "internal"),
        ("https://nas.local/mcp", "internal"),
        ("https://payments.internal.example/mcp", "internal"),
        ("https://db.corp.example.com/mcp", "internal"),
        ("https://internal-docs.example.com/mcp", "external"),
        ("https://${HOST:-wiki.corp}/mcp", "internal"),
        ("https://${HOST}/mcp", "external"),
        ("https://api.example.com/mcp", "external"),
        ("https://8.8.8.8/mcp", "external"),
    ],
)
def test_destination_by_host(admin_actor, agent, url, destination):
    mcp_import(admin_actor, agent, json.dumps({"mcpServers": {"s": {"url": url}}}).encode())
    assert agent.tools.get().destination == destination


def test_other_owners_and_auditors_may_not_import_tools(agent, other_owner, auditor):
    from governance.audit import Actor

    for user in (other_owner, auditor):
        with pytest.raises(PermissionDenied):
            mcp_import(Actor.person(user), agent, CLAUDE)
    assert Tool.objects.count() == 0 and ImportRun.objects.count() == 0


def test_agent_is_required(owner_actor):
    with pytest.raises(ImportFailed) as exc:
        run_import(actor=owner_actor, source=MCP, content=CLAUDE, filename="c.json")
    assert exc.value.field == "agent"


def test_decommissioned_agent_gains_no_tools(admin_actor, agent):
    agent.state = Agent.State.DECOMMISSIONED
    agent.save()
    with pytest.raises(Conflict):
        mcp_import(admin_actor, agent, CLAUDE)
    assert Tool.objects.count() == 0


def test_unknown_source_is_refused(admin_actor):
    with pytest.raises(ImportFailed) as exc:
        run_import(actor=admin_actor, source="okta", content=b"{}", filename="x")
    assert exc.value.field == "source"


BAD_CONFIGS = {
    "empty": (b"", ["line 1, column 1", "empty"]),
    "syntax": (b'{\n  "mcpServers": {\n    "a": {"command": "x",,}\n  }\n}', ["line 3, column 27", "JSON5"]),
    "unterminated": (b'{\n  "servers": {\n', ["line 3, column 1"]),
    "not json": (b"mcpServers:\n  a: {}\n", ["line 1, column 1", "Unexpected"]),
    "no servers key": (b'{\n  "tools": {}\n}', ["line 1, column 1", "neither mcpServers"]),
    "servers not an object": (b'{\n  "servers": ["a"]\n}', ["line 2, column 3", "must be an object"]),
    "neither command nor url": (
        b'{\n  "mcpServers": {\n    "ghost": {"env": {}}\n  }\n}',
        ["line 3, column 5", "mcpServers.ghost", "neither command"],
    ),
    "entry not an object": (
        b'{"servers": {\n  "ok": {"command": "x"},\n  "bad": "npx foo"\n}}',
        ["line 3, column 3", "servers.bad"],
    ),
    "args not a list": (
        b'{"servers": {"a": {\n  "command": "x",\n  "args": "--flag"}}}',
        ["line 3, column 3", "args must be a list"],
    ),
    "env not strings": (
        b'{"servers": {"a": {"command": "x", "env": {\n "K": {"v": 1}}}}}',
        ["line 2, column 2", "env.K"],
    ),
    "unknown type": (b'{"servers": {"a": {"type": "websocket", "url": "wss://x"}}}', ["line 1", "unknown type"]),
    "duplicate server": (
        b'{"servers": {\n "a": {"command": "x"},\n "a": {"command": "y"}}}',
        ["line 3, column 2", "appears twice"],
    ),
    "top level array": (b"[]", ["line 1, column 1"]),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_writes_nothing(owner_actor, agent, name):
    content, fragments = BAD_CONFIGS[name]
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    before, state = row_counts(), inventory_state()

    with pytest.raises(ImportFailed) as exc:
        mcp_import(owner_actor, agent, content, "bad.json")

    message = " ".join(exc.value.messages)
    assert exc.value.field == "file"
    assert re.search(r"line \d+, column \d+", message), message
    for fragment in fragments:
        assert fragment in message, message
    assert row_counts() == before
    assert inventory_state() == state


# --- re-import: servers that left the file are removed --------------------------------------

WITHOUT_GITHUB = json.dumps(
    {
        "mcpServers": {
            "filesystem": json.loads(CLAUDE)["mcpServers"]["filesystem"],
            "postgres": json.loads(CLAUDE)["mcpServers"]["postgres"],
        }
    }
).encode()


def test_reimport_removes_servers_the_file_no_longer_lists(owner_actor, agent, frozen_now):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    github = agent.tools.get(name="github")
    by_hand = ToolFactory(agent=agent, name="linear", source="entered by hand")
    other_file = ToolFactory(agent=agent, name="sentry", source="mcp.json")
    frozen_now.shift(timedelta(hours=1))

    run = mcp_import(owner_actor, agent, WITHOUT_GITHUB, "claude_desktop_config.json")

    assert set(tools_of(agent)) == {"filesystem", "postgres", "linear", "sentry"}
    assert run.summary["tools_removed"] == 1 and run.summary["removed_tool_findings_resolved"] == 1
    assert run.summary["tools_unchanged"] == 2
    event = AuditEvent.objects.get(verb="tool.remove")
    assert (event.object_id, event.before["name"], event.before["source"]) == (
        str(github.pk),
        "github",
        "claude_desktop_config.json",
    )
    assert event.actor_label == owner_actor.label and event.occurred_at == T0 + timedelta(hours=1)
    finding = Finding.objects.get(kind="literal_secret_in_config")
    assert finding.status == Finding.Status.RESOLVED and finding.resolved_at == T0 + timedelta(hours=1)
    assert finding.resolution_note == "The tool was removed: claude_desktop_config.json no longer lists it."
    assert not open_findings().exists()
    for kept in (by_hand, other_file):
        kept.refresh_from_db()  # untouched: other sources
    assert (by_hand.source, other_file.source) == ("entered by hand", "mcp.json")

    again = mcp_import(owner_actor, agent, WITHOUT_GITHUB, "claude_desktop_config.json")
    assert again.summary["tools_removed"] == 0 and AuditEvent.objects.filter(verb="tool.remove").count() == 1


def test_an_emptied_file_removes_all_its_tools_and_only_them(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    mcp_import(owner_actor, agent, PROJECT, ".mcp.json")
    project_tools = set(tools_of(agent)) - {"filesystem", "github", "postgres"}

    run = mcp_import(owner_actor, agent, b'{"mcpServers": {}}', "claude_desktop_config.json")

    assert run.summary["servers"] == 0 and run.summary["tools_removed"] == 3
    assert set(tools_of(agent)) == project_tools
    assert AuditEvent.objects.filter(verb="tool.remove").count() == 3


def test_a_file_of_another_name_or_without_a_name_removes_nothing(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    ToolFactory(agent=agent, name="by-hand", source="")

    for filename in ("other.json", ""):
        run = mcp_import(owner_actor, agent, b'{"mcpServers": {}}', filename)
        assert run.summary["tools_removed"] == 0
    assert set(tools_of(agent)) == {"filesystem", "github", "postgres", "by-hand"}
    assert open_findings("literal_secret_in_config").count() == 1


def test_other_agents_tools_from_a_file_of_the_same_name_are_untouched(owner_actor, agent, owner):
    twin = AgentFactory(slug="twin", owner=owner)
    mcp_import(owner_actor, twin, CLAUDE, "claude_desktop_config.json")
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")

    mcp_import(owner_actor, agent, b'{"mcpServers": {}}', "claude_desktop_config.json")

    assert tools_of(agent) == {} and set(tools_of(twin)) == {"filesystem", "github", "postgres"}
    assert open_findings("literal_secret_in_config").get().agent_id == twin.pk


# --- options that do not apply to the source ---------------------------------------------------


def test_agent_given_with_a_credential_report_is_refused(admin_actor, agent):
    before = row_counts()
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, agent=agent)
    assert exc.value.field == "agent" and exc.value.message_dict.keys() == {"agent"}
    assert "applies only to an MCP client configuration" in str(exc.value)
    assert row_counts() == before


def test_observed_at_given_with_an_mcp_config_is_refused(owner_actor, agent):
    before = row_counts()
    with pytest.raises(ImportFailed) as exc:
        run_import(actor=owner_actor, source=MCP, content=CLAUDE, filename="c.json", agent=agent, observed_at=T0)
    assert exc.value.field == "observed_at" and exc.value.message_dict.keys() == {"observed_at"}
    assert "applies only to an AWS credential report" in str(exc.value)
    assert row_counts() == before


@pytest.mark.parametrize(
    "content",
    [
        b"Quarterly access review\nall good\n",
        json.dumps({"Content": base64.b64encode(b"hello,world\n1,2\n").decode(), "ReportFormat": "text/csv"}).encode(),
    ],
    ids=["prose", "json-without-generated-time"],
)
def test_a_file_that_is_not_a_report_is_told_so_before_observed_at_is_asked_for(admin_actor, content):
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, content, "report.csv")
    assert exc.value.field == "file"
    assert "Not an AWS IAM credential report" in str(exc.value)
    assert row_counts() == dict.fromkeys(row_counts(), 0)


@pytest.mark.parametrize("content", [REPORT_CSV, json_report(REPORT_CSV, generated=None)], ids=["csv", "json"])
def test_observed_at_messages_name_no_command_line_flag(admin_actor, content):
    with pytest.raises(ImportFailed) as exc:
        aws_import(admin_actor, content, "report")
    assert exc.value.field == "observed_at"
    assert "observed at" in exc.value.detail and "--" not in exc.value.detail


# --- secrets: keyed fingerprints, one set of rules ----------------------------------------------


def test_the_same_secret_in_two_configs_has_the_same_keyed_fingerprint(owner_actor, agent, owner):
    twin = AgentFactory(slug="twin", owner=owner)
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    mcp_import(owner_actor, twin, CLAUDE, "other.json")

    prints = [f.evidence["secrets"][0]["fingerprint"] for f in open_findings("literal_secret_in_config")]
    assert len(prints) == 2 and prints[0] == prints[1]
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{16}", prints[0])
    finding = open_findings("literal_secret_in_config").first()
    assert prints[0] in finding.detail and "a GitHub token" in finding.detail


MORE_SECRETS = b"""{
  "servers": {
    "gitlab": {"command": "gitlab-mcp",
               "args": ["--private-key", "-----BEGIN RSA PRIVATE KEY-----\\nMIIEabc\\n-----END RSA PRIVATE KEY-----",
                        "glpat-abcdefghij0123456789"]},
    "api": {"url": "https://api.example.com/mcp?access_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "headers": {"X-Request-Source": "Bearer ${input:api-token}"}},
    "git": {"command": "git-mcp", "args": ["https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/acme/x.git"]},
    "clean": {"command": "tool", "args": ["--token", "${TOKEN}", "--key=${input:key}", "--user=${USER:-bot}"],
              "env": {"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "API_TOKEN": "${API_TOKEN}"}},
  },
}"""


def test_more_secret_forms_are_found_redacted_and_pass_tool_validation(admin_actor, agent):
    mcp_import(admin_actor, agent, MORE_SECRETS, "mcp.json")

    tools = tools_of(agent)
    assert tools["gitlab"].args == ["--private-key", "REDACTED", "REDACTED"]
    assert tools["api"].url == "https://api.example.com/mcp?access_token=REDACTED"
    assert tools["git"].args == ["https://REDACTED@github.com/acme/x.git"]
    assert tools["clean"].args == ["--token", "${TOKEN}", "--key=${input:key}", "--user=${USER:-bot}"]
    kinds = {
        f.subject_label.split(" (")[0]: [s["kind"] for s in f.evidence["secrets"]]
        for f in open_findings("literal_secret_in_config")
    }
    assert kinds == {
        "gitlab": ["a private key", "a GitLab token"],
        "api": ["a JSON Web Token"],
        "git": ["a GitHub token"],
    }
    for tool in tools.values():
        tool.full_clean()  # what the importer stored, the model accepts
    for secret in ("MIIEabc", "glpat-abcdefghij0123456789", "c2lnbmF0dXJl", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"):
        assert_nowhere(secret)


AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("arg", "stored"),
    [
        (f"AKIAIOSFODNN7EXAMPLE:{AWS_SECRET}", "AKIAIOSFODNN7EXAMPLE:REDACTED"),
        (f"AKIAIOSFODNN7EXAMPLE{AWS_SECRET}", "AKIAIOSFODNN7EXAMPLEREDACTED"),
        (f"{AWS_SECRET},", "REDACTED,"),
        (f" {AWS_SECRET}", "REDACTED"),
    ],
)
def test_an_aws_secret_next_to_anything_in_args_is_one_finding_with_only_its_fingerprint(
    owner_actor, agent, arg, stored
):
    content = json.dumps({"mcpServers": {"aws": {"command": "aws-mcp", "args": ["--creds", arg]}}}).encode()
    run = mcp_import(owner_actor, agent, content)

    tool = tools_of(agent)["aws"]
    assert tool.args == ["--creds", stored]
    tool.full_clean()
    finding = open_findings("literal_secret_in_config").get()
    assert finding.subject_id == tool.pk
    assert finding.evidence["secrets"] == [
        {"location": "args[1]", "kind": "an AWS secret access key", "fingerprint": fingerprint(AWS_SECRET)},
    ]
    assert run.summary["secret_findings_opened"] == 1
    assert_nowhere(AWS_SECRET)


@pytest.mark.parametrize(
    ("args", "secret"),
    [
        (["--token=ghp_abcdefghijklmnopqrstuvwxyz0123456789"], "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
        (["PASSWORD=hunter2hunter2"], "hunter2hunter2"),
        (["-e", "USER=bot,PASSWORD=hunter2hunter2"], "hunter2hunter2"),
    ],
)
def test_key_value_pairs_in_args_are_one_finding_with_only_a_fingerprint(owner_actor, agent, args, secret):
    content = json.dumps({"mcpServers": {"kv": {"command": "kv-mcp", "args": args}}}).encode()
    mcp_import(owner_actor, agent, content)

    tool = tools_of(agent)["kv"]
    assert tool.args[-1].endswith("=REDACTED")
    tool.full_clean()
    (hit,) = open_findings("literal_secret_in_config").get().evidence["secrets"]
    assert hit["location"] == f"args[{len(args) - 1}]" and hit["fingerprint"] == fingerprint(secret)
    assert_nowhere(secret)


def test_an_env_key_that_is_not_a_variable_name_is_refused_without_echo(owner_actor, agent):
    content = (
        b'{"mcpServers": {"a": {"command": "x",\n  "env": {"TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789": "1"}}}}'
    )
    with pytest.raises(ImportFailed) as exc:
        mcp_import(owner_actor, agent, content)
    assert "line 2, column 11" in exc.value.detail and "environment variable name" in exc.value.detail
    assert "ghp_" not in exc.value.detail
    assert row_counts() == dict.fromkeys(row_counts(), 0) | {"agents": 1}


def test_a_finding_with_unkeyed_fingerprints_is_replaced_on_reimport(owner_actor, agent):
    mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")
    token = "ghp_EXAMPLEexampleEXAMPLEexample0000"
    legacy = [
        {
            "location": "env.GITHUB_PERSONAL_ACCESS_TOKEN",
            "fingerprint": "sha256:" + hashlib.sha256(token.encode()).hexdigest(),
        }
    ]
    Finding.objects.filter(kind="literal_secret_in_config").update(evidence={"secrets": legacy})

    run = mcp_import(owner_actor, agent, CLAUDE, "claude_desktop_config.json")

    assert (run.summary["secret_findings_resolved"], run.summary["secret_findings_opened"]) == (1, 1)
    old = Finding.objects.get(kind="literal_secret_in_config", status=Finding.Status.RESOLVED)
    assert "keyed (HMAC-SHA256) fingerprints" in old.resolution_note
    assert open_findings("literal_secret_in_config").get().evidence["secrets"][0]["fingerprint"] == fingerprint(token)


# --- revoked in Warrant, still listed by AWS ------------------------------------------------

TRIAGE_KEY = f"{ACCOUNT}/agents/svc-ticket-triage#access_key_1"


def _revoke_triage_key_in_warrant(admin_actor, frozen_now) -> Credential:
    """Import the sample report, run the job, then revoke the ticket-triage key in Warrant at T0 + 1 h."""
    from inventory.services import credential_revoke

    aws_import(admin_actor)
    credentials_flag_stale_due(now=T0)
    key = Credential.objects.get(external_id=TRIAGE_KEY)
    assert _credential_findings(key) == {"unused_credential", "unrotated_credential"}
    frozen_now.move_to(T0 + timedelta(hours=1))
    credential_revoke(actor=admin_actor, credential=key, reason="Key rotated out by the platform team.")
    assert _credential_findings(key) == set()
    frozen_now.move_to(T0 + timedelta(days=1))
    return key


def _credential_findings(key: Credential) -> set[str]:
    ct = ContentType.objects.get_for_model(Credential)
    return set(open_findings().filter(subject_type=ct, subject_id=key.pk).values_list("kind", flat=True))


def test_a_report_generated_after_a_warrant_revocation_that_shows_the_key_active_reactivates_it(
    admin_actor, frozen_now
):
    key = _revoke_triage_key_in_warrant(admin_actor, frozen_now)

    run = aws_import(admin_actor, json_report(REPORT_CSV, generated="2026-11-15T12:00:00+00:00"))

    key.refresh_from_db()
    assert key.status == Credential.Status.ACTIVE
    assert key.status_changed_at == T0 + timedelta(days=1)
    assert run.summary["credentials_reactivated"] == 1
    event = AuditEvent.objects.get(verb="credential.reactivate")
    assert event.object_id == str(key.pk)
    assert event.before == {"status": "revoked"}
    assert event.after == {
        "status": "active",
        "reason": "Active in an AWS credential report generated after it was revoked in Warrant.",
    }
    # The discrepancy is no longer hidden: the next stale-credential run raises the findings again.
    credentials_flag_stale_due(now=T0 + timedelta(days=1))
    assert _credential_findings(key) == {"unused_credential", "unrotated_credential"}


def test_a_report_generated_before_the_warrant_revocation_leaves_the_key_revoked(admin_actor, frozen_now):
    key = _revoke_triage_key_in_warrant(admin_actor, frozen_now)

    for generated in ("2026-11-15T06:00:00+00:00", "2026-11-15T06:30:00+00:00"):  # the sample, then a later one
        run = aws_import(admin_actor, json_report(REPORT_CSV, generated=generated))
        assert run.summary["credentials_reactivated"] == 0

    key.refresh_from_db()
    assert key.status == Credential.Status.REVOKED
    assert key.status_changed_at == T0 + timedelta(hours=1)
    assert key.observed_at == datetime(2026, 11, 15, 6, 30, tzinfo=UTC)
    assert not AuditEvent.objects.filter(verb="credential.reactivate").exists()
    credentials_flag_stale_due(now=T0 + timedelta(days=1))
    assert _credential_findings(key) == set()


def test_a_later_report_that_shows_the_revoked_key_inactive_sets_it_inactive(admin_actor, frozen_now):
    key = _revoke_triage_key_in_warrant(admin_actor, frozen_now)
    inactive = edit_csv("svc-ticket-triage", access_key_1_active="false")

    run = aws_import(admin_actor, json_report(inactive, generated="2026-11-15T12:00:00+00:00"))

    key.refresh_from_db()
    assert key.status == Credential.Status.INACTIVE
    assert run.summary["credentials_unrevoked_inactive"] == 1
    event = AuditEvent.objects.filter(verb="credential.update", object_id=str(key.pk)).get()
    assert event.before["status"] == "revoked"
    assert event.after["status"] == "inactive"
    assert event.after["reason"] == "Inactive in an AWS credential report generated after it was revoked in Warrant."
    assert not AuditEvent.objects.filter(verb="credential.reactivate").exists()
    credentials_flag_stale_due(now=T0 + timedelta(days=1))
    assert _credential_findings(key) == set()  # an inactive key raises nothing


# --- MCP configurations: size limits and the order of checks --------------------------------


def mcp_config(servers: int, pad: int = 0) -> bytes:
    """A configuration of ``servers`` stdio servers, every fourth with a literal token; ``pad`` extra args each."""
    doc = {
        "mcpServers": {
            f"server-{i:03d}": {
                "command": "npx",
                "args": ["-y", f"@acme/server-{i}", *[f"/srv/data/{j}" for j in range(pad)]],
                "env": {"API_TOKEN": f"ghp_EXAMPLEexampleEXAMPLEexample{i:04d}" if i % 4 == 0 else "${API_TOKEN}"},
            }
            for i in range(servers)
        }
    }
    return json.dumps(doc, indent=2).encode()


def test_an_mcp_config_over_one_mib_is_refused_naming_the_limit(owner_actor, agent):
    from inventory.importers import mcp

    content = mcp_config(10, pad=5000)
    assert len(content) > mcp.MAX_BYTES
    before = row_counts()
    with pytest.raises(ImportFailed) as exc:
        mcp_import(owner_actor, agent, content)
    assert exc.value.field == "file"
    assert "at most 1024 KiB (1 MiB)" in str(exc.value)
    assert row_counts() == before


def test_an_mcp_config_with_more_than_200_servers_is_refused_before_any_is_read(owner_actor, agent, monkeypatch):
    from inventory.importers import mcp

    monkeypatch.setattr(mcp, "_parse_server", lambda *a, **k: pytest.fail("a server was read"))
    with pytest.raises(ImportFailed) as exc:
        mcp_import(owner_actor, agent, mcp_config(mcp.MAX_SERVERS + 1))
    assert exc.value.field == "file"
    assert "at most 200 servers; this file lists 201" in str(exc.value)
    assert "line 2, column 3" in str(exc.value)
    assert Tool.objects.count() == 0


def test_a_credential_report_over_the_mcp_limit_still_imports(admin_actor):
    """The upload page states ``base.MAX_BYTES`` for every file; the MCP limit is the MCP importer's alone."""
    from inventory.importers import base, mcp

    content = REPORT_CSV + b"\n" * (mcp.MAX_BYTES + 1)
    assert base.MAX_BYTES > len(content)
    run = aws_import(admin_actor, content, "credential-report.csv", observed_at=T0)
    assert run.summary["credentials_created"] == 10


def test_importing_200_servers_costs_no_query_per_server(owner_actor, agent, other_owner):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from governance.audit import Actor

    small_agent = AgentFactory(slug="small", owner=other_owner)
    with CaptureQueriesContext(connection) as small:
        mcp_import(Actor.person(other_owner), small_agent, mcp_config(8))
    with CaptureQueriesContext(connection) as large:
        run = mcp_import(owner_actor, agent, mcp_config(200))

    assert run.summary["tools_created"] == 200
    assert (
        run.summary["secret_findings_opened"]
        == 50
        == open_findings("literal_secret_in_config").filter(agent_id=agent.pk).count()
    )
    assert len(large.captured_queries) == len(small.captured_queries)
    with CaptureQueriesContext(connection) as again:
        assert mcp_import(owner_actor, agent, mcp_config(200)).summary["tools_unchanged"] == 200
    assert len(again.captured_queries) <= len(large.captured_queries)


@pytest.mark.parametrize("content", [b"{not json", b"x" * (1024 * 1024 + 1)])
def test_a_decommissioned_agent_is_refused_before_the_file_is_read(admin_actor, agent, monkeypatch, content):
    from inventory.importers import mcp

    monkeypatch.setattr(mcp, "parse", lambda *a, **k: pytest.fail("the file was parsed"))
    agent.state = Agent.State.DECOMMISSIONED
    agent.save()
    with pytest.raises(Conflict):
        mcp_import(admin_actor, agent, content)


def test_permission_is_checked_before_the_file_is_read(agent, other_owner, monkeypatch):
    from governance.audit import Actor
    from inventory.importers import mcp

    monkeypatch.setattr(mcp, "parse", lambda *a, **k: pytest.fail("the file was parsed"))
    with pytest.raises(PermissionDenied):
        mcp_import(Actor.person(other_owner), agent, b"{not json")


def test_comments_trailing_commas_and_json5_syntax_parse_alike(owner_actor, agent):
    jsonc = b"""{
  // VS Code writes comments and trailing commas
  "servers": {
    /* a remote one */ "docs": {"url": "https://docs.example.com/mcp", "headers": {"X-Note": "a // b"},},
    "files": {"command": "npx", "args": ["-y", "fs-server", "/srv/*x*/",],},
  },
}"""
    json5_only = b"""{servers: {
  docs: {url: 'https://docs.example.com/mcp', headers: {'X-Note': 'a // b'}},
  files: {command: 'npx', args: ['-y', 'fs-server', '/srv/*x*/']},
}}"""
    mcp_import(owner_actor, agent, jsonc, "mcp.json")
    first = inventory_state()[3]
    assert {t.name: t.args for t in Tool.objects.all()} == {"docs": [], "files": ["-y", "fs-server", "/srv/*x*/"]}
    assert Tool.objects.get(name="files").command == "npx"
    mcp_import(owner_actor, agent, json5_only, "mcp.json")
    assert inventory_state()[3] == first
