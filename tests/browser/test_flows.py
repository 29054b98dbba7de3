"""End-to-end flows in a real headless Chromium: sign in, browse agents, import a report, see findings."""

import re
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from playwright.sync_api import expect

from governance.models import Finding
from tests.factories import T0, IamAdminFactory

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.mark.django_db(transaction=True)
def test_owner_signs_in_filters_agents_and_opens_one(page, sign_in):
    call_command("seed_demo", stdout=StringIO())
    sign_in("olivia", "warrant-demo")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Agents").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    results = page.locator("#results")
    expect(results.get_by_role("link", name="Deploy pipeline")).to_be_visible()  # suspended, olivia is backup

    page.get_by_label("State").select_option("active")
    page.get_by_role("button", name="Filter").click()
    expect(results.get_by_role("link", name="Deploy pipeline")).to_have_count(0)
    expect(results.get_by_role("link", name="Support ticket triage")).to_be_visible()
    assert "state=active" in page.url
    # Not hers: never listed.
    expect(results.get_by_text("Legacy ETL")).to_have_count(0)

    results.get_by_role("link", name="Support ticket triage").click()
    expect(page.get_by_role("heading", name="Support ticket triage")).to_be_visible()
    expect(page.get_by_text("olivia").first).to_be_visible()
    expect(page.get_by_role("heading", name="Credentials")).to_be_visible()


@pytest.mark.django_db(transaction=True)
def test_iam_admin_imports_the_credential_report_and_sees_its_findings(page, sign_in):
    IamAdminFactory(username="iris", password="browser-test-pw")
    # The report was generated at T0; pin the server's clock there so "unrotated" is judged as of then.
    with time_machine.travel(T0, tick=True):
        sign_in("iris", "browser-test-pw")
        page.goto("/imports/")
        expect(page.get_by_role("heading", name="Import inventory")).to_be_visible()
        page.get_by_label("Source").select_option("aws-credential-report")
        page.get_by_label("File").set_input_files(str(FIXTURES / "get-credential-report.json"))
        page.get_by_role("button", name="Import", exact=True).click()
        expect(page.get_by_role("heading", name="Imported get-credential-report.json")).to_be_visible()

        page.get_by_role("button", name="Run stale-credential check now").click()
        page.wait_for_url("**/findings/**")
        expect(page.get_by_text("Stale-credential check done")).to_be_visible()

    rows = page.locator("#results tbody tr[id^='finding-']")
    expect(rows).to_have_count(15)
    expected = {
        "unowned_agent": 6,
        "unused_credential": 2,
        "unrotated_credential": 6,
        "console_password_on_nhi": 1,
    }
    kinds = {}
    for kind in Finding.objects.filter(status="open").values_list("kind", flat=True):
        kinds[kind] = kinds.get(kind, 0) + 1
    assert kinds == expected
    for title in (
        "Agent has no owner",
        "Credential unused",
        "Credential not rotated within its period",
        "Console password on a non-human identity",
    ):
        expect(rows.filter(has_text=title).first).to_be_visible()
    expect(rows.filter(has_text="Agent has no owner")).to_have_count(6)
    expect(rows.filter(has_text="Credential not rotated within its period")).to_have_count(6)
    expect(rows.filter(has_text="Credential unused")).to_have_count(2)
    expect(rows.filter(has_text="Console password on a non-human identity")).to_have_count(1)
    for name in ("svc-ticket-triage", "svc-report-builder", "svc-invoice-agent", "ci-deployer", "legacy-etl"):
        expect(rows.filter(has_text=name).first).to_be_visible()


@pytest.mark.django_db(transaction=True)
def test_a_token_is_shown_once_and_a_reload_issues_no_second_one(page, sign_in):
    from governance.models import IntegrationToken

    IamAdminFactory(username="iris", password="browser-test-pw")
    sign_in("iris", "browser-test-pw")
    page.goto("/tokens/")
    page.get_by_label("Name").fill("SIEM export")
    page.locator("input[name=scopes][value='audit:read']").check()
    page.get_by_role("button", name="Issue token").click()
    secret = page.locator("#issued-token")
    expect(secret).to_be_visible()
    clear = secret.inner_text()
    assert clear and clear not in page.url

    page.reload()
    expect(page.get_by_role("heading", name="Integration tokens")).to_be_visible()
    expect(page.locator("#issued-token")).to_have_count(0)
    assert clear not in page.content()
    assert IntegrationToken.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_decommission_and_token_revoke_ask_first(page, sign_in):
    from governance.models import IntegrationToken
    from inventory.models import Agent
    from tests.factories import AgentFactory, OwnerFactory

    owner = OwnerFactory(username="olivia", password="browser-test-pw")
    agent = AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage", state=Agent.State.ACTIVE)
    sign_in("olivia", "browser-test-pw")
    page.goto(f"/agents/{agent.slug}/")
    page.locator("#reason-decommission").fill("Replaced by v2.")
    questions = []

    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Decommission").click()
    expect(page.get_by_role("heading", name="Ticket triage")).to_be_visible()
    agent.refresh_from_db()
    assert agent.state == Agent.State.ACTIVE and questions == [
        "Decommission Ticket triage? This cannot be undone: the agent never acts again."
    ]

    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    page.get_by_role("button", name="Decommission").click()
    expect(page.get_by_text("Ticket triage: decommission done.")).to_be_visible()
    agent.refresh_from_db()
    assert agent.state == Agent.State.DECOMMISSIONED

    page.goto("/tokens/")
    page.get_by_label("Name").fill("CI")
    page.locator("input[name=scopes][value='inventory:read']").check()
    page.get_by_role("button", name="Issue token").click()
    page.once("dialog", lambda d: d.dismiss())
    page.get_by_role("button", name="Revoke").click()
    assert IntegrationToken.objects.get().revoked_at is None
    page.once("dialog", lambda d: d.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("is revoked.")).to_be_visible()
    assert IntegrationToken.objects.get().revoked_at is not None


@pytest.mark.django_db(transaction=True)
def test_an_auditor_reads_the_audit_log_and_verifies_the_chain(page, sign_in):
    from tests.factories import AuditorFactory

    call_command("seed_demo", stdout=StringIO())
    AuditorFactory(username="aude2", password="browser-test-pw")
    sign_in("aude2", "browser-test-pw")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    rows = page.locator("#results tbody tr[id^='event-']")
    expect(rows.first).to_be_visible()

    page.get_by_label("Verb").fill("agent.activate")
    expect(page).to_have_url(re.compile(r"verb=agent\.activate"))
    for text in rows.all_inner_texts():
        assert "agent.activate" in text

    page.get_by_role("button", name="Verify chain").click()
    expect(page.locator("#verify-result")).to_contain_text(re.compile(r"intact: \d+ events"))
