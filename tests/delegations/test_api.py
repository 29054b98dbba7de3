"""REST API of delegation grants: list, retrieve, request, approve, deny, cancel, revoke, renew, bulk renewal."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from delegations import services
from delegations.models import Approval, DelegationGrant, GrantScope
from delegations.services import ScopeRequest
from governance.audit import Actor
from governance.models import AuditEvent, IntegrationToken
from governance.roles import AGENT_OWNER, AUDITOR, IAM_ADMIN
from governance.services import policy_update
from tests.api_support import (
    READ_ALL,
    READ_OWN,
    Case,
    count_queries,
    expect,
    issue_token,
    matrix,
    matrix_ids,
    run_case,
    session_client,
    token_client,
)
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, ToolFactory, add_role

GRANTS = "/api/v1/grants/"
BULK = "/api/v1/grants/renew-bulk/"
GRANTS_READ = IntegrationToken.Scope.GRANTS_READ
GRANTS_WRITE = IntegrationToken.Scope.GRANTS_WRITE
DAY = timedelta(days=1)


def iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def db_state():
    """Every row a grant write could touch, to prove that a refusal wrote nothing."""
    return [list(m.objects.order_by("id").values()) for m in (DelegationGrant, GrantScope, Approval, AuditEvent)]


def refused(client, url, body, status, field=None, method="post"):
    """Send ``body`` and expect ``status`` (and ``field`` among the errors) with nothing written."""
    before = db_state()
    response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, (response.status_code, response.data)
    assert response["Content-Type"].startswith("application/json")
    if field is not None:
        assert field in response.data, response.data
    assert db_state() == before, "a refused request changed the database"
    return response


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor, low_agent, high_agent):
    others = AgentFactory(slug="others", name="Build bot", owner=other_owner, risk_tier="low")
    ToolFactory(agent=others, name="github", access_levels=["read", "write"])
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "low": low_agent,
        "high": high_agent,
        "others": others,
        "pending": GrantFactory(agent=low_agent, status="pending", scopes=[("github", "read", "")]),
        "active": GrantFactory(agent=low_agent, scopes=[("github", "read", "")]),
        "others_active": GrantFactory(agent=others, scopes=[("github", "read", "")]),
    }


def request_body(w, **extra):
    return {
        "agent": "ticket-triage",
        "scopes": [{"tool": "github", "access": "read"}],
        "purpose": "Read the issue tracker.",
        "justification": "Ticket triage needs the issues.",
        "expires_at": iso(T0 + DAY),
        **extra,
    }


CASES = [
    Case("grants-list", "get", lambda w: GRANTS, READ_ALL, scope=GRANTS_READ),
    Case("grants-retrieve", "get", lambda w: f"{GRANTS}{w['pending'].pk}/", READ_OWN, scope=GRANTS_READ),
    Case(
        "grants-retrieve-others",
        "get",
        lambda w: f"{GRANTS}{w['others_active'].pk}/",
        expect(owner=404, other_owner=200, admin=200, auditor=200),
        scope=GRANTS_READ,
    ),
    Case(
        "grants-create",
        "post",
        lambda w: GRANTS,
        expect(owner=201, other_owner=403, admin=201, auditor=403),
        body=request_body,
        verb="grant.request",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-create-for-others-agent",
        "post",
        lambda w: GRANTS,
        expect(owner=403, other_owner=201, admin=201, auditor=403),
        body=lambda w: request_body(w, agent="others"),
        verb="grant.request",
        scope=GRANTS_WRITE,
    ),
    # the owner asked for it and owns the agent: never their decision (separation of duties)
    Case(
        "grants-approve",
        "post",
        lambda w: f"{GRANTS}{w['pending'].pk}/approve/",
        expect(owner=403, other_owner=404, admin=200, auditor=403),
        body=lambda w: {"comment": "Fine."},
        verb="grant.approve",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-deny",
        "post",
        lambda w: f"{GRANTS}{w['pending'].pk}/deny/",
        expect(owner=403, other_owner=404, admin=200, auditor=403),
        body=lambda w: {"reason": "Too broad."},
        verb="grant.deny",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-cancel",
        "post",
        lambda w: f"{GRANTS}{w['pending'].pk}/cancel/",
        expect(owner=200, other_owner=404, admin=200, auditor=403),
        body=lambda w: {"reason": "No longer needed."},
        verb="grant.cancel",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-revoke",
        "post",
        lambda w: f"{GRANTS}{w['active'].pk}/revoke/",
        expect(owner=200, other_owner=404, admin=200, auditor=403),
        body=lambda w: {"reason": "Incident."},
        verb="grant.revoke",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-renew",
        "post",
        lambda w: f"{GRANTS}{w['active'].pk}/renew/",
        expect(owner=201, other_owner=404, admin=201, auditor=403),
        body=lambda w: {"duration_seconds": 86400},
        verb="grant.renew",
        scope=GRANTS_WRITE,
    ),
    # a grant the caller may not see reads as an unknown id
    Case(
        "grants-renew-bulk",
        "post",
        lambda w: BULK,
        expect(owner=200, other_owner=400, admin=200, auditor=403),
        body=lambda w: {"items": [{"grant": w["active"].pk, "duration_seconds": 86400}]},
        verb="grant.renew",
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-cannot-be-patched",
        "patch",
        lambda w: f"{GRANTS}{w['pending'].pk}/",
        expect(owner=405, other_owner=405, admin=405, auditor=403),
        body=lambda w: {"status": "active"},
        scope=GRANTS_WRITE,
    ),
    Case(
        "grants-cannot-be-deleted",
        "delete",
        lambda w: f"{GRANTS}{w['active'].pk}/",
        expect(owner=405, other_owner=405, admin=405, auditor=403),
        scope=GRANTS_WRITE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    """Every endpoint and action as every caller: status, the audit event on success, nothing on refusal."""
    grant_rows = lambda: db_state()[:3]  # noqa: E731  (issuing the caller's token writes an audit event)
    before = grant_rows()
    response = run_case(case, role, world)
    if response.status_code >= 400:
        assert grant_rows() == before
    if case.method == "post" and response.status_code < 300 and role in ("token", "admin_token"):
        assert "token" in AuditEvent.objects.filter(verb=case.verb).latest("id").actor_label


# --- tokens ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_token_scopes_follow_the_role(world):
    from governance.services import token_scopes_for

    people = world["people"]
    assert {GRANTS_READ, GRANTS_WRITE} <= token_scopes_for(people["owner"])
    assert {GRANTS_READ, GRANTS_WRITE} <= token_scopes_for(people["admin"])
    assert GRANTS_READ in token_scopes_for(people["auditor"])
    assert GRANTS_WRITE not in token_scopes_for(people["auditor"])
    with pytest.raises(Exception, match="does not allow grants:write"):
        issue_token(people["auditor"], [GRANTS_WRITE])


@pytest.mark.django_db
def test_token_with_grants_read_only_reads_and_never_writes(world):
    _, clear = issue_token(world["people"]["admin"], [GRANTS_READ, IntegrationToken.Scope.INVENTORY_WRITE])
    client = token_client(clear)
    assert client.get(GRANTS).status_code == 200
    response = refused(client, f"{GRANTS}{world['pending'].pk}/approve/", {}, 403)
    assert "grants:write" in str(response.data["detail"])
    refused(client, GRANTS, request_body(world), 403)


@pytest.mark.django_db
def test_token_without_grants_read_cannot_list(world):
    _, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.INVENTORY_READ])
    response = token_client(clear).get(GRANTS)
    assert response.status_code == 403 and "grants:read" in str(response.data["detail"])


@pytest.mark.django_db
def test_request_through_a_token_names_the_integration(world):
    token, clear = issue_token(world["people"]["owner"], [GRANTS_WRITE, GRANTS_READ])
    response = token_client(clear).post(GRANTS, request_body(world), format="json")
    assert response.status_code == 201
    assert response.data["requested_by"] == "olivia.owner"
    assert response.data["requested_via"] == f"olivia.owner integration (token {token.prefix}, for olivia.owner)"
    event = AuditEvent.objects.get(verb="grant.request")
    assert (event.actor_type, event.actor_id) == ("integration", str(token.pk))


@pytest.mark.django_db
def test_grants_write_lapses_when_its_person_loses_the_role(world):
    owner = world["people"]["owner"]
    _, clear = issue_token(owner, [GRANTS_READ, GRANTS_WRITE])
    client = token_client(clear)
    owner.groups.clear()
    add_role(owner, AUDITOR)
    response = refused(client, GRANTS, request_body(world), 403)
    assert "no longer allows the grants:write scope" in str(response.data["detail"])
    assert client.get(GRANTS).status_code == 200  # an auditor still reads
    owner.groups.clear()
    add_role(owner, AGENT_OWNER)
    assert client.post(GRANTS, request_body(world), format="json").status_code == 201


# --- representation --------------------------------------------------------------------------


@pytest.mark.django_db
def test_grant_representation(world, approver):
    grant = world["pending"]
    Approval.objects.create(grant=grant, approver=approver, decision="approve", comment="ok", decided_at=T0)
    data = session_client(world["people"]["admin"]).get(f"{GRANTS}{grant.pk}/").data
    assert data == {
        "id": grant.pk,
        "agent": "ticket-triage",
        "agent_name": "Ticket triage",
        "risk_tier": "low",
        "status": "pending",
        "state": "pending",
        "scopes": [{"tool": "github", "access": "read", "resource": ""}],
        "purpose": "Read the issue tracker.",
        "intents": [],
        "justification": "Needed for ticket triage.",
        "on_behalf_of": None,
        "parent": None,
        "depth": 1,
        "renewal_of": None,
        "requested_by": "olivia.owner",
        "requested_via": "",
        "requested_at": "2026-11-15T06:00:00Z",
        "starts_at": "2026-11-15T06:00:00Z",
        "expires_at": "2026-11-16T06:00:00Z",
        "approvals_required": 1,
        "approvals": [
            {"approver": "amara.approver", "decision": "approve", "comment": "ok", "decided_at": "2026-11-15T06:00:00Z"}
        ],
        "decided_at": None,
        "decided_by": None,
        "decision_reason": "",
        "ended_at": None,
        "ended_by": "",
        "end_reason": "",
        "allowed_actions": ["approve", "deny", "cancel"],
    }


@pytest.mark.django_db
def test_allowed_actions_follow_the_rules(world, approver):
    owner_client = session_client(world["people"]["owner"])
    assert owner_client.get(f"{GRANTS}{world['pending'].pk}/").data["allowed_actions"] == ["cancel"]
    assert owner_client.get(f"{GRANTS}{world['active'].pk}/").data["allowed_actions"] == ["revoke", "renew"]
    auditor_client = session_client(world["people"]["auditor"])
    assert auditor_client.get(f"{GRANTS}{world['pending'].pk}/").data["allowed_actions"] == []
    # an approver who already decided may not decide again
    Approval.objects.create(grant=world["pending"], approver=approver, decision="approve", decided_at=T0)
    approver_data = session_client(approver).get(f"{GRANTS}{world['pending'].pk}/").data
    assert approver_data["allowed_actions"] == ["cancel"]


@pytest.mark.django_db
def test_person_the_grant_acts_for_sees_it(world):
    person = OwnerFactory(username="pat.person")
    grant = GrantFactory(agent=world["others"], on_behalf_of=person)
    data = session_client(person).get(f"{GRANTS}{grant.pk}/").data
    assert data["on_behalf_of"] == "pat.person"
    assert [g["id"] for g in session_client(person).get(GRANTS).data["results"]] == [grant.pk]


@pytest.mark.django_db
def test_unknown_grant_is_a_json_404(world):
    response = session_client(world["people"]["admin"]).get(f"{GRANTS}999999/")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")


# --- request -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_request_creates_a_pending_grant_with_its_audit_event(world):
    body = request_body(
        world,
        scopes=[{"tool": "github", "access": "read", "resource": "repo:acme/*"}, {"tool": "jira", "access": "write"}],
        intents=["triage", "reporting"],
        on_behalf_of="oscar.owner",
        starts_at="2026-11-15T08:00:00+01:00",
        expires_at="2026-11-16T08:00:00+01:00",
    )
    response = session_client(world["people"]["owner"]).post(GRANTS, body, format="json")
    assert response.status_code == 201, response.data
    data = response.data
    grant = DelegationGrant.objects.get(pk=data["id"])
    assert (data["status"], data["state"], data["approvals_required"]) == ("pending", "pending", 1)
    assert data["starts_at"] == "2026-11-15T07:00:00Z" and data["expires_at"] == "2026-11-16T07:00:00Z"
    assert data["scopes"] == [
        {"tool": "github", "access": "read", "resource": "repo:acme/*"},
        {"tool": "jira", "access": "write", "resource": ""},
    ]
    assert data["intents"] == ["reporting", "triage"] and data["on_behalf_of"] == "oscar.owner"
    assert grant.requested_by == world["people"]["owner"] and grant.requested_via == ""
    event = AuditEvent.objects.get(verb="grant.request")
    assert event.object_id == str(grant.pk) and event.actor_label == "olivia.owner"


@pytest.mark.django_db
def test_high_tier_request_needs_two_approvers(world):
    body = request_body(world, agent="deploy-bot")
    data = session_client(world["people"]["owner"]).post(GRANTS, body, format="json").data
    assert data["approvals_required"] == 2 and data["risk_tier"] == "high"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"expiry": "2026-11-16T06:00:00Z"}, "expiry", "Unknown field"),
        ({"status": "active"}, "status", "read-only"),
        ({"state": "active"}, "state", "read-only"),
        ({"requested_by": "oscar.owner"}, "requested_by", "read-only"),
        ({"approvals_required": 0}, "approvals_required", "read-only"),
        ({"expires_at": "2026-11-16T06:00:00"}, "expires_at", "UTC offset"),
        ({"starts_at": "2026-11-15T07:00:00"}, "starts_at", "UTC offset"),
        ({"expires_at": "2026-11-16"}, "expires_at", ""),
        ({"expires_at": "next tuesday"}, "expires_at", ""),
        ({"expires_at": 1795000000}, "expires_at", ""),
        ({"expires_at": "2026-11-16T06:00:00+25:00"}, "expires_at", ""),
        ({"expires_at": "0001-01-01T00:30:00+01:00"}, "expires_at", ""),
        ({"expires_at": None}, "expires_at", "null"),
        ({"agent": 7}, "agent", "JSON string"),
        ({"agent": "no-such-agent"}, "agent", "does not exist"),
        ({"purpose": 12}, "purpose", "JSON string"),
        ({"purpose": ""}, "purpose", "Say what the grant is for"),
        ({"justification": "  "}, "justification", "Justify"),
        ({"scopes": "github:read"}, "scopes", ""),
        ({"scopes": []}, "scopes", "at least one scope"),
        ({"scopes": [{"tool": "github"}]}, "scopes", "required"),
        ({"scopes": [{"tool": "github", "access": "admin"}]}, "scopes", "valid choice"),
        ({"scopes": [{"tool": "github", "access": "read", "level": "x"}]}, "scopes", "Unknown field"),
        ({"scopes": [{"tool": "github", "access": "execute"}]}, "scopes", "offers only read, write"),
        ({"scopes": [{"tool": "slack", "access": "read"}]}, "scopes", "no tool named 'slack'"),
        ({"scopes": [{"tool": "github", "access": "read", "resource": "a*b*"}]}, "scopes", "one '*'"),
        ({"scopes": [{"tool": "github", "access": "read", "resource": "../*"}]}, "scopes", "'.' or '..' segments"),
        ({"scopes": [{"tool": 1, "access": "read"}]}, "scopes", "JSON string"),
        ({"intents": "triage"}, "intents", ""),
        ({"intents": [1]}, "intents", "JSON string"),
        ({"intents": [""]}, "intents", "non-empty"),
        ({"on_behalf_of": "nobody"}, "on_behalf_of", "does not exist"),
        ({"parent": "1"}, "parent", "JSON integer"),
        ({"parent": True}, "parent", "JSON integer"),
        ({"parent": 999999}, "parent", "does not exist"),
        ({"expires_at": "2026-12-16T06:00:01Z"}, "expires_at", "not trimmed"),
        ({"expires_at": "2026-11-15T05:00:00Z"}, "expires_at", "must come after the start"),
        ({"starts_at": "2026-11-14T06:00:00Z"}, "starts_at", "in the past"),
    ],
)
def test_request_refusals_are_400_and_write_nothing(extra, field, message, world):
    response = refused(session_client(world["people"]["owner"]), GRANTS, request_body(world, **extra), 400, field=field)
    assert message in str(response.data[field]), response.data


@pytest.mark.django_db
def test_request_without_expiry_is_400(world):
    body = request_body(world)
    del body["expires_at"]
    refused(session_client(world["people"]["owner"]), GRANTS, body, 400, field="expires_at")


@pytest.mark.django_db
def test_local_time_in_a_dst_gap_is_never_a_500(world):
    """02:30 on the last Sunday of March does not exist in Paris: without an offset it is refused
    whatever the viewer's timezone; with one it is an instant like any other."""
    client = session_client(world["people"]["owner"])
    client.cookies["tz"] = "Europe/Paris"
    for naive in ("2026-03-29T02:30:00", "2027-03-28T02:30:00"):
        response = refused(client, GRANTS, request_body(world, expires_at=naive), 400, field="expires_at")
        assert "UTC offset" in str(response.data["expires_at"])
        refused(client, GRANTS, request_body(world, starts_at=naive), 400, field="starts_at")
    # with an offset, validated like any instant: this one is long past …
    response = refused(client, GRANTS, request_body(world, expires_at="2026-03-29T02:30:00+01:00"), 400)
    assert "must come after the start" in str(response.data["expires_at"])
    # … and this one is in the future, two hours long across the change
    body = request_body(
        world, agent="ticket-triage", starts_at="2027-03-28T02:30:00+01:00", expires_at="2027-03-28T05:30:00+02:00"
    )
    policy_update(actor=Actor.system("test"), grant_max_hours_low=24 * 365)
    response = client.post(GRANTS, body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["starts_at"] == "2027-03-28T01:30:00Z"
    assert response.data["expires_at"] == "2027-03-28T03:30:00Z"


@pytest.mark.django_db
def test_request_for_an_inactive_agent_is_409(world):
    world["low"].state = "suspended"
    world["low"].save(update_fields=["state"])
    refused(session_client(world["people"]["owner"]), GRANTS, request_body(world), 409)


@pytest.mark.django_db
def test_child_grant_asking_more_than_its_parent_is_400(world):
    owner = world["people"]["owner"]
    helper = AgentFactory(slug="helper", owner=owner, risk_tier="low")
    ToolFactory(agent=helper, name="github", access_levels=["read", "write"])
    client = session_client(owner)
    parent = world["active"]  # github:read on ticket-triage
    body = request_body(
        world,
        agent="helper",
        parent=parent.pk,
        scopes=[{"tool": "github", "access": "read"}, {"tool": "github", "access": "write"}],
        expires_at=iso(T0 + timedelta(hours=12)),
    )
    response = refused(client, GRANTS, body, 400, field="scopes")
    assert "github:write is not within the parent grant's scopes" in str(response.data["scopes"])
    body["expires_at"] = iso(parent.expires_at + timedelta(hours=1))
    body["scopes"] = [{"tool": "github", "access": "read"}]
    refused(client, GRANTS, body, 400, field="expires_at")
    body["expires_at"] = iso(T0 + timedelta(hours=12))
    response = client.post(GRANTS, body, format="json")
    assert response.status_code == 201, response.data
    assert (response.data["parent"], response.data["depth"]) == (parent.pk, 2)


@pytest.mark.django_db
def test_parent_the_caller_cannot_see_reads_as_unknown(world):
    body = request_body(world, parent=world["others_active"].pk, expires_at=iso(T0 + timedelta(hours=12)))
    response = refused(session_client(world["people"]["owner"]), GRANTS, body, 400, field="parent")
    assert "does not exist" in str(response.data["parent"])


# --- decisions -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_approve_activates_with_enough_approvals(world, approver):
    grant = world["pending"]
    response = session_client(approver).post(f"{GRANTS}{grant.pk}/approve/", {"comment": "Scoped well."})
    assert response.status_code == 200, response.data
    data = response.data
    assert (data["status"], data["state"], data["decided_by"]) == ("active", "active", "amara.approver")
    assert data["approvals"][0]["approver"] == "amara.approver" and data["approvals"][0]["comment"] == "Scoped well."
    assert AuditEvent.objects.filter(verb="grant.approve", object_id=str(grant.pk)).count() == 1
    # decided: a second decision is a conflict
    second = IamAdminFactory(username="carla.approver")
    response = refused(session_client(second), f"{GRANTS}{grant.pk}/approve/", {}, 409)
    assert response.data["code"] == "conflict" and "no longer pending" in response.data["detail"]
    refused(session_client(second), f"{GRANTS}{grant.pk}/deny/", {"reason": "Late."}, 409)


@pytest.mark.django_db
def test_approve_may_shorten_never_lengthen(world, approver):
    url = f"{GRANTS}{world['pending'].pk}/approve/"
    client = session_client(approver)
    refused(client, url, {"expires_at": iso(T0 + 2 * DAY)}, 400, field="expires_at")
    refused(client, url, {"expires_at": "2026-11-15T12:00:00"}, 400, field="expires_at")
    refused(client, url, {"expires_at": iso(T0 - DAY)}, 400, field="expires_at")
    refused(client, url, {"comment": "ok", "status": "active"}, 400, field="status")
    refused(client, url, {"comment": 5}, 400, field="comment")
    response = client.post(url, {"expires_at": "2026-11-15T13:00:00+01:00"}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["expires_at"] == "2026-11-15T12:00:00Z"


@pytest.mark.django_db
def test_requester_may_not_approve_their_own_request(world, admin_user):
    admin_client = session_client(admin_user)
    data = admin_client.post(GRANTS, request_body(world), format="json").data
    response = refused(admin_client, f"{GRANTS}{data['id']}/approve/", {}, 403)
    assert "You requested this grant" in response.data["detail"]
    refused(admin_client, f"{GRANTS}{data['id']}/deny/", {"reason": "x"}, 403)


@pytest.mark.django_db
def test_owner_who_is_an_iam_admin_may_not_approve_their_agents_grant(world, admin_user):
    owner = world["people"]["owner"]
    add_role(owner, IAM_ADMIN)
    grant = GrantFactory(agent=world["low"], status="pending", requested_by=admin_user, scopes=[("github", "read", "")])
    response = refused(session_client(owner), f"{GRANTS}{grant.pk}/approve/", {}, 403)
    assert "You own or back up this agent" in response.data["detail"]


@pytest.mark.django_db
def test_approver_decides_once(world, approver):
    data = session_client(world["people"]["owner"]).post(GRANTS, request_body(world, agent="deploy-bot")).data
    url = f"{GRANTS}{data['id']}/approve/"
    first = session_client(approver).post(url, {}, format="json")
    assert first.status_code == 200 and first.data["status"] == "pending"
    response = refused(session_client(approver), url, {}, 409)
    assert "already decided" in response.data["detail"]


@pytest.mark.django_db
def test_deny_needs_a_reason_and_ends_the_request(world, approver):
    url = f"{GRANTS}{world['pending'].pk}/deny/"
    client = session_client(approver)
    refused(client, url, {}, 400, field="reason")
    refused(client, url, {"reason": "  "}, 400, field="reason")
    refused(client, url, {"reason": "x", "expiry": "y"}, 400, field="expiry")
    response = client.post(url, {"reason": "Too broad for triage."}, format="json")
    assert response.status_code == 200
    assert (response.data["status"], response.data["decision_reason"]) == ("denied", "Too broad for triage.")
    assert response.data["approvals"][0]["decision"] == "deny"
    assert AuditEvent.objects.filter(verb="grant.deny").count() == 1


@pytest.mark.django_db
def test_cancel(world, other_owner):
    client = session_client(world["people"]["owner"])
    refused(client, f"{GRANTS}{world['active'].pk}/cancel/", {}, 409)
    response = client.post(f"{GRANTS}{world['pending'].pk}/cancel/", {}, format="json")
    assert response.status_code == 200
    assert (response.data["status"], response.data["end_reason"]) == ("cancelled", "Cancelled.")
    refused(client, f"{GRANTS}{world['pending'].pk}/cancel/", {}, 409)


# --- revocation ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revoke_cascades_and_lists_what_it_ended(world):
    owner = world["people"]["owner"]
    parent = world["active"]
    helper = AgentFactory(slug="helper", owner=owner, risk_tier="low")
    child = GrantFactory(agent=helper, parent=parent, scopes=[("github", "read", "")])
    grandchild_pending = GrantFactory(agent=world["others"], parent=child, status="pending")
    client = session_client(owner)
    refused(client, f"{GRANTS}{parent.pk}/revoke/", {}, 400, field="reason")
    refused(client, f"{GRANTS}{parent.pk}/revoke/", {"reason": ""}, 400, field="reason")
    refused(client, f"{GRANTS}{world['pending'].pk}/revoke/", {"reason": "x"}, 409)
    response = client.post(f"{GRANTS}{parent.pk}/revoke/", {"reason": "Incident 42."}, format="json")
    assert response.status_code == 200, response.data
    assert response.data["status"] == "revoked" and response.data["state"] == "revoked"
    assert response.data["end_reason"] == "Incident 42." and response.data["ended_by"] == "olivia.owner"
    assert response.data["ended"] == [parent.pk, child.pk, grandchild_pending.pk]
    statuses = dict(DelegationGrant.objects.filter(pk__in=response.data["ended"]).values_list("pk", "status"))
    assert statuses == {parent.pk: "revoked", child.pk: "revoked", grandchild_pending.pk: "cancelled"}
    events = AuditEvent.objects.filter(verb__in=["grant.revoke", "grant.cancel"]).order_by("id")
    assert [(e.verb, e.object_id) for e in events] == [
        ("grant.revoke", str(parent.pk)),
        ("grant.revoke", str(child.pk)),
        ("grant.cancel", str(grandchild_pending.pk)),
    ]
    refused(client, f"{GRANTS}{parent.pk}/revoke/", {"reason": "again"}, 409)


# --- renewal -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_renew_makes_a_linked_request(world):
    grant = world["active"]
    client = session_client(world["people"]["owner"])
    response = client.post(f"{GRANTS}{grant.pk}/renew/", {"duration_seconds": 7 * 86400}, format="json")
    assert response.status_code == 201, response.data
    data = response.data
    assert (data["status"], data["renewal_of"]) == ("pending", grant.pk)
    assert data["starts_at"] == iso(grant.expires_at)
    assert data["expires_at"] == iso(grant.expires_at + 7 * DAY)
    assert data["scopes"] == [{"tool": "github", "access": "read", "resource": ""}]
    assert data["justification"].startswith(f"Renewal of grant #{grant.pk}")
    assert AuditEvent.objects.get(verb="grant.renew").object_id == str(data["id"])
    # the owner never approves their own renewal
    refused(client, f"{GRANTS}{data['id']}/approve/", {}, 403)


@pytest.mark.django_db
def test_renew_with_an_expiry(world):
    grant = world["active"]
    body = {"expires_at": "2026-11-18T07:00:00+01:00", "justification": "Another two days."}
    response = session_client(world["people"]["owner"]).post(f"{GRANTS}{grant.pk}/renew/", body, format="json")
    assert response.status_code == 201, response.data
    assert response.data["expires_at"] == "2026-11-18T06:00:00Z"
    assert response.data["justification"] == "Another two days."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "duration_seconds", "there is no default"),
        ({"duration_seconds": None}, "duration_seconds", "there is no default"),
        ({"duration_seconds": 3600, "expires_at": "2026-11-17T06:00:00Z"}, "duration_seconds", "exactly one"),
        ({"duration_seconds": 0}, "duration_seconds", ""),
        ({"duration_seconds": -60}, "duration_seconds", ""),
        ({"duration_seconds": "86400"}, "duration_seconds", "JSON integer"),
        ({"duration_seconds": 86400.5}, "duration_seconds", "JSON integer"),
        ({"duration_seconds": 10**12}, "duration_seconds", ""),
        ({"duration_seconds": 31 * 86400}, "duration_seconds", "not trimmed"),
        ({"expires_at": "2026-11-18T06:00:00"}, "expires_at", "UTC offset"),
        ({"expires_at": "2027-01-18T06:00:00Z"}, "expires_at", "not trimmed"),
        ({"duration": 86400}, "duration", "Unknown field"),
        ({"duration_seconds": 86400, "status": "active"}, "status", "read-only"),
    ],
)
def test_renew_refusals_are_400_and_write_nothing(body, field, message, world):
    url = f"{GRANTS}{world['active'].pk}/renew/"
    response = refused(session_client(world["people"]["owner"]), url, body, 400, field=field)
    assert message in str(response.data[field]), response.data


