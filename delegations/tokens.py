"""Task tokens: short-lived signed credentials bound to one delegation grant and one task.

An agent runtime asks for a task token instead of holding a standing API key (OWASP NHI Top 10
2025, NHI7 long-lived secrets). A task token is a JWT access token (RFC 9068: header
``typ: at+jwt``) signed ES256 (RFC 7518 §3.4) with Warrant's active signing key. It carries:

- ``iss`` (``settings.WARRANT_BASE_URL``), ``sub`` (the agent's workload identity, see
  ``identity_subject``), ``aud`` (the resource server; default ``WARRANT_BASE_URL``), ``client_id``
  (the agent's slug, RFC 9068 §2.2), ``iat``, ``nbf``, ``exp`` (whole seconds since the epoch,
  UTC), ``jti`` (a UUID);
- ``scope`` (the grant's scopes as space-separated ``tool:access``, RFC 8693 §4.2) and
  ``warrant_scopes`` (the same with their resource patterns);
- ``grant_id``, ``task_id``, ``agent`` (slug) and, for a grant handed on along a chain, ``act``
  (RFC 8693 §4.1): the agents that delegated the work, nearest first, nested.

A token lives ``Policy.task_token_default_seconds`` (default 900; the policy allows 30–3600)
unless the caller asks for a TTL of 1 to ``Policy.task_token_max_seconds`` seconds (default 3600;
the policy allows 30–86400), and never past the first end up its grant's chain. ``iat`` and
``nbf`` are the issuing instant rounded down to the second, ``exp`` the asked end rounded *up*, so
a token lives at least the seconds asked (and less than one more) and ``expires_in`` is never 0;
a grant's end is rounded down, and a grant ending less than a second from now gets no token.

Whether a token is *active* is decided at each introspection (RFC 7662), with no write needed
anywhere else: by the same rule as the runtime decision (``delegations.decisions.grant_authority``)
a token dies at once when its grant or a grant up its chain is revoked or expires, when its agent
is not active or its attestation is overdue; and it stays dead for good when its agent's state
changed after it was issued (``Agent.state_changed_at`` later than the token's ``issued_at``:
tokens are issued only to active agents, so any later change means the agent left active — a
suspension ends the tokens in flight and reactivating the agent does not bring them back), when
the workload identity bound into its ``sub`` is removed or was (re-)added after it was issued
(removing and re-adding the same SPIFFE ID does not bring it back), or when it is revoked itself.
Only the ``jti`` is stored, never the token (invariant 9).

Signing keys rotate (``signing_key_rotate``): the active key becomes *retiring* — still
published in the JWK Set (RFC 7517) and still verifying the tokens it signed — and a new key
signs from then on. ``signing_keys_retire`` (the ``retire-signing-keys`` job, every 15 minutes)
retires a key once every token it can have signed has expired: ``Policy.task_token_max_seconds``
plus ``RETIRE_GRACE`` (300 s, the JWK Set's cache lifetime) after it began retiring. Private keys
are stored encrypted (Fernet, under a key derived from ``SECRET_KEY`` with HKDF-SHA256).
"""

from __future__ import annotations

import base64
import math
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from jwt.algorithms import ECAlgorithm

from governance.audit import Actor, PendingEvent, audit_record, audit_record_many, object_type_of, to_json
from governance.errors import Conflict, PermissionDenied, ValidationError
from governance.models import Policy
from governance.roles import is_iam_admin
from inventory.models import Agent, WorkloadIdentity
from inventory.permissions import can_view_agent

from .decisions import Authority, grant_authority
from .models import DelegationGrant, SigningKey, TaskToken
from .permissions import can_issue_task_token

#: The JWS algorithm of every task token and signing key (ECDSA P-256 with SHA-256, RFC 7518 §3.4).
ALGORITHM = "ES256"
#: The JWT ``typ`` header of a task token: a JWT access token (RFC 9068 §2.1).
TOKEN_TYPE = "at+jwt"
#: What is added to the longest task-token lifetime before a retiring key is retired: the JWK Set's
#: cache lifetime (``Cache-Control: max-age=300``) and clock skew between Warrant and resource servers.
RETIRE_GRACE = timedelta(seconds=300)
#: The JWK Set's cache lifetime in seconds (``Cache-Control: max-age``).
JWKS_MAX_AGE = 300
#: The longest token text ``task_token_introspect`` reads; a task token is well under 2 kB.
MAX_TOKEN_LENGTH = 8192
#: Longest ``task_id`` and ``audience``, in characters (the columns' lengths).
MAX_TASK_ID = 200
MAX_AUDIENCE = 300
#: The RFC 7662 answer for a token that is not active: nothing else is said (§2.2).
INACTIVE: dict = {"active": False}

