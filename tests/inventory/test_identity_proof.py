"""Identity tokens (OIDC JWTs, SPIFFE JWT-SVIDs) verified against the trusted-issuer registry, the
registry's rules and services. Keys are generated here; JWKS URLs are served by a real local
HTTP server; PyJWT is never mocked."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.db import IntegrityError, transaction
from django.urls import reverse
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from governance.audit import Actor
from governance.errors import PermissionDenied, ValidationError
from governance.models import AuditEvent
from inventory import identity_proof
from inventory.identity_proof import (
    IdentityTokenError,
    VerifiedSubject,
    parse_spiffe_id,
    trusted_issuer_create,
    trusted_issuer_delete,
    trusted_issuer_update,
    verify_identity_token,
)
from inventory.models import TrustedIssuer
from tests.factories import T0, TrustedIssuerFactory, ec_public_jwks
from tests.support import Trail, refusal_checker

pytestmark = pytest.mark.django_db

NOW = T0
AUD = "warrant"
OIDC_ISS = "https://idp.example.com"
TRUST_DOMAIN = "spiffe://example.org"
WORKLOAD = "spiffe://example.org/ns/prod/sa/ticket-triage"
DROP = object()  # a claim left out of the token

refuses = refusal_checker(TrustedIssuer, AuditEvent)


# --- keys and tokens -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def other_ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(private_key, kid: str, use: str | None = "sig") -> dict:
    """The public half of ``private_key`` as a JWK with ``kid`` (and ``use`` unless None)."""
    public_key = private_key.public_key()
    algorithm = RSAAlgorithm if isinstance(public_key, rsa.RSAPublicKey) else ECAlgorithm
    jwk = {**algorithm.to_jwk(public_key, as_dict=True), "kid": kid}
    if use:
        jwk["use"] = use
    return jwk


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def claims(**overrides) -> dict:
    """OIDC claims valid at NOW (issued a minute ago, five minutes left); ``DROP`` leaves one out."""
    base = {"iss": OIDC_ISS, "sub": "agent-7", "aud": AUD, "iat": ts(NOW - timedelta(minutes=1))}
    base["exp"] = ts(NOW + timedelta(minutes=5))
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def mint(private_key, alg: str = "RS256", kid: str | None = "rsa-1", headers: dict | None = None, **overrides) -> str:
    """A token signed by ``private_key`` with ``alg`` and ``kid`` over ``claims(**overrides)``."""
    extra = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), private_key, algorithm=alg, headers={**extra, **(headers or {})})


def svid(private_key, alg: str = "ES256", kid: str = "svid-1", **overrides) -> str:
    """A JWT-SVID for WORKLOAD (no iss, as SPIRE mints them by default)."""
    return mint(private_key, alg, kid, **{"iss": DROP, "sub": WORKLOAD, **overrides})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj) -> str:
    return b64(json.dumps(obj).encode())


def refused(token: str, code: str, *, now: datetime = NOW) -> IdentityTokenError:
    """Verify ``token`` expecting refusal with ``code``; returns the error."""
    with pytest.raises(IdentityTokenError) as info:
        verify_identity_token(token, now=now)
    assert info.value.code == code, (info.value.code, info.value.message)
    return info.value


@pytest.fixture(autouse=True)
def _fresh_jwks_cache():
    identity_proof.jwks_cache_clear()
    yield
    identity_proof.jwks_cache_clear()


@pytest.fixture
def oidc_issuer(rsa_key, ec_key):
    return TrustedIssuerFactory(
        name="Corporate IdP",
        issuer=OIDC_ISS,
        jwks={"keys": [public_jwk(rsa_key, "rsa-1"), public_jwk(ec_key, "ec-1")]},
        audiences=[AUD, "warrant-staging"],
        algorithms=["RS256", "ES256", "PS256"],
    )


@pytest.fixture
def spiffe_issuer(ec_key, other_ec_key):
    """The example.org trust domain, its keys as a SPIFFE bundle: an X.509 authority and a JWT-SVID key."""
    return TrustedIssuerFactory(
        name="example.org mesh",
        kind=TrustedIssuer.Kind.SPIFFE,
        issuer=TRUST_DOMAIN,
        jwks={"keys": [public_jwk(other_ec_key, "x509-ca", use="x509-svid"), public_jwk(ec_key, "svid-1", "jwt-svid")]},
        audiences=[AUD],
        algorithms=["ES256", "RS256"],
    )


# --- good tokens ---------------------------------------------------------------------------


def test_an_oidc_token_signed_rs256_verifies_and_names_the_workload(oidc_issuer, rsa_key):
    subject = verify_identity_token(mint(rsa_key, "RS256", "rsa-1"), now=NOW)

    assert subject == VerifiedSubject(
        type="oidc",
        issuer=OIDC_ISS,
        identifier="agent-7",
        issuer_name="Corporate IdP",
        expires_at=NOW + timedelta(minutes=5),
    )
    assert subject.expires_at.tzinfo is UTC


def test_an_oidc_token_signed_es256_verifies(oidc_issuer, ec_key):
    subject = verify_identity_token(mint(ec_key, "ES256", "ec-1", sub="ci-runner"), now=NOW)

    assert (subject.type, subject.issuer, subject.identifier) == ("oidc", OIDC_ISS, "ci-runner")


def test_an_rsa_key_without_alg_verifies_every_rsa_algorithm_the_issuer_lists(oidc_issuer, rsa_key):
    assert "alg" not in oidc_issuer.jwks["keys"][0]
    assert verify_identity_token(mint(rsa_key, "PS256", "rsa-1"), now=NOW).identifier == "agent-7"


def test_any_one_of_the_issuers_audiences_is_enough(oidc_issuer, rsa_key):
    token = mint(rsa_key, aud=["some-other-service", "warrant-staging"])

    assert verify_identity_token(token, now=NOW).identifier == "agent-7"


def test_a_token_without_kid_uses_the_issuers_only_key(rsa_key):
    TrustedIssuerFactory(issuer=OIDC_ISS, jwks={"keys": [public_jwk(rsa_key, "only")]})

    assert verify_identity_token(mint(rsa_key, kid=None), now=NOW).identifier == "agent-7"


def test_a_spiffe_jwt_svid_verifies_by_its_trust_domain(spiffe_issuer, ec_key):
    subject = verify_identity_token(svid(ec_key), now=NOW)

    assert subject == VerifiedSubject(
        type="spiffe",
        issuer="",
        identifier=WORKLOAD,
        issuer_name="example.org mesh",
        expires_at=NOW + timedelta(minutes=5),
    )


def test_a_jwt_svid_carrying_an_iss_is_still_judged_by_its_trust_domain(spiffe_issuer, ec_key):
    token = svid(ec_key, iss="https://oidc-discovery.example.org")

    assert verify_identity_token(token, now=NOW).type == "spiffe"


def test_verification_makes_one_query(oidc_issuer, rsa_key, django_assert_num_queries):
    token = mint(rsa_key)
    with django_assert_num_queries(1):
        verify_identity_token(token, now=NOW)


def test_now_decides_time_not_the_real_clock(oidc_issuer, rsa_key):
    real_now = datetime.now(UTC)
    valid_only_in_the_past = mint(rsa_key, iat=ts(NOW), exp=ts(NOW + timedelta(minutes=5)))
    valid_by_the_real_clock = mint(rsa_key, iat=ts(real_now), exp=ts(real_now + timedelta(hours=1)))

    assert NOW + timedelta(minutes=5) < real_now  # PyJWT's own exp check would refuse this one
    assert verify_identity_token(valid_only_in_the_past, now=NOW).identifier == "agent-7"
    refused(valid_by_the_real_clock, "token_expired", now=real_now + timedelta(hours=2))


def test_a_naive_now_is_a_programming_error(oidc_issuer, rsa_key):
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_identity_token(mint(rsa_key), now=NOW.replace(tzinfo=None))


# --- each refusal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "",
        "not-a-jwt",
        "only.two",
        "a.b.c.d.e",
        "!!!.???.###",
        segment(["not", "an", "object"]) + "." + segment({"sub": "x"}) + ".sig",
        segment({"alg": "RS256"}) + "." + b64(b"not json") + ".sig",
        segment({"alg": "RS256"}) + "." + "A" * 20000 + ".sig",
    ],
    ids=["empty", "one-part", "two-parts", "jwe-like", "not-base64", "header-array", "payload-not-json", "oversize"],
)
def test_a_token_that_is_not_a_signed_jwt_is_malformed(oidc_issuer, token):
    refused(token, "token_malformed")


def test_a_kid_that_is_not_a_string_is_malformed(oidc_issuer, rsa_key):
    signing_input = f"{segment({'alg': 'RS256', 'kid': 7})}.{segment(claims())}"
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(signing_input.encode(), rsa_key)
    token = f"{signing_input}.{b64(signature)}"

    refused(token, "token_malformed")


def test_an_exp_that_is_not_a_number_is_malformed(oidc_issuer, rsa_key):
    refused(mint(rsa_key, exp="tomorrow"), "token_malformed")


def test_an_unknown_issuer_is_refused(oidc_issuer, rsa_key):
    error = refused(mint(rsa_key, iss="https://idp.example.com.evil.test"), "issuer_unknown")

    assert "idp.example.com.evil.test" in error.message


def test_the_issuer_is_matched_exactly(oidc_issuer, rsa_key):
    refused(mint(rsa_key, iss=OIDC_ISS + "/"), "issuer_unknown")


def test_a_disabled_issuer_vouches_for_nothing(oidc_issuer, rsa_key):
    TrustedIssuer.objects.filter(pk=oidc_issuer.pk).update(enabled=False)

    refused(mint(rsa_key), "issuer_unknown")


def test_a_token_naming_no_issuer_is_refused(oidc_issuer, rsa_key):
    refused(mint(rsa_key, iss=DROP), "issuer_unknown")


def test_alg_none_is_refused(oidc_issuer):
    token = f"{segment({'alg': 'none', 'kid': 'rsa-1'})}.{segment(claims())}."

    refused(token, "algorithm_not_allowed")


def test_hs256_signed_with_the_public_key_is_refused(oidc_issuer, rsa_key):
    """The classic key-confusion attack: HMAC keyed with the issuer's public key, which anyone has."""
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{segment(claims())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()

    refused(f"{signing_input}.{b64(signature)}", "algorithm_not_allowed")


def test_an_algorithm_the_issuer_does_not_list_is_refused(rsa_key):
    TrustedIssuerFactory(issuer=OIDC_ISS, jwks={"keys": [public_jwk(rsa_key, "rsa-1")]}, algorithms=["ES256"])

    error = refused(mint(rsa_key, "RS256"), "algorithm_not_allowed")

    assert "ES256" in error.message


def test_an_algorithm_that_does_not_fit_the_named_key_is_refused(oidc_issuer, ec_key):
    """An ES256 signature presented under the RSA key's kid."""
    refused(mint(ec_key, "ES256", "rsa-1"), "algorithm_not_allowed")


def test_an_unknown_kid_is_refused(oidc_issuer, rsa_key):
    error = refused(mint(rsa_key, kid="rsa-2"), "key_unknown")

    assert "rsa-2" in error.message


def test_a_token_without_kid_is_refused_when_the_issuer_has_several_keys(oidc_issuer, rsa_key):
    refused(mint(rsa_key, kid=None), "key_unknown")


def test_a_signature_by_another_key_under_a_known_kid_is_refused(oidc_issuer, other_rsa_key):
    refused(mint(other_rsa_key, "RS256", "rsa-1"), "signature_invalid")


def test_a_token_whose_claims_were_changed_after_signing_is_refused(oidc_issuer, rsa_key):
    header, _, signature = mint(rsa_key).split(".")
    forged = f"{header}.{segment(claims(sub='payments-admin'))}.{signature}"

    refused(forged, "signature_invalid")


def test_a_token_expired_beyond_the_skew_is_refused(oidc_issuer, rsa_key):
    token = mint(rsa_key, iat=ts(NOW - timedelta(hours=1)), exp=ts(NOW - timedelta(seconds=61)))

    refused(token, "token_expired")


def test_a_token_expired_exactly_the_skew_ago_is_refused(oidc_issuer, rsa_key):
    refused(mint(rsa_key, exp=ts(NOW - timedelta(seconds=60))), "token_expired")


def test_a_token_expired_within_the_skew_is_accepted(oidc_issuer, rsa_key):
    token = mint(rsa_key, exp=ts(NOW - timedelta(seconds=59)))

    assert verify_identity_token(token, now=NOW).expires_at == NOW - timedelta(seconds=59)


def test_without_skew_a_token_expires_at_its_exp(rsa_key):
    TrustedIssuerFactory(issuer=OIDC_ISS, jwks={"keys": [public_jwk(rsa_key, "rsa-1")]}, clock_skew_seconds=0)
    token = mint(rsa_key, exp=ts(NOW))

    refused(token, "token_expired")
    assert verify_identity_token(token, now=NOW - timedelta(seconds=1)).identifier == "agent-7"


def test_a_token_not_valid_before_a_time_beyond_the_skew_is_refused(oidc_issuer, rsa_key):
    refused(mint(rsa_key, nbf=ts(NOW + timedelta(seconds=61))), "token_not_yet_valid")


def test_a_token_whose_nbf_is_within_the_skew_is_accepted(oidc_issuer, rsa_key):
    assert verify_identity_token(mint(rsa_key, nbf=ts(NOW + timedelta(seconds=60))), now=NOW)


def test_a_token_issued_in_the_future_beyond_the_skew_is_refused(oidc_issuer, rsa_key):
    refused(mint(rsa_key, iat=ts(NOW + timedelta(minutes=2))), "token_not_yet_valid")


@pytest.mark.parametrize("aud", ["some-other-service", ["billing", "reports"]])
def test_a_token_for_another_audience_is_refused(oidc_issuer, rsa_key, aud):
    refused(mint(rsa_key, aud=aud), "audience_mismatch")


@pytest.mark.parametrize(("claim", "value"), [("sub", DROP), ("exp", DROP), ("aud", DROP), ("aud", []), ("sub", None)])
def test_a_token_missing_a_required_claim_is_refused(oidc_issuer, rsa_key, claim, value):
    error = refused(mint(rsa_key, **{claim: value}), "claim_missing")

    assert claim in error.message


@pytest.mark.parametrize("sub", [123, "", "x" * 501])
def test_an_oidc_subject_that_cannot_name_a_workload_is_refused(oidc_issuer, rsa_key, sub):
    refused(mint(rsa_key, sub=sub), "subject_invalid")


# --- SPIFFE --------------------------------------------------------------------------------


def test_a_spiffe_id_in_an_unregistered_trust_domain_is_refused(spiffe_issuer, ec_key):
    refused(svid(ec_key, sub="spiffe://elsewhere.org/ns/prod/sa/ticket-triage"), "issuer_unknown")


def test_a_trust_domain_cannot_vouch_for_another(spiffe_issuer, ec_key, other_ec_key):
    """example.org's key signs an ID in partner.org: partner.org's own keys decide, and refuse it."""
    TrustedIssuerFactory(
        kind=TrustedIssuer.Kind.SPIFFE,
        issuer="spiffe://partner.org",
        jwks={"keys": [public_jwk(other_ec_key, "svid-1", "jwt-svid")]},
        algorithms=["ES256"],
    )

    refused(svid(ec_key, sub="spiffe://partner.org/ns/prod/sa/ticket-triage"), "signature_invalid")


@pytest.mark.parametrize(
    "sub",
    [
        "spiffe://Example.org/ns/prod/sa/triage",
        "SPIFFE://example.org/ns/prod/sa/triage",
        "spiffe://example.org:8443/ns/prod",
        "spiffe://someone@example.org/ns/prod",
        "spiffe://example.org/ns/../admin",
        "spiffe://example.org/ns//prod",
        "spiffe://example.org/ns/prod/",
        "spiffe://example.org/ns/pr%6Fd",
        "spiffe://example.org/ns/prod?admin=1",
        "spiffe://example.org/ns/prod#frag",
        "spiffe://example.org",
    ],
)
def test_a_jwt_svid_whose_sub_is_not_a_valid_workload_spiffe_id_is_refused(spiffe_issuer, ec_key, sub):
    refused(svid(ec_key, sub=sub), "subject_invalid")


def test_a_key_of_the_bundle_for_x509_svids_never_verifies_a_jwt(spiffe_issuer, other_ec_key):
    refused(svid(other_ec_key, kid="x509-ca"), "key_unknown")


def test_a_jwt_svid_header_carries_only_alg_kid_and_typ(spiffe_issuer, ec_key):
    refused(
        mint(ec_key, "ES256", "svid-1", headers={"jku": "https://evil.test/keys"}, iss=DROP, sub=WORKLOAD),
        "token_malformed",
    )
    refused(mint(ec_key, "ES256", "svid-1", headers={"typ": "at+jwt"}, iss=DROP, sub=WORKLOAD), "token_malformed")


def test_a_jwt_svid_needs_aud_and_exp(spiffe_issuer, ec_key):
    refused(svid(ec_key, aud=DROP), "claim_missing")
    refused(svid(ec_key, exp=DROP), "claim_missing")


@pytest.mark.parametrize(
    ("value", "trust_domain"),
    [
        ("spiffe://example.org/ns/prod/sa/triage", "spiffe://example.org"),
        ("spiffe://k8s-west.example.com/9eebccd2-12bf-40a6", "spiffe://k8s-west.example.com"),
        ("spiffe://td_1/a.b/c-d/E_F", "spiffe://td_1"),
    ],
)
def test_valid_spiffe_ids_parse_to_their_trust_domain(value, trust_domain):
    assert parse_spiffe_id(value) == trust_domain


def test_a_spiffe_id_longer_than_2048_bytes_is_refused():
    with pytest.raises(ValueError, match="2048"):
        parse_spiffe_id("spiffe://example.org/" + "a" * 2048)


# --- JWKS URL, served by a real local server -----------------------------------------------


class JwksServer:
    """A JWKS endpoint on 127.0.0.1 (random port) in a thread; counts the requests it answers.

    ``stall()`` makes it hold every answer (up to 10 s) until ``resume()`` or ``stop()``: a slow
    identity provider. ``stop()`` then ``start()`` takes it down and brings it back on the same port."""

    def __init__(self, jwks: dict):
        self.jwks, self.status, self.raw, self.requests = jwks, 200, None, 0
        self.released = threading.Event()
        self.released.set()
        self.port = 0
        self.running = False
        self.start()

    def start(self):
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests += 1
                owner.released.wait(timeout=10)
                body = owner.raw if owner.raw is not None else json.dumps(owner.jwks).encode()
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up waiting

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.running = True

    def stall(self):
        self.released.clear()

    def resume(self):
        self.released.set()

    def stop(self):
        self.released.set()
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()
            self.running = False


@pytest.fixture
def allow_http(settings):
    settings.WARRANT_ALLOW_HTTP_JWKS = True


@pytest.fixture
def jwks_server(rsa_key, allow_http):
    server = JwksServer({"keys": [public_jwk(rsa_key, "rsa-1")]})
    yield server
    server.stop()


@pytest.fixture
def remote_issuer(jwks_server, admin_user):
    return trusted_issuer_create(
        actor=Actor.person(admin_user),
        name="Remote IdP",
        kind="oidc",
        issuer=OIDC_ISS,
        jwks_url=jwks_server.url,
        audiences=[AUD],
    )


def test_keys_from_a_jwks_url_verify_and_are_fetched_once(remote_issuer, jwks_server, rsa_key):
    assert verify_identity_token(mint(rsa_key), now=NOW).issuer_name == "Remote IdP"
    assert verify_identity_token(mint(rsa_key, sub="agent-8"), now=NOW).identifier == "agent-8"

    assert jwks_server.requests == 1


def test_a_rotated_key_verifies_after_a_refetch_and_the_withdrawn_one_stops(
    remote_issuer, jwks_server, rsa_key, other_rsa_key
):
    old_token, new_token = mint(rsa_key, kid="rsa-1"), mint(other_rsa_key, kid="rsa-2")
    verify_identity_token(old_token, now=NOW)
    jwks_server.jwks = {"keys": [public_jwk(other_rsa_key, "rsa-2")]}  # the issuer rotates

    assert verify_identity_token(new_token, now=NOW).identifier == "agent-7"
    assert jwks_server.requests == 2
    refused(old_token, "key_unknown")


def test_unknown_kids_do_not_make_every_request_refetch(remote_issuer, jwks_server, rsa_key):
    verify_identity_token(mint(rsa_key), now=NOW)
    refused(mint(rsa_key, kid="made-up-1"), "key_unknown")
    refused(mint(rsa_key, kid="made-up-2"), "key_unknown")
    refused(mint(rsa_key, kid="made-up-3"), "key_unknown")

    assert jwks_server.requests == 2  # the first fetch, and one refetch for a new kid; then the cooldown


def test_a_fetched_key_set_outlives_a_short_outage(remote_issuer, jwks_server, rsa_key):
    verify_identity_token(mint(rsa_key), now=NOW)
    jwks_server.stop()

    assert verify_identity_token(mint(rsa_key, sub="agent-8"), now=NOW).identifier == "agent-8"


def test_a_jwks_url_that_cannot_be_reached_is_jwks_unavailable(remote_issuer, jwks_server, rsa_key):
    jwks_server.stop()

    refused(mint(rsa_key), "jwks_unavailable")


@pytest.mark.parametrize(
    ("status", "raw"),
    [
        (500, b'{"error": "down"}'),
        (200, b"<html>not json</html>"),
        (200, b'["keys"]'),
        (200, b'{"keys": []}'),
        (200, b"\xa6\xff not utf-8"),
        (200, b'{"keys": [1, "two"]}'),
    ],
    ids=["http-500", "not-json", "not-an-object", "no-keys", "not-utf8", "keys-not-objects"],
)
def test_a_jwks_url_answering_nonsense_is_jwks_unavailable(remote_issuer, jwks_server, rsa_key, status, raw):
    jwks_server.status, jwks_server.raw = status, raw

    error = refused(mint(rsa_key), "jwks_unavailable")

    assert error.message == PLAIN_JWKS_UNAVAILABLE


def test_a_jwks_url_publishing_a_private_key_is_refused(remote_issuer, jwks_server, rsa_key):
    jwks_server.jwks = {"keys": [{**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "rsa-1"}]}

    refused(mint(rsa_key), "jwks_unavailable")


def test_a_plain_http_jwks_url_stops_working_when_http_is_no_longer_allowed(
    remote_issuer, jwks_server, rsa_key, settings
):
    settings.WARRANT_ALLOW_HTTP_JWKS = False

    refused(mint(rsa_key), "jwks_unavailable")
    assert jwks_server.requests == 0


#: What an owner reads when a JWKS URL cannot be fetched or read, whatever the cause.
PLAIN_JWKS_UNAVAILABLE = "The signing keys of issuer 'Remote IdP' could not be fetched or read."


class FakeClock:
    """A monotonic clock, in seconds, that only the test moves."""

    def __init__(self):
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def jwks_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(identity_proof, "jwks_clock", clock)
    return clock


@pytest.fixture
def short_fetch_timeout(monkeypatch):
    """A 0.3 s fetch timeout, so that a stalled server costs the test little."""
    monkeypatch.setattr(identity_proof, "JWKS_FETCH_TIMEOUT_SECONDS", 0.3)


def test_the_fetch_timeout_is_at_most_three_seconds():
    assert identity_proof.JWKS_FETCH_TIMEOUT_SECONDS <= 3
    assert identity_proof.JWKS_FAILURE_CACHE_SECONDS == 30


def test_a_stalled_jwks_url_costs_one_timeout_then_is_refused_without_a_request_until_the_window_ends(
    remote_issuer, jwks_server, rsa_key, jwks_clock, short_fetch_timeout
):
    jwks_server.stall()  # holds its answer for 10 s

    refused(mint(rsa_key), "jwks_unavailable")
    jwks_clock.advance(identity_proof.JWKS_FAILURE_CACHE_SECONDS - 1)
    refused(mint(rsa_key, sub="agent-8"), "jwks_unavailable")
    assert jwks_server.requests == 1

    jwks_server.resume()
    jwks_clock.advance(1)
    assert verify_identity_token(mint(rsa_key), now=NOW).identifier == "agent-7"
    assert jwks_server.requests == 2


def test_a_jwks_url_that_is_down_is_not_tried_again_within_the_window(remote_issuer, jwks_server, rsa_key, jwks_clock):
    jwks_server.stop()
    refused(mint(rsa_key), "jwks_unavailable")
    jwks_server.start()  # back on the same port

    jwks_clock.advance(29)
    refused(mint(rsa_key), "jwks_unavailable")
    assert jwks_server.requests == 0

    jwks_clock.advance(1)
    assert verify_identity_token(mint(rsa_key), now=NOW).identifier == "agent-7"
    assert jwks_server.requests == 1


def test_a_failed_fetch_is_logged_once_for_operators_and_owners_read_a_plain_message(
    remote_issuer, jwks_server, rsa_key, jwks_clock, caplog
):
    jwks_server.status, jwks_server.raw = 503, b"upstream connect error"

    with caplog.at_level(logging.WARNING, logger="inventory.identity_proof"):
        first = refused(mint(rsa_key), "jwks_unavailable")
        second = refused(mint(rsa_key), "jwks_unavailable")

    assert first.message == second.message == PLAIN_JWKS_UNAVAILABLE
    assert jwks_server.requests == 1
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "Remote IdP" in record.getMessage() and "503" in record.getMessage()


def test_a_tls_failure_is_told_plainly_and_its_detail_logged(jwks_server, admin_user, rsa_key, caplog):
    """https:// to a server that speaks plain HTTP: the TLS handshake fails."""
    trusted_issuer_create(
        actor=Actor.person(admin_user),
        name="Remote IdP",
        kind="oidc",
        issuer=OIDC_ISS,
        jwks_url=jwks_server.url.replace("http://", "https://"),
        audiences=[AUD],
    )

    with caplog.at_level(logging.WARNING, logger="inventory.identity_proof"):
        error = refused(mint(rsa_key), "jwks_unavailable")

    assert error.message == PLAIN_JWKS_UNAVAILABLE
    assert "SSL" in caplog.text and "Remote IdP" in caplog.text


def test_the_failure_window_belongs_to_one_jwks_url(remote_issuer, jwks_server, rsa_key, other_rsa_key, jwks_clock):
    other_server = JwksServer({"keys": [public_jwk(other_rsa_key, "rsa-1")]})
    try:
        TrustedIssuerFactory(name="Second IdP", issuer="https://idp2.example.com", jwks=None, jwks_url=other_server.url)
        jwks_server.stop()
        refused(mint(rsa_key), "jwks_unavailable")

        token = mint(other_rsa_key, iss="https://idp2.example.com")
        assert verify_identity_token(token, now=NOW).issuer_name == "Second IdP"
        assert other_server.requests == 1
    finally:
        other_server.stop()


def test_a_cached_key_set_still_verifies_inside_the_failure_window(remote_issuer, jwks_server, rsa_key, jwks_clock):
    verify_identity_token(mint(rsa_key), now=NOW)
    jwks_server.stop()

    refused(mint(rsa_key, kid="rsa-2"), "jwks_unavailable")  # a new kid forces a refetch, which fails
    assert verify_identity_token(mint(rsa_key, sub="agent-8"), now=NOW).identifier == "agent-8"


def test_a_cached_key_set_expires_on_the_jwks_clock(remote_issuer, jwks_server, rsa_key, jwks_clock):
    verify_identity_token(mint(rsa_key), now=NOW)
    jwks_clock.advance(identity_proof.JWKS_CACHE_SECONDS - 1)
    verify_identity_token(mint(rsa_key), now=NOW)
    assert jwks_server.requests == 1

    jwks_clock.advance(1)
    verify_identity_token(mint(rsa_key), now=NOW)
    assert jwks_server.requests == 2


def test_a_stored_jwks_url_to_an_internal_address_is_never_fetched(remote_issuer, rsa_key, caplog):
    """A row written before the address rules existed: refused at verification, without a fetch."""
    TrustedIssuer.objects.filter(pk=remote_issuer.pk).update(jwks_url="https://169.254.169.254/latest/meta-data")

    with caplog.at_level(logging.WARNING, logger="inventory.identity_proof"):
        error = refused(mint(rsa_key), "jwks_unavailable")

    assert "169.254" not in error.message and "Remote IdP" in error.message
    assert "169.254.169.254" in caplog.text


def test_an_unreadable_static_jwks_is_told_plainly(oidc_issuer, rsa_key, caplog):
    bad_key = {"kty": "EC", "crv": "P-256", "x": "bm90", "y": "a2V5", "kid": "rsa-1"}
    TrustedIssuer.objects.filter(pk=oidc_issuer.pk).update(jwks={"keys": [bad_key]})

    with caplog.at_level(logging.WARNING, logger="inventory.identity_proof"):
        error = refused(mint(rsa_key), "jwks_unavailable")

    assert error.message == "The signing keys of issuer 'Corporate IdP' could not be fetched or read."
    assert "Corporate IdP" in caplog.text


# --- what messages may echo ----------------------------------------------------------------


def test_a_token_that_is_not_utf8_is_malformed_without_decoder_details(oidc_issuer):
    token = b64(b"\xa6\xff{}") + "." + segment(claims()) + ".sig"

    error = refused(token, "token_malformed")

    assert "codec" not in error.message and "0xa6" not in error.message


def test_long_token_values_are_cut_short_in_messages(oidc_issuer, spiffe_issuer, rsa_key, ec_key):
    long = "x" * 5000
    bad_alg = f"{segment({'alg': long, 'kid': 'rsa-1'})}.{segment(claims())}.sig"
    messages = [
        refused(mint(rsa_key, kid=long), "key_unknown").message,
        refused(mint(rsa_key, iss="https://" + long), "issuer_unknown").message,
        refused(bad_alg, "algorithm_not_allowed").message,
        refused(svid(ec_key, sub=f"spiffe://{long}.org/ns/prod"), "issuer_unknown").message,
        refused(mint(ec_key, "ES256", "svid-1", headers={long: 1}, iss=DROP, sub=WORKLOAD), "token_malformed").message,
    ]

    for message in messages:
        assert "x" * (identity_proof.MAX_ECHOED_CHARS + 1) not in message, message
        assert "x…'" in message, message  # cut, and the reader is told so
        assert len(message) < 300


def test_a_short_kid_is_echoed_whole(oidc_issuer, rsa_key):
    assert "'rsa-2'" in refused(mint(rsa_key, kid="rsa-2"), "key_unknown").message


# --- the registry's rules ------------------------------------------------------------------


def issuer_errors(**fields) -> dict:
    """The field errors of an unsaved issuer built with ``fields`` (empty when it is valid)."""
    try:
        TrustedIssuerFactory.build(**fields).full_clean()
    except ValidationError as exc:
        return exc.message_dict
    return {}


def test_a_valid_issuer_has_no_errors():
    assert issuer_errors() == {}
    assert issuer_errors(kind="spiffe", issuer=TRUST_DOMAIN) == {}
    assert issuer_errors(jwks=None, jwks_url="https://idp.example.com/.well-known/jwks.json") == {}


def test_an_issuer_needs_exactly_one_key_source():
    assert "jwks" in issuer_errors(jwks_url="https://idp.example.com/jwks")
    assert "jwks_url" in issuer_errors(jwks=None, jwks_url="")


@pytest.mark.parametrize("fields", [{"jwks_url": "https://idp.example.com/jwks"}, {"jwks": None}])
def test_the_database_holds_exactly_one_key_source(fields):
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustedIssuerFactory(**fields)


def test_a_static_jwks_with_private_key_material_is_refused(rsa_key, ec_key):
    rsa_private = {**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "leaked"}
    ec_private = {**ECAlgorithm.to_jwk(ec_key, as_dict=True), "kid": "leaked"}

    assert "private" in issuer_errors(jwks={"keys": [rsa_private]})["jwks"][0]
    assert "private" in issuer_errors(jwks={"keys": [ec_private]})["jwks"][0]
    assert "private" in issuer_errors(jwks={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}]})["jwks"][0]


