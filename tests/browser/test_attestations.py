"""Attestations end to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright
against the live server): an owner answers an attestation due in their inbox and the agent's next due
date moves by its tier's cadence; an IAM admin launches a campaign and follows its progress."""

from datetime import date, timedelta

import pytest
import time_machine

from governance import attestations as att
from inventory.models import Agent
from tests.factories import T0, AgentFactory, IamAdminFactory, OwnerFactory, TeamFactory

PASSWORD = "browser-test-pw"
TODAY = date(2026, 11, 15)

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(page, username):
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")


def test_an_owner_answers_the_attestation_in_the_inbox_and_the_due_date_moves(page):
    from playwright.sync_api import expect

    with time_machine.travel(T0, tick=True):
        owner = OwnerFactory(username="olga", password=PASSWORD)
        agent = AgentFactory(
            owner=owner, name="Invoice agent", risk_tier="high", next_attestation_due=TODAY + timedelta(5)
        )
        AgentFactory(owner=owner, name="Late agent", next_attestation_due=TODAY - timedelta(2))
        assert att.attestations_open_due(now=T0)["opened"] == 2

        sign_in(page, "olga")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Attestations").click()
        expect(page.get_by_role("heading", name="My attestations")).to_be_visible()
        rows = page.locator("#results tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0)).to_contain_text("Late agent")
        expect(rows.nth(0)).to_contain_text("Overdue 2 days")
        expect(rows.nth(1)).to_contain_text("in 5 days")

        rows.nth(1).get_by_role("link", name="Attest", exact=True).click()
        expect(page.get_by_role("heading", name="Attestation of Invoice agent")).to_be_visible()
        for field in ("still_needed", "owner_correct", "grants_appropriate", "credentials_rotated"):
            page.locator(f"#id_{field}_0").check()
        page.locator("#id_outcome_0").check()
        page.get_by_label("Comment").fill("Still triaging invoices.")
        page.get_by_role("button", name="Submit attestation").click()

        page.wait_for_url("**/attestations/")
        expect(page.get_by_text("Attested Invoice agent: keep as is.")).to_be_visible()
        expect(page.locator("#results tbody tr")).to_have_count(1)
        agent.refresh_from_db()
        assert agent.next_attestation_due == TODAY + timedelta(days=90)
        page.goto("/attestations/all/?status=attested")
        expect(page.locator("#results tbody tr")).to_contain_text("Keep as is")


def test_a_refused_answer_shows_its_reason_in_place(page):
    from playwright.sync_api import expect

    with time_machine.travel(T0, tick=True):
        owner = OwnerFactory(username="olga", password=PASSWORD)
        AgentFactory(owner=owner, name="Invoice agent", next_attestation_due=TODAY)
        att.attestations_open_due(now=T0)
        sign_in(page, "olga")
        page.goto("/attestations/")
        page.get_by_role("link", name="Attest", exact=True).click()
        page.locator("#id_still_needed_1").check()  # no longer needed …
        for field in ("owner_correct", "grants_appropriate", "credentials_rotated"):
            page.locator(f"#id_{field}_0").check()
        page.locator("#id_outcome_0").check()  # … but kept
        page.get_by_role("button", name="Submit attestation").click()
        expect(page.get_by_text("An agent that is no longer needed is decommissioned")).to_be_visible()
        assert Agent.objects.get().attestations.get().status == "open"


def test_an_iam_admin_launches_a_campaign_and_follows_its_progress(page):
    from playwright.sync_api import expect

    with time_machine.travel(T0, tick=True):
        IamAdminFactory(username="iris", password=PASSWORD)
        payments = TeamFactory(name="Payments", slug="payments")
        AgentFactory(team=payments, name="Payer")
        AgentFactory(team=payments, name="Refunder")
        sign_in(page, "iris")
        page.goto("/campaigns/")
        page.get_by_text("Launch a campaign").click()
        page.get_by_label("Name").fill("Payments Q4")
        page.get_by_label("Scope").select_option("team:payments")
        page.get_by_label("Deadline").fill("2026-12-15")
        page.get_by_role("button", name="Launch").click()
        expect(page.get_by_role("heading", name="Payments Q4")).to_be_visible()
        expect(page.get_by_test_id("progress")).to_contain_text("0 of 2 agents attested")
        expect(page.locator("#teams")).to_contain_text("Payments")
        expect(page.locator("#outstanding tbody tr")).to_have_count(2)