@pytest.mark.django_db
def test_renew_of_a_pending_request_is_409(world):
    url = f"{GRANTS}{world['pending'].pk}/renew/"
    refused(session_client(world["people"]["owner"]), url, {"duration_seconds": 3600}, 409)


@pytest.mark.django_db
def test_bulk_renewal_refuses_items_one_by_one(world, admin_user):
    """Under a 14 d cap: 7 d kept, 30 d refused, no duration refused (no hidden default); one
    grant the owner may not renew does not stop the others."""
    policy_update(actor=Actor.person(admin_user), grant_max_hours_low=14 * 24)
    low = world["low"]
    seven, thirty, missing = (GrantFactory(agent=low, scopes=[("github", "read", "")]) for _ in range(3))
    pending = world["pending"]
    body = {
        "items": [
            {"grant": seven.pk, "duration_seconds": 7 * 86400},
            {"grant": thirty.pk, "duration_seconds": 30 * 86400},
            {"grant": missing.pk, "duration_seconds": None},
            {"grant": pending.pk, "duration_seconds": 86400},
        ]
    }
    before = DelegationGrant.objects.count()
    response = session_client(world["people"]["owner"]).post(BULK, body, format="json")
    assert response.status_code == 200, response.data
    results = response.data["results"]
    assert [r["grant"] for r in results] == [seven.pk, thirty.pk, missing.pk, pending.pk]
    assert results[0]["error"] is None
    renewal = results[0]["renewal"]
    assert (renewal["renewal_of"], renewal["status"]) == (seven.pk, "pending")
    assert renewal["expires_at"] == iso(seven.expires_at + 7 * DAY)
    assert results[1]["renewal"] is None and "longer than the 14 d allowed" in results[1]["error"]
    assert results[2]["renewal"] is None and "no default" in results[2]["error"]
    assert results[3]["renewal"] is None and "pending" in results[3]["error"]
    assert DelegationGrant.objects.count() == before + 1
    assert list(AuditEvent.objects.filter(verb="grant.renew").values_list("object_id", flat=True)) == [
        str(renewal["id"])
    ]


