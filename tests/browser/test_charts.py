"""The dashboard's charts in a real headless Chromium: drawn from our own static Chart.js with no
script error, the tables folded behind them; with JavaScript off, the tables are what is shown.
An auditor downloads an evidence export from the evidence page."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from governance.models import AuditEvent
from tests.factories import AgentFactory, AuditorFactory, GrantFactory
from tests.governance.evidence_support import make_finding

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def data():
    AuditorFactory(username="aude.auditor")
    now = timezone.now()
    for i, tier in enumerate(["critical", "high", "low"]):
        agent = AgentFactory(risk_tier=tier, next_attestation_due=(now + timedelta(days=10 * i - 5)).date())
        make_finding(agent, severity=tier, first_seen_at=now - timedelta(days=3 * i + 1))
        GrantFactory(agent=agent, starts_at=now - timedelta(days=1), expires_at=now + timedelta(days=i + 1))


def test_the_charts_are_drawn_over_their_tables(page, sign_in, data):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and errors.append(msg.text))
    sign_in("aude.auditor", "correct-horse-battery")
    figures = page.locator("figure[data-chart]")
    expect(figures).to_have_count(4)
    for i in range(4):
        figure = figures.nth(i)
        expect(figure.locator("canvas")).to_be_visible()
        expect(figure.locator("table")).to_be_hidden()  # folded into its disclosure
        figure.get_by_text("Data table").click()
        expect(figure.locator("table")).to_be_visible()
    drawn = page.evaluate(
        "() => Array.from(document.querySelectorAll('figure[data-chart] canvas')).map(c => !!window.Chart.getChart(c))"
    )
    assert drawn == [True, True, True, True]
    assert errors == []


def test_without_javascript_the_tables_are_shown(chromium, live_server, data):
    context = chromium.new_context(base_url=live_server.url, java_script_enabled=False, timezone_id="UTC")
    page = context.new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill("aude.auditor")
    page.get_by_label("Password").fill("correct-horse-battery")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    figures = page.locator("figure[data-chart]")
    expect(figures).to_have_count(4)
    for i in range(4):
        expect(figures.nth(i).locator("canvas")).to_be_hidden()
        expect(figures.nth(i).locator("table")).to_be_visible()
    expect(page.get_by_role("table", name="Live agents (active or suspended) by risk tier")).to_be_visible()
    context.close()


def test_an_auditor_downloads_the_findings_as_csv(page, sign_in, data):
    sign_in("aude.auditor", "correct-horse-battery")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Evidence").click()
    page.get_by_label("Severity").select_option("high")
    with page.expect_download() as info:
        page.get_by_role("button", name="Download CSV").first.click()
    download = info.value
    assert download.suggested_filename.startswith("warrant-findings-") and download.suggested_filename.endswith(".csv")
    text = open(download.path(), encoding="utf-8").read()
    lines = text.splitlines()
    assert lines[0].startswith("finding_id,kind,title,severity") and len(lines) == 2 and ",high," in lines[1]
    event = AuditEvent.objects.get(verb="evidence.export")
    assert event.actor_label == "aude.auditor" and event.after["scope"] == {"severity": "high"}
