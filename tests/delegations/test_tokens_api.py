"""REST API of task tokens: issue for a grant, revoke (RFC 7009), introspect (RFC 7662), the JWK Set,
signing-key rotation — the permission matrix, strict input, and verification as a resource server does it."""

from datetime import timedelta

import jwt
import pytest
from rest_framework.test import APIClient

from delegations.models import DelegationGrant, SigningKey, TaskToken
from governance.models import AuditEvent, IntegrationToken
from tests.api_support import Case, expect, issue_token, matrix, matrix_ids, run_case, session_client, token_client
from tests.factories import T0, AgentFactory, GrantFactory, ToolFactory, WorkloadIdentityFactory

ISSUE = IntegrationToken.Scope.TOKENS_ISSUE
INTROSPECT = IntegrationToken.Scope.TOKENS_INTROSPECT
REVOKE_URL = "/api/v1/tokens/revoke"
INTROSPECT_URL = "/api/v1/introspect"
ROTATE_URL = "/api/v1/signing-keys/rotate"
BASE = "https://warrant.example.org"


def tokens_url(grant) -> str:
    return f"/api/v1/grants/{grant.pk}/tokens"


@pytest.fixture(autouse=True)
def _base_url(settings):
    settings.WARRANT_BASE_URL = BASE


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor, low_agent):
    WorkloadIdentityFactory(agent=low_agent, identifier="spiffe://example.org/triage")
    others = AgentFactory(slug="others", name="Build bot", owner=other_owner, risk_tier="low")
    ToolFactory(agent=others, name="github", access_levels=["read"])
    WorkloadIdentityFactory(agent=others, identifier="spiffe://example.org/build")
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "grant": GrantFactory(agent=low_agent, scopes=[("github", "read", ""), ("jira", "write", "")]),
        "others_grant": GrantFactory(agent=others, scopes=[("github", "read", "")]),
    }


def issued(world, grant_key="grant", user="owner", **body):
    response = session_client(world["people"][user]).post(
        tokens_url(world[grant_key]), {"task_id": "ticket-4711", **body}, format="json"
    )
    assert response.status_code == 201, response.data
    return response.data


def db_state():
    return [list(m.objects.order_by("id").values()) for m in (TaskToken, SigningKey, AuditEvent)]


