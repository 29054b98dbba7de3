"""Orphans: deactivating a person (through Warrant or the Django admin) turns each live agent they own
into an orphaned-agent finding at once, routed to the backup owner or the team, and cancels their
pending requests; transferring ownership resolves it. Imported agents never get an owner by guess."""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from delegations.models import DelegationGrant
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.filters import FindingFilterSet
from governance.models import AuditEvent, Finding
from governance.selectors import finding_list
from inventory import services as inventory_services
from inventory.importers import run_import
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, TeamFactory, UserFactory
from tests.support import Trail, client_as, messages_of, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

User = get_user_model()
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
refuses = refusal_checker(User, Agent, Finding, DelegationGrant, AuditEvent)


def deactivate(actor, user, reason="Left the company."):
    return inventory_services.person_deactivate(actor=actor, user=user, reason=reason)


@pytest.fixture
def team():
    team = TeamFactory(name="Payments", slug="payments")
    team.members.set([OwnerFactory(username="tess.team"), OwnerFactory(username="tom.team")])
    return team


@pytest.fixture
def estate(owner, team):
    """``owner``'s agents: one with a backup owner, one in a team without one, one with neither, one
    whose backup owner is inactive, plus a proposed one, a decommissioned one, and one they only back up."""
    backup = OwnerFactory(username="bea.backup")
    gone_backup = OwnerFactory(username="gus.gone", is_active=False)
    return {
        "backed": AgentFactory(owner=owner, backup_owner=backup, team=team, name="Backed"),
        "team": AgentFactory(owner=owner, team=team, name="Teamed", state=Agent.State.SUSPENDED),
        "alone": AgentFactory(owner=owner, team=None, name="Alone"),
        "stale_backup": AgentFactory(owner=owner, backup_owner=gone_backup, team=team, name="Stale backup"),
        "proposed": AgentFactory(owner=owner, state=Agent.State.PROPOSED, name="Proposed"),
        "gone": AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED, name="Gone"),
        "backs_up": AgentFactory(owner=OwnerFactory(), backup_owner=owner, name="Backs up"),
    }


def test_deactivating_an_owner_orphans_each_live_agent_at_once_routed_to_backup_or_team(
    owner, estate, admin_actor, mailoutbox, django_capture_on_commit_callbacks
):
    trail = Trail()
    with django_capture_on_commit_callbacks(execute=True):
        deactivate(admin_actor, owner)
    owner.refresh_from_db()
    assert owner.is_active is False
    event = trail.one("person.deactivate", actor=admin_actor, obj=owner)
    assert event.after["reason"] == "Left the company."
    assert sorted(event.after["live_agents_owned"]) == sorted(
        estate[k].slug for k in ("backed", "team", "alone", "stale_backup")
    )

    findings = {f.subject_id: f for f in Finding.objects.filter(kind="orphaned_agent")}
    assert set(findings) == {estate[k].pk for k in ("backed", "team", "alone", "stale_backup")}
    routed = {k: findings[estate[k].pk].evidence["routed_to"] for k in ("backed", "team", "alone", "stale_backup")}
    assert routed == {"backed": "backup_owner", "team": "team", "alone": "iam_admins", "stale_backup": "team"}
    backed = findings[estate["backed"].pk]
    assert backed.detail == (
        "olivia.owner, its owner, was deactivated; routed to its backup owner bea.backup until an IAM admin "
        "transfers ownership."
    )
    assert (backed.evidence["former_owner"], backed.evidence["team"], backed.severity) == (
        "olivia.owner",
        "payments",
        "high",
    )
    assert "routed to team Payments" in findings[estate["team"].pk].detail
    assert all(f.first_seen_at == T0 and f.agent_id == f.subject_id for f in findings.values())
    assert sorted(trail.verbs()).count("finding.open") == 4
    assert all(e.actor_label == admin_actor.label for e in trail.new())

    to = {tuple(sorted(m.to)) for m in mailoutbox}
    assert ("bea.backup@example.com", "iris.admin@example.com") in to
    assert ("iris.admin@example.com", "tess.team@example.com", "tom.team@example.com") in to
    assert ("iris.admin@example.com",) in to


def test_the_deactivated_persons_pending_requests_are_cancelled(owner, admin_actor):
    agent = AgentFactory(owner=owner)
    mine_pending = GrantFactory(agent=agent, status="pending", requested_by=owner)
    mine_active = GrantFactory(agent=agent, status="active", requested_by=owner)
    theirs = GrantFactory(agent=AgentFactory(), status="pending")
    trail = Trail()
    deactivate(admin_actor, owner)
    statuses = dict(DelegationGrant.objects.values_list("pk", "status"))
    assert statuses == {mine_pending.pk: "cancelled", mine_active.pk: "active", theirs.pk: "pending"}
    cancel = trail.one("grant.cancel", actor=admin_actor, obj=mine_pending)
    assert cancel.after["reason"] == "The requester olivia.owner was deactivated."
    mine_pending.refresh_from_db()
    assert (mine_pending.ended_at, mine_pending.ended_by) == (T0, "iris.admin")


