"""Task tokens (``delegations.tokens``): issuing, lifetime, revocation, RFC 7662 introspection, forged
tokens, signing-key rotation and retirement, the JWK Set, encryption at rest, the actor chain."""

import base64
import hashlib
import hmac
import json
import threading
import uuid
from datetime import timedelta
from io import StringIO

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from delegations import services as grant_services
from delegations import tokens
from delegations.models import DelegationGrant, SigningKey, TaskToken
from governance.audit import Actor
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.jobs import JOBS, job_run
from governance.models import AuditEvent, Policy
from inventory import services as inventory_services
from inventory.models import WorkloadIdentity
from tests.factories import T0, AgentFactory, GrantFactory, OwnerFactory, ToolFactory, WorkloadIdentityFactory
from tests.support import Trail

pytestmark = pytest.mark.django_db

SPIFFE = "spiffe://example.org/ns/support/sa/triage"
MINUTE = timedelta(minutes=1)
US = timedelta(microseconds=1)
BASE = "https://warrant.example.org"


@pytest.fixture(autouse=True)
def _base_url(settings):
    settings.WARRANT_BASE_URL = BASE


@pytest.fixture
def identity(low_agent):
    return WorkloadIdentityFactory(agent=low_agent, identifier=SPIFFE)


@pytest.fixture
def grant(low_agent, identity):
    """An active grant of ``low_agent`` from T0 for a day: github read on acme/*, jira write."""
    return GrantFactory(agent=low_agent, scopes=[("github", "read", "repo:acme/*"), ("jira", "write", "")])


def issue(grant, *, user=None, now=T0, **kwargs):
    user = user or grant.agent.owner
    kwargs.setdefault("task_id", "ticket-4711")
    return tokens.task_token_issue(actor=Actor.person(user), user=user, grant=grant, now=now, **kwargs)


def introspect(token, now=T0, viewer=None):
    return tokens.task_token_introspect(token, now=now, viewer=viewer)


def segments(token):
    return token.split(".")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- issuing and introspecting --------------------------------------------------------------


def test_an_issued_token_introspects_active_with_its_claims(grant, low_agent, owner):
    row, token = issue(grant, audience="https://mcp.example.org")
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": row.kid}
    exp = int((T0 + timedelta(seconds=900)).timestamp())
    assert introspect(token) == {
        "active": True,
        "scope": "github:read jira:write",
        "client_id": "ticket-triage",
        "sub": SPIFFE,
        "aud": "https://mcp.example.org",
        "iss": BASE,
        "exp": exp,
        "iat": int(T0.timestamp()),
        "nbf": int(T0.timestamp()),
        "jti": str(row.jti),
        "token_type": "Bearer",
        "grant_id": grant.pk,
        "task_id": "ticket-4711",
        "warrant_scopes": [
            {"tool": "github", "access": "read", "resource_pattern": "repo:acme/*"},
            {"tool": "jira", "access": "write", "resource_pattern": ""},
        ],
    }
    assert (row.agent, row.grant, row.issued_by, row.subject) == (low_agent, grant, owner, SPIFFE)
    assert (row.issued_at, row.expires_at, row.audience, row.issued_via) == (
        T0,
        T0 + timedelta(seconds=900),
        "https://mcp.example.org",
        "",
    )


def test_the_token_itself_is_never_stored(grant):
    row, token = issue(grant)
    signature = segments(token)[2]
    for model in (TaskToken, AuditEvent):
        for values in model.objects.values():
            assert signature not in json.dumps(values, default=str)


def test_the_default_lifetime_is_the_policys_fifteen_minutes_and_aud_is_warrant(grant):
    row, token = issue(grant)
    assert row.expires_at - row.issued_at == timedelta(minutes=15)
    assert introspect(token)["aud"] == BASE


def test_a_token_never_outlives_its_grant(grant):
    grant.expires_at = T0 + timedelta(minutes=5)
    grant.save(update_fields=["expires_at"])
    row, token = issue(grant, ttl_seconds=3600)
    assert row.expires_at == T0 + timedelta(minutes=5)
    assert introspect(token)["exp"] == int((T0 + timedelta(minutes=5)).timestamp())


def test_a_token_never_outlives_the_parent_grant_either(grant, other_owner):
    child = _child_grant(grant, other_owner, expires_at=T0 + timedelta(hours=5))
    grant.expires_at = T0 + timedelta(minutes=7)  # the parent ends first
    grant.save(update_fields=["expires_at"])
    row, _ = issue(child)
    assert row.expires_at == T0 + timedelta(minutes=7)


