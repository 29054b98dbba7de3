"""REST API of task tokens: issue for a grant, revoke (RFC 7009), introspect (RFC 7662), the JWK Set,
signing-key rotation — the permission matrix, strict input, and verification as a resource server does it."""

from datetime import timedelta

import jwt
import pytest
from rest_framework.test import APIClient

from delegations.models import DelegationGrant, SigningKey, TaskToken
from governance.models import AuditEvent, IntegrationToken
from tests.api_support import (
    ROLES,
    Case,
    expect,
    issue_token,
    matrix,
    matrix_ids,
    run_case,
    session_client,
    token_client,
)
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


# --- OPTIONS and methods an endpoint does not serve -----------------------------------------

#: OPTIONS is a read, as everywhere in the API: any person may ask; an integration token needs the
#: endpoint's scope — for these POST-only endpoints the scope of their POST.
OPTIONS_NEEDS = {
    "grants-list (the reference)": ("/api/v1/grants/", IntegrationToken.Scope.GRANTS_READ, 200),
    "tokens-issue": (None, ISSUE, 403),
    "tokens-introspect": (INTROSPECT_URL, INTROSPECT, 403),
    "tokens-revoke": (REVOKE_URL, ISSUE, 403),
    "signing-keys-rotate": (ROTATE_URL, ISSUE, 403),
}
OPTIONS_CASES = [
    Case(
        f"{name}-options",
        "options",
        (lambda w: tokens_url(w["grant"])) if url is None else (lambda w, url=url: url),
        expect(owner=200, other_owner=200, admin=200, auditor=200, auditor_token=auditor_token),
        scope=scope,
    )
    for name, (url, scope, auditor_token) in OPTIONS_NEEDS.items()
] + [
    Case("jwks-options", "options", lambda w: "/api/v1/jwks", dict.fromkeys(ROLES, 200)),
]
POST_ONLY = {"tokens-issue": None, "tokens-introspect": INTROSPECT_URL, "tokens-revoke": REVOKE_URL}
POST_ONLY["signing-keys-rotate"] = ROTATE_URL
GET_CASES = [
    Case(
        f"{name}-get",
        "get",
        (lambda w: tokens_url(w["grant"])) if url is None else (lambda w, url=url: url),
        dict.fromkeys(ROLES, 405),
        scope=INTROSPECT if url == INTROSPECT_URL else ISSUE,
    )
    for name, url in POST_ONLY.items()
]


@pytest.mark.django_db
@pytest.mark.parametrize("case, role", matrix(OPTIONS_CASES), ids=matrix_ids(OPTIONS_CASES))
def test_options_answers_json_like_every_other_endpoint(case, role, world):
    response = run_case(case, role, world)
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == 200:
        assert response.json()["name"]


@pytest.mark.django_db
@pytest.mark.parametrize("case, role", matrix(GET_CASES), ids=matrix_ids(GET_CASES))
def test_a_method_an_endpoint_does_not_serve_is_a_405_whoever_asks(case, role, world):
    response = run_case(case, role, world)
    allowed = {m.strip() for m in response["Allow"].split(",")}
    assert "POST" in allowed and "GET" not in allowed


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url, fields",
    [
        (None, {"task_id", "ttl_seconds", "audience", "workload_identity"}),
        (INTROSPECT_URL, {"token", "token_type_hint", "client_id", "client_secret"}),
        (REVOKE_URL, {"token", "jti", "token_type_hint", "reason", "client_id", "client_secret"}),
    ],
)
def test_options_describes_the_body_to_a_caller_who_may_post(world, url, fields):
    url = url or tokens_url(world["grant"])
    scope = INTROSPECT if url == INTROSPECT_URL else ISSUE
    _, clear = issue_token(world["people"]["admin"], [scope])
    response = token_client(clear).options(url)
    assert response.status_code == 200
    assert set(response.json()["actions"]["POST"]) == fields


