"""Testing a decision in a real headless Chromium: an IAM admin opens an agent's page, follows "Test a
decision" from its recent decisions, and asks twice — a covered scope (Allow, with the grant that
authorises) and a resource outside the grant's pattern (Deny, ``resource_outside_pattern``) — each
answer swapped into the page in place, linkable, and never written to the decision log."""

from datetime import UTC, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from delegations.models import DecisionLog
from tests.factories import AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, ToolFactory

PASSWORD = "browser-test-pw"


@pytest.mark.django_db(transaction=True)
def test_admin_tests_a_decision_from_the_agent_page(page, sign_in):
    IamAdminFactory(username="amara", password=PASSWORD)
    agent = AgentFactory(owner=OwnerFactory(username="olga"), name="Deploy bot", slug="deploy-bot", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    now = timezone.now()
    grant = GrantFactory(
        agent=agent,
        requested_at=now - timedelta(hours=1),
        starts_at=now - timedelta(hours=1),
        expires_at=now + timedelta(days=1),
        scopes=[("github", "read", "repo:acme/*")],
    )

    sign_in("amara", PASSWORD)
    page.goto(f"/agents/{agent.slug}/")
    expect(page.locator("#decisions")).to_contain_text("No decisions logged for this agent.")
    page.get_by_test_id("agent-test-decision").click()
    page.wait_for_url("**/decisions/test/?agent=deploy-bot")
    expect(page.get_by_label("Agent")).to_have_value("deploy-bot")

    # A covered scope: allowed, naming the grant, answered in place.
    page.evaluate("window.stillTheSamePage = true")
    page.get_by_label("Tool").fill("github")
    page.get_by_label("Access").select_option("read")
    page.get_by_label("Resource").fill("repo:acme/docs")
    page.get_by_test_id("decision-test-submit").click()
    expect(page.get_by_test_id("decision-outcome")).to_have_text("Allow")
    expect(page.get_by_test_id("decision-grant")).to_have_attribute("href", f"/grants/{grant.pk}/")
    expect(page.get_by_test_id("decision-authority-ends")).to_contain_text(
        grant.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    )
    assert page.evaluate("window.stillTheSamePage") is True

    # Another resource: denied, with the reason code, and the question is in the address bar.
    page.get_by_label("Resource").fill("repo:other/x")
    page.get_by_test_id("decision-test-submit").click()
    expect(page.get_by_test_id("decision-outcome")).to_have_text("Deny")
    expect(page.get_by_test_id("reason-resource_outside_pattern")).to_be_visible()
    expect(page.get_by_test_id("decision-grant")).to_have_count(0)
    assert page.evaluate("window.stillTheSamePage") is True
    assert "resource=repo%3Aother%2Fx" in page.url

    # The grant link of the allowed answer leads to the grant; nothing was logged.
    page.go_back()
    expect(page.get_by_test_id("decision-outcome")).to_have_text("Allow")
    page.get_by_test_id("decision-grant").click()
    page.wait_for_url(f"**/grants/{grant.pk}/")
    assert not DecisionLog.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("width", [1280, 1024])
def test_the_iam_admins_navigation_fits_the_window(page, sign_in, width):
    """An IAM admin has the longest navigation; it wraps rather than push "Sign out" off screen."""
    admin = IamAdminFactory(username="amara", password=PASSWORD)
    admin.is_staff = True
    admin.save()
    page.set_viewport_size({"width": width, "height": 800})
    sign_in("amara", PASSWORD)
    page.goto("/decisions/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    sign_out = page.get_by_role("button", name="Sign out").bounding_box()
    assert sign_out["x"] + sign_out["width"] <= width