@pytest.mark.parametrize(
    "jwks",
    [
        {"keys": []},
        {"not_keys": []},
        [{"kty": "EC"}],
        {"keys": [{"kty": "EC", "crv": "P-256", "x": "bm90", "y": "a2V5", "kid": "bad"}]},
        {"keys": [{"kty": "oct", "kid": "no-k"}]},
    ],
    ids=["no-keys", "no-keys-member", "not-an-object", "unparsable-key", "symmetric"],
)
def test_a_static_jwks_that_is_not_a_public_key_set_is_refused(jwks):
    assert "jwks" in issuer_errors(jwks=jwks)


def test_a_static_jwks_with_a_short_rsa_key_or_repeated_kids_is_refused(ec_key):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)

    assert "1024" in issuer_errors(jwks={"keys": [public_jwk(weak, "weak")]})["jwks"][0]
    twice = {"keys": [public_jwk(ec_key, "same"), ec_public_jwks("same")["keys"][0]]}
    assert "same" in issuer_errors(jwks=twice)["jwks"][0]


@pytest.mark.parametrize(
    ("kind", "algorithms"),
    [
        ("oidc", ["HS256"]),
        ("oidc", ["RS256", "none"]),
        ("oidc", ["RS999"]),
        ("oidc", []),
        ("oidc", "RS256"),
        ("oidc", ["RS256", "RS256"]),
        ("spiffe", ["EdDSA"]),
    ],
)
def test_only_asymmetric_algorithms_are_accepted(kind, algorithms):
    issuer = TRUST_DOMAIN if kind == "spiffe" else OIDC_ISS
    assert "algorithms" in issuer_errors(kind=kind, issuer=issuer, algorithms=algorithms)