@pytest.mark.django_db
def test_options_follows_the_tokens_scope_not_the_other_way_round(world):
    """An IAM admin's token holding tokens:issue may ask OPTIONS of the revocation endpoint; one without may not."""
    admin = world["people"]["admin"]
    with_scope = token_client(issue_token(admin, [ISSUE])[1])
    without = token_client(issue_token(admin, [IntegrationToken.Scope.INVENTORY_READ])[1])
    for url in (REVOKE_URL, ROTATE_URL, tokens_url(world["grant"])):
        assert with_scope.options(url).status_code == 200, url
        refused = without.options(url)
        assert refused.status_code == 403, url
        assert "tokens:issue" in refused.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "method, url",
    [
        ("post", "/api/v1/grants/999999/tokens"),
        ("post", "/api/v1/grants/999999/revoke"),
        ("get", "/api/v1/grants/999999/"),
    ],
)
def test_an_unknown_grant_is_a_404_that_names_no_model(world, method, url):
    client = session_client(world["people"]["admin"])
    response = client.get(url) if method == "get" else client.post(url, {"task_id": "t"}, format="json")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."}


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
def test_a_one_second_token_issued_mid_second_says_it_expires_in_one_second(world, frozen_now):
    frozen_now.move_to(T0 + timedelta(microseconds=500_000))
    data = issued(world, ttl_seconds=1)
    assert (data["expires_in"], data["expires_at"]) == (1, "2026-11-15T06:00:02Z")
    frozen_now.move_to(T0 + timedelta(seconds=1, microseconds=500_000))  # the second asked has passed
    client = session_client(world["people"]["owner"])
    assert client.post(INTROSPECT_URL, {"token": data["token"]}, format="json").json()["active"] is True


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
        ({"status": "denied"}, "grant_not_approved"),
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
        ({"token": "x" * 10000}, 200),
        ({"token": "a.b.c", "client_id": "gateway", "client_secret": "s3cret"}, 200),
        ({}, 400),
        ({"token": ""}, 400),
        ({"token": 42}, 400),
        ({"token": "a.b.c", "foo": "bar"}, 400),
        ({"token": "a.b.c", "client_secret": 7}, 400),
    ],
)
def test_introspection_input(world, body, status):
    response = session_client(world["people"]["owner"]).post(INTROSPECT_URL, body, format="json")
    assert response.status_code == status, response.data
    if status == 200:
        assert response.json() == {"active": False}
    if "foo" in body:
        assert "Unknown field" in response.json()["foo"][0]


@pytest.mark.django_db
def test_introspection_accepts_and_ignores_rfc_6749_client_credentials(world):
    """Generic RFC 7662 clients send ``client_id``/``client_secret`` in the body; the bearer token
    authenticates the caller, so they change nothing — other unknown parameters are still a 400."""
    data = issued(world)
    client = token_client(issue_token(world["people"]["owner"], [INTROSPECT])[1])
    form = "application/x-www-form-urlencoded"
    answer = client.post(
        INTROSPECT_URL, f"token={data['token']}&client_id=gateway&client_secret=s3cret", content_type=form
    )
    assert answer.status_code == 200
    assert answer.json()["active"] is True and answer.json()["client_id"] == "ticket-triage"
    assert "s3cret" not in answer.content.decode()
    refused = client.post(INTROSPECT_URL, f"token={data['token']}&foo=bar", content_type=form)
    assert refused.status_code == 400
    assert "Unknown field" in refused.json()["foo"][0]
    # a caller without tokens:introspect is not let in by client credentials
    other = token_client(issue_token(world["people"]["owner"], [ISSUE])[1])
    response = other.post(INTROSPECT_URL, f"token={data['token']}&client_id=x&client_secret=y", content_type=form)
    assert response.status_code == 403


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
def test_revoking_a_form_encoded_garbage_token_is_not_an_error(world):
    response = session_client(world["people"]["owner"]).post(
        REVOKE_URL, "token=garbage&token_type_hint=access_token", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200
    assert response.json() == {"revoked": False}


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
        # RFC 7009 §2.2: an invalid token — malformed included — is not an error
        ({"token": "garbage"}, 200, {"revoked": False}),
        ({"token": "not a jwt"}, 200, {"revoked": False}),
        ({"token": "x" * 10000}, 200, {"revoked": False}),
        ({"token": "garbage", "client_id": "gw", "client_secret": "s"}, 200, {"revoked": False}),
        ({"jti": "not-a-uuid"}, 400, None),
        ({}, 400, None),
        ({"token": ""}, 400, None),
        ({"token": 42}, 400, None),
        ({"token": ["a.b.c"]}, 400, None),
        ({"token": "a.b.c", "jti": "6f1c0a0e-3f5b-4e4f-9a51-2f1f0c0e0a11"}, 400, None),
        ({"jti": 42}, 400, None),
        ({"token": "garbage", "foo": "bar"}, 400, None),
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
