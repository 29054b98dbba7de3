"""Governance services: working findings, integration tokens, the policy — rules, audit events, refusals."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import override_settings

from governance import services
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.findings import Condition, finding_raise
from governance.models import AuditEvent, Finding, IntegrationToken, Policy
from tests.factories import T0, AgentFactory, CredentialFactory, UserFactory
from tests.support import Trail, refusal_checker

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAY = timedelta(days=1)


#: Proves a refused call changed nothing a service could change.
refuses = refusal_checker(Finding, IntegrationToken, Policy, AuditEvent)


def _last_event():
    return AuditEvent.objects.order_by("-id").first()


@pytest.fixture
def actors(admin_user, owner, other_owner, auditor):
    return {
        "admin": Actor.person(admin_user),
        "owner": Actor.person(owner),
        "other_owner": Actor.person(other_owner),
        "auditor": Actor.person(auditor),
    }


@pytest.fixture
def finding(owner):
    agent = AgentFactory(owner=owner)
    cred = CredentialFactory(agent=agent)
    with transaction.atomic():
        return finding_raise(
            actor=Actor.system("job"), kind="unused_credential", condition=Condition(cred, agent.pk), now=T0 - DAY
        )[0]


# --- findings ------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["admin", "owner"])
def test_acknowledge_an_open_finding(actors, finding, who):
    trail = Trail()
    services.finding_acknowledge(actor=actors[who], finding=finding, note="Looking into it.")
    finding.refresh_from_db()
    assert (finding.status, finding.acknowledged_at, finding.acknowledged_by) == ("acknowledged", T0, actors[who].label)
    event = trail.only("finding.acknowledge", actors[who], finding)
    assert (event.before["status"], event.after["status"], event.after["note"]) == (
        "open",
        "acknowledged",
        "Looking into it.",
    )


def test_acknowledge_refusals(actors, finding):
    ack = services.finding_acknowledge
    refuses(PermissionDenied, ack, actor=actors["other_owner"], finding=finding)
    refuses(PermissionDenied, ack, actor=actors["auditor"], finding=finding)
    services.finding_acknowledge(actor=actors["owner"], finding=finding)
    refuses(Conflict, ack, actor=actors["owner"], finding=finding)


def test_a_finding_without_an_agent_is_worked_by_iam_admins_only(actors, finding):
    Finding.objects.filter(pk=finding.pk).update(agent_id=None)
    refuses(PermissionDenied, services.finding_acknowledge, actor=actors["owner"], finding=finding)
    services.finding_acknowledge(actor=actors["admin"], finding=finding)


@pytest.mark.parametrize("who", ["admin", "owner"])
def test_resolve_a_finding_with_a_note(actors, finding, who):
    trail = Trail()
    services.finding_resolve(actor=actors[who], finding=finding, note="Key deleted at AWS.")
    finding.refresh_from_db()
    assert (finding.status, finding.resolved_at, finding.resolution_note) == ("resolved", T0, "Key deleted at AWS.")
    event = trail.only("finding.resolve", actors[who], finding)
    assert (event.before["status"], event.after["status"]) == ("open", "resolved")


def test_resolve_refusals(actors, finding):
    res = services.finding_resolve
    refuses(ValidationError, res, field="note", actor=actors["owner"], finding=finding, note="  ")
    refuses(PermissionDenied, res, actor=actors["other_owner"], finding=finding, note="n")
    refuses(PermissionDenied, res, actor=actors["auditor"], finding=finding, note="n")
    services.finding_resolve(actor=actors["owner"], finding=finding, note="done")
    refuses(Conflict, res, actor=actors["admin"], finding=finding, note="again")


def test_an_iam_admin_accepts_a_risk_until_a_date(actors, finding):
    until = T0 + 30 * DAY
    trail = Trail()
    services.finding_accept_risk(actor=actors["admin"], finding=finding, until=until, note="Vendor fix due.")
    finding.refresh_from_db()
    assert (finding.status, finding.risk_accepted_until, finding.risk_accepted_by) == (
        "risk_accepted",
        until,
        actors["admin"].label,
    )
    event = trail.only("finding.accept_risk", actors["admin"], finding)
    assert event.after["risk_accepted_until"] == "2026-12-15T06:00:00Z"


def test_an_acknowledged_finding_can_have_its_risk_accepted(actors, finding):
    services.finding_acknowledge(actor=actors["owner"], finding=finding)
    services.finding_accept_risk(actor=actors["admin"], finding=finding, until=T0 + DAY, note="ok")
    assert Finding.objects.get(pk=finding.pk).status == "risk_accepted"


def test_accept_risk_refusals(actors, finding):
    acc = services.finding_accept_risk
    ok = {"finding": finding, "until": T0 + DAY, "note": "ok"}
    refuses(PermissionDenied, acc, actor=actors["owner"], **ok)
    refuses(PermissionDenied, acc, actor=actors["auditor"], **ok)
    admin = actors["admin"]
    refuses(ValidationError, acc, field="note", actor=admin, **{**ok, "note": ""})
    refuses(ValidationError, acc, field="until", actor=admin, **{**ok, "until": T0.replace(tzinfo=None) + DAY})
    refuses(ValidationError, acc, field="until", actor=admin, **{**ok, "until": T0})
    refuses(ValidationError, acc, field="until", actor=admin, **{**ok, "until": T0 + 366 * DAY})
    refuses(ValidationError, acc, field="until", actor=admin, **{**ok, "until": None})
    services.finding_resolve(actor=admin, finding=finding, note="done")
    refuses(Conflict, acc, actor=admin, **ok)


def test_the_database_refuses_a_risk_acceptance_without_an_end(finding):
    with pytest.raises(IntegrityError), transaction.atomic():
        Finding.objects.filter(pk=finding.pk).update(status="risk_accepted", risk_accepted_until=None)


# --- integration tokens (invariant 9) ------------------------------------------------------


def test_a_token_is_stored_hashed_and_its_clear_text_appears_nowhere(actors, owner):
    trail = Trail()
    token, clear = services.integration_token_issue(
        actor=actors["owner"],
        user=owner,
        name="CI gateway",
        scopes=["inventory:read", "inventory:read"],
        expires_at=T0 + 30 * DAY,
    )
    token.refresh_from_db()
    assert clear.startswith("wrt_") and len(clear) > 40
    assert token.digest == hashlib.sha256(clear.encode()).hexdigest()
    assert token.prefix == clear[:12] and token.scopes == ["inventory:read"]
    assert (token.created_at, token.expires_at, token.created_by) == (T0, T0 + 30 * DAY, owner)
    event = trail.only("token.issue", actors["owner"], token)
    assert event.after["prefix"] == token.prefix
    dump = StringIO()
    call_command("dumpdata", stdout=dump)
    assert clear not in dump.getvalue()
    assert clear[12:] not in dump.getvalue()
    assert token.digest in dump.getvalue()


def test_an_iam_admin_issues_tokens_for_anyone(actors, owner):
    token, _ = services.integration_token_issue(
        actor=actors["admin"], user=owner, name="SIEM", scopes=["audit:read"], expires_at=T0 + DAY
    )
    assert token.user == owner


@override_settings(WARRANT_TOKEN_MAX_DAYS=90)
def test_token_issue_refusals(actors, owner, other_owner):
    issue = services.integration_token_issue
    ok = {"actor": actors["owner"], "user": owner, "name": "CI", "scopes": ["inventory:read"], "expires_at": T0 + DAY}
    refuses(PermissionDenied, issue, **{**ok, "user": other_owner})
    refuses(PermissionDenied, issue, **{**ok, "actor": actors["auditor"]})
    token, _ = issue(**ok)
    refuses(PermissionDenied, issue, **{**ok, "actor": Actor.integration(token)})
    refuses(ValidationError, issue, field="name", **{**ok, "name": " "})
    refuses(ValidationError, issue, field="scopes", **{**ok, "scopes": []})
    refuses(ValidationError, issue, field="scopes", **{**ok, "scopes": ["admin:everything"]})
    refuses(ValidationError, issue, field="expires_at", **{**ok, "expires_at": T0})
    refuses(ValidationError, issue, field="expires_at", **{**ok, "expires_at": T0.replace(tzinfo=None) + DAY})
    refuses(ValidationError, issue, field="expires_at", **{**ok, "expires_at": T0 + 91 * DAY})
    gone = UserFactory(is_active=False)
    refuses(ValidationError, issue, field="user", **{**ok, "actor": actors["admin"], "user": gone})


def test_revoking_a_token(actors, owner):
    token, _ = services.integration_token_issue(
        actor=actors["owner"], user=owner, name="CI", scopes=["inventory:read"], expires_at=T0 + DAY
    )
    refuses(PermissionDenied, services.integration_token_revoke, actor=actors["other_owner"], token=token)
    trail = Trail()
    services.integration_token_revoke(actor=actors["owner"], token=token)
    token.refresh_from_db()
    assert token.revoked_at == T0 and not token.is_usable(T0)
    trail.only("token.revoke", actors["owner"], token)
    refuses(Conflict, services.integration_token_revoke, actor=actors["admin"], token=token)


# --- policy --------------------------------------------------------------------------------


def test_an_iam_admin_changes_the_policy(actors):
    trail = Trail()
    policy = services.policy_update(actor=actors["admin"], unused_after_days=60, rotation_period_days=30)
    assert (Policy.current().unused_after_days, Policy.current().rotation_period_days) == (60, 30)
    event = trail.only("policy.update", actors["admin"], policy)
    assert event.before == {"unused_after_days": 90, "rotation_period_days": 90}
    assert event.after == {"unused_after_days": 60, "rotation_period_days": 30}


def test_policy_update_refusals(actors):
    Policy.current()
    upd = services.policy_update
    refuses(PermissionDenied, upd, actor=actors["owner"], unused_after_days=1)
    refuses(PermissionDenied, upd, actor=actors["auditor"], unused_after_days=1)
    refuses(ValidationError, upd, field="grant_cap_hours", actor=actors["admin"], grant_cap_hours=8)
    refuses(ValidationError, upd, field="unused_after_days", actor=actors["admin"], unused_after_days=0)
    refuses(ValidationError, upd, field="expiring_within_days", actor=actors["admin"], expiring_within_days="soon")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grant_max_hours_low": 10**12}, "grant_max_hours_low"),  # once a 500 on every grants page
        ({"rotation_period_days": 10**9}, "rotation_period_days"),  # once a 500 on the dashboard
        ({"expiring_within_days": 10**9}, "expiring_within_days"),  # once an OverflowError in the job
        ({"grant_max_hours_critical": 48}, "grant_max_hours_critical"),  # critical longer than high (24 h)
        ({"grant_max_hours_low": 10}, "grant_max_hours_medium"),  # low shorter than medium
        ({"attestation_days_high": 400}, "attestation_days_high"),  # high attested less often than low
        ({"grant_approvals_standard": 3}, "grant_approvals_standard"),  # more than the elevated two
    ],
)
def test_policy_update_refuses_out_of_range_and_inconsistent_settings(actors, changes, field):
    Policy.current()
    refuses(ValidationError, services.policy_update, field=field, actor=actors["admin"], **changes)