def test_a_grant_ending_at_a_fraction_of_a_second_gives_a_whole_second_expiry(grant):
    grant.expires_at = T0 + timedelta(minutes=5, microseconds=500_000)
    grant.save(update_fields=["expires_at"])
    row, token = issue(grant, now=T0 + timedelta(microseconds=250_000))
    # the row keeps the exact instant; the claims are whole seconds, the grant's end rounded down
    assert (row.issued_at, row.expires_at) == (T0 + timedelta(microseconds=250_000), T0 + timedelta(minutes=5))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["iat"], claims["nbf"], claims["exp"]) == (
        int(T0.timestamp()),
        int(T0.timestamp()),
        int((T0 + timedelta(minutes=5)).timestamp()),
    )


@pytest.mark.parametrize("ttl", [1, 60])
def test_exp_is_rounded_up_so_the_token_lives_at_least_the_seconds_asked(grant, ttl):
    now = T0 + timedelta(microseconds=500_000)
    row, token = issue(grant, ttl_seconds=ttl, now=now)
    assert row.expires_at == T0 + timedelta(seconds=ttl + 1)
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == int(T0.timestamp()) + ttl + 1
    assert introspect(token, now=now + timedelta(seconds=ttl))["active"] is True
    assert introspect(token, now=row.expires_at) == {"active": False}


def test_a_grant_ending_less_than_a_second_from_now_gives_no_token(grant):
    grant.expires_at = T0 + timedelta(seconds=1, microseconds=400_000)
    grant.save(update_fields=["expires_at"])
    with pytest.raises(Conflict, match="less than a second"):
        issue(grant, ttl_seconds=60, now=T0 + timedelta(microseconds=500_000))
    assert not TaskToken.objects.exists()
    row, _ = issue(grant, ttl_seconds=60, now=T0)  # a whole second left: a one-second token
    assert row.expires_at == T0 + timedelta(seconds=1)


@pytest.mark.parametrize("ttl", [0, -5, 3601, True, "60", 1.5])
def test_a_ttl_outside_one_to_the_policys_longest_is_refused_and_nothing_is_written(grant, ttl):
    with pytest.raises(ValidationError) as info:
        issue(grant, ttl_seconds=ttl)
    assert "ttl_seconds" in info.value.message_dict
    assert not TaskToken.objects.exists() and not AuditEvent.objects.exists()


def test_the_ttl_follows_the_policy(grant):
    Policy.objects.filter(pk=Policy.current().pk).update(task_token_max_seconds=120, task_token_default_seconds=60)
    assert issue(grant)[0].expires_at == T0 + MINUTE
    assert issue(grant, ttl_seconds=120)[0].expires_at == T0 + 2 * MINUTE
    with pytest.raises(ValidationError, match="1 to 120 seconds"):
        issue(grant, ttl_seconds=121)


@pytest.mark.parametrize(
    "field, value",
    [("task_id", ""), ("task_id", "   "), ("task_id", "x" * 201), ("task_id", "a\x00b"), ("audience", "a b")],
)
def test_bad_text_is_refused_by_field(grant, field, value):
    with pytest.raises(ValidationError) as info:
        issue(grant, **{field: value})
    assert field in info.value.message_dict
    assert not TaskToken.objects.exists()


@pytest.mark.parametrize(
    "change, codes",
    [
        ({"status": "pending", "decided_at": None}, ("grant_not_approved",)),
        ({"status": "revoked"}, ("grant_revoked",)),
        ({"status": "expired"}, ("grant_expired",)),
        ({"starts_at": T0 - timedelta(days=1), "expires_at": T0}, ("grant_expired",)),
        ({"starts_at": T0 + MINUTE, "expires_at": T0 + timedelta(days=1)}, ("grant_not_started",)),
    ],
)
def test_a_grant_that_does_not_authorise_now_gets_no_token(grant, change, codes):
    DelegationGrant.objects.filter(pk=grant.pk).update(**change)
    with pytest.raises(tokens.GrantNotAuthorising) as info:
        issue(grant)
    assert isinstance(info.value, Conflict)
    assert info.value.reasons == codes
    assert codes[0] in str(info.value)
    assert not TaskToken.objects.exists() and not AuditEvent.objects.exists()


def test_a_suspended_agent_gets_no_token(grant, low_agent):
    low_agent.state = "suspended"
    low_agent.save(update_fields=["state"])
    with pytest.raises(tokens.GrantNotAuthorising) as info:
        issue(grant)
    assert info.value.reasons == ("agent_not_active",)


