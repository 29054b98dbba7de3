"""``POST /api/v1/decisions`` and ``/decisions/batch``: the answer, its reasons, strict input,
who may ask, the decision log, and a query count that does not grow with the grants."""

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.db import connection
from django.test.utils import CaptureQueriesContext
from jwt.algorithms import ECAlgorithm

from delegations.models import DecisionLog, DelegationGrant
from governance.models import AuditEvent, IntegrationToken, Policy
from inventory import identity_proof
from inventory.models import Agent, TrustedIssuer
from tests.api_support import issue_token, session_client, token_client
from tests.factories import T0, AgentFactory, GrantFactory, ToolFactory, WorkloadIdentityFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/decisions"
BATCH = "/api/v1/decisions/batch"
SPIFFE = "spiffe://example.org/agents/triage"
S = IntegrationToken.Scope


@pytest.fixture
def agent(frozen_now, owner):
    agent = AgentFactory(owner=owner, slug="triage", risk_tier="low")
    ToolFactory(agent=agent, name="crm", access_levels=["read", "write"])
    WorkloadIdentityFactory(agent=agent, identifier=SPIFFE)
    return agent


@pytest.fixture
def live(agent):
    return GrantFactory(agent=agent, scopes=[("crm", "read", "accounts/*")], expires_at=T0 + timedelta(hours=4))


@pytest.fixture
def gateway(admin_user):
    _, clear = issue_token(admin_user, [S.DECISIONS_CHECK])
    return token_client(clear)


def body(**overrides):
    data = {"workload_identity": {"type": "spiffe", "identifier": SPIFFE}, "tool": "crm", "access": "read"}
    data.update(overrides)
    return data


def test_allow_names_the_grant_and_when_its_authority_ends(gateway, live):
    response = gateway.post(URL, body(resource="accounts/7"), format="json")
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["decision"] == "allow" and data["reasons"] == []
    assert data["grant"] == live.pk and data["grant_chain"] == [live.pk] and data["agent"] == "triage"
    assert data["authority_ends_at"] == "2026-11-15T10:00:00Z"
    assert data["decided_at"] == "2026-11-15T06:00:00Z"


def test_deny_carries_machine_readable_reasons_and_is_logged(gateway, live, agent):
    response = gateway.post(URL, body(resource="invoices/1"), format="json")
    data = response.json()
    assert data["decision"] == "deny" and [r["code"] for r in data["reasons"]] == ["resource_outside_pattern"]
    assert data["logged"] is True
    entry = DecisionLog.objects.get()
    assert (entry.agent_id, entry.outcome, entry.requested_via) == (agent.pk, "deny", "iris.admin integration")


def test_a_suspended_agent_is_denied_at_once(gateway, live, agent):
    Agent.objects.filter(pk=agent.pk).update(state=Agent.State.SUSPENDED)
    data = gateway.post(URL, body(resource="accounts/7"), format="json").json()
    assert [r["code"] for r in data["reasons"]] == ["agent_not_active"]


def test_a_revoked_grant_is_denied_without_waiting_for_anything(gateway, live):
    DelegationGrant.objects.filter(pk=live.pk).update(status="revoked")
    data = gateway.post(URL, body(resource="accounts/7"), format="json").json()
    assert [r["code"] for r in data["reasons"]] == ["grant_revoked"]