def test_every_asymmetric_algorithm_is_accepted_for_oidc():
    assert issuer_errors(algorithms=list(identity_proof.ASYMMETRIC_ALGORITHMS)) == {}


@pytest.mark.parametrize("skew", [-1, 301])
def test_the_clock_skew_is_0_to_300_seconds(skew):
    assert "clock_skew_seconds" in issuer_errors(clock_skew_seconds=skew)


def test_the_clock_skew_bounds_are_accepted_and_held_by_the_database():
    assert issuer_errors(clock_skew_seconds=0) == {}
    assert issuer_errors(clock_skew_seconds=300) == {}
    with pytest.raises(IntegrityError), transaction.atomic():
        TrustedIssuerFactory(clock_skew_seconds=301)


@pytest.mark.parametrize("audiences", [[], [""], "warrant", [AUD, AUD], [" warrant"]])
def test_an_issuer_needs_distinct_audiences(audiences):
    assert "audiences" in issuer_errors(audiences=audiences)


@pytest.mark.parametrize(
    ("kind", "issuer"),
    [
        ("oidc", "http://idp.example.com"),
        ("oidc", "https://idp.example.com?tenant=1"),
        ("oidc", "https://idp.example.com#x"),
        ("oidc", "idp.example.com"),
        ("spiffe", "spiffe://example.org/ns/prod"),
        ("spiffe", "spiffe://Example.org"),
        ("spiffe", "https://example.org"),
    ],
)
def test_the_issuer_has_the_shape_of_its_kind(kind, issuer):
    assert "issuer" in issuer_errors(kind=kind, issuer=issuer)


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com/jwks",
        "http://127.0.0.1:8080/jwks",
        "ftp://idp.example.com/jwks",
        "https://user:hunter2secret@idp.example.com/jwks",
        "https:///jwks",
    ],
)
def test_a_jwks_url_must_be_https(url):
    assert "jwks_url" in issuer_errors(jwks=None, jwks_url=url)