# --- who may --------------------------------------------------------------------------------


def test_the_owner_the_backup_owner_and_iam_admins_may_issue(grant, low_agent, admin_user):
    backup = OwnerFactory(username="bea.backup")
    low_agent.backup_owner = backup
    low_agent.save(update_fields=["backup_owner"])
    for user in (low_agent.owner, backup, admin_user):
        row, _ = issue(grant, user=user)
        assert row.issued_by == user


@pytest.mark.parametrize("who", ["other_owner", "auditor"])
def test_others_may_not_issue(grant, people, who):
    with pytest.raises(PermissionDenied):
        issue(grant, user=people[who])
    assert not TaskToken.objects.exists()


def test_the_owner_of_the_parent_agent_may_not_issue_for_the_child_grant(grant, other_owner, owner):
    child = _child_grant(grant, other_owner)
    with pytest.raises(PermissionDenied):
        issue(child, user=owner)


def test_introspection_answers_only_about_agents_the_viewer_may_see(grant, people):
    _, token = issue(grant)
    assert introspect(token, viewer=people["other_owner"]) == {"active": False}
    for who in ("owner", "admin", "auditor"):
        assert introspect(token, viewer=people[who])["active"] is True, who


# --- the workload identity bound into sub ---------------------------------------------------


def test_an_agent_without_a_workload_identity_gets_no_token(low_agent):
    grant = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    with pytest.raises(ValidationError, match="register a workload identity first") as info:
        issue(grant)
    assert "workload_identity" in info.value.message_dict


def test_an_agent_with_several_identities_needs_one_named(grant, low_agent, identity):
    oidc = WorkloadIdentityFactory(
        agent=low_agent,
        type=WorkloadIdentity.Type.OIDC,
        issuer="https://token.actions.githubusercontent.com",
        identifier="repo:acme/triage:ref:refs/heads/main",
    )
    with pytest.raises(ValidationError, match="name one by id"):
        issue(grant)
    row, token = issue(grant, workload_identity=oidc.pk)
    assert (
        introspect(token)["sub"] == "https://token.actions.githubusercontent.com#repo:acme/triage:ref:refs/heads/main"
    )
    assert issue(grant, workload_identity=identity.pk)[0].subject == SPIFFE
    foreign = WorkloadIdentityFactory(agent=AgentFactory())
    with pytest.raises(ValidationError, match="not a workload identity of"):
        issue(grant, workload_identity=foreign.pk)


def test_other_identity_types_read_as_type_and_identifier(low_agent):
    wi = WorkloadIdentityFactory.build(
        agent=low_agent, type=WorkloadIdentity.Type.AWS_IAM_ROLE, identifier="arn:aws:iam::1:role/x"
    )
    assert tokens.identity_subject(wi) == "aws_iam_role:arn:aws:iam::1:role/x"


def test_removing_the_bound_identity_ends_its_tokens(grant, identity, owner):
    _, token = issue(grant)
    inventory_services.workload_identity_remove(actor=Actor.person(owner), identity=identity)
    assert introspect(token) == {"active": False}


def test_re_adding_the_same_spiffe_id_does_not_bring_the_tokens_back(grant, low_agent, identity, owner, frozen_now):
    actor = Actor.person(owner)
    _, token = issue(grant)
    frozen_now.move_to(T0 + MINUTE)
    inventory_services.workload_identity_remove(actor=actor, identity=identity)
    readded = T0 + 2 * MINUTE + timedelta(microseconds=100_000)
    frozen_now.move_to(readded)
    inventory_services.workload_identity_add(actor=actor, agent=low_agent, type="spiffe", identifier=SPIFFE)
    assert introspect(token, now=readded) == {"active": False}
    # a token issued for the re-added identity — even within the same second — is active
    later = readded + timedelta(microseconds=200_000)
    frozen_now.move_to(later)
    _, fresh = issue(grant, now=later)
    assert introspect(fresh, now=later)["active"] is True
    assert introspect(token, now=later) == {"active": False}


# --- lifetime -------------------------------------------------------------------------------


def test_a_token_is_active_until_the_microsecond_before_exp_and_inactive_at_exp(grant):
    row, token = issue(grant)
    assert introspect(token, now=row.expires_at - US)["active"] is True
    assert introspect(token, now=row.expires_at) == {"active": False}
    assert introspect(token, now=row.expires_at + timedelta(days=1)) == {"active": False}


