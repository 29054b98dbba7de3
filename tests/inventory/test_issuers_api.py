"""REST API of the trusted-issuer registry: ``/api/v1/trusted-issuers/``."""

import pytest

from governance.models import AuditEvent
from inventory.models import TrustedIssuer
from tests.api_support import (
    ADMIN_ONLY,
    ADMIN_ONLY_CREATE,
    WRITE,
    Case,
    count_queries,
    expect,
    matrix,
    matrix_ids,
    run_case,
    session_client,
)
from tests.factories import TrustedIssuerFactory, ec_public_jwks

ISSUERS = "/api/v1/trusted-issuers/"
ADMINS_AND_AUDITORS_READ = expect(owner=403, other_owner=403, admin=200, auditor=200)


@pytest.fixture
def world(frozen_now, owner, other_owner, admin_user, auditor):
    return {
        "people": {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor},
        "issuer": TrustedIssuerFactory(name="Corporate IdP", issuer="https://idp.example.com"),
    }


def new_issuer(**overrides) -> dict:
    return {
        "name": "example.org mesh",
        "kind": "spiffe",
        "issuer": "spiffe://example.org",
        "jwks": ec_public_jwks("svid-1"),
        "audiences": ["warrant"],
        "algorithms": ["ES256"],
        **overrides,
    }


CASES = [
    Case("issuers-list", "get", lambda w: ISSUERS, ADMINS_AND_AUDITORS_READ),
    Case("issuers-retrieve", "get", lambda w: f"{ISSUERS}{w['issuer'].pk}/", ADMINS_AND_AUDITORS_READ),
    Case(
        "issuers-create",
        "post",
        lambda w: ISSUERS,
        ADMIN_ONLY_CREATE,
        body=lambda w: new_issuer(),
        verb="trusted_issuer.create",
        scope=WRITE,
    ),
    Case(
        "issuers-update",
        "patch",
        lambda w: f"{ISSUERS}{w['issuer'].pk}/",
        ADMIN_ONLY,
        body=lambda w: {"enabled": False, "clock_skew_seconds": 30},
        verb="trusted_issuer.update",
        scope=WRITE,
    ),
    Case(
        "issuers-delete",
        "delete",
        lambda w: f"{ISSUERS}{w['issuer'].pk}/",
        expect(owner=403, other_owner=403, admin=204, auditor=403),
        verb="trusted_issuer.delete",
        scope=WRITE,
    ),
]


@pytest.mark.parametrize(("case", "role"), matrix(CASES), ids=matrix_ids(CASES))
def test_permission_matrix(case, role, world):
    run_case(case, role, world)


def test_an_iam_admin_registers_an_issuer_and_the_audit_event_holds_it(world, admin_user):
    response = session_client(admin_user).post(ISSUERS, new_issuer(), format="json")

    assert response.status_code == 201, response.data
    issuer = TrustedIssuer.objects.get(pk=response.data["id"])
    assert response.data["algorithms"] == ["ES256"]
    assert response.data["clock_skew_seconds"] == 60
    assert response.data["created_at"].endswith("Z")
    event = AuditEvent.objects.get(verb="trusted_issuer.create")
    assert (event.actor_label, event.object_id) == (admin_user.username, str(issuer.pk))
    assert event.after["issuer"] == "spiffe://example.org"


def test_an_unknown_field_is_refused_and_named(world, admin_user):
    response = session_client(admin_user).post(ISSUERS, new_issuer(jwks_uri="https://x"), format="json")

    assert response.status_code == 400
    assert "Unknown field" in response.data["jwks_uri"][0]
    assert not TrustedIssuer.objects.filter(name="example.org mesh").exists()