#: HKDF ``info`` naming what the derived key is for: changing it makes stored private keys unreadable.
_ENCRYPTION_INFO = b"warrant delegations.SigningKey.private_key v1"
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "client_id", "grant_id", "task_id"]


class GrantNotAuthorising(Conflict):
    """A task token was asked for a grant that does not authorise now (HTTP 409).

    ``reasons`` are the reason codes of ``delegations.decisions.grant_authority`` (``grant_revoked``,
    ``grant_expired``, ``grant_not_approved``, ``parent_grant_revoked``, ``agent_not_active`` …).
    """

    def __init__(self, grant: DelegationGrant, authority: Authority):
        self.reasons = tuple(r.code for r in authority.reasons)
        detail = " ".join(r.message for r in authority.reasons)
        super().__init__(
            f"Grant #{grant.pk} does not authorise anything now ({', '.join(self.reasons)}): {detail}".strip()
        )


@dataclass(frozen=True)
class _Verified:
    """A token whose signature, header and issuer check out (``_verify``), before any time check."""

    claims: dict
    kid: str
    jti: uuid.UUID
    exp: datetime
    nbf: datetime


# --- keys ---------------------------------------------------------------------------------------


def _fernet_for(secret: str) -> Fernet:
    """A Fernet cipher under a 32-byte key derived from ``secret`` with HKDF-SHA256 (RFC 5869)."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_ENCRYPTION_INFO).derive(secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _cipher() -> MultiFernet:
    """Encrypts under ``SECRET_KEY``; decrypts under it or any of ``SECRET_KEY_FALLBACKS`` (so that the
    secret key can be rotated the Django way, and signing keys then rotated to re-encrypt)."""
    secrets_ = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(s) for s in secrets_])


def _private_key(key: SigningKey) -> ec.EllipticCurvePrivateKey:
    """The private key of ``key``, decrypted. Raises ``ImproperlyConfigured`` when neither ``SECRET_KEY``
    nor its fallbacks decrypt it."""
    try:
        pem = _cipher().decrypt(key.private_key.encode())
    except InvalidToken:
        raise ImproperlyConfigured(
            f"Signing key {key.kid} cannot be decrypted with SECRET_KEY or SECRET_KEY_FALLBACKS; "
            "run `manage.py rotate_signing_key` to make a new one."
        ) from None
    return serialization.load_pem_private_key(pem, password=None)


def _new_key(now: datetime) -> SigningKey:
    """A new, unsaved active key: a fresh P-256 key pair, its public JWK and its encrypted PEM."""
    private = ec.generate_private_key(ec.SECP256R1())
    kid = secrets.token_urlsafe(16)
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningKey(
        kid=kid,
        algorithm=ALGORITHM,
        public_jwk=jwk,
        private_key=_cipher().encrypt(pem).decode(),
        status=SigningKey.Status.ACTIVE,
        created_at=now,
    )


#: Tries of a rotation that met another one committing its new key at the same moment.
_ROTATE_TRIES = 3


def _rotate(actor: Actor, now: datetime, *, first_only: bool = False) -> SigningKey:
    """Make a new active key, the previous active one retiring; audited. No permission check.

    ``first_only``: make a key only when there is none, else return the active one. The active row is
    locked first, so rotations queue behind each other; one that finds the key it locked already
    replaced (its new key committed meanwhile, which the partial unique constraint reports) tries
    again against the newer key. Raises Conflict when that keeps happening.
    """
    for _ in range(_ROTATE_TRIES):
        try:
            with transaction.atomic():
                old = SigningKey.objects.select_for_update().filter(status=SigningKey.Status.ACTIVE).first()
                if old is not None and first_only:
                    return old
                if old is not None:
                    old.status = SigningKey.Status.RETIRING
                    old.retiring_since = now
                    old.save(update_fields=["status", "retiring_since"])
                new = _new_key(now)
                new.save()
                audit_record(
                    actor=actor,
                    verb="signing_key.rotate",
                    obj=new,
                    before={"active": old.kid if old else None},
                    after={"active": new.kid, "retiring": old.kid if old else None, "algorithm": ALGORITHM},
                    at=now,
                )
                return new
        except IntegrityError:
            continue
    raise Conflict("Other signing-key rotations kept happening at the same time; try again.")


def signing_key_rotate(*, actor: Actor, now: datetime) -> SigningKey:
    """Rotate the task-token signing key at ``now`` (aware): a new ES256 key becomes active and signs
    every token from then on; the previous active key becomes ``retiring`` — still published in the
    JWK Set (RFC 7517) and still verifying, so tokens in flight keep working until they expire. The
    first call, with no key yet, creates the first one. Returns the new key.

    IAM admins (or the system) only. One ``signing_key.rotate`` audit event, in the same transaction.
    Raises PermissionDenied, Conflict (a rotation at the same moment won).
    """
    if not (actor.is_system or is_iam_admin(actor.user)):
        raise PermissionDenied("Only IAM admins rotate the task-token signing key.")
    return _rotate(actor, now.astimezone(UTC))


def signing_keys_retire(*, now: datetime) -> dict[str, int]:
    """Retire every ``retiring`` key whose ``retiring_since + Policy.task_token_max_seconds +
    RETIRE_GRACE`` (300 s) has passed at ``now`` (aware, UTC) and that signed no token still
    unexpired: it is then neither published nor accepted. Set-based and idempotent (invariant 8):
    a second run finds nothing to do. One ``signing_key.retire`` audit event per key, by the system.
    Returns ``{"retired": n}``.
    """
    now = now.astimezone(UTC)
    policy = Policy.current()
    cutoff = now - timedelta(seconds=policy.task_token_max_seconds) - RETIRE_GRACE
    live_tokens = TaskToken.objects.filter(kid=OuterRef("kid"), expires_at__gt=now)
    with transaction.atomic():
        due = list(
            SigningKey.objects.select_for_update()
            .filter(status=SigningKey.Status.RETIRING, retiring_since__lte=cutoff)
            .filter(~Exists(live_tokens))
            .order_by("pk")
            .values_list("pk", "kid")
        )
        if not due:
            return {"retired": 0}
        SigningKey.objects.filter(pk__in=[pk for pk, _ in due], status=SigningKey.Status.RETIRING).update(
            status=SigningKey.Status.RETIRED, retired_at=now
        )
        object_type = object_type_of(SigningKey())
        audit_record_many(
            actor=Actor.system("signing-key retirement job"),
            events=(
                PendingEvent(
                    verb="signing_key.retire",
                    object_type=object_type,
                    object_id=str(pk),
                    object_label=f"Signing key {kid} (retired)",
                    before={"status": "retiring"},
                    after={"status": "retired"},
                )
                for pk, kid in due
            ),
            at=now,
        )
    return {"retired": len(due)}


def jwks() -> dict:
    """The JWK Set (RFC 7517 §5) of the keys that verify task tokens now — active and retiring —
    newest first: ``{"keys": [{"kty": "EC", "crv": "P-256", "x", "y", "kid", "use": "sig", "alg": "ES256"}, …]}``.
    Public keys only. A resource server verifies a task token against it (RFC 9068 §4)."""
    keys = SigningKey.objects.filter(status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.RETIRING])
    return {"keys": [dict(k.public_jwk) for k in keys.order_by("-created_at", "-id")]}


def _active_key(now: datetime) -> SigningKey:
    """The active signing key, made (by the system, audited) when there is none yet."""
    key = SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).first()
    return key if key is not None else _rotate(Actor.system("task-token signing"), now, first_only=True)


# --- subjects and actors ------------------------------------------------------------------------


def identity_subject(identity: WorkloadIdentity) -> str:
    """The ``sub`` of a task token for a workload identity: a SPIFFE ID as itself
    (``spiffe://example.org/agent``); an OIDC identity as ``issuer#subject``
    (``https://token.actions.githubusercontent.com#repo:acme/app:ref:refs/heads/main``); any other
    as ``type:identifier`` (``aws_iam_role:arn:aws:iam::123456789012:role/agent``,
    ``kubernetes_service_account:system:serviceaccount:ns:name``)."""
    if identity.type == WorkloadIdentity.Type.SPIFFE:
        return identity.identifier
    if identity.type == WorkloadIdentity.Type.OIDC:
        return f"{identity.issuer}#{identity.identifier}"
    return f"{identity.type}:{identity.identifier}"


def _agent_subject(agent: Agent) -> str:
    """An agent as an ``act`` subject: its workload identity when it has exactly one, else ``agent:<slug>``."""
    identities = list(agent.identities.all())
    return identity_subject(identities[0]) if len(identities) == 1 else f"agent:{agent.slug}"


def _actor_claim(ancestor_ids: tuple[int, ...]) -> dict | None:
    """The RFC 8693 §4.1 ``act`` claim for a grant whose ancestors are ``ancestor_ids`` (nearest first):
    ``{"sub": <nearest delegating agent>, "act": {"sub": <the one before>, …}}``, or None for a root grant."""
    if not ancestor_ids:
        return None
    grants = DelegationGrant.objects.filter(pk__in=ancestor_ids).select_related("agent")
    by_id = {g.pk: g for g in grants.prefetch_related("agent__identities")}
    act = None
    for gid in reversed(ancestor_ids):
        node = {"sub": _agent_subject(by_id[gid].agent)}
        if act is not None:
            node["act"] = act
        act = node
    return act


def _choose_identity(agent: Agent, workload_identity: int | None) -> WorkloadIdentity:
    identities = list(agent.identities.order_by("pk"))
    if not identities:
        raise ValidationError(
            {
                "workload_identity": f"{agent} has no workload identity to bind the token to; register a workload "
                "identity first."
            }  # fmt: skip
        )
    if workload_identity is None:
        if len(identities) > 1:
            ids = ", ".join(str(i.pk) for i in identities)
            raise ValidationError(
                {"workload_identity": f"{agent} has {len(identities)} workload identities; name one by id ({ids})."}
            )
        return identities[0]
    chosen = next((i for i in identities if i.pk == workload_identity), None)
    if chosen is None:
        raise ValidationError({"workload_identity": f"{workload_identity} is not a workload identity of {agent}."})
    return chosen


# --- issuing ------------------------------------------------------------------------------------


def _whole_second(value: datetime) -> datetime:
    """``value`` truncated to the whole second (JWT NumericDate, RFC 7519 §2): never later than asked."""
    return value.replace(microsecond=0)


def _whole_second_up(value: datetime) -> datetime:
    """``value`` rounded up to the whole second (JWT NumericDate, RFC 7519 §2): never earlier than asked."""
    return value if value.microsecond == 0 else value.replace(microsecond=0) + timedelta(seconds=1)


def _epoch(value: datetime) -> int:
    return math.floor(value.timestamp())


def _check_text(errors: dict, field: str, value, *, limit: int, spaces: bool) -> str:
    if not isinstance(value, str) or not value.strip():
        errors[field] = "Give a non-empty text."
        return ""
    value = value.strip()
    if len(value) > limit:
        errors[field] = f"At most {limit} characters."
    elif any(not ch.isprintable() or (not spaces and ch.isspace()) for ch in value):
        errors[field] = "No control characters" + ("." if spaces else " or spaces.")
    return value


def task_token_issue(
    *,
    actor: Actor,
    user,
    grant: DelegationGrant,
    task_id: str,
    ttl_seconds: int | None = None,
    audience: str | None = None,
    workload_identity: int | None = None,
    now: datetime,
) -> tuple[TaskToken, str]:
    """Issue a task token for one task under ``grant`` at ``now`` (aware); returns ``(row, jwt)``.

    ``user`` (the person whose permissions apply — ``actor.user`` for a person or an integration
    token) must be the agent's owner or backup owner or an IAM admin (``can_issue_task_token``).
    ``grant`` must authorise at ``now`` by ``delegations.decisions.grant_authority`` (the same rule
    as the runtime decision). ``task_id``: the caller's name for the task (1–200 characters).
    ``ttl_seconds``: 1 to ``Policy.task_token_max_seconds``, default ``Policy.task_token_default_seconds``.
    The token expires at ``now + ttl`` rounded up to the whole second — so it lives at least ``ttl``
    seconds and less than one more — or at the first end up the grant's chain rounded down, whichever
    comes first; ``iat``/``nbf`` are ``now`` rounded down. The row's ``issued_at`` is ``now`` exactly
    (introspection compares it with later agent and identity changes). ``audience``: the ``aud``
    (default ``settings.WARRANT_BASE_URL``). ``workload_identity``: the id of the agent's workload
    identity to bind into ``sub`` — needed only when it has several (ValidationError on
    ``workload_identity`` naming their ids otherwise, or when it has none).

    The JWT (RFC 9068, ``typ: at+jwt``, ES256, header ``kid``) is returned once and never stored;
    the row keeps its ``jti`` and claims. The first token ever issued makes the first signing key.
    One ``task_token.issue`` audit event (without the token). Raises PermissionDenied,
    ``GrantNotAuthorising`` (a Conflict, 409, with the reason codes: ``grant_not_approved`` for a
    pending or denied grant …), Conflict (the grant ends less than a second from now), ValidationError.
    """
    now = now.astimezone(UTC)
    policy = Policy.current()
    errors: dict[str, str] = {}
    task_id = _check_text(errors, "task_id", task_id, limit=MAX_TASK_ID, spaces=True)
    if audience is None:
        audience = settings.WARRANT_BASE_URL
    else:
        audience = _check_text(errors, "audience", audience, limit=MAX_AUDIENCE, spaces=False)
    if ttl_seconds is None:
        ttl_seconds = policy.task_token_default_seconds
    elif isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        errors["ttl_seconds"] = "Give a whole number of seconds."
    elif not 1 <= ttl_seconds <= policy.task_token_max_seconds:
        longest = policy.task_token_max_seconds
        errors["ttl_seconds"] = f"A task token lives 1 to {longest} seconds (the policy's longest)."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        grant = DelegationGrant.objects.select_for_update(of=("self",)).select_related("agent").get(pk=grant.pk)
        agent = grant.agent
        if not can_issue_task_token(user, agent):
            raise PermissionDenied("Only the agent's owner or backup owner and IAM admins may issue its task tokens.")
        authority = grant_authority(grant.pk, now=now)
        if not authority.ok:
            raise GrantNotAuthorising(grant, authority)
        identity = _choose_identity(agent, workload_identity)
        expires_at = min(_whole_second_up(now + timedelta(seconds=ttl_seconds)), _whole_second(authority.ends_at))
        if expires_at - now < timedelta(seconds=1):
            raise Conflict(f"Grant #{grant.pk} ends in less than a second; there is no time left for a task token.")
        scopes = [
            {"tool": s.tool_name, "access": s.access, "resource_pattern": s.resource_pattern}
            for s in grant.scopes.order_by("tool_name", "access", "resource_pattern")
        ]
        act = _actor_claim(authority.chain[1:])
        key = _active_key(now)
        row = TaskToken.objects.create(
            jti=uuid.uuid4(),
            grant=grant,
            agent=agent,
            task_id=task_id,
            subject=identity_subject(identity),
            scopes=scopes,
            act=act,
            audience=audience,
            kid=key.kid,
            issued_at=now,
            expires_at=expires_at,
            issued_by=user if getattr(user, "is_authenticated", False) else None,
            issued_via=actor.label[:200] if actor.type == "integration" else "",
        )
        claims = {
            "iss": settings.WARRANT_BASE_URL,
            "sub": row.subject,
            "aud": audience,
            "iat": _epoch(now),
            "nbf": _epoch(now),
            "exp": _epoch(expires_at),
            "jti": str(row.jti),
            "client_id": agent.slug,
            "scope": scope_string(scopes),
            "warrant_scopes": scopes,
            "grant_id": grant.pk,
            "task_id": task_id,
            "agent": agent.slug,
        }
        if act is not None:
            claims["act"] = act
        token = jwt.encode(claims, _private_key(key), algorithm=ALGORITHM, headers={"kid": key.kid, "typ": TOKEN_TYPE})
        audit_record(
            actor=actor,
            verb="task_token.issue",
            obj=row,
            after=to_json(
                {
                    "jti": str(row.jti),
                    "grant": grant.pk,
                    "agent": agent.slug,
                    "task_id": task_id,
                    "sub": row.subject,
                    "scope": claims["scope"],
                    "aud": audience,
                    "kid": key.kid,
                    "issued_at": now,
                    "expires_at": expires_at,
                }
            ),
            at=now,
        )
    return row, token


def scope_string(scopes: list[dict]) -> str:
    """The OAuth ``scope`` value of ``scopes`` (RFC 8693 §4.2): distinct ``tool:access``, space-separated, in order."""
    return " ".join(dict.fromkeys(f"{s['tool']}:{s['access']}" for s in scopes))


# --- verifying ----------------------------------------------------------------------------------


def _verify(token) -> _Verified | None:
    """Check ``token``'s header (``typ: at+jwt``, ``alg: ES256``, a ``kid`` of an active or retiring key),
    its ES256 signature against that key, its issuer and the presence and types of its claims.

    Times are *not* checked here (PyJWT's exp/nbf/iat checks are off, since they read the wall
    clock): callers compare ``exp`` and ``nbf`` with their own ``now``. None for anything that fails:
    a forged or tampered token, ``alg: none``, an HMAC token keyed with the public key, an unknown
    or retired ``kid``, a malformed text.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError):
        return None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE or not isinstance(kid, str):
        return None
    key = SigningKey.objects.filter(kid=kid, status__in=[SigningKey.Status.ACTIVE, SigningKey.Status.RETIRING]).first()
    if key is None:
        return None
    try:
        public_key = ECAlgorithm.from_jwk(key.public_jwk)
        claims = jwt.decode(
            token,
            key=public_key,
            algorithms=[ALGORITHM],
            issuer=settings.WARRANT_BASE_URL,
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "require": _REQUIRED_CLAIMS,
            },
        )
    except (jwt.PyJWTError, ValueError):
        return None
    times = [claims.get(name) for name in ("exp", "nbf", "iat")]
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        return None
    if not isinstance(claims.get("grant_id"), int) or not isinstance(claims.get("jti"), str):
        return None
    try:
        jti = uuid.UUID(claims["jti"])
        exp, nbf = (datetime.fromtimestamp(t, UTC) for t in times[:2])
    except (ValueError, OverflowError, OSError):
        return None
    return _Verified(claims, kid, jti, exp, nbf)