def test_a_token_is_not_active_before_nbf(grant):
    row, token = issue(grant, now=T0 + MINUTE)
    assert introspect(token, now=T0 + MINUTE - US) == {"active": False}
    assert introspect(token, now=T0 + MINUTE)["active"] is True


# --- the grant's authority, at each introspection -------------------------------------------


def test_revoking_the_grant_ends_its_tokens_at_once(grant, owner, frozen_now):
    _, token = issue(grant)
    grant_services.grant_revoke(actor=Actor.person(owner), grant=grant, reason="Done.")
    assert introspect(token) == {"active": False}


def test_revoking_the_parent_grant_ends_the_child_grants_tokens(grant, other_owner, owner):
    child = _child_grant(grant, other_owner)
    _, token = issue(child, user=other_owner)
    assert introspect(token)["active"] is True
    DelegationGrant.objects.filter(pk=grant.pk).update(status="revoked")  # the parent alone, as a race would leave it
    assert introspect(token) == {"active": False}


def test_suspending_the_agent_ends_its_tokens_at_once(grant, low_agent, admin_user, frozen_now):
    _, token = issue(grant)
    inventory_services.agent_suspend(actor=Actor.person(admin_user), agent=low_agent, reason="Investigating.")
    assert introspect(token) == {"active": False}


def test_reactivating_a_suspended_agent_does_not_bring_its_tokens_back(grant, low_agent, admin_user, frozen_now):
    actor = Actor.person(admin_user)
    _, token = issue(grant)
    frozen_now.move_to(T0 + MINUTE)
    inventory_services.agent_suspend(actor=actor, agent=low_agent, reason="Investigating.")
    assert introspect(token, now=T0 + MINUTE) == {"active": False}
    reactivated = T0 + 2 * MINUTE + timedelta(microseconds=100_000)
    frozen_now.move_to(reactivated)
    inventory_services.agent_reactivate(actor=actor, agent=low_agent, reason="All clear.")
    assert introspect(token, now=reactivated) == {"active": False}
    # tokens issued after the reactivation — even within the same second — are active
    later = reactivated + timedelta(microseconds=200_000)
    frozen_now.move_to(later)
    _, fresh = issue(grant, now=later)
    assert introspect(fresh, now=later)["active"] is True
    assert introspect(token, now=later) == {"active": False}


def test_a_token_issued_before_the_agents_state_changed_is_inactive_for_good(grant, low_agent):
    row, token = issue(grant)
    # the agent is active again, yet its state changed after the token was issued (a suspension between)
    low_agent.state_changed_at = row.issued_at + US
    low_agent.save(update_fields=["state_changed_at"])
    assert introspect(token) == {"active": False}
    low_agent.state_changed_at = row.issued_at
    low_agent.save(update_fields=["state_changed_at"])
    assert introspect(token)["active"] is True


def test_an_overdue_attestation_ends_a_high_risk_agents_tokens(grant, low_agent):
    _, token = issue(grant)
    low_agent.risk_tier = "high"
    low_agent.next_attestation_due = (T0 - timedelta(days=60)).date()
    low_agent.save(update_fields=["risk_tier", "next_attestation_due"])
    assert introspect(token) == {"active": False}


def test_the_grants_expiry_ends_the_token_even_before_the_expiry_job(grant):
    grant.expires_at = T0 + timedelta(minutes=5)
    grant.save(update_fields=["expires_at"])
    row, token = issue(grant)
    assert introspect(token, now=T0 + timedelta(minutes=5) - US)["active"] is True
    assert introspect(token, now=T0 + timedelta(minutes=5)) == {"active": False}


# --- revocation -----------------------------------------------------------------------------


def test_a_revoked_token_is_inactive_and_a_second_revocation_records_nothing(grant, owner):
    row, token = issue(grant)
    trail = Trail()
    tokens.task_token_revoke(actor=Actor.person(owner), user=owner, jti=str(row.jti), reason="Task done.", now=T0)
    event = trail.only("task_token.revoke", actor=Actor.person(owner), obj=row)
    assert event.after["reason"] == "Task done."
    row.refresh_from_db()
    assert (row.revoked_at, row.revoked_by, row.revoke_reason) == (T0, "olivia.owner", "Task done.")
    assert introspect(token) == {"active": False}
    trail.reset()
    again = tokens.task_token_revoke(actor=Actor.person(owner), user=owner, token=row, now=T0 + MINUTE)
    assert again.revoked_at == T0
    assert trail.new() == []


