"""The agent page's risk tier (a link to the risk assessment), the register form's risk tier, who is
offered the owner transfer and whom its dropdowns list, and confirmation of irreversible actions."""

import pytest
from django.urls import reverse

from governance.models import AuditEvent
from inventory.models import Agent
from tests.factories import AgentFactory, AuditorFactory, CredentialFactory, OwnerFactory, UserFactory
from tests.support import client_as

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def agent(owner, other_owner):
    return AgentFactory(owner=owner, backup_owner=other_owner, name="Ticket triage", slug="ticket-triage")


def audit_events(agent, verb):
    return AuditEvent.objects.filter(object_type="inventory.agent", object_id=str(agent.pk), verb=verb)


# --- risk tier on the agent page --------------------------------------------------------------
# The tier is the latest risk assessment's (governance.assessments); the page links to the questionnaire.


@pytest.mark.parametrize("role, offered", [("admin", True), ("owner", True), ("other_owner", True), ("auditor", False)])
def test_the_risk_tier_control_links_to_the_assessment_form(people, agent, role, offered):
    body = client_as(people[role]).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    assert (reverse("assessment-create", args=[agent.slug]) in body) == offered
    assert 'name="risk_tier"' not in body and "Set risk tier" not in body


def test_no_assessment_link_on_a_decommissioned_agent(admin_user, owner):
    gone = AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED)
    body = client_as(admin_user).get(reverse("agent-detail", args=[gone.slug])).content.decode()
    assert reverse("assessment-create", args=[gone.slug]) not in body


def test_the_tier_is_no_longer_set_by_hand_on_the_page(admin_user, agent):
    response = client_as(admin_user).post(
        f"/agents/{agent.slug}/risk-tier/", {"risk_tier": "high", "reason": "Moves money."}
    )
    assert response.status_code == 404
    agent.refresh_from_db()
    assert agent.risk_tier == Agent.RiskTier.UNASSESSED and not audit_events(agent, "agent.set_risk_tier")


# --- risk tier when registering ---------------------------------------------------------------

REGISTER = {
    "name": "Payments bot",
    "kind": "assistant",
    "environment": "production",
    "autonomy_level": "human_in_the_loop",
}


def test_the_register_form_offers_a_risk_tier_to_iam_admins_only(admin_user, owner):
    assert "risk_tier" in client_as(admin_user).get(reverse("agent-create")).context["form"].fields
    body = client_as(owner).get(reverse("agent-create")).content.decode()
    assert 'name="risk_tier"' not in body


def test_an_iam_admin_registers_an_agent_with_a_risk_tier(admin_user, owner):
    response = client_as(admin_user).post(
        reverse("agent-create"), {**REGISTER, "owner": owner.username, "risk_tier": "high"}
    )
    assert response.status_code == 302
    agent = Agent.objects.get(name="Payments bot")
    assert agent.risk_tier == Agent.RiskTier.HIGH
    assert audit_events(agent, "agent.register").get().after["risk_tier"] == "high"


def test_without_a_tier_an_agent_starts_unassessed(admin_user, owner):
    client_as(admin_user).post(reverse("agent-create"), {**REGISTER, "owner": owner.username})
    assert Agent.objects.get(name="Payments bot").risk_tier == Agent.RiskTier.UNASSESSED


def test_an_owner_who_sends_a_risk_tier_is_refused(owner):
    response = client_as(owner).post(reverse("agent-create"), {**REGISTER, "risk_tier": "low"})
    assert response.status_code == 403
    assert "Only IAM admins set a risk tier" in response.content.decode()
    assert not Agent.objects.exists() and not AuditEvent.objects.exists()


# --- who is offered the owner transfer, and whom it lists -------------------------------------


def _offers_transfer(user, agent) -> bool:
    return (
        reverse("agent-assign-owner", args=[agent.slug])
        in client_as(user).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    )


@pytest.mark.parametrize(
    "role, offered", [("admin", True), ("owner", True), ("other_owner", False), ("auditor", False)]
)
def test_the_transfer_form_is_shown_only_to_who_may_transfer(people, agent, role, offered):
    # other_owner is the backup owner: while the owner is active, the backup may not take the agent.
    assert _offers_transfer(people[role], agent) == offered


def test_the_backup_owner_may_transfer_once_the_owner_has_left(owner, other_owner, agent):
    owner.is_active = False
    owner.save()
    assert _offers_transfer(other_owner, agent)
    third = OwnerFactory(username="tess.owner")
    response = client_as(other_owner).post(
        reverse("agent-assign-owner", args=[agent.slug]), {"owner": third.username, "reason": "Olivia left."}
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.owner == third


def test_a_backup_owner_cannot_take_the_agent_from_an_active_owner(other_owner, agent, owner):
    response = client_as(other_owner).post(
        reverse("agent-assign-owner", args=[agent.slug]), {"owner": other_owner.username, "reason": "Mine now."}
    )
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.owner == owner


def test_the_owner_dropdowns_list_only_owners_and_iam_admins(admin_user, owner, agent):
    AuditorFactory(username="aude.auditor")
    UserFactory(username="nora.norole")
    OwnerFactory(username="gone.owner", is_active=False)
    form = client_as(admin_user).get(reverse("agent-detail", args=[agent.slug])).context["owner_form"]
    for name in ("owner", "backup_owner"):
        listed = [u.username for u in form.fields[name].queryset]
        assert listed == ["iris.admin", "olivia.owner", "oscar.owner"], name


def test_an_auditor_cannot_be_made_owner(admin_user, agent):
    auditor = AuditorFactory(username="aude.auditor")
    response = client_as(admin_user).post(
        reverse("agent-assign-owner", args=[agent.slug]), {"owner": auditor.username, "reason": "x"}
    )
    assert response.status_code == 400
    agent.refresh_from_db()
    assert agent.owner.username == "olivia.owner"


# --- irreversible actions ask first ------------------------------------------------------------


def test_decommission_asks_for_confirmation_and_suspend_does_not(owner, agent):
    agent.state = Agent.State.ACTIVE
    agent.save()
    body = client_as(owner).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    decommission = body.split(f'action="{reverse("agent-transition", args=[agent.slug, "decommission"])}"')[1]
    assert decommission.split(">")[0].strip().startswith('data-confirm="Decommission Ticket triage?')
    suspend = body.split(f'action="{reverse("agent-transition", args=[agent.slug, "suspend"])}"')[1]
    assert "confirm" not in suspend.split(">")[0]


def test_credential_revoke_asks_for_confirmation_over_htmx(owner, agent):
    credential = CredentialFactory(agent=agent, external_id="AKIAEXAMPLE0001")
    body = client_as(owner).get(reverse("agent-detail", args=[agent.slug])).content.decode()
    form = body.split(f'hx-post="{reverse("credential-revoke", args=[agent.slug, credential.pk])}"')[1]
    assert 'hx-confirm="Mark AKIAEXAMPLE0001 revoked? This cannot be undone."' in form.split(">")[0]