def task_token_find(token: str) -> TaskToken | None:
    """The ``TaskToken`` row of a token whose signature verifies (``_verify``), whatever its lifetime
    or revocation; None for a token Warrant did not sign or does not know. For RFC 7009 revocation."""
    verified = _verify(token)
    if verified is None:
        return None
    row = TaskToken.objects.select_related("agent").filter(jti=verified.jti).first()
    if row is None or row.kid != verified.kid or row.grant_id != verified.claims["grant_id"]:
        return None
    return row


# --- revoking -----------------------------------------------------------------------------------


def task_token_revoke(
    *,
    actor: Actor,
    user,
    token: TaskToken | None = None,
    jti: uuid.UUID | str | None = None,
    reason: str = "",
    now: datetime,
) -> TaskToken:
    """Revoke a task token at ``now`` (aware), named by its row (``token``) or its ``jti`` (a UUID) —
    exactly one. Introspection answers ``{"active": false}`` for it from then on (RFC 7009 §2).

    Who may: whoever may issue it (``can_issue_task_token``: the agent's owner or backup owner, IAM
    admins) or the system. Idempotent: a token already revoked is returned unchanged, with no
    second audit event. One ``task_token.revoke`` audit event. Raises ValidationError (neither or
    both named; a jti that is not a UUID), ``TaskToken.DoesNotExist`` (404), PermissionDenied.
    """
    now = now.astimezone(UTC)
    if (token is None) == (jti is None):
        raise ValidationError({"token": "Name the token or its jti (one of them)."})
    if jti is not None and not isinstance(jti, uuid.UUID):
        try:
            jti = uuid.UUID(str(jti))
        except ValueError:
            raise ValidationError({"jti": "A task token's jti is a UUID."}) from None
    reason = (reason or "").strip()
    with transaction.atomic():
        rows = TaskToken.objects.select_for_update(of=("self",)).select_related("agent")
        row = rows.get(pk=token.pk) if token is not None else rows.get(jti=jti)
        if not (actor.is_system or can_issue_task_token(user, row.agent)):
            raise PermissionDenied("Only the agent's owner or backup owner and IAM admins may revoke its task tokens.")
        if row.revoked_at is not None:
            return row
        row.revoked_at = now
        row.revoked_by = actor.label[:200]
        row.revoke_reason = reason
        row.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
        audit_record(
            actor=actor,
            verb="task_token.revoke",
            obj=row,
            before={"revoked_at": None},
            after=to_json({"revoked_at": now, "reason": reason, "jti": str(row.jti), "grant": row.grant_id}),
            at=now,
        )
    return row