def test_others_may_not_revoke(grant, people):
    row, token = issue(grant)
    for who in ("other_owner", "auditor"):
        user = people[who]
        with pytest.raises(PermissionDenied):
            tokens.task_token_revoke(actor=Actor.person(user), user=user, token=row, now=T0)
    assert introspect(token)["active"] is True


def test_revoke_needs_exactly_one_of_token_or_jti(grant, owner):
    row, _ = issue(grant)
    actor = Actor.person(owner)
    with pytest.raises(ValidationError):
        tokens.task_token_revoke(actor=actor, user=owner, now=T0)
    with pytest.raises(ValidationError):
        tokens.task_token_revoke(actor=actor, user=owner, token=row, jti=row.jti, now=T0)
    with pytest.raises(ValidationError, match="UUID"):
        tokens.task_token_revoke(actor=actor, user=owner, jti="not-a-uuid", now=T0)
    with pytest.raises(TaskToken.DoesNotExist):
        tokens.task_token_revoke(actor=actor, user=owner, jti=uuid.uuid4(), now=T0)


def test_task_token_find_knows_only_tokens_warrant_signed(grant):
    row, token = issue(grant)
    assert tokens.task_token_find(token) == row
    assert tokens.task_token_find(_resigned(token, {"task_id": "other"})) is None
    assert tokens.task_token_find("a.b.c") is None


# --- forged and tampered tokens -------------------------------------------------------------


def _resigned(token, changes, *, key=None, headers=None, algorithm="ES256"):
    """``token``'s claims with ``changes``, signed by ``key`` (default: a fresh P-256 key) under the same kid."""
    claims = {**jwt.decode(token, options={"verify_signature": False}), **changes}
    header = {"kid": jwt.get_unverified_header(token)["kid"], "typ": "at+jwt", **(headers or {})}
    return jwt.encode(claims, key or ec.generate_private_key(ec.SECP256R1()), algorithm=algorithm, headers=header)


def test_a_token_signed_by_another_key_under_the_same_kid_is_inactive(grant):
    _, token = issue(grant)
    assert introspect(_resigned(token, {})) == {"active": False}


def test_a_token_with_alg_none_is_inactive(grant):
    _, token = issue(grant)
    head, body, _ = segments(token)
    header = json.loads(unb64(head))
    forged = f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}.{body}."
    assert introspect(forged) == {"active": False}


def test_an_hmac_token_keyed_with_the_public_key_is_inactive(grant):
    row, token = issue(grant)
    public_pem = (
        jwt.algorithms.ECAlgorithm.from_jwk(SigningKey.objects.get(kid=row.kid).public_jwk)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    head, body, _ = segments(token)
    header = b64(json.dumps({**json.loads(unb64(head)), "alg": "HS256"}).encode())
    signature = b64(hmac.new(public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest())
    assert introspect(f"{header}.{body}.{signature}") == {"active": False}


def test_a_tampered_payload_is_inactive(grant):
    _, token = issue(grant)
    head, body, signature = segments(token)
    claims = json.loads(unb64(body))
    widened = b64(json.dumps({**claims, "scope": "github:write", "exp": claims["exp"] + 86400}).encode())
    assert introspect(f"{head}.{widened}.{signature}") == {"active": False}


def test_a_validly_signed_token_of_an_unknown_jti_is_inactive(grant):
    row, token = issue(grant)
    key = tokens._private_key(SigningKey.objects.get(kid=row.kid))
    assert introspect(_resigned(token, {"jti": str(uuid.uuid4())}, key=key)) == {"active": False}
    assert introspect(_resigned(token, {}, key=key))["active"] is True  # the same claims, re-signed: still good


@pytest.mark.parametrize(
    "changes, headers",
    [
        ({"iss": "https://evil.example.org"}, None),
        ({"grant_id": 999999}, None),
        ({"exp": "never"}, None),
        ({}, {"typ": "JWT"}),
    ],
    ids=["other-issuer", "other-grant", "string-exp", "plain-jwt-typ"],
)
def test_a_validly_signed_token_with_wrong_claims_or_header_is_inactive(grant, changes, headers):
    row, token = issue(grant)
    key = tokens._private_key(SigningKey.objects.get(kid=row.kid))
    assert introspect(_resigned(token, changes, key=key, headers=headers)) == {"active": False}


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "a.b", "é.é.é", "x" * 10000, None, 42])
def test_malformed_input_is_inactive_and_never_raises(grant, garbage):
    issue(grant)
    assert introspect(garbage) == {"active": False}