CASES = [
    Case(
        "tokens-issue",
        "post",
        lambda w: tokens_url(w["grant"]),
        # another owner does not see the grant: 404, as for every grant action
        expect(owner=201, other_owner=404, admin=201, auditor=403),
        body=lambda w: {"task_id": "ticket-4711"},
        verb="task_token.issue",
        scope=ISSUE,
    ),
    Case(
        "tokens-introspect",
        "post",
        lambda w: INTROSPECT_URL,
        expect(owner=200, other_owner=200, admin=200, auditor=200, auditor_token=403),
        body=lambda w: {"token": w["token"]},
        scope=INTROSPECT,
    ),
    Case(
        "tokens-revoke",
        "post",
        lambda w: REVOKE_URL,
        expect(owner=200, other_owner=200, admin=200, auditor=403),
        body=lambda w: {"jti": w["jti"]},
        scope=ISSUE,
    ),
    Case(
        "signing-keys-rotate",
        "post",
        lambda w: ROTATE_URL,
        expect(owner=403, other_owner=403, admin=201, auditor=403),
        body=lambda w: {},
        verb="signing_key.rotate",
        scope=ISSUE,
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize("case, role", matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    data = issued(world)
    world["token"], world["jti"] = data["token"], str(data["jti"])
    run_case(case, role, world)


# --- issue ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_issue_answers_the_token_once_and_a_resource_server_verifies_it_with_the_jwk_set(world, api_client):
    response = session_client(world["people"]["owner"]).post(
        tokens_url(world["grant"]), {"task_id": "ticket-4711"}, format="json"
    )
    assert response.status_code == 201
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    row = TaskToken.objects.get()
    assert body == {
        "token": body["token"],
        "token_type": "Bearer",
        "expires_at": "2026-11-15T06:15:00Z",
        "expires_in": 900,
        "jti": str(row.jti),
        "grant": world["grant"].pk,
        "task_id": "ticket-4711",
        "scope": "github:read jira:write",
    }
    # a resource server: fetch the JWK Set anonymously, pick the key by kid, verify ES256 only
    jwk_set = api_client.get("/.well-known/jwks.json").json()
    kid = jwt.get_unverified_header(body["token"])["kid"]
    key = jwt.PyJWKSet.from_dict(jwk_set)[kid]
    claims = jwt.decode(body["token"], key=key, algorithms=["ES256"], audience=BASE, issuer=BASE)
    assert (claims["sub"], claims["client_id"], claims["scope"], claims["jti"]) == (
        "spiffe://example.org/triage",
        "ticket-triage",
        "github:read jira:write",
        str(row.jti),
    )
    assert claims["exp"] - claims["iat"] == 900


@pytest.mark.django_db
def test_an_integration_token_issues_and_is_named_on_the_row(world):
    _, clear = issue_token(world["people"]["owner"], [ISSUE])
    response = token_client(clear).post(tokens_url(world["grant"]), {"task_id": "t-1", "ttl_seconds": 60})
    assert response.status_code == 201, response.data
    assert response.data["expires_in"] == 60
    assert TaskToken.objects.get().issued_via.startswith("olivia.owner integration (token ")


@pytest.mark.django_db
def test_a_grants_write_token_may_not_issue_task_tokens(world):
    _, clear = issue_token(world["people"]["owner"], [IntegrationToken.Scope.GRANTS_WRITE])
    response = token_client(clear).post(tokens_url(world["grant"]), {"task_id": "t-1"}, format="json")
    assert response.status_code == 403
    assert "tokens:issue" in response.data["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, field",
    [
        ({"task_id": "t", "ttl_seconds": 3601}, "ttl_seconds"),
        ({"task_id": "t", "ttl_seconds": 0}, "ttl_seconds"),
        ({"task_id": "t", "ttl_seconds": "60"}, "ttl_seconds"),
        ({}, "task_id"),
        ({"task_id": ""}, "task_id"),
        ({"task_id": "t", "scope": "github:write"}, "scope"),
        ({"task_id": "t", "workload_identity": 999999}, "workload_identity"),
        ({"task_id": "t", "audience": "two words"}, "audience"),
    ],
)
def test_bad_input_is_a_400_by_field_and_writes_nothing(world, body, field):
    before = db_state()
    response = session_client(world["people"]["owner"]).post(tokens_url(world["grant"]), body, format="json")
    assert response.status_code == 400, response.data
    assert field in response.data
    assert db_state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "change, reason",
    [
        ({"status": "pending", "decided_at": None}, "grant_not_approved"),
        ({"status": "revoked"}, "grant_revoked"),
        ({"status": "expired"}, "grant_expired"),
    ],
)
def test_a_grant_that_does_not_authorise_is_a_409_with_its_reasons(world, change, reason):
    DelegationGrant.objects.filter(pk=world["grant"].pk).update(**change)
    before = db_state()
    response = session_client(world["people"]["owner"]).post(
        tokens_url(world["grant"]), {"task_id": "t"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["reasons"] == [reason]
    assert response.json()["code"] == "conflict"
    assert db_state() == before


@pytest.mark.django_db
def test_the_parent_agents_owner_sees_the_child_grant_but_may_not_issue_for_it(world):
    child_agent = AgentFactory(owner=world["people"]["other_owner"], slug="helper", risk_tier="low")
    ToolFactory(agent=child_agent, name="github", access_levels=["read"])
    WorkloadIdentityFactory(agent=child_agent, identifier="spiffe://example.org/helper")
    child = GrantFactory(
        agent=child_agent,
        parent=world["grant"],
        requested_by=world["people"]["owner"],
        scopes=[("github", "read", "")],
    )
    client = session_client(world["people"]["owner"])
    assert client.post(tokens_url(child), {"task_id": "t"}, format="json").status_code == 403
    data = session_client(world["people"]["other_owner"]).post(tokens_url(child), {"task_id": "t"}, format="json")
    assert data.status_code == 201
    claims = jwt.decode(data.json()["token"], options={"verify_signature": False})
    assert claims["act"] == {"sub": "spiffe://example.org/triage"}


# --- introspect -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_introspection_takes_a_form_encoded_body_as_rfc_7662_says(world):
    data = issued(world)
    _, clear = issue_token(world["people"]["owner"], [INTROSPECT])
    client = token_client(clear)
    response = client.post(
        INTROSPECT_URL,
        f"token={data['token']}&token_type_hint=access_token",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert (body["client_id"], body["scope"], body["token_type"], body["jti"]) == (
        "ticket-triage",
        "github:read jira:write",
        "Bearer",
        str(data["jti"]),
    )
    assert client.post(INTROSPECT_URL, {"token": data["token"]}, format="json").json()["active"] is True


@pytest.mark.django_db
def test_introspection_tells_another_owner_nothing(world):
    data = issued(world)
    _, clear = issue_token(world["people"]["other_owner"], [INTROSPECT])
    response = token_client(clear).post(INTROSPECT_URL, {"token": data["token"]}, format="json")
    assert response.json() == {"active": False}


@pytest.mark.django_db
def test_introspection_of_a_token_whose_agent_was_suspended_is_inactive(world, admin_user):
    data = issued(world)
    suspended = session_client(admin_user).post(
        "/api/v1/agents/ticket-triage/suspend/", {"reason": "Investigating."}, format="json"
    )
    assert suspended.status_code == 200, suspended.data
    response = session_client(admin_user).post(INTROSPECT_URL, {"token": data["token"]}, format="json")
    assert response.json() == {"active": False}


@pytest.mark.django_db
def test_introspection_at_and_after_expiry(world, frozen_now):
    data = issued(world, ttl_seconds=60)
    client = session_client(world["people"]["admin"])
    frozen_now.move_to(T0 + timedelta(seconds=59, microseconds=999_999))
    assert client.post(INTROSPECT_URL, {"token": data["token"]}, format="json").json()["active"] is True
    frozen_now.move_to(T0 + timedelta(seconds=60))
    assert client.post(INTROSPECT_URL, {"token": data["token"]}, format="json").json() == {"active": False}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status",
    [
        ({"token": "garbage"}, 200),
        ({"token": "a.b.c"}, 200),
        ({}, 400),
        ({"token": 42}, 400),
        ({"token": "a.b.c", "client_secret": "x"}, 400),
    ],
)
def test_introspection_input(world, body, status):
    response = session_client(world["people"]["owner"]).post(INTROSPECT_URL, body, format="json")
    assert response.status_code == status, response.data
    if status == 200:
        assert response.json() == {"active": False}


@pytest.mark.django_db
def test_introspection_needs_authentication(world):
    data = issued(world)
    response = APIClient().post(INTROSPECT_URL, {"token": data["token"]}, format="json")
    assert response.status_code == 401


# --- revoke ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_revoking_by_token_ends_it_and_revoking_again_records_nothing(world):
    data = issued(world)
    client = session_client(world["people"]["owner"])
    response = client.post(REVOKE_URL, {"token": data["token"], "reason": "Task done."}, format="json")
    assert response.json() == {"revoked": True}
    assert AuditEvent.objects.filter(verb="task_token.revoke").count() == 1
    assert client.post(INTROSPECT_URL, {"token": data["token"]}, format="json").json() == {"active": False}
    assert client.post(REVOKE_URL, {"jti": str(data["jti"])}, format="json").json() == {"revoked": True}
    assert AuditEvent.objects.filter(verb="task_token.revoke").count() == 1
    assert TaskToken.objects.get().revoke_reason == "Task done."


@pytest.mark.django_db
def test_revoking_takes_a_form_encoded_body_as_rfc_7009_says(world):
    data = issued(world)
    response = session_client(world["people"]["owner"]).post(
        REVOKE_URL,
        f"token={data['token']}&token_type_hint=access_token",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.json() == {"revoked": True}


@pytest.mark.django_db
def test_another_owner_cannot_revoke_and_learns_nothing(world):
    data = issued(world)
    client = session_client(world["people"]["other_owner"])
    assert client.post(REVOKE_URL, {"jti": str(data["jti"])}, format="json").json() == {"revoked": False}
    assert client.post(REVOKE_URL, {"token": data["token"]}, format="json").json() == {"revoked": False}
    assert TaskToken.objects.get().revoked_at is None
    assert not AuditEvent.objects.filter(verb="task_token.revoke").exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body, status, answer",
    [
        ({"jti": "6f1c0a0e-3f5b-4e4f-9a51-2f1f0c0e0a11"}, 200, {"revoked": False}),
        ({"token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"}, 200, {"revoked": False}),
        ({"jti": "not-a-uuid"}, 400, None),
        ({"token": "not a jwt"}, 400, None),
        ({}, 400, None),
        ({"token": "a.b.c", "jti": "6f1c0a0e-3f5b-4e4f-9a51-2f1f0c0e0a11"}, 400, None),
        ({"jti": 42}, 400, None),
    ],
)
def test_revoke_input(world, body, status, answer):
    issued(world)
    before = db_state()
    response = session_client(world["people"]["owner"]).post(REVOKE_URL, body, format="json")
    assert response.status_code == status, response.data
    if answer is not None:
        assert response.json() == answer
    assert db_state() == before


# --- the JWK Set and rotation ---------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/.well-known/jwks.json", "/api/v1/jwks", "/api/v1/jwks/"])
def test_the_jwk_set_is_public_and_cacheable(world, url):
    data = issued(world)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer wrt_not-a-real-token")  # ignored, never a 401
    response = client.get(url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "public, max-age=300"
    (key,) = response.json()["keys"]
    assert key["kid"] == jwt.get_unverified_header(data["token"])["kid"]
    assert "d" not in key


@pytest.mark.django_db
def test_rotation_answers_the_new_kid_and_old_tokens_keep_verifying(world, api_client):
    data = issued(world)
    old_kid = jwt.get_unverified_header(data["token"])["kid"]
    response = session_client(world["people"]["admin"]).post(ROTATE_URL, {}, format="json")
    assert response.status_code == 201
    assert response.json()["retiring"] == old_kid
    new_kid = response.json()["kid"]
    assert SigningKey.objects.get(status="active").kid == new_kid
    jwk_set = api_client.get("/.well-known/jwks.json").json()
    assert [k["kid"] for k in jwk_set["keys"]] == [new_kid, old_kid]
    jwt.decode(data["token"], key=jwt.PyJWKSet.from_dict(jwk_set)[old_kid], algorithms=["ES256"], audience=BASE)
    assert jwt.get_unverified_header(issued(world)["token"])["kid"] == new_kid


@pytest.mark.django_db
def test_rotation_refuses_a_body(world):
    response = session_client(world["people"]["admin"]).post(ROTATE_URL, {"kid": "mine"}, format="json")
    assert response.status_code == 400
    assert not SigningKey.objects.exists()