@pytest.mark.parametrize("who", ["owner", "auditor"])
def test_only_iam_admins_deactivate_people(who, people, other_owner):
    refuses(PermissionDenied, deactivate, match="Only IAM admins", actor=Actor.person(people[who]), user=other_owner)


def test_nobody_deactivates_themselves(admin_user, admin_actor):
    refuses(PermissionDenied, deactivate, match="yourself", actor=admin_actor, user=admin_user)


def test_a_reason_is_required(admin_actor, owner):
    refuses(ValidationError, deactivate, field="reason", actor=admin_actor, user=owner, reason="  ")


def test_deactivating_twice_is_a_conflict(owner, estate, admin_actor):
    deactivate(admin_actor, owner)
    refuses(Conflict, deactivate, match="already inactive", actor=admin_actor, user=owner)
    assert Finding.objects.filter(kind="orphaned_agent").count() == 4


def test_the_system_may_deactivate(owner, estate):
    deactivate(Actor.system("directory sync"), owner)
    assert Finding.objects.filter(kind="orphaned_agent", status="open").count() == 4


# --- who sees and works an orphan -------------------------------------------------------------------


def test_the_backup_owner_and_the_teams_members_see_the_orphan(owner, estate, team, admin_actor, other_owner):
    deactivate(admin_actor, owner)
    backup = User.objects.get(username="bea.backup")
    member = team.members.get(username="tess.team")
    assert set(finding_list(user=backup).values_list("subject_id", flat=True)) == {estate["backed"].pk}
    assert set(finding_list(user=member).filter(kind="orphaned_agent").values_list("subject_id", flat=True)) == {
        estate[k].pk for k in ("backed", "team", "stale_backup")
    }
    assert not finding_list(user=other_owner).exists()
    queue = FindingFilterSet({"kind": ["orphaned_agent"]}, queryset=finding_list(user=member))
    assert queue.is_valid() and queue.qs.count() == 3


def test_the_findings_page_shows_a_team_member_the_orphans_routed_to_the_team(owner, estate, team, admin_actor):
    deactivate(admin_actor, owner)
    response = client_as(team.members.get(username="tom.team")).get(reverse("finding-list") + "?kind=orphaned_agent")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Teamed" in body and "routed to team Payments" in body and "Alone" not in body


# --- resolving ----------------------------------------------------------------------------------


def test_transferring_ownership_resolves_the_orphan(owner, estate, admin_actor):
    deactivate(admin_actor, owner)
    new_owner = OwnerFactory(username="nina.new")
    trail = Trail()
    inventory_services.agent_assign_owner(actor=admin_actor, agent=estate["team"], owner=new_owner, reason="Handover.")
    finding = Finding.objects.get(kind="orphaned_agent", subject_id=estate["team"].pk)
    assert (finding.status, finding.resolved_by, finding.resolution_note) == (
        "resolved",
        "iris.admin",
        "Owner assigned: nina.new.",
    )
    trail.one("finding.resolve", actor=admin_actor, obj=finding)
    assert Finding.objects.filter(kind="orphaned_agent", status="open").count() == 3


def test_the_backup_owner_takes_over_and_resolves_it(owner, estate, admin_actor):
    deactivate(admin_actor, owner)
    backup = User.objects.get(username="bea.backup")
    agent = estate["backed"]
    inventory_services.agent_assign_owner(actor=Actor.person(backup), agent=agent, owner=backup)
    agent.refresh_from_db()
    assert (agent.owner, agent.backup_owner) == (backup, None)
    assert Finding.objects.get(subject_id=agent.pk, kind="orphaned_agent").status == "resolved"


def test_transferring_ownership_through_the_api_resolves_it(owner, estate, admin_user, admin_actor):
    from rest_framework.test import APIClient

    deactivate(admin_actor, owner)
    client = APIClient()
    client.force_login(admin_user)
    OwnerFactory(username="nina.new")
    response = client.post(
        reverse("api:agent-assign-owner", args=[estate["alone"].slug]), {"owner": "nina.new"}, format="json"
    )
    assert response.status_code == 200, response.data
    assert Finding.objects.get(subject_id=estate["alone"].pk, kind="orphaned_agent").status == "resolved"


def test_reactivating_the_person_resolves_their_orphans(owner, estate, admin_actor):
    deactivate(admin_actor, owner)
    trail = Trail()
    inventory_services.person_reactivate(actor=admin_actor, user=owner, reason="Came back.")
    owner.refresh_from_db()
    assert owner.is_active
    assert not Finding.objects.filter(kind="orphaned_agent").exclude(status="resolved").exists()
    assert trail.one("person.reactivate", actor=admin_actor, obj=owner).after["reason"] == "Came back."
    refuses(Conflict, inventory_services.person_reactivate, actor=admin_actor, user=owner, reason="Again.")