# --- signing keys: rotation, retirement, the JWK Set ----------------------------------------


def _verify_with_jwks(token, jwk_set, audience=BASE):
    """Verify ``token`` as a resource server would: the key of its kid from the JWK Set, ES256 only."""
    keys = jwt.PyJWKSet.from_dict(jwk_set)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in keys.keys if k.key_id == kid)
    return jwt.decode(
        token, key=key, algorithms=["ES256"], audience=audience, issuer=BASE, options={"verify_exp": False}
    )


def test_the_first_token_makes_the_first_key(grant):
    assert not SigningKey.objects.exists()
    trail = Trail()
    row, _ = issue(grant)
    key = SigningKey.objects.get()
    assert (key.kid, key.status, key.algorithm) == (row.kid, "active", "ES256")
    assert trail.verbs() == ["signing_key.rotate", "task_token.issue"]


def test_rotation_keeps_tokens_in_flight_and_retirement_ends_them(grant, admin_user):
    policy = Policy.current()
    old_row, old_token = issue(grant)
    old_kid = old_row.kid
    trail = Trail()
    new_key = tokens.signing_key_rotate(actor=Actor.person(admin_user), now=T0 + MINUTE)
    event = trail.only("signing_key.rotate", actor=Actor.person(admin_user), obj=new_key)
    assert event.after == {"active": new_key.kid, "retiring": old_kid, "algorithm": "ES256"}
    old = SigningKey.objects.get(kid=old_kid)
    assert (old.status, old.retiring_since) == ("retiring", T0 + MINUTE)
    # in flight: still active, still verifies against the published JWK Set
    assert introspect(old_token, now=T0 + 2 * MINUTE)["active"] is True
    published = tokens.jwks()
    assert [k["kid"] for k in published["keys"]] == [new_key.kid, old_kid]
    assert _verify_with_jwks(old_token, published)["jti"] == str(old_row.jti)
    # new tokens are signed with the new key
    new_row, new_token = issue(grant, now=T0 + 2 * MINUTE)
    assert new_row.kid == jwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert _verify_with_jwks(new_token, published)["jti"] == str(new_row.jti)
    # not retired before the longest lifetime plus the grace has passed
    due = T0 + MINUTE + timedelta(seconds=policy.task_token_max_seconds) + tokens.RETIRE_GRACE
    assert tokens.signing_keys_retire(now=due - US) == {"retired": 0}
    trail.reset()
    assert tokens.signing_keys_retire(now=due) == {"retired": 1}
    assert trail.only("signing_key.retire").object_id == str(old.pk)
    assert tokens.signing_keys_retire(now=due) == {"retired": 0}  # idempotent
    assert trail.verbs() == ["signing_key.retire"]
    old.refresh_from_db()
    assert (old.status, old.retired_at) == ("retired", due)
    assert [k["kid"] for k in tokens.jwks()["keys"]] == [new_key.kid]
    # a token of the retired key is inactive whatever the instant asked about
    assert introspect(old_token, now=T0 + 2 * MINUTE) == {"active": False}
    assert introspect(new_token, now=T0 + 2 * MINUTE)["active"] is True


def test_a_key_that_signed_a_token_still_unexpired_is_not_retired(grant, admin_user):
    Policy.objects.filter(pk=Policy.current().pk).update(task_token_max_seconds=3600)
    row, token = issue(grant, ttl_seconds=3600)
    tokens.signing_key_rotate(actor=Actor.person(admin_user), now=T0)
    Policy.objects.filter(pk=1).update(task_token_max_seconds=60, task_token_default_seconds=60)  # lowered since
    assert tokens.signing_keys_retire(now=T0 + timedelta(minutes=30)) == {"retired": 0}
    assert introspect(token, now=T0 + timedelta(minutes=30))["active"] is True
    assert tokens.signing_keys_retire(now=row.expires_at) == {"retired": 1}


def test_only_iam_admins_rotate(owner, auditor):
    for user in (owner, auditor):
        with pytest.raises(PermissionDenied):
            tokens.signing_key_rotate(actor=Actor.person(user), now=T0)
    assert not SigningKey.objects.exists()