def test_the_exact_second_boundary_over_http(gateway, live, frozen_now):
    frozen_now.move_to(live.expires_at - timedelta(microseconds=1))
    assert gateway.post(URL, body(resource="accounts/7"), format="json").json()["decision"] == "allow"
    frozen_now.move_to(live.expires_at)
    data = gateway.post(URL, body(resource="accounts/7"), format="json").json()
    assert data["decision"] == "deny" and data["reasons"][0]["code"] == "grant_expired"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tool": "crm", "access": "read"}, "non_field_errors"),
        (body(access="admin"), "access"),
        (body(colour="blue"), "colour"),
        (body(tool=""), "tool"),
        (body(grant_chain=[1, 1]), "grant_chain"),
        (body(grant_chain=["1"]), "grant_chain"),
        (body(grant_chain=[1, 2, 3, 4, 5, 6]), "grant_chain"),
        (body(workload_identity={"type": "oidc", "identifier": "x"}), "workload_identity"),
        (body(workload_identity={"type": "spiffe", "identifier": SPIFFE, "issuer": "https://x"}), "workload_identity"),
        (body(workload_identity={"type": "spiffe", "identifier": SPIFFE, "extra": 1}), "workload_identity"),
        (body(identity_token="abc"), "non_field_errors"),
        (body(resource=7), "resource"),
    ],
)
def test_malformed_requests_are_refused_with_the_field_and_nothing_is_logged(gateway, live, payload, field):
    response = gateway.post(URL, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not DecisionLog.objects.exists()


def test_only_post_is_offered(gateway):
    assert gateway.get(URL).status_code == 405


def test_who_may_ask(live, owner, other_owner, auditor, admin_user):
    anonymous = token_client("wrt_nonsense")
    assert anonymous.post(URL, body(), format="json").status_code == 401
    _, no_scope = issue_token(admin_user, [S.GRANTS_READ])
    assert token_client(no_scope).post(URL, body(), format="json").status_code == 403
    _, owners = issue_token(owner, [S.DECISIONS_CHECK])
    assert token_client(owners).post(URL, body(resource="accounts/1"), format="json").json()["decision"] == "allow"
    _, strangers = issue_token(other_owner, [S.DECISIONS_CHECK])
    data = token_client(strangers).post(URL, body(resource="accounts/1"), format="json").json()
    assert [r["code"] for r in data["reasons"]] == ["identity_unknown"] and data["agent"] is None
    assert session_client(auditor).post(URL, body(), format="json").status_code == 403


def test_a_decision_is_not_an_audit_event(gateway, live):
    before = AuditEvent.objects.count()
    gateway.post(URL, body(resource="accounts/1"), format="json")
    gateway.post(URL, body(resource="nope"), format="json")
    assert AuditEvent.objects.count() == before


def test_the_query_count_does_not_grow_with_the_grants(gateway, live, agent):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert gateway.post(URL, body(resource="accounts/1"), format="json").json()["decision"] == "allow"
        return len(queries)

    Policy.current()
    Policy.objects.filter(pk=1).update(decision_allow_sample_percent=0)
    count()  # the token's last use is recorded on the first call
    first = count()
    for _ in range(50):
        GrantFactory(agent=agent, status="expired", scopes=[("crm", "read", "")])
    assert count() == first


def test_batch_answers_each_request_in_order(gateway, live):
    response = gateway.post(
        BATCH,
        {"requests": [body(resource="accounts/1"), body(access="write"), body(tool="shell")]},
        format="json",
    )
    assert response.status_code == 200
    decisions = response.json()["decisions"]
    assert [d["decision"] for d in decisions] == ["allow", "deny", "deny"]
    assert [d["reasons"][0]["code"] for d in decisions[1:]] == ["access_not_granted", "tool_unknown"]


def test_a_malformed_batch_item_refuses_the_whole_batch(gateway, live):
    response = gateway.post(BATCH, {"requests": [body(resource="accounts/1"), body(access="x")]}, format="json")
    assert response.status_code == 400 and "requests" in response.json()
    assert not DecisionLog.objects.exists()
    assert gateway.post(BATCH, {"requests": []}, format="json").status_code == 400
    assert gateway.post(BATCH, {"requests": [body()] * 101}, format="json").status_code == 400


# --- identity tokens ------------------------------------------------------------------------------


@pytest.fixture
def issuer_key(agent):
    key = ec.generate_private_key(ec.SECP256R1())
    public_jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public_jwk.update(kid="k1", alg="ES256", use="sig")
    TrustedIssuer.objects.create(
        name="SPIRE",
        kind="spiffe",
        issuer="spiffe://example.org",
        jwks={"keys": [public_jwk]},
        audiences=["warrant"],
        algorithms=["ES256"],
        clock_skew_seconds=30,
        enabled=True,
        created_at=T0,
        updated_at=T0,
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def svid(key, sub=SPIFFE, aud="warrant", exp=T0 + timedelta(minutes=5)):
    return jwt.encode(
        {"sub": sub, "aud": aud, "exp": int(exp.timestamp())}, key, algorithm="ES256", headers={"kid": "k1"}
    )


def test_a_verified_identity_token_names_the_agent(gateway, live, issuer_key):
    data = gateway.post(
        URL, body(workload_identity=None, identity_token=svid(issuer_key), resource="accounts/1"), format="json"
    )
    assert data.status_code == 400  # workload_identity: null is not a way to leave it out
    payload = {"identity_token": svid(issuer_key), "tool": "crm", "access": "read", "resource": "accounts/1"}
    data = gateway.post(URL, payload, format="json").json()
    assert data["decision"] == "allow" and data["agent"] == "triage"


def test_a_forged_identity_token_is_denied_and_logged(gateway, live, issuer_key):
    forged = svid(ec.generate_private_key(ec.SECP256R1()))
    payload = {"identity_token": forged, "tool": "crm", "access": "read", "resource": "accounts/1"}
    data = gateway.post(URL, payload, format="json").json()
    assert data["decision"] == "deny" and data["reasons"][0]["code"] == "identity_token_invalid"
    assert "signature_invalid" in data["reasons"][0]["message"]
    assert DecisionLog.objects.get().agent_id is None


def test_a_token_for_an_identity_no_agent_has_is_denied(gateway, live, issuer_key):
    token = svid(issuer_key, sub="spiffe://example.org/agents/other")
    payload = {"identity_token": token, "tool": "crm", "access": "read", "resource": "accounts/1"}
    data = gateway.post(URL, payload, format="json").json()
    assert [r["code"] for r in data["reasons"]] == ["identity_unknown"]


def test_an_expired_identity_token_is_denied(gateway, live, issuer_key):
    token = svid(issuer_key, exp=T0 - timedelta(minutes=5))
    payload = {"identity_token": token, "tool": "crm", "access": "read", "resource": "accounts/1"}
    data = gateway.post(URL, payload, format="json").json()
    assert data["reasons"][0]["code"] == "identity_token_invalid" and "token_expired" in data["reasons"][0]["message"]


def test_options_describes_the_endpoints_as_json(gateway):
    for url in (URL, BATCH):
        response = gateway.options(url)
        assert response.status_code == 200, (url, response.content)
        assert response["Content-Type"].startswith("application/json") and "POST" in response["Allow"]


class StalledJwksServer:
    """A JWKS URL on 127.0.0.1 that takes every request and answers none (until stopped); counts them."""

    def __init__(self):
        self.requests, self.release = 0, threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                owner.release.wait(timeout=10)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def stalled_issuer(agent, settings, monkeypatch):
    """The example.org trust domain, its keys behind a JWKS URL that never answers (0.3 s fetch timeout)."""
    settings.WARRANT_ALLOW_HTTP_JWKS = True
    monkeypatch.setattr(identity_proof, "JWKS_FETCH_TIMEOUT_SECONDS", 0.3)
    identity_proof.jwks_cache_clear()
    server = StalledJwksServer()
    TrustedIssuer.objects.create(
        name="SPIRE",
        kind="spiffe",
        issuer="spiffe://example.org",
        jwks_url=server.url,
        audiences=["warrant"],
        algorithms=["ES256"],
        created_at=T0,
        updated_at=T0,
    )
    yield server
    server.stop()
    identity_proof.jwks_cache_clear()


def test_a_batch_of_tokens_from_an_unreachable_issuer_waits_for_one_fetch_and_says_why_plainly(
    gateway, live, stalled_issuer
):
    key = ec.generate_private_key(ec.SECP256R1())
    item = {"identity_token": svid(key), "tool": "crm", "access": "read", "resource": "accounts/1"}

    response = gateway.post(BATCH, {"requests": [item] * 10}, format="json")

    assert response.status_code == 200
    assert stalled_issuer.requests == 1
    decisions = response.json()["decisions"]
    assert len(decisions) == 10 and {d["decision"] for d in decisions} == {"deny"}
    messages = {d["reasons"][0]["message"] for d in decisions}
    assert messages == {
        "The identity token could not be verified. jwks_unavailable: "
        "The signing keys of issuer 'SPIRE' could not be fetched or read."
    }
    assert DecisionLog.objects.count() == 10


def test_filters_do_not_reveal_whether_another_owners_agent_exists(agent, other_owner):
    """An owner filtering by a slug they may not see gets the same 400 as for a slug that names nothing."""
    _, strangers = issue_token(other_owner, [S.GRANTS_READ, S.INVENTORY_READ])
    client = token_client(strangers)
    for url in ("/api/v1/grants", "/api/v1/tools", "/api/v1/credentials"):
        hidden = client.get(url, {"agent": "triage"})
        unknown = client.get(url, {"agent": "no-such-agent"})
        assert hidden.status_code == unknown.status_code == 400, url
        assert hidden.json() == unknown.json()


@pytest.mark.parametrize("resource", ["accounts/../x", "accounts/%2e%2e/x", "accounts/1\nx"])
def test_an_unnormalised_resource_is_refused_with_the_field(gateway, live, resource):
    response = gateway.post(URL, body(resource=resource), format="json")
    assert response.status_code == 400 and "resource" in response.json()
    assert not DecisionLog.objects.exists()