def test_a_loopback_http_jwks_url_is_allowed_only_when_configured(settings):
    url = "http://127.0.0.1:8080/jwks"
    settings.WARRANT_ALLOW_HTTP_JWKS = True

    assert issuer_errors(jwks=None, jwks_url=url) == {}
    assert "jwks_url" in issuer_errors(jwks=None, jwks_url="http://idp.example.com/jwks")


INTERNAL_JWKS_URLS = [
    "https://169.254.169.254/latest/meta-data",
    "https://127.0.0.1:8011/jwks",
    "https://127.0.0.2/jwks",
    "https://10.0.0.5/jwks",
    "https://172.16.3.4/jwks",
    "https://192.168.1.10/jwks",
    "https://0.0.0.0/jwks",
    "https://224.0.0.251/jwks",
    "https://[::1]/jwks",
    "https://[::]/jwks",
    "https://[fe80::1]/jwks",
    "https://[fd12:3456::1]/jwks",
    "https://[ff02::1]/jwks",
    "https://[::ffff:169.254.169.254]/jwks",
    "https://localhost/jwks",
    "https://LocalHost./jwks",
    "https://idp.localhost/jwks",
    "https://2852039166/latest/meta-data",
    "https://0xa9.0xfe.0xa9.0xfe/latest/meta-data",
    "https://127.1/jwks",
    "https://0177.0.0.1/jwks",
    "https://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/latest/meta-data",
]