def test_the_first_rotation_makes_the_first_key_and_one_key_is_active(admin_user):
    actor = Actor.person(admin_user)
    first = tokens.signing_key_rotate(actor=actor, now=T0)
    second = tokens.signing_key_rotate(actor=actor, now=T0 + MINUTE)
    third = tokens.signing_key_rotate(actor=actor, now=T0 + 2 * MINUTE)
    statuses = dict(SigningKey.objects.values_list("kid", "status"))
    assert statuses == {first.kid: "retiring", second.kid: "retiring", third.kid: "active"}
    assert len({first.kid, second.kid, third.kid}) == 3


def test_the_database_holds_one_active_key_at_most(admin_user):
    tokens.signing_key_rotate(actor=Actor.person(admin_user), now=T0)
    with pytest.raises(IntegrityError), transaction.atomic():
        tokens._new_key(T0).save()


def test_the_jwk_set_holds_public_keys_only(grant):
    issue(grant)
    (jwk,) = tokens.jwks()["keys"]
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")


def test_the_private_key_is_not_stored_in_clear(grant, settings):
    row, token = issue(grant)
    key = SigningKey.objects.get()
    private = tokens._private_key(key)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {SigningKey._meta.db_table}")
        raw = " ".join(str(v) for v in cursor.fetchone())
    assert "PRIVATE KEY" not in raw
    assert body[:40] not in raw and body[-40:] not in raw
    # the stored ciphertext decrypts to the key whose public half is published
    assert _verify_with_jwks(token, tokens.jwks())["jti"] == str(row.jti)
    # under another SECRET_KEY it no longer decrypts; with the old one as a fallback it does
    settings.SECRET_KEY = "a-new-secret-key"
    with pytest.raises(ImproperlyConfigured, match="rotate_signing_key"):
        issue(grant)
    settings.SECRET_KEY_FALLBACKS = ["test-only-secret-key"]
    assert issue(grant)[0].kid == key.kid


# --- the actor chain (RFC 8693 act) ---------------------------------------------------------


