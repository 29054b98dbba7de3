"""The delegation journey in a real headless Chromium: an owner requests a grant for a high-tier
agent, two IAM admins approve it in the queue (separation of duties: the owner cannot), the grant
is active, and it stops authorising at its expiry — before the expiry job has run — which the job
then records once."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from delegations.models import DelegationGrant
from delegations.services import grants_expire_due
from governance.models import AuditEvent
from tests.factories import AgentFactory, IamAdminFactory, OwnerFactory, ToolFactory

PASSWORD = "browser-test-pw"


@pytest.fixture
def open_as(chromium, live_server):
    """``open_as(username)``: a new browser context signed in as ``username``; closed at the end."""
    contexts = []

    def _open(username: str):
        context = chromium.new_context(base_url=live_server.url, timezone_id="UTC")
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/")
        return page

    yield _open
    for context in contexts:
        context.close()


@pytest.mark.django_db(transaction=True)
def test_owner_requests_two_admins_approve_and_the_grant_expires_on_time(open_as):
    owner = OwnerFactory(username="olga", password=PASSWORD)
    IamAdminFactory(username="amara", password=PASSWORD)
    IamAdminFactory(username="bruno", password=PASSWORD)
    agent = AgentFactory(owner=owner, name="Deploy bot", slug="deploy-bot", risk_tier="high")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])

    # The owner asks for read access to github for 20 hours (the high tier's cap is 24 h).
    page = open_as("olga")
    page.goto(f"/agents/{agent.slug}/")
    page.get_by_test_id("agent-request-grant").click()
    expect(page.get_by_test_id("grant-cap")).to_contain_text("24 h")
    page.get_by_label("github: read", exact=True).check()
    page.get_by_label("Purpose").fill("Read deployment manifests")
    page.get_by_label("Justification").fill("Release 4.2 needs the manifests checked before rollout.")
    wanted = (timezone.now() + timedelta(hours=20)).astimezone(UTC).replace(second=0, microsecond=0)
    page.get_by_label("Expires at").fill(wanted.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_test_id("grant-request-submit").click()
    page.wait_for_url("**/grants/*/")
    grant = DelegationGrant.objects.get()
    assert (grant.status, grant.expires_at, grant.approvals_required) == ("pending", wanted, 2)
    expect(page.get_by_test_id(f"grant-state-{grant.pk}").first).to_contain_text("Pending")

    # The owner is offered no approval of their own request (and the server would refuse one).
    expect(page.get_by_test_id(f"approve-{grant.pk}")).to_have_count(0)

    # First approver: one of two approvals, still pending.
    first = open_as("amara")
    first.goto("/approvals/")
    expect(first.get_by_test_id(f"length-{grant.pk}")).to_contain_text("of 24 h cap")
    first.get_by_test_id(f"decide-{grant.pk}").click()
    first.get_by_test_id(f"approve-{grant.pk}").click()
    expect(first.get_by_test_id(f"row-outcome-{grant.pk}")).to_be_visible()
    expect(first.get_by_test_id(f"approvals-{grant.pk}")).to_contain_text("1 of 2")
    grant.refresh_from_db()
    assert grant.status == "pending"

    # Second approver: the grant becomes active.
    second = open_as("bruno")
    second.goto("/approvals/")
    second.get_by_test_id(f"decide-{grant.pk}").click()
    second.get_by_test_id(f"approve-{grant.pk}").click()
    expect(second.get_by_test_id(f"row-outcome-{grant.pk}")).to_be_visible()
    grant.refresh_from_db()
    assert grant.status == "active"
    assert list(grant.approvals.values_list("approver__username", flat=True).order_by("decided_at")) == [
        "amara",
        "bruno",
    ]

    page.goto(f"/grants/{grant.pk}/")
    expect(page.get_by_test_id(f"grant-state-{grant.pk}").first).to_contain_text("Active")

    # At its expiry the grant no longer authorises, and reads expired, before the job has run.
    with time_machine.travel(grant.expires_at + timedelta(seconds=1), tick=True):
        page.goto(f"/grants/{grant.pk}/")
        expect(page.get_by_test_id(f"grant-state-{grant.pk}").first).to_contain_text("Expired")
        assert not DelegationGrant.objects.active_at(timezone.now()).exists()
        grant.refresh_from_db()
        assert grant.status == "active"  # the books are the job's, enforcement is not
        assert grants_expire_due(now=timezone.now()) == {"expired": 1}
        assert grants_expire_due(now=timezone.now()) == {"expired": 0}
    grant.refresh_from_db()
    assert grant.status == "expired"
    assert AuditEvent.objects.filter(verb="grant.expire", object_id=str(grant.pk)).count() == 1
    assert isinstance(grant.expires_at, datetime)