# --- introspecting ------------------------------------------------------------------------------


def _still_bound(row: TaskToken) -> bool:
    """True while the workload identity bound into the token's ``sub`` is still one of its agent's and
    was there when the token was issued: an identity removed and re-added (``created_at`` later than
    the token's ``issued_at``) does not bring the token back."""
    return any(identity_subject(i) == row.subject and i.created_at <= row.issued_at for i in row.agent.identities.all())


def _agent_unchanged(row: TaskToken) -> bool:
    """True while the token's agent has not changed state since the token was issued. Tokens are issued
    only to active agents, so a later ``state_changed_at`` means the agent left active (suspended,
    decommissioned) at some point: its tokens stay dead even once it is reactivated — a suspension ends
    every token in flight for good."""
    return row.agent.state_changed_at <= row.issued_at


def task_token_introspect(token: str, *, now: datetime, viewer=None) -> dict:
    """The RFC 7662 §2.2 introspection response for ``token`` at ``now`` (aware; UTC).

    ``{"active": false}`` — and nothing else — when the token is malformed, its signature does not
    verify against an active or retiring key (``_verify``), ``exp <= now`` or ``now < nbf`` (whole
    seconds: active at ``exp`` minus one microsecond, inactive at ``exp``), its ``jti`` is unknown,
    it was revoked, the workload identity it is bound to was removed from its agent or (re-)added
    after the token was issued (``_still_bound``), its agent's state changed after the token was
    issued — even if the agent is active again (``_agent_unchanged``) —, its grant does not
    authorise at ``now`` (``grant_authority``: grant or a grant up its chain revoked or expired,
    agent not active, attestation overdue), or ``viewer`` (a user; None for no restriction) may not
    see its agent (``inventory.permissions.can_view_agent``: owners their agents', IAM admins and
    auditors all) — so a caller learns nothing of other people's tokens.

    Otherwise ``{"active": true, "scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf",
    "jti", "token_type": "Bearer", "grant_id", "task_id", "warrant_scopes"}`` and ``act`` for a
    delegated grant. Never raises for any input.
    """
    now = now.astimezone(UTC)
    verified = _verify(token)
    if verified is None or now >= verified.exp or now < verified.nbf:
        return dict(INACTIVE)
    row = (
        TaskToken.objects.select_related("agent").prefetch_related("agent__identities").filter(jti=verified.jti).first()
    )
    claims = verified.claims
    if row is None or row.kid != verified.kid or row.grant_id != claims["grant_id"] or row.revoked_at is not None:
        return dict(INACTIVE)
    if viewer is not None and not can_view_agent(viewer, row.agent):
        return dict(INACTIVE)
    if not _agent_unchanged(row) or not _still_bound(row) or not grant_authority(row.grant_id, now=now).ok:
        return dict(INACTIVE)
    response = {
        "active": True,
        "scope": claims.get("scope", ""),
        "client_id": claims["client_id"],
        "sub": claims["sub"],
        "aud": claims["aud"],
        "iss": claims["iss"],
        "exp": claims["exp"],
        "iat": claims["iat"],
        "nbf": claims["nbf"],
        "jti": claims["jti"],
        "token_type": "Bearer",
        "grant_id": claims["grant_id"],
        "task_id": claims["task_id"],
        "warrant_scopes": claims.get("warrant_scopes", []),
    }
    if claims.get("act") is not None:
        response["act"] = claims["act"]
    return response
