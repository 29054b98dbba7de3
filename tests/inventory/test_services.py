"""Every inventory service rule: permission, state, validation, the audit event, and nothing changed on refusal."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, transaction

from governance import events
from governance.audit import Actor, audit_verify
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.findings import Condition, finding_raise
from governance.models import AuditEvent, Finding
from inventory import services
from inventory.models import Agent, Credential, Team, Tool, WorkloadIdentity
from tests.factories import (
    T0,
    AgentFactory,
    AuditorFactory,
    CredentialFactory,
    OwnerFactory,
    TeamFactory,
    ToolFactory,
    UserFactory,
    WorkloadIdentityFactory,
)
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAY = timedelta(days=1)


# --- helpers -------------------------------------------------------------------------------


#: Proves a refused call changed nothing a service could change.
refuses = refusal_checker(Agent, Credential, Tool, WorkloadIdentity, Finding, Team, AuditEvent)


@pytest.fixture
def trail():
    return Trail()


@pytest.fixture
def backup(db):
    return OwnerFactory(username="bea.backup")


@pytest.fixture
def agent(owner, backup):
    return AgentFactory(owner=owner, backup_owner=backup, state=Agent.State.ACTIVE)


@pytest.fixture
def proposed(owner):
    return AgentFactory(owner=owner, state=Agent.State.PROPOSED)


@pytest.fixture
def ownerless(db):
    return AgentFactory(owner=None, team=None, state=Agent.State.PROPOSED, source=Agent.Source.AWS_CREDENTIAL_REPORT)


@pytest.fixture
def actors(admin_user, owner, backup, other_owner, auditor):
    return {
        "admin": Actor.person(admin_user),
        "owner": Actor.person(owner),
        "backup": Actor.person(backup),
        "other_owner": Actor.person(other_owner),
        "auditor": Actor.person(auditor),
    }


def _raise(kind, subject, agent_id):
    with transaction.atomic():
        return finding_raise(actor=Actor.system("job"), kind=kind, condition=Condition(subject, agent_id), now=T0)[0]


def _status(finding):
    finding.refresh_from_db()
    return finding.status


# --- register ------------------------------------------------------------------------------


def test_an_owner_registers_an_agent_they_own_which_starts_proposed(owner, owner_actor, trail):
    agent = services.agent_register(
        actor=owner_actor, name="Ticket triage", kind=Agent.Kind.AUTONOMOUS_AGENT, owner=owner, data_classes=["pii"]
    )
    agent.refresh_from_db()
    assert (agent.state, agent.owner, agent.slug, agent.source) == ("proposed", owner, "ticket-triage", "registered")
    assert agent.created_at == agent.state_changed_at == T0
    event = trail.one("agent.register", actor=owner_actor, obj=agent)
    assert event.before is None
    assert event.after["owner"] == owner.pk and event.after["state"] == "proposed"
    assert event.after["data_classes"] == ["pii"]
    assert audit_verify() is None


def test_an_iam_admin_registers_an_agent_for_any_active_person(admin_actor, owner, other_owner, trail):
    agent = services.agent_register(
        actor=admin_actor, name="Ticket triage", kind=Agent.Kind.ASSISTANT, owner=owner, backup_owner=other_owner
    )
    assert (agent.owner, agent.backup_owner) == (owner, other_owner)
    trail.one("agent.register", actor=admin_actor)


def test_register_gives_each_agent_its_own_slug(admin_actor, owner):
    first = services.agent_register(actor=admin_actor, name="Triage", kind=Agent.Kind.ASSISTANT, owner=owner)
    second = services.agent_register(actor=admin_actor, name="Triage", kind=Agent.Kind.ASSISTANT, owner=owner)
    assert (first.slug, second.slug) == ("triage", "triage-2")


def test_register_refusals(actors, owner, other_owner):
    reg = services.agent_register
    base = {"name": "Triage", "kind": Agent.Kind.ASSISTANT}
    refuses(ValidationError, reg, field="owner", actor=actors["admin"], owner=None, **base)
    refuses(PermissionDenied, reg, actor=actors["owner"], owner=other_owner, **base)
    refuses(PermissionDenied, reg, actor=actors["auditor"], owner=owner, **base)
    gone = UserFactory(is_active=False)
    refuses(ValidationError, reg, field="owner", actor=actors["admin"], owner=gone, **base)
    refuses(ValidationError, reg, field="backup_owner", actor=actors["admin"], owner=owner, backup_owner=gone, **base)
    refuses(ValidationError, reg, field="backup_owner", actor=actors["admin"], owner=owner, backup_owner=owner, **base)
    refuses(
        ValidationError, reg, field="data_classes", actor=actors["admin"], owner=owner, data_classes=["gold"], **base
    )
    refuses(ValidationError, reg, field="kind", actor=actors["admin"], owner=owner, name="x", kind="robot")


def test_a_literal_secret_in_an_agents_purpose_is_refused(admin_actor, owner):
    refuses(
        ValidationError,
        services.agent_register,
        field="purpose",
        match="looks like a secret",
        actor=admin_actor,
        name="Sync",
        kind=Agent.Kind.WORKFLOW_BOT,
        owner=owner,
        purpose="Connects with postgres://u:hunter2@db/x",
    )


def test_a_person_without_a_role_cannot_register(owner):
    nobody = UserFactory()
    refuses(
        PermissionDenied,
        services.agent_register,
        actor=Actor.person(nobody),
        name="x",
        kind=Agent.Kind.ASSISTANT,
        owner=nobody,
    )


# --- activate / reactivate -----------------------------------------------------------------


def test_an_iam_admin_activates_a_proposed_agent(admin_actor, proposed, trail):
    agent = services.agent_activate(actor=admin_actor, agent=proposed, reason="Reviewed.")
    assert Agent.objects.get(pk=proposed.pk).state == "active"
    event = trail.one("agent.activate", actor=admin_actor, obj=agent)
    assert event.before == {"state": "proposed", "state_reason": ""}
    assert event.after == {"state": "active", "state_reason": "Reviewed."}


def test_activate_refusals(actors, proposed, ownerless, agent):
    act = services.agent_activate
    refuses(PermissionDenied, act, actor=actors["owner"], agent=proposed)
    refuses(PermissionDenied, act, actor=actors["auditor"], agent=proposed)
    refuses(PermissionDenied, act, actor=actors["owner"], agent=ownerless)
    refuses(ValidationError, act, field="owner", actor=actors["admin"], agent=ownerless, match="Assign an owner")
    refuses(Conflict, act, actor=actors["admin"], agent=agent)
    for state in (Agent.State.SUSPENDED, Agent.State.DECOMMISSIONED):
        refuses(Conflict, act, actor=actors["admin"], agent=AgentFactory(state=state))


def test_an_agent_whose_owner_left_cannot_be_activated_or_reactivated(actors, proposed, agent, owner):
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    owner.is_active = False
    owner.save()
    refuses(ValidationError, services.agent_activate, field="owner", actor=actors["admin"], agent=proposed)
    refuses(ValidationError, services.agent_reactivate, field="owner", actor=actors["admin"], agent=agent, reason="r")
    # Permission and state are judged before the owner: a backup owner is refused, a live agent conflicts.
    refuses(PermissionDenied, services.agent_reactivate, actor=actors["backup"], agent=agent, reason="r")
    refuses(Conflict, services.agent_activate, actor=actors["admin"], agent=agent)


def test_an_iam_admin_reactivates_a_suspended_agent(actors, agent, trail):
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    services.agent_reactivate(actor=actors["admin"], agent=agent, reason="Incident closed.")
    assert Agent.objects.get(pk=agent.pk).state == "active"
    assert trail.one("agent.reactivate", actor=actors["admin"]).after["state_reason"] == "Incident closed."


def test_reactivate_refusals(actors, agent):
    react = services.agent_reactivate
    refuses(Conflict, react, actor=actors["admin"], agent=agent, reason="r")
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    refuses(PermissionDenied, react, actor=actors["owner"], agent=agent, reason="r")
    refuses(PermissionDenied, react, actor=actors["auditor"], agent=agent, reason="r")
    refuses(ValidationError, react, field="reason", actor=actors["admin"], agent=agent, reason="  ")


# --- suspend / decommission ----------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "owner", "backup"])
def test_admins_owners_and_backup_owners_suspend(actors, agent, who, trail):
    services.agent_suspend(actor=actors[who], agent=agent, reason="Odd tool calls.")
    agent.refresh_from_db()
    assert (agent.state, agent.state_reason, agent.state_changed_at) == ("suspended", "Odd tool calls.", T0)
    event = trail.one("agent.suspend", actor=actors[who], obj=agent)
    assert (event.before["state"], event.after["state"]) == ("active", "suspended")


@pytest.mark.parametrize("who", ["other_owner", "auditor"])
def test_others_cannot_suspend_or_decommission(actors, agent, who):
    refuses(PermissionDenied, services.agent_suspend, actor=actors[who], agent=agent, reason="r")
    refuses(PermissionDenied, services.agent_decommission, actor=actors[who], agent=agent, reason="r")


def test_suspend_needs_a_reason_and_an_active_agent(actors, agent, proposed):
    refuses(ValidationError, services.agent_suspend, field="reason", actor=actors["owner"], agent=agent, reason="")
    refuses(Conflict, services.agent_suspend, actor=actors["owner"], agent=proposed, reason="r")
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    refuses(Conflict, services.agent_suspend, actor=actors["owner"], agent=agent, reason="r")


@pytest.mark.parametrize("state", [Agent.State.PROPOSED, Agent.State.ACTIVE, Agent.State.SUSPENDED])
@pytest.mark.parametrize("who", ["admin", "owner", "backup"])
def test_decommission_from_any_live_or_proposed_state(actors, owner, backup, state, who, trail):
    agent = AgentFactory(owner=owner, backup_owner=backup, state=state)
    services.agent_decommission(actor=actors[who], agent=agent, reason="Replaced by v2.")
    assert Agent.objects.get(pk=agent.pk).state == "decommissioned"
    event = trail.one("agent.decommission", actor=actors[who], obj=agent)
    assert event.before["state"] == state
    assert event.after == {"state": "decommissioned", "state_reason": "Replaced by v2."}


def test_decommission_needs_a_reason(actors, agent):
    refuses(
        ValidationError, services.agent_decommission, field="reason", actor=actors["owner"], agent=agent, reason=" "
    )


def test_decommissioned_is_terminal(actors, agent, owner):
    services.agent_decommission(actor=actors["admin"], agent=agent, reason="Gone.")
    admin = actors["admin"]
    refuses(Conflict, services.agent_decommission, actor=admin, agent=agent, reason="again")
    refuses(Conflict, services.agent_activate, actor=admin, agent=agent)
    refuses(Conflict, services.agent_reactivate, actor=admin, agent=agent, reason="r")
    refuses(Conflict, services.agent_suspend, actor=admin, agent=agent, reason="r")
    refuses(Conflict, services.agent_update, actor=admin, agent=agent, purpose="new")
    refuses(Conflict, services.agent_assign_owner, actor=admin, agent=agent, owner=OwnerFactory())
    refuses(
        Conflict,
        services.workload_identity_add,
        actor=admin,
        agent=agent,
        type="spiffe",
        identifier="spiffe://example.org/x",
    )
    refuses(
        Conflict,
        services.credential_record,
        actor=admin,
        agent=agent,
        kind="api_key",
        provider="openai",
        external_id="k",
        created_at=T0 - DAY,
    )
    refuses(Conflict, services.tool_add, actor=admin, agent=agent, name="t", transport="stdio", command="npx")


def test_decommission_raises_a_finding_for_every_credential_still_active(admin_actor, agent, trail):
    live = [CredentialFactory(agent=agent), CredentialFactory(agent=agent, kind=Credential.Kind.SIGNING_CERTIFICATE)]
    CredentialFactory(agent=agent, status=Credential.Status.INACTIVE)
    CredentialFactory(agent=agent, status=Credential.Status.REVOKED)
    unowned = _raise("unowned_agent", agent, agent.pk)
    trail.reset()
    services.agent_decommission(actor=admin_actor, agent=agent, reason="Replaced.")
    found = Finding.objects.filter(kind="credential_on_decommissioned_agent")
    assert sorted(found.values_list("subject_id", flat=True)) == sorted(c.pk for c in live)
    assert set(found.values_list("severity", flat=True)) == {"critical"}
    assert set(found.values_list("agent_id", flat=True)) == {agent.pk}
    assert trail.verbs() == ["agent.decommission", "finding.open", "finding.open", "finding.resolve"]
    assert _status(unowned) == "resolved"


def test_decommission_announces_the_domain_event_in_its_transaction(monkeypatch, admin_actor, agent):
    monkeypatch.setattr(events, "_handlers", defaultdict(list))
    seen = []

    def handler(**payload):
        seen.append(payload)
        assert Agent.objects.get(pk=payload["agent"].pk).state == "decommissioned"

    events.subscribe("agent.decommissioned", handler)
    services.agent_decommission(actor=admin_actor, agent=agent, reason="Replaced.")
    assert len(seen) == 1
    assert seen[0]["agent"].pk == agent.pk and seen[0]["actor"] == admin_actor and seen[0]["now"] == T0


def test_a_failing_subscriber_rolls_the_decommission_back(monkeypatch, admin_actor, agent):
    CredentialFactory(agent=agent)
    monkeypatch.setattr(events, "_handlers", defaultdict(list))

    def handler(**payload):
        raise Conflict("a grant could not be revoked")

    events.subscribe("agent.decommissioned", handler)
    refuses(Conflict, services.agent_decommission, actor=admin_actor, agent=agent, reason="Replaced.")


# --- ownership -----------------------------------------------------------------------------


def test_an_iam_admin_assigns_an_owner_to_an_imported_agent(admin_actor, ownerless, owner, trail):
    unowned = _raise("unowned_agent", ownerless, ownerless.pk)
    trail.reset()
    services.agent_assign_owner(actor=admin_actor, agent=ownerless, owner=owner, reason="Runs the billing jobs.")
    assert Agent.objects.get(pk=ownerless.pk).owner == owner
    event = trail.one("agent.assign_owner", actor=admin_actor, obj=ownerless)
    assert event.before == {"owner": None, "backup_owner": None}
    assert event.after == {"owner": owner.pk, "backup_owner": None, "reason": "Runs the billing jobs."}
    assert _status(unowned) == "resolved"
    assert trail.verbs() == ["agent.assign_owner", "finding.resolve"]
    # Once owned, it can be activated.
    services.agent_activate(actor=admin_actor, agent=ownerless)


def test_an_owner_transfers_their_agent_and_its_orphan_finding_resolves(
    monkeypatch, actors, agent, owner, backup, other_owner, trail
):
    monkeypatch.setattr(events, "_handlers", defaultdict(list))
    seen = []
    events.subscribe("agent.owner_changed", lambda **p: seen.append(p))
    orphaned = _raise("orphaned_agent", agent, agent.pk)
    trail.reset()
    services.agent_assign_owner(actor=actors["owner"], agent=agent, owner=other_owner)
    agent.refresh_from_db()
    assert (agent.owner, agent.backup_owner) == (other_owner, backup)
    trail.one("agent.assign_owner", actor=actors["owner"])
    assert _status(orphaned) == "resolved"
    assert [p["previous_owner_id"] for p in seen] == [owner.pk]


def test_transferring_to_the_backup_owner_clears_the_backup(actors, agent, backup):
    services.agent_assign_owner(actor=actors["admin"], agent=agent, owner=backup)
    agent.refresh_from_db()
    assert (agent.owner, agent.backup_owner) == (backup, None)


def test_assign_owner_refusals(actors, agent, ownerless, owner, other_owner):
    assign = services.agent_assign_owner
    refuses(PermissionDenied, assign, actor=actors["other_owner"], agent=agent, owner=other_owner)
    refuses(PermissionDenied, assign, actor=actors["auditor"], agent=agent, owner=other_owner)
    refuses(PermissionDenied, assign, actor=actors["owner"], agent=ownerless, owner=owner)
    refuses(ValidationError, assign, field="owner", actor=actors["admin"], agent=agent, owner=None)
    refuses(
        ValidationError, assign, field="owner", actor=actors["admin"], agent=agent, owner=UserFactory(is_active=False)
    )
    refuses(
        ValidationError,
        assign,
        field="backup_owner",
        actor=actors["admin"],
        agent=agent,
        owner=other_owner,
        backup_owner=other_owner,
    )
    refuses(
        ValidationError,
        assign,
        field="backup_owner",
        actor=actors["admin"],
        agent=agent,
        owner=other_owner,
        backup_owner=UserFactory(is_active=False),
    )


# --- descriptive changes and teams ---------------------------------------------------------


def test_an_owner_updates_descriptive_fields(owner_actor, agent, trail):
    services.agent_update(actor=owner_actor, agent=agent, purpose="Summarise invoices.", data_classes=["payment"])
    agent.refresh_from_db()
    assert (agent.purpose, agent.data_classes) == ("Summarise invoices.", ["payment"])
    event = trail.one("agent.update", actor=owner_actor, obj=agent)
    assert event.before == {"purpose": "Triage support tickets.", "data_classes": []}
    assert event.after == {"purpose": "Summarise invoices.", "data_classes": ["payment"]}


def test_agent_update_refusals(actors, agent):
    upd = services.agent_update
    refuses(PermissionDenied, upd, actor=actors["other_owner"], agent=agent, purpose="x")
    refuses(PermissionDenied, upd, actor=actors["auditor"], agent=agent, purpose="x")
    refuses(ValidationError, upd, field="state", actor=actors["admin"], agent=agent, state="active")
    refuses(ValidationError, upd, field="owner", actor=actors["admin"], agent=agent, owner=None)
    refuses(ValidationError, upd, field="data_classes", actor=actors["owner"], agent=agent, data_classes=["gold"])


def test_teams_are_created_by_iam_admins(actors, trail):
    team = services.team_create(actor=actors["admin"], name="Payments Platform")
    assert team.slug == "payments-platform"
    trail.one("team.create", actor=actors["admin"], obj=team)
    refuses(PermissionDenied, services.team_create, actor=actors["owner"], name="Rogue")
    refuses(ValidationError, services.team_create, field="name", actor=actors["admin"], name="Payments Platform")
    services.team_update(actor=actors["admin"], team=team, description="Billing.")
    assert trail.one("team.update").after == {"description": "Billing."}
    refuses(ValidationError, services.team_update, field="members", actor=actors["admin"], team=team, members=[])


def test_team_members_are_set_by_iam_admins(actors, trail, owner, other_owner, backup):
    team = TeamFactory()
    services.team_members_set(actor=actors["admin"], team=team, members=[owner, other_owner])
    assert set(team.members.all()) == {owner, other_owner}
    event = trail.one("team.set_members", actor=actors["admin"], obj=team)
    assert (event.before, event.after) == ({"members": []}, {"members": sorted([owner.username, other_owner.username])})
    services.team_members_set(actor=actors["admin"], team=team, members=[other_owner, owner])  # no change, no event
    assert trail.verbs().count("team.set_members") == 1
    refuses(PermissionDenied, services.team_members_set, actor=actors["owner"], team=team, members=[])
    backup.is_active = False
    backup.save()
    refuses(
        ValidationError, services.team_members_set, field="members", actor=actors["admin"], team=team, members=[backup]
    )
    assert set(team.members.all()) == {owner, other_owner}


# --- workload identities (NHI9) ------------------------------------------------------------


def test_a_workload_identity_is_bound_to_one_agent(owner_actor, agent, other_owner, trail):
    identity = services.workload_identity_add(
        actor=owner_actor, agent=agent, type="spiffe", identifier=" spiffe://example.org/ns/prod/sa/triage "
    )
    assert identity.identifier == "spiffe://example.org/ns/prod/sa/triage"
    event = trail.one("workload_identity.add", actor=owner_actor, obj=identity)
    assert event.after == {"agent": agent.pk, "type": "spiffe", "issuer": "", "identifier": identity.identifier}

    someone_else = AgentFactory(owner=other_owner)
    err = refuses(
        ValidationError,
        services.workload_identity_add,
        field="identifier",
        actor=Actor.person(other_owner),
        agent=someone_else,
        type="spiffe",
        identifier=identity.identifier,
    )
    assert "NHI9" in str(err) and agent.slug not in str(err)  # the other owner may not see it
    refuses(
        ValidationError,
        services.workload_identity_add,
        field="identifier",
        actor=owner_actor,
        agent=agent,
        type="spiffe",
        identifier=identity.identifier,
    )


def test_a_shared_workload_identity_is_also_refused_by_the_database(agent):
    existing = WorkloadIdentityFactory(agent=agent)
    with pytest.raises(IntegrityError), transaction.atomic():
        WorkloadIdentityFactory(agent=AgentFactory(), identifier=existing.identifier)


def test_workload_identity_refusals(actors, agent):
    add = services.workload_identity_add
    refuses(
        ValidationError,
        add,
        field="identifier",
        actor=actors["owner"],
        agent=agent,
        type="spiffe",
        identifier="example.org/triage",
    )
    refuses(ValidationError, add, field="issuer", actor=actors["owner"], agent=agent, type="oidc", identifier="sub")
    refuses(
        ValidationError,
        add,
        field="issuer",
        actor=actors["owner"],
        agent=agent,
        type="aws_iam_role",
        identifier="arn:aws:iam::1:role/x",
        issuer="https://issuer",
    )
    refuses(ValidationError, add, field="type", actor=actors["owner"], agent=agent, type="magic", identifier="x")
    refuses(
        PermissionDenied,
        add,
        actor=actors["other_owner"],
        agent=agent,
        type="spiffe",
        identifier="spiffe://example.org/x",
    )
    refuses(
        PermissionDenied, add, actor=actors["auditor"], agent=agent, type="spiffe", identifier="spiffe://example.org/x"
    )


def test_removing_a_workload_identity(actors, agent, trail):
    identity = WorkloadIdentityFactory(agent=agent)
    refuses(PermissionDenied, services.workload_identity_remove, actor=actors["other_owner"], identity=identity)
    services.workload_identity_remove(actor=actors["backup"], identity=identity)
    assert not WorkloadIdentity.objects.filter(pk=identity.pk).exists()
    event = trail.one("workload_identity.remove", actor=actors["backup"])
    assert event.before["identifier"] == identity.identifier and event.after is None


# --- credentials ---------------------------------------------------------------------------

KEY = {"kind": Credential.Kind.ACCESS_KEY, "provider": "aws", "external_id": "AKIAEXAMPLE0001"}


def test_recording_a_credential_keeps_its_metadata_never_its_secret(owner_actor, agent, trail):
    cred = services.credential_record(
        actor=owner_actor,
        agent=agent,
        **KEY,
        created_at=T0 - 10 * DAY,
        fingerprint="sha256:" + "ab" * 32,
        last_used_at=T0 - DAY,
        rotation_period_days=30,
    )
    cred.refresh_from_db()
    assert (cred.status, cred.observed_at, cred.recorded_at, cred.rotation_period_days) == ("active", T0, T0, 30)
    event = trail.one("credential.record", actor=owner_actor, obj=cred)
    assert event.after["fingerprint"] == "sha256:" + "ab" * 32
    assert event.after["created_at"] == (T0 - 10 * DAY).isoformat().replace("+00:00", "Z")


def test_credential_record_refusals(actors, agent):
    rec = services.credential_record
    ok = {"actor": actors["owner"], "agent": agent, **KEY, "created_at": T0 - 10 * DAY}
    refuses(PermissionDenied, rec, **{**ok, "actor": actors["other_owner"]})
    refuses(PermissionDenied, rec, **{**ok, "actor": actors["auditor"]})
    refuses(ValidationError, rec, field="fingerprint", **ok, fingerprint="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    refuses(ValidationError, rec, field="last_used_at", **ok, last_used_at=T0 + DAY, observed_at=T0)
    refuses(ValidationError, rec, field="expires_at", **ok, expires_at=T0 - 20 * DAY)
    refuses(ValidationError, rec, field="kind", **{**ok, "kind": "password_in_clear"})
    services.credential_record(**ok)
    refuses(ValidationError, rec, **ok)  # the same provider + external id twice


def test_rotating_a_credential_resolves_its_rotation_and_expiry_findings(owner_actor, agent, trail):
    cred = CredentialFactory(agent=agent, last_rotated_at=None, created_at=T0 - 200 * DAY, expires_at=T0 + 5 * DAY)
    kinds = ["unrotated_credential", "expiring_credential", "expired_credential_active", "unused_credential"]
    found = {k: _raise(k, cred, agent.pk) for k in kinds}
    trail.reset()
    services.credential_rotate(
        actor=owner_actor, credential=cred, fingerprint="sha256:" + "cd" * 32, expires_at=T0 + 90 * DAY
    )
    cred.refresh_from_db()
    assert (cred.last_rotated_at, cred.expires_at) == (T0, T0 + 90 * DAY)
    event = trail.one("credential.rotate", actor=owner_actor, obj=cred)
    assert event.before == {"last_rotated_at": None, "fingerprint": "", "expires_at": "2026-11-20T06:00:00Z"}
    assert event.after["last_rotated_at"] == "2026-11-15T06:00:00Z"
    assert {k: _status(f) for k, f in found.items()} == {
        "unrotated_credential": "resolved",
        "expiring_credential": "resolved",
        "expired_credential_active": "resolved",
        "unused_credential": "open",
    }


def test_rotation_refusals(actors, agent):
    cred = CredentialFactory(agent=agent, created_at=T0 - 10 * DAY)
    rot = services.credential_rotate
    refuses(ValidationError, rot, field="rotated_at", actor=actors["owner"], credential=cred, rotated_at=T0 + DAY)
    refuses(ValidationError, rot, field="rotated_at", actor=actors["owner"], credential=cred, rotated_at=T0 - 11 * DAY)
    refuses(ValidationError, rot, field="fingerprint", actor=actors["owner"], credential=cred, fingerprint="secret")
    refuses(PermissionDenied, rot, actor=actors["other_owner"], credential=cred)
    refuses(PermissionDenied, rot, actor=actors["auditor"], credential=cred)
    Credential.objects.filter(pk=cred.pk).update(status=Credential.Status.REVOKED)
    refuses(Conflict, rot, actor=actors["owner"], credential=cred)


def test_revoking_a_credential_resolves_every_finding_on_it(owner_actor, agent, trail):
    cred = CredentialFactory(agent=agent)
    found = [_raise(k, cred, agent.pk) for k in services.CREDENTIAL_FINDING_KINDS]
    other = _raise("unused_credential", CredentialFactory(agent=agent), agent.pk)
    trail.reset()
    services.credential_revoke(actor=owner_actor, credential=cred, reason="Key leaked in a log.")
    cred.refresh_from_db()
    assert (cred.status, cred.status_changed_at) == ("revoked", T0)
    event = trail.one("credential.revoke", actor=owner_actor, obj=cred)
    assert event.before == {"status": "active"}
    assert event.after == {"status": "revoked", "reason": "Key leaked in a log."}
    assert {_status(f) for f in found} == {"resolved"}
    assert _status(other) == "open"
    assert trail.verbs().count("finding.resolve") == len(found)


def test_revoke_refusals(actors, agent):
    cred = CredentialFactory(agent=agent)
    rev = services.credential_revoke
    refuses(ValidationError, rev, field="reason", actor=actors["owner"], credential=cred, reason="")
    refuses(PermissionDenied, rev, actor=actors["other_owner"], credential=cred, reason="r")
    refuses(PermissionDenied, rev, actor=actors["auditor"], credential=cred, reason="r")
    services.credential_revoke(actor=actors["owner"], credential=cred, reason="r")
    refuses(Conflict, rev, actor=actors["owner"], credential=cred, reason="again")


# --- tools ---------------------------------------------------------------------------------


def test_adding_updating_and_removing_a_tool(owner_actor, agent, trail):
    tool = services.tool_add(
        actor=owner_actor,
        agent=agent,
        name="github",
        transport="http",
        url="https://api.githubcopilot.com/mcp/",
        access_levels=["read", "write"],
        data_classes=["source_code"],
        destination="external",
    )
    event = trail.one("tool.add", actor=owner_actor, obj=tool)
    assert event.after["access_levels"] == ["read", "write"] and event.after["destination"] == "external"

    services.tool_update(actor=owner_actor, tool=tool, access_levels=["read"])
    assert Tool.objects.get(pk=tool.pk).access_levels == ["read"]
    assert trail.one("tool.update").before == {"access_levels": ["read", "write"]}

    services.tool_remove(actor=owner_actor, tool=tool)
    assert not Tool.objects.filter(pk=tool.pk).exists()
    assert trail.one("tool.remove").before["name"] == "github"


def test_a_tool_reads_by_default(owner_actor, agent):
    tool = services.tool_add(actor=owner_actor, agent=agent, name="fs", transport="stdio", command="npx")
    assert tool.access_levels == ["read"]


def test_tool_refusals(actors, agent):
    add = services.tool_add
    ok = {"actor": actors["owner"], "agent": agent, "name": "fs", "transport": "stdio", "command": "npx"}
    refuses(PermissionDenied, add, **{**ok, "actor": actors["other_owner"]})
    refuses(PermissionDenied, add, **{**ok, "actor": actors["auditor"]})
    refuses(ValidationError, add, field="command", **{**ok, "command": ""})
    refuses(ValidationError, add, field="url", **{**ok, "transport": "http", "command": ""})
    refuses(ValidationError, add, field="access_levels", **ok, access_levels=["admin"])
    refuses(ValidationError, add, field="access_levels", **ok, access_levels=["read", "read"])
    refuses(ValidationError, add, field="data_classes", **ok, data_classes=["gold"])
    tool = ToolFactory(agent=agent, name="fs")
    refuses(ValidationError, add, **ok)  # a second tool of the same name on the same agent
    refuses(ValidationError, services.tool_update, field="agent", actor=actors["owner"], tool=tool, agent=agent)
    refuses(
        ValidationError,
        services.tool_update,
        field="access_levels",
        actor=actors["owner"],
        tool=tool,
        access_levels="read",
    )
    refuses(PermissionDenied, services.tool_update, actor=actors["other_owner"], tool=tool, command="x")
    refuses(PermissionDenied, services.tool_remove, actor=actors["auditor"], tool=tool)


# --- the system actor ----------------------------------------------------------------------


def test_the_system_actor_is_audited_as_the_system(agent, trail):
    job = Actor.system("importer")
    cred = services.credential_record(actor=job, agent=agent, **KEY, created_at=datetime(2026, 1, 1, tzinfo=UTC))
    event = trail.one("credential.record", actor=job, obj=cred)
    assert (event.actor_type, event.actor_id) == ("system", "")


def test_auditors_change_nothing_anywhere(auditor, agent):
    # Reading everything does not extend to writing anything.
    as_auditor = Actor.person(auditor)
    assert AuditorFactory()  # a second auditor changes nothing either
    for fn, kwargs in [
        (services.agent_update, {"agent": agent, "purpose": "x"}),
        (services.agent_suspend, {"agent": agent, "reason": "r"}),
        (services.agent_assign_owner, {"agent": agent, "owner": auditor}),
    ]:
        refuses(PermissionDenied, fn, actor=as_auditor, **kwargs)


def test_decommissioned_agent_credentials_are_revoked_not_rotated_and_tools_frozen(actors, agent):
    credential = CredentialFactory(agent=agent)
    tool = ToolFactory(agent=agent)
    services.agent_decommission(actor=actors["admin"], agent=agent, reason="Replaced")
    refuses(Conflict, services.credential_rotate, actor=actors["admin"], credential=credential)
    refuses(Conflict, services.tool_update, actor=actors["admin"], tool=tool, access_levels=["read"])
    services.credential_revoke(actor=actors["admin"], credential=credential, reason="Deleted at the provider")
    credential.refresh_from_db()
    assert credential.status == Credential.Status.REVOKED


# --- ownership, risk tier, reserved slugs, credential dates -----------------------------------


def test_backup_owner_cannot_take_an_agent_from_an_owner_who_is_still_there(actors, agent, backup, owner):
    refuses(PermissionDenied, services.agent_assign_owner, actor=actors["backup"], agent=agent, owner=backup)
    owner.is_active = False
    owner.save()
    services.agent_assign_owner(actor=Actor.person(backup), agent=agent, owner=backup, reason="Olivia left")
    agent.refresh_from_db()
    assert (agent.owner, agent.backup_owner) == (backup, None)


def test_owner_transfers_only_to_people_who_may_own_agents(actors, agent, auditor, other_owner, trail):
    refuses(
        ValidationError, services.agent_assign_owner, field="owner", actor=actors["owner"], agent=agent, owner=auditor
    )
    refuses(
        ValidationError,
        services.agent_assign_owner,
        field="owner",
        actor=actors["admin"],
        agent=agent,
        owner=UserFactory(),
    )  # no role at all
    refuses(
        ValidationError,
        services.agent_register,
        field="owner",
        actor=actors["admin"],
        name="X",
        kind="assistant",
        owner=auditor,
    )
    services.agent_assign_owner(actor=actors["owner"], agent=agent, owner=other_owner, reason="Team move")
    assert trail.one("agent.assign_owner", actor=actors["owner"]).after["owner"] == other_owner.pk


def test_person_list_offers_owners_and_admins_never_auditors(admin_user, owner, auditor):
    from inventory.selectors import person_list

    UserFactory(username="no-role")
    assert set(person_list(user=admin_user)) == {admin_user, owner}


def test_slugs_the_ui_uses_are_reserved(actors, owner):
    refuses(
        ValidationError,
        services.agent_register,
        field="slug",
        actor=actors["admin"],
        name="New",
        kind="assistant",
        owner=owner,
        slug="new",
    )
    agent = services.agent_register(actor=actors["admin"], name="New", kind="assistant", owner=owner)
    assert agent.slug == "new-2"


def test_credential_dates_must_be_possible(actors, agent):
    record = services.credential_record
    base = {"actor": actors["owner"], "agent": agent, "kind": "api_key", "provider": "github"}
    refuses(ValidationError, record, field="created_at", external_id="a", created_at=T0 + timedelta(days=2), **base)
    refuses(
        ValidationError,
        record,
        field="last_used_at",
        external_id="b",
        created_at=T0 - DAY,
        last_used_at=T0 - 3 * DAY,
        **base,
    )
    refuses(
        ValidationError,
        record,
        field="last_rotated_at",
        external_id="c",
        created_at=T0 - DAY,
        last_rotated_at=T0 - 3 * DAY,
        **base,
    )
    refuses(
        ValidationError,
        record,
        field="last_used_at",
        external_id="d",
        created_at=T0 - DAY,
        last_used_at=T0 + DAY,
        **base,
    )
    ok = record(external_id="e", created_at=T0 + timedelta(minutes=2), **base)
    assert ok.pk  # a few minutes of clock skew is tolerated


def test_only_iam_admins_register_an_agent_with_a_risk_tier(actors, owner):
    refuses(
        PermissionDenied,
        services.agent_register,
        actor=actors["owner"],
        name="Low risk, trust me",
        kind="assistant",
        owner=owner,
        risk_tier="low",
    )
    agent = services.agent_register(
        actor=actors["admin"], name="Payments bot", kind="assistant", owner=owner, risk_tier="critical"
    )
    assert agent.risk_tier == "critical"


def test_removing_a_tool_resolves_its_findings(actors, agent, trail):
    tool = ToolFactory(agent=agent)
    finding = _raise("literal_secret_in_config", tool, agent.pk)
    services.tool_remove(actor=actors["owner"], tool=tool)
    assert _status(finding) == Finding.Status.RESOLVED
    assert trail.one("finding.resolve").before == {"status": "open"}
    assert trail.verbs()[-2:] == ["tool.remove", "finding.resolve"]