@pytest.mark.parametrize("url", INTERNAL_JWKS_URLS)
def test_a_jwks_url_to_an_internal_address_is_refused(url):
    errors = issuer_errors(jwks=None, jwks_url=url)

    assert "jwks_url" in errors
    assert "public" in errors["jwks_url"][0]


def test_the_refusal_names_the_kind_of_address():
    assert "link-local" in issuer_errors(jwks=None, jwks_url=INTERNAL_JWKS_URLS[0])["jwks_url"][0]
    assert "loopback" in issuer_errors(jwks=None, jwks_url=INTERNAL_JWKS_URLS[1])["jwks_url"][0]
    assert "private" in issuer_errors(jwks=None, jwks_url="https://10.0.0.5/jwks")["jwks_url"][0]


@pytest.mark.parametrize(
    "url",
    ["https://idp.example.com/.well-known/jwks.json", "https://8.8.8.8/jwks", "https://[2606:4700::1111]/jwks"],
)
def test_a_jwks_url_to_a_public_host_is_accepted(url):
    assert issuer_errors(jwks=None, jwks_url=url) == {}


@pytest.mark.parametrize("setting", ["WARRANT_ALLOW_HTTP_JWKS", "DEBUG"])
def test_loopback_jwks_urls_are_allowed_for_development_and_nothing_else_internal(settings, setting):
    setattr(settings, setting, True)

    for url in (
        "https://127.0.0.1:8443/jwks",
        "https://localhost/jwks",
        "https://[::1]/jwks",
        "http://localhost:8080/jwks",
    ):
        assert issuer_errors(jwks=None, jwks_url=url) == {}, url
    for url in ("https://169.254.169.254/latest/meta-data", "https://10.0.0.5/jwks", "https://[fd00::1]/jwks"):
        assert "jwks_url" in issuer_errors(jwks=None, jwks_url=url), url


