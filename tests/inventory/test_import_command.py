"""``manage.py import_inventory``: the importers from the shell."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from governance.models import AuditEvent, Finding
from inventory.models import Agent, Credential, ImportRun, Tool
from tests.factories import AgentFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]


def run(*args) -> str:
    out = StringIO()
    call_command("import_inventory", *args, stdout=out)
    return out.getvalue()


def test_imports_the_cli_json_report_as_the_system():
    out = run("aws-credential-report", str(FIXTURES / "get-credential-report.json"))

    assert "Imported aws-credential-report from get-credential-report.json" in out
    assert "observed at: 2026-11-15T06:00:00+00:00" in out
    assert "agents created: 6" in out and "people skipped: 1" in out and "root skipped: 1" in out
    assert Agent.objects.count() == 6 and Credential.objects.count() == 10
    run_row = ImportRun.objects.get()
    assert (run_row.actor_type, run_row.actor_label) == ("system", "import_inventory command")
    assert AuditEvent.objects.get(verb="import.run").actor_label == "import_inventory command"


def test_raw_csv_needs_observed_at():
    with pytest.raises(CommandError, match="observed_at"):
        run("aws-credential-report", str(FIXTURES / "credential-report.csv"))
    assert Agent.objects.count() == 0

    out = run(
        "aws-credential-report", str(FIXTURES / "credential-report.csv"), "--observed-at", "2026-11-15T06:00:00+00:00"
    )
    assert "agents created: 6" in out
    assert set(Credential.objects.values_list("observed_at", flat=True)) == {ImportRun.objects.get().observed_at}


def test_observed_at_must_parse_and_carry_an_offset():
    report = str(FIXTURES / "credential-report.csv")
    with pytest.raises(CommandError, match="--observed-at"):
        run("aws-credential-report", report, "--observed-at", "last tuesday")
    with pytest.raises(CommandError, match="UTC offset"):
        run("aws-credential-report", report, "--observed-at", "2026-11-15T06:00:00")
    assert ImportRun.objects.count() == 0


def test_mcp_config_for_an_agent(owner):
    AgentFactory(slug="support-triage", owner=owner)
    out = run(
        "mcp-config", str(FIXTURES / "claude_desktop_config.json"), "--agent", "support-triage", "--as", owner.username
    )

    assert "tools created: 3" in out and "secret findings opened: 1" in out
    assert Tool.objects.count() == 3
    assert Finding.objects.filter(kind="literal_secret_in_config").count() == 1
    assert ImportRun.objects.get().actor_label == owner.username


def test_mcp_config_needs_an_existing_agent():
    config = str(FIXTURES / "vscode-mcp.json")
    with pytest.raises(CommandError, match="--agent"):
        run("mcp-config", config)
    with pytest.raises(CommandError, match="no agent with slug 'ghost'"):
        run("mcp-config", config, "--agent", "ghost")
    assert Tool.objects.count() == 0


def test_acting_person_without_permission_is_refused(owner):
    with pytest.raises(CommandError, match="Permission denied"):
        run("aws-credential-report", str(FIXTURES / "get-credential-report.json"), "--as", owner.username)
    with pytest.raises(CommandError, match="no active person"):
        run("aws-credential-report", str(FIXTURES / "get-credential-report.json"), "--as", "nobody")
    assert Agent.objects.count() == 0


def test_bad_file_exits_with_its_line_and_column(tmp_path):
    bad = tmp_path / "report.csv"
    lines = (FIXTURES / "credential-report.csv").read_text().splitlines()
    lines[3] = lines[3].replace("2024-01-10T07:06:00+00:00", "2024-01-10T07:06:00")
    bad.write_text("\n".join(lines) + "\n")

    with pytest.raises(CommandError) as exc:
        run("aws-credential-report", str(bad), "--observed-at", "2026-11-15T06:00:00Z")

    assert "file: line 4, column 10 (access_key_1_last_rotated)" in str(exc.value)
    assert Agent.objects.count() == 0 and AuditEvent.objects.count() == 0


def test_missing_file():
    with pytest.raises(CommandError, match="Cannot read"):
        run("aws-credential-report", "/nonexistent/report.json")


def test_exits_non_zero_from_the_shell(tmp_path):
    """A failure is an exit status, as scripts and CI see it."""
    from django.core.management import ManagementUtility

    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    utility = ManagementUtility(["manage.py", "import_inventory", "aws-credential-report", str(empty)])
    with pytest.raises(SystemExit) as exc:
        utility.execute()
    assert exc.value.code != 0


def test_options_that_do_not_apply_are_refused_and_nothing_is_written(owner):
    AgentFactory(slug="support-triage", owner=owner)
    with pytest.raises(CommandError, match="agent: The agent applies only to an MCP client configuration"):
        run("aws-credential-report", str(FIXTURES / "get-credential-report.json"), "--agent", "support-triage")
    with pytest.raises(CommandError, match="observed_at: Observed at applies only to an AWS credential report"):
        run(
            "mcp-config",
            str(FIXTURES / "claude_desktop_config.json"),
            "--agent",
            "support-triage",
            "--observed-at",
            "2026-11-15T06:00:00+00:00",
        )
    assert (
        ImportRun.objects.count(),
        Tool.objects.count(),
        Credential.objects.count(),
        AuditEvent.objects.count(),
    ) == (0, 0, 0, 0)


def test_a_garbage_file_is_told_it_is_not_a_report_before_observed_at_is_asked_for(tmp_path):
    garbage = tmp_path / "notes.txt"
    garbage.write_text("shopping list\neggs, milk\n")
    with pytest.raises(CommandError) as exc:
        run("aws-credential-report", str(garbage))
    assert "file: line 1, column 1" in str(exc.value) and "Not an AWS IAM credential report" in str(exc.value)
    assert "observed" not in str(exc.value)
    assert ImportRun.objects.count() == 0