def test_decommissioning_an_orphan_resolves_its_finding(owner, estate, admin_actor):
    deactivate(admin_actor, owner)
    inventory_services.agent_decommission(actor=admin_actor, agent=estate["alone"], reason="Nobody needs it.")
    finding = Finding.objects.get(subject_id=estate["alone"].pk, kind="orphaned_agent")
    assert (finding.status, finding.resolution_note) == ("resolved", "The agent was decommissioned.")


# --- the Django admin ---------------------------------------------------------------------------


def _user_form(user, **changes):
    data = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": [str(g.pk) for g in user.groups.all()],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "status_reason": "",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != "" or k in ("status_reason", "last_login_0", "last_login_1")}


def test_unticking_active_in_the_admin_goes_through_the_service(owner, estate, admin_client, superuser):
    url = reverse("admin:auth_user_change", args=[owner.pk])
    data = _user_form(owner, first_name="Olivia", status_reason="Left.")
    data.pop("is_active")  # unticked
    response = admin_client.post(url, data, follow=True)
    assert response.status_code == 200
    owner.refresh_from_db()
    assert (owner.is_active, owner.first_name) == (False, "Olivia")
    event = AuditEvent.objects.get(verb="person.deactivate")
    assert (event.actor_label, event.after["reason"]) == ("root.admin", "Left.")
    assert Finding.objects.filter(kind="orphaned_agent").count() == 4


def test_the_admin_asks_for_a_reason(owner, estate, admin_client):
    data = _user_form(owner)
    data.pop("is_active")
    response = admin_client.post(reverse("admin:auth_user_change", args=[owner.pk]), data)
    assert response.status_code == 200
    assert "Say why this person is deactivated or reactivated." in response.content.decode()
    owner.refresh_from_db()
    assert owner.is_active and not Finding.objects.exists()


def test_a_staff_member_who_is_not_an_iam_admin_is_refused_in_the_admin(owner, estate):
    from django.contrib.auth.models import Permission

    staff = UserFactory(username="sam.staff", is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename__in=["change_user", "view_user"]))
    data = _user_form(owner, status_reason="Left.")
    data.pop("is_active")
    response = client_as(staff).post(reverse("admin:auth_user_change", args=[owner.pk]), data, follow=True)
    assert "Only IAM admins may deactivate people." in " ".join(messages_of(response))
    owner.refresh_from_db()
    assert owner.is_active and not Finding.objects.exists()
    assert not AuditEvent.objects.filter(verb="person.deactivate").exists()


def test_the_admin_changelist_action_deactivates_with_the_reason(owner, estate, admin_client):
    response = admin_client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "deactivate", "_selected_action": [str(owner.pk)], "reason": "Contract ended."},
        follow=True,
    )
    assert "Deactivated: 1." in " ".join(messages_of(response))
    assert AuditEvent.objects.get(verb="person.deactivate").after["reason"] == "Contract ended."
    assert Finding.objects.filter(kind="orphaned_agent").count() == 4


# --- imports --------------------------------------------------------------------------------------


def test_an_imported_agent_without_a_matching_person_stays_ownerless_in_the_queue(admin_user, admin_actor):
    # A person whose username equals an IAM user's name is still not made its owner: an import never guesses.
    OwnerFactory(username="legacy-etl")
    run_import(
        actor=admin_actor,
        source="aws-credential-report",
        content=(FIXTURES / "get-credential-report.json").read_bytes(),
        filename="get-credential-report.json",
    )
    agents = Agent.objects.all()
    assert agents.count() == 6
    assert not agents.filter(owner__isnull=False).exists()
    assert not Agent.objects.filter(owner=admin_user).exists()
    queue = FindingFilterSet({"kind": ["unowned_agent"]}, queryset=finding_list(user=admin_user))
    assert queue.is_valid()
    assert set(queue.qs.values_list("subject_id", flat=True)) == set(agents.values_list("pk", flat=True))
    response = client_as(admin_user).get(reverse("finding-list") + "?kind=unowned_agent")
    assert response.content.decode().count('<tr id="finding-') == 6


def test_an_unowned_imported_agent_cannot_be_activated_until_someone_owns_it(admin_actor):
    IamAdminFactory(username="ivy.admin")
    run_import(
        actor=admin_actor,
        source="aws-credential-report",
        content=(FIXTURES / "get-credential-report.json").read_bytes(),
        filename="get-credential-report.json",
    )
    agent = Agent.objects.get(slug="legacy-etl")
    with pytest.raises(ValidationError, match="Assign an owner"):
        inventory_services.agent_activate(actor=admin_actor, agent=agent)
    owner = OwnerFactory(username="ola.owner")
    inventory_services.agent_assign_owner(actor=admin_actor, agent=agent, owner=owner)
    assert Finding.objects.get(subject_id=agent.pk, kind="unowned_agent").status == "resolved"
    assert Finding.objects.get(subject_id=agent.pk, kind="unowned_agent").resolved_at == T0