@pytest.mark.django_db
def test_bulk_renewal_item_without_a_duration_key_is_refused_alone(world):
    body = {"items": [{"grant": world["active"].pk}]}
    response = session_client(world["people"]["owner"]).post(BULK, body, format="json")
    assert response.status_code == 200
    assert response.data["results"][0]["renewal"] is None and "no default" in response.data["results"][0]["error"]
    assert not AuditEvent.objects.filter(verb="grant.renew").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "all"}, "items"),
        ({"items": [{"grant": "1", "duration_seconds": 60}]}, "items"),
        ({"items": [{"grant": 999999, "duration_seconds": 60}]}, "items"),
        ({"items": [{"grant": 0, "duration_seconds": 60, "expires_at": "2026-11-20T00:00:00Z"}]}, "items"),
        ({"items": [{"grant": 0, "duration_seconds": 0}]}, "items"),
        ({"items": [{"grant": 0, "duration_seconds": 60}, {"grant": 0, "duration_seconds": 120}]}, "items"),
        ({"items": [{"grant": 0, "duration_seconds": 60}], "duration_seconds": 60}, "duration_seconds"),
    ],
)
def test_bulk_renewal_malformed_request_is_400_and_writes_nothing(body, field, world):
    def fill(value):
        if isinstance(value, dict):
            return {k: (world["active"].pk if k == "grant" and v == 0 else fill(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    refused(session_client(world["people"]["owner"]), BULK, fill(body), 400, field=field)


@pytest.mark.django_db
def test_bulk_renewal_has_a_bound(world):
    items = [{"grant": world["active"].pk, "duration_seconds": 60}] * 501
    response = refused(session_client(world["people"]["owner"]), BULK, {"items": items}, 400, field="items")
    assert "500" in str(response.data["items"])


# --- list, filters, query count --------------------------------------------------------------


@pytest.mark.django_db
def test_list_filters(world, frozen_now):
    client = session_client(world["people"]["admin"])

    def ids(query):
        response = client.get(f"{GRANTS}?{query}")
        assert response.status_code == 200, response.data
        return {g["id"] for g in response.data["results"]}

    w = world
    everything = {w["pending"].pk, w["active"].pk, w["others_active"].pk}
    assert ids("") == everything
    assert ids("status=pending") == {w["pending"].pk}
    assert ids("status=active") == {w["active"].pk, w["others_active"].pk}
    assert ids("status=active&status=pending") == everything
    assert ids("agent=others") == {w["others_active"].pk}
    assert ids("tool=github") == everything
    assert ids("tool=jira") == set()
    assert ids("requested_by=oscar.owner") == {w["others_active"].pk}
    assert ids("expires_before=2026-11-16T06:00:01Z") == everything
    assert ids("expires_before=2026-11-16T06:00:00Z") == set()
    assert ids("expires_after=2026-11-16T07:00:00%2B01:00") == everything
    ordered = client.get(f"{GRANTS}?ordering=agent").data["results"]
    assert [g["agent"] for g in ordered] == ["others", "ticket-triage", "ticket-triage"]
    frozen_now.move_to(T0 + 2 * DAY)
    assert ids("status=expired") == {w["active"].pk, w["others_active"].pk}
    assert ids("status=active") == set()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "query",
    [
        "colour=blue",
        "expiry=2026-11-16T00:00:00Z",
        "status=approved",
        "agent=nobody",
        "requested_by=nobody",
        "expires_before=2026-11-16T06:00:00",
        "expires_after=2026-03-29T02:30:00",
        "ordering=purpose",
        "page_size=0",
    ],
)
def test_list_refuses_unknown_filters_and_values(query, world):
    response = session_client(world["people"]["admin"]).get(f"{GRANTS}?{query}")
    assert response.status_code == 400, response.data


@pytest.mark.django_db
def test_owner_lists_only_the_grants_they_may_see(world):
    data = session_client(world["people"]["owner"]).get(GRANTS).data
    assert {g["id"] for g in data["results"]} == {world["pending"].pk, world["active"].pk}


def make_grants(owner, approver, n):
    """n grants with two scopes, an approval, a parent and a person it acts for — everything the list shows."""
    for _ in range(n):
        agent = AgentFactory(owner=owner, risk_tier="low")
        ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
        root = GrantFactory(agent=agent, scopes=[("github", "read", ""), ("github", "write", "repo:*")])
        child = GrantFactory(
            agent=AgentFactory(owner=owner),
            parent=root,
            status="pending",
            on_behalf_of=approver,
            decided_by=None,
        )
        Approval.objects.create(grant=child, approver=approver, decision="approve", decided_at=T0)


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["owner", "admin", "auditor"])
def test_list_query_count_does_not_grow_with_rows(role, owner, admin_user, auditor, approver, frozen_now):
    client = session_client({"owner": owner, "admin": admin_user, "auditor": auditor}[role])
    make_grants(owner, approver, 1)
    few = count_queries(client, GRANTS)
    make_grants(owner, approver, 12)
    assert len(client.get(GRANTS).data["results"]) == 26
    assert count_queries(client, GRANTS) == few
    assert few <= 10, few


@pytest.mark.django_db
def test_retrieve_query_count_is_bounded(world, approver):
    client = session_client(world["people"]["admin"])
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(f"{GRANTS}{world['pending'].pk}/").status_code == 200
    assert len(ctx) <= 10


# --- the journey -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_journey_request_two_approvals_active_then_expired(
    world, approver, second_approver, frozen_now, django_capture_on_commit_callbacks, mailoutbox
):
    """An owner asks for a high-tier agent through the API; approver 1 approves (still pending),
    approver 2 approves (active); past its expiry it reads expired at once, before the job runs,
    and the job then keeps the books."""
    owner_client = session_client(world["people"]["owner"])
    body = request_body(world, agent="deploy-bot", expires_at=iso(T0 + timedelta(hours=20)))
    with django_capture_on_commit_callbacks(execute=True):
        created = owner_client.post(GRANTS, body, format="json")
    assert created.status_code == 201, created.data
    grant_id = created.data["id"]
    url = f"{GRANTS}{grant_id}/"
    assert (created.data["status"], created.data["approvals_required"]) == ("pending", 2)
    assert any("amara.approver@example.com" in m.to for m in mailoutbox)

    first = session_client(approver).post(f"{url}approve/", {"comment": "Looks right."}, format="json")
    assert first.status_code == 200
    assert (first.data["status"], first.data["state"], len(first.data["approvals"])) == ("pending", "pending", 1)
    second = session_client(second_approver).post(f"{url}approve/", {}, format="json")
    assert second.status_code == 200
    assert (second.data["status"], second.data["state"]) == ("active", "active")
    assert second.data["decided_by"] == "bruno.approver"
    assert [a["approver"] for a in second.data["approvals"]] == ["amara.approver", "bruno.approver"]
    assert owner_client.get(f"{GRANTS}?status=active&agent=deploy-bot").data["count"] == 1

    frozen_now.move_to(T0 + timedelta(hours=20))  # the instant it ends: no longer authorises
    before_job = owner_client.get(url).data
    assert (before_job["status"], before_job["state"]) == ("active", "expired")
    assert owner_client.get(f"{GRANTS}?status=active&agent=deploy-bot").data["count"] == 0
    assert owner_client.get(f"{GRANTS}?status=expired&agent=deploy-bot").data["count"] == 1
    assert before_job["allowed_actions"] == ["renew"]  # nothing left to revoke once its expiry has come

    with django_capture_on_commit_callbacks(execute=True):
        assert services.grants_expire_due(now=T0 + timedelta(hours=20)) == {"expired": 1}
    after_job = owner_client.get(url).data
    assert (after_job["status"], after_job["state"]) == ("expired", "expired")
    assert after_job["ended_by"] == "system" and after_job["allowed_actions"] == ["renew"]
    verbs = list(
        AuditEvent.objects.filter(object_type="delegations.delegationgrant", object_id=str(grant_id))
        .order_by("id")
        .values_list("verb", "actor_label")
    )
    assert verbs == [
        ("grant.request", "olivia.owner"),
        ("grant.approve", "amara.approver"),
        ("grant.approve", "bruno.approver"),
        ("grant.expire", "grant expiry job"),
    ]


@pytest.mark.django_db
def test_service_written_grants_read_the_same_through_the_api(world, approver):
    """What a service wrote, the API shows: one selector, one representation."""
    grant = services.grant_request(
        actor=Actor.person(world["people"]["owner"]),
        agent=world["low"],
        scopes=[ScopeRequest("jira", "execute", "PROJ-*")],
        purpose="Run jira transitions.",
        justification="Release day.",
        expires_at=T0 + DAY,
    )
    data = session_client(approver).get(f"{GRANTS}{grant.pk}/").data
    assert data["scopes"] == [{"tool": "jira", "access": "execute", "resource": "PROJ-*"}]
    assert data["allowed_actions"] == ["approve", "deny", "cancel"]