def test_an_internal_jwks_url_is_refused_on_update_and_nothing_changes(admin_actor):
    issuer = TrustedIssuerFactory()

    error = refuses(
        ValidationError,
        trusted_issuer_update,
        actor=admin_actor,
        trusted_issuer=issuer,
        jwks=None,
        jwks_url="https://169.254.169.254/latest/meta-data",
    )

    assert "jwks_url" in error.message_dict
    issuer.refresh_from_db()
    assert (issuer.jwks_url, issuer.jwks is not None) == ("", True)


# --- the registry's services ---------------------------------------------------------------


@pytest.fixture
def trail():
    return Trail()


def create_args(**overrides) -> dict:
    return {
        "name": "Corporate IdP",
        "kind": "oidc",
        "issuer": OIDC_ISS,
        "jwks": ec_public_jwks(),
        "audiences": [AUD],
        **overrides,
    }


def test_an_iam_admin_registers_an_issuer_with_its_audit_event(admin_actor, trail, frozen_now):
    issuer = trusted_issuer_create(actor=admin_actor, **create_args())

    assert (issuer.algorithms, issuer.clock_skew_seconds, issuer.enabled) == (["RS256", "ES256"], 60, True)
    assert issuer.created_at == issuer.updated_at == T0
    event = trail.only("trusted_issuer.create", actor=admin_actor, obj=issuer)
    assert event.after["issuer"] == OIDC_ISS
    assert event.after["jwks"] == issuer.jwks