def _child_grant(parent, owner, **kwargs):
    """A child grant of ``parent`` to a new agent of ``owner`` with github read and a SPIFFE identity."""
    agent = AgentFactory(owner=owner, slug=f"helper-{DelegationGrant.objects.count()}", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read"])
    WorkloadIdentityFactory(agent=agent, identifier=f"spiffe://example.org/{agent.slug}")
    kwargs.setdefault("expires_at", parent.expires_at)
    return GrantFactory(agent=agent, parent=parent, scopes=[("github", "read", "repo:acme/*")], **kwargs)


def test_a_child_grants_token_names_the_delegating_agents_nearest_first(grant, other_owner):
    root_agent = grant.agent
    WorkloadIdentityFactory(agent=root_agent, identifier="spiffe://example.org/second")  # two: named by slug
    child = _child_grant(grant, other_owner)
    grandchild = _child_grant(child, other_owner)
    row, token = issue(grandchild, user=other_owner)
    expected = {"sub": f"spiffe://example.org/{child.agent.slug}", "act": {"sub": "agent:ticket-triage"}}
    assert row.act == expected
    assert introspect(token)["act"] == expected
    assert jwt.decode(token, options={"verify_signature": False})["act"] == expected
    assert "act" not in introspect(issue(grant, workload_identity=grant.agent.identities.first().pk)[1])


# --- audit ----------------------------------------------------------------------------------


def test_issuing_is_audited_without_the_token(grant, owner):
    issue(grant)  # the first key is made first
    trail = Trail()
    row, token = issue(grant)
    event = trail.only("task_token.issue", actor=Actor.person(owner), obj=row)
    assert event.after == {
        "jti": str(row.jti),
        "grant": grant.pk,
        "agent": "ticket-triage",
        "task_id": "ticket-4711",
        "sub": SPIFFE,
        "scope": "github:read jira:write",
        "aud": BASE,
        "kid": row.kid,
        "issued_at": "2026-11-15T06:00:00Z",
        "expires_at": "2026-11-15T06:15:00Z",
    }
    assert token not in json.dumps(event.after)


# --- the job and the command ----------------------------------------------------------------


def test_the_retirement_job_runs_every_fifteen_minutes_and_retires(admin_user, frozen_now):
    job = JOBS["retire-signing-keys"]
    assert job.task == "delegations.tasks.retire_signing_keys"
    assert (job.schedule.minute, job.schedule.hour) == ("*/15", "*")
    tokens.signing_key_rotate(actor=Actor.person(admin_user), now=T0 - timedelta(hours=3))
    tokens.signing_key_rotate(actor=Actor.person(admin_user), now=T0 - timedelta(hours=2))
    assert job_run(job=job, now=T0) == {"retired": 1}
    assert job_run(job=job, now=T0) == {"retired": 0}


def test_the_rotate_command_rotates_as_the_system():
    out = StringIO()
    call_command("rotate_signing_key", stdout=out)
    first = SigningKey.objects.get()
    assert out.getvalue() == f"active: {first.kid}\n"
    out = StringIO()
    call_command("rotate_signing_key", stdout=out)
    second = SigningKey.objects.get(status="active")
    assert out.getvalue() == f"active: {second.kid}\nretiring: {first.kid}\n"
    events = AuditEvent.objects.filter(verb="signing_key.rotate")
    assert [(e.actor_type, e.actor_label) for e in events] == [("system", "rotate_signing_key")] * 2


# --- races (PostgreSQL: real threads, each with its own connection) -------------------------


def _at_once(*calls):
    """Run ``calls`` at once, each in its own thread and connection; their results or exceptions, in order."""
    barrier = threading.Barrier(len(calls), timeout=30)
    results = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def postgres_race(test):
    """Mark ``test`` as a race: PostgreSQL only, in real transactions."""
    for mark in (
        pytest.mark.postgres,
        pytest.mark.skipif(connection.vendor != "postgresql", reason="concurrent transactions need PostgreSQL"),
        pytest.mark.django_db(transaction=True),
    ):
        test = mark(test)
    return test


@postgres_race
def test_two_first_tokens_at_once_make_one_key(owner, low_agent, identity):
    for _ in range(3):
        SigningKey.objects.all().delete()
        grants = [GrantFactory(agent=low_agent, scopes=[("github", "read", "")]) for _ in range(2)]
        results = _at_once(*(lambda g=g: issue(g) for g in grants))
        assert all(isinstance(r, tuple) for r in results), results
        key = SigningKey.objects.get()
        assert {row.kid for row, _ in results} == {key.kid}
        assert all(introspect(token)["active"] for _, token in results)


@postgres_race
def test_two_rotations_at_once_both_rotate_and_leave_one_active_key(admin_user):
    actor = Actor.person(admin_user)
    first = tokens.signing_key_rotate(actor=actor, now=T0)
    results = _at_once(*(lambda: tokens.signing_key_rotate(actor=actor, now=T0 + MINUTE) for _ in range(2)))
    assert all(isinstance(r, SigningKey) for r in results), results
    statuses = sorted(SigningKey.objects.values_list("status", flat=True))
    assert statuses == ["active", "retiring", "retiring"]
    assert SigningKey.objects.get(kid=first.kid).status == "retiring"
    assert AuditEvent.objects.filter(verb="signing_key.rotate").count() == 3


# --- the admin ------------------------------------------------------------------------------


def test_the_admin_shows_keys_and_tokens_read_only_and_never_the_private_key(grant, admin_client):
    row, token = issue(grant)
    key = SigningKey.objects.get()
    for name in ("signingkey", "tasktoken"):
        page = admin_client.get(reverse(f"admin:delegations_{name}_changelist"))
        assert page.status_code == 200
        assert admin_client.get(reverse(f"admin:delegations_{name}_add")).status_code == 403
    page = admin_client.get(reverse("admin:delegations_signingkey_change", args=[key.pk])).content.decode()
    assert key.kid in page and key.private_key not in page and "private" not in page.lower()
    page = admin_client.get(reverse("admin:delegations_tasktoken_change", args=[row.pk])).content.decode()
    assert str(row.jti) in page and segments(token)[2] not in page


def test_the_task_token_changelist_runs_a_constant_number_of_queries(grant, admin_client, other_owner):
    url = reverse("admin:delegations_tasktoken_changelist")
    issue(grant)
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    for _ in range(3):
        issue(_child_grant(grant, other_owner), user=other_owner)
    with CaptureQueriesContext(connection) as more:
        admin_client.get(url)
    assert len(more) == len(few)


def test_the_admin_action_rotates_as_the_person(grant, admin_client, superuser):
    issue(grant)
    old = SigningKey.objects.get()
    response = admin_client.post(
        reverse("admin:delegations_signingkey_changelist"), {"action": "rotate", "_selected_action": [old.pk]}
    )
    assert response.status_code == 302
    old.refresh_from_db()
    assert old.status == "retiring"
    new = SigningKey.objects.get(status="active")
    event = AuditEvent.objects.filter(verb="signing_key.rotate").order_by("id").last()
    assert (event.actor_type, event.actor_label, event.object_id) == ("person", superuser.username, str(new.pk))