def test_the_kind_cannot_be_changed(world, admin_user):
    response = session_client(admin_user).patch(f"{ISSUERS}{world['issuer'].pk}/", {"kind": "spiffe"}, format="json")

    assert response.status_code == 400
    assert response.data["kind"] == ["This field is read-only."]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"algorithms": ["EdDSA"]}, "algorithms"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0LXNlY3JldA", "kid": "hmac"}]}}, "jwks"),
        ({"jwks_url": "https://example.org/keys"}, "jwks"),
        ({"jwks": None}, "jwks_url"),
        ({"audiences": []}, "audiences"),
        ({"clock_skew_seconds": 301}, "clock_skew_seconds"),
        ({"clock_skew_seconds": "60"}, "clock_skew_seconds"),
        ({"issuer": "spiffe://example.org/ns/prod"}, "issuer"),
        ({"kind": "saml"}, "kind"),
        ({"jwks": None, "jwks_url": "https://169.254.169.254/latest/meta-data"}, "jwks_url"),
        ({"jwks": None, "jwks_url": "https://127.0.0.1:8011/jwks"}, "jwks_url"),
        ({"jwks": None, "jwks_url": "https://[fd00::1]/jwks"}, "jwks_url"),
        ({"jwks": None, "jwks_url": "https://localhost/jwks"}, "jwks_url"),
    ],
)
def test_an_invalid_issuer_is_a_400_naming_the_field_and_writes_nothing(world, admin_user, overrides, field):
    events = AuditEvent.objects.count()

    response = session_client(admin_user).post(ISSUERS, new_issuer(**overrides), format="json")

    assert response.status_code == 400, response.data
    assert field in response.data, response.data
    assert not TrustedIssuer.objects.filter(name="example.org mesh").exists()
    assert AuditEvent.objects.count() == events


def test_a_private_key_in_the_static_jwks_is_refused(world, admin_user):
    from cryptography.hazmat.primitives.asymmetric import ec
    from jwt.algorithms import ECAlgorithm

    private = {**ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True), "kid": "leaked"}

    response = session_client(admin_user).post(ISSUERS, new_issuer(jwks={"keys": [private]}), format="json")

    assert response.status_code == 400
    assert "private" in response.data["jwks"][0]


def test_the_key_source_switches_when_both_fields_are_sent(world, admin_user):
    url = f"{ISSUERS}{world['issuer'].pk}/"

    response = session_client(admin_user).patch(
        url, {"jwks": None, "jwks_url": "https://idp.example.com/.well-known/jwks.json"}, format="json"
    )

    assert response.status_code == 200, response.data
    assert (response.data["jwks"], response.data["jwks_url"]) == (None, "https://idp.example.com/.well-known/jwks.json")


def test_issuers_filter_by_kind_and_enabled(world, auditor):
    TrustedIssuerFactory(name="mesh", kind="spiffe", issuer="spiffe://example.org")
    TrustedIssuerFactory(name="old IdP", enabled=False)
    client = session_client(auditor)

    assert [i["name"] for i in client.get(f"{ISSUERS}?kind=spiffe").data["results"]] == ["mesh"]
    assert [i["name"] for i in client.get(f"{ISSUERS}?enabled=false").data["results"]] == ["old IdP"]


def test_an_unknown_filter_is_a_400(world, auditor):
    response = session_client(auditor).get(f"{ISSUERS}?issuer=https://idp.example.com")

    assert response.status_code == 400
    assert "filters" in response.data


def test_the_list_costs_the_same_queries_for_one_issuer_or_many(world, admin_user):
    client = session_client(admin_user)
    one = count_queries(client, ISSUERS)
    TrustedIssuerFactory.create_batch(5)

    assert count_queries(client, ISSUERS) == one


def test_switching_to_an_internal_jwks_url_is_a_400_and_changes_nothing(world, admin_user):
    url = f"{ISSUERS}{world['issuer'].pk}/"
    events = AuditEvent.objects.count()

    response = session_client(admin_user).patch(
        url, {"jwks": None, "jwks_url": "https://169.254.169.254/latest/meta-data"}, format="json"
    )

    assert response.status_code == 400, response.data
    assert "link-local" in response.data["jwks_url"][0]
    world["issuer"].refresh_from_db()
    assert world["issuer"].jwks_url == "" and AuditEvent.objects.count() == events


def test_a_loopback_jwks_url_is_accepted_for_development_but_not_the_metadata_address(world, admin_user, settings):
    settings.WARRANT_ALLOW_HTTP_JWKS = True
    client = session_client(admin_user)

    response = client.post(ISSUERS, new_issuer(jwks=None, jwks_url="http://127.0.0.1:5556/keys"), format="json")
    assert response.status_code == 201, response.data

    response = client.post(
        ISSUERS,
        new_issuer(name="metadata", issuer="spiffe://other.org", jwks=None, jwks_url="https://169.254.169.254/"),
        format="json",
    )
    assert response.status_code == 400 and "jwks_url" in response.data