@pytest.mark.parametrize("role", ["owner", "auditor"])
def test_only_iam_admins_register_issuers(people, role):
    refuses(PermissionDenied, trusted_issuer_create, actor=Actor.person(people[role]), **create_args())


def test_an_invalid_issuer_is_refused_with_field_errors_and_nothing_written(admin_actor):
    error = refuses(
        ValidationError,
        trusted_issuer_create,
        actor=admin_actor,
        **create_args(algorithms=["HS256"], audiences=[], clock_skew_seconds=999),
    )

    assert {"algorithms", "audiences", "clock_skew_seconds"} <= set(error.message_dict)


def test_an_iam_admin_changes_an_issuer_with_before_and_after(admin_actor, trail, rsa_key):
    issuer = TrustedIssuerFactory(issuer=OIDC_ISS, jwks={"keys": [public_jwk(rsa_key, "rsa-1")]})
    trail.reset()

    trusted_issuer_update(actor=admin_actor, trusted_issuer=issuer, audiences=["warrant-prod"], enabled=False)

    event = trail.only("trusted_issuer.update", actor=admin_actor, obj=issuer)
    assert event.before == {"audiences": ["warrant"], "enabled": True}
    assert event.after == {"audiences": ["warrant-prod"], "enabled": False}
    refused(mint(rsa_key), "issuer_unknown")


def test_switching_the_key_source_replaces_one_with_the_other(admin_actor):
    issuer = TrustedIssuerFactory()

    issuer = trusted_issuer_update(
        actor=admin_actor, trusted_issuer=issuer, jwks=None, jwks_url="https://idp.example.com/jwks"
    )

    issuer.refresh_from_db()
    assert (issuer.jwks, issuer.jwks_url) == (None, "https://idp.example.com/jwks")


def test_the_kind_of_an_issuer_is_fixed(admin_actor):
    issuer = TrustedIssuerFactory()

    error = refuses(ValidationError, trusted_issuer_update, actor=admin_actor, trusted_issuer=issuer, kind="spiffe")

    assert "kind" in error.message_dict


def test_an_owner_cannot_change_or_remove_an_issuer(owner_actor):
    issuer = TrustedIssuerFactory()

    refuses(PermissionDenied, trusted_issuer_update, actor=owner_actor, trusted_issuer=issuer, enabled=False)
    refuses(PermissionDenied, trusted_issuer_delete, actor=owner_actor, trusted_issuer=issuer)


def test_removing_an_issuer_is_audited_and_its_tokens_refused(admin_actor, trail, rsa_key):
    issuer = TrustedIssuerFactory(issuer=OIDC_ISS, jwks={"keys": [public_jwk(rsa_key, "rsa-1")]})
    pk = issuer.pk
    trail.reset()

    trusted_issuer_delete(actor=admin_actor, trusted_issuer=issuer)

    event = trail.only("trusted_issuer.delete", actor=admin_actor)
    assert (event.object_type, event.object_id, event.before["issuer"]) == (
        "inventory.trustedissuer",
        str(pk),
        OIDC_ISS,
    )
    assert not TrustedIssuer.objects.filter(pk=pk).exists()
    refused(mint(rsa_key), "issuer_unknown")


# --- the Django admin ----------------------------------------------------------------------


def test_the_admin_registers_changes_and_removes_issuers_through_the_services(admin_client):
    jwks = ec_public_jwks()
    response = admin_client.post(
        reverse("admin:inventory_trustedissuer_add"),
        {
            "name": "Corporate IdP",
            "kind": "oidc",
            "issuer": OIDC_ISS,
            "jwks_url": "",
            "jwks": json.dumps(jwks),
            "audiences": json.dumps([AUD]),
            "algorithms": json.dumps(["ES256"]),
            "clock_skew_seconds": 30,
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content
    issuer = TrustedIssuer.objects.get()
    assert (issuer.jwks, issuer.audiences, issuer.algorithms, issuer.clock_skew_seconds) == (jwks, [AUD], ["ES256"], 30)

    response = admin_client.post(
        reverse("admin:inventory_trustedissuer_change", args=[issuer.pk]),
        {
            "name": "Corporate IdP",
            "issuer": OIDC_ISS,
            "jwks_url": "",
            "jwks": json.dumps(jwks),
            "audiences": json.dumps([AUD]),
            "algorithms": json.dumps(["ES256"]),
            "clock_skew_seconds": 30,
        },
    )
    assert response.status_code == 302, response.content
    issuer.refresh_from_db()
    assert issuer.enabled is False

    response = admin_client.post(reverse("admin:inventory_trustedissuer_delete", args=[issuer.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not TrustedIssuer.objects.exists()
    verbs = list(AuditEvent.objects.order_by("id").values_list("verb", "actor_label"))
    assert verbs == [
        ("trusted_issuer.create", "root.admin"),
        ("trusted_issuer.update", "root.admin"),
        ("trusted_issuer.delete", "root.admin"),
    ]


def test_the_admin_refuses_a_private_key_and_writes_nothing(admin_client, rsa_key):
    private = {**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "leaked"}
    response = admin_client.post(
        reverse("admin:inventory_trustedissuer_add"),
        {
            "name": "Corporate IdP",
            "kind": "oidc",
            "issuer": OIDC_ISS,
            "jwks": json.dumps({"keys": [private]}),
            "audiences": json.dumps([AUD]),
            "algorithms": json.dumps(["RS256"]),
            "clock_skew_seconds": 60,
        },
    )

    assert response.status_code == 200
    assert "private key material" in response.content.decode()
    assert not TrustedIssuer.objects.exists() and not AuditEvent.objects.exists()
