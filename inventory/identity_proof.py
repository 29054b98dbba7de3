"""Workload identity proof: the trusted-issuer registry and the verification of identity tokens.

An agent runtime proves which workload identity it acts as by presenting an *identity token*:
an OIDC ID token (or any JWT from an OIDC provider, e.g. a Kubernetes service account token) or a
SPIFFE JWT-SVID. ``verify_identity_token`` checks it against the ``TrustedIssuer`` rows and
returns the subject as the columns of ``inventory.WorkloadIdentity`` (OWASP NHI Top 10 (2025)
NHI4: authenticate non-human identities with short-lived, verifiable credentials).

Verification is PyJWT's (``jwt.decode``): this module only selects the issuer, the key and the
rules, and checks time against the caller's ``now``. Standards: RFC 7515/7517/7519 (JWS, JWK,
JWT), RFC 8725 (JWT best current practices: algorithm allow-lists, no ``none``, no HMAC with a
public key), OpenID Connect Core 1.0 §2 and Discovery 1.0 §4 (``iss`` is an https URL without
query or fragment), SPIFFE-ID and JWT-SVID (the ``sub`` is a SPIFFE ID in the trust domain whose
keys signed the token; ``aud`` and ``exp`` required; RS/ES/PS algorithms only).

Refusal messages are read by agent owners (decision reasons): they say what was wrong in plain
words, echo at most ``MAX_ECHOED_CHARS`` characters of any value the token carries, and never
carry an exception's text (a TLS or decoder error goes to this module's logger instead). A JWKS
URL must name a public host (``jwks_url_problem``: no loopback, link-local, private, unspecified
or multicast address, against server-side request forgery; OWASP SSRF Prevention Cheat Sheet).

Writes to the registry go through ``trusted_issuer_create`` / ``_update`` / ``_delete`` (IAM
admins; audited in the same transaction, DESIGN.md invariant 2).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from jwt.exceptions import InvalidSubjectError

from governance.audit import Actor, audit_record, snapshot
from governance.errors import PermissionDenied, ValidationError
from governance.roles import can_read_all, is_iam_admin

from .models import TrustedIssuer, default_issuer_algorithms

logger = logging.getLogger(__name__)

#: Signature algorithms an issuer may accept: asymmetric only (RFC 7518 §3.3–3.5, RFC 8037).
#: ``none`` and the HMAC family (HS256/384/512) are never accepted (RFC 8725 §2.1, §3.1).
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
#: The algorithms the JWT-SVID specification (§2.1) allows; validators must reject any other.
JWT_SVID_ALGORITHMS = tuple(a for a in ASYMMETRIC_ALGORITHMS if a != "EdDSA")
#: Header parameters a JWT-SVID may carry (JWT-SVID §2: any other MUST NOT be included).
JWT_SVID_HEADER_PARAMETERS = frozenset({"alg", "kid", "typ"})
#: JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
PUBLIC_KEY_TYPES = ("RSA", "EC", "OKP")
MIN_RSA_KEY_BITS = 2048

#: How long a fetched JWK Set is used before it is fetched again, in seconds.
JWKS_CACHE_SECONDS = 300
#: How long one fetch of a JWK Set may wait on the network, in seconds (per connect and per read).
JWKS_FETCH_TIMEOUT_SECONDS = 3
#: After a failed fetch, tokens of that JWKS URL are refused at once (``jwks_unavailable``, no
#: network) for this many seconds, so that an unreachable issuer costs one timeout per window
#: instead of one per token (a batch of decisions would otherwise outlast the web worker).
JWKS_FAILURE_CACHE_SECONDS = 30
#: After a refetch forced by an unknown ``kid``, the next one waits this long (seconds), so that
#: tokens naming made-up keys cannot make Warrant fetch the issuer's key set on every request.
JWKS_REFRESH_COOLDOWN_SECONDS = 30
#: At most this many JWKS URLs keep a cached client in one process.
JWKS_CLIENTS_MAX = 64

MAX_TOKEN_LENGTH = 16 * 1024
MAX_STATIC_JWKS_KEYS = 20
MAX_STATIC_JWKS_BYTES = 64 * 1024
MAX_AUDIENCES = 20
MAX_AUDIENCE_LENGTH = 300
#: The longest ``sub`` that can name a workload identity (``WorkloadIdentity.identifier``).
MAX_SUBJECT_LENGTH = 500
#: SPIFFE-ID §2.3: implementations must support SPIFFE IDs up to 2048 bytes.
MAX_SPIFFE_ID_BYTES = 2048
#: The largest NumericDate accepted (9999-12-31T23:59:59Z).
MAX_NUMERIC_DATE = 253402300799

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
#: The longest value from a token that a message echoes, in characters; a longer one is cut to
#: this length, ending in "…".
MAX_ECHOED_CHARS = 64

#: The clock of the JWKS caches: seconds, monotonic. Tests replace it to move time.
jwks_clock: Callable[[], float] = time.monotonic

_SPIFFE_SCHEME = "spiffe://"
_TRUST_DOMAIN_RE = re.compile(r"[a-z0-9._-]+\Z")
_PATH_SEGMENT_RE = re.compile(r"[A-Za-z0-9._-]+\Z")


# --- errors and results ---------------------------------------------------------------------


class IdentityTokenError(Exception):
    """An identity token was refused. ``code`` says why (one of ``CODES``), ``message`` in words.

    Codes: ``token_malformed``, ``issuer_unknown``, ``algorithm_not_allowed``, ``key_unknown``,
    ``signature_invalid``, ``token_expired``, ``token_not_yet_valid``, ``audience_mismatch``,
    ``claim_missing``, ``subject_invalid``, ``jwks_unavailable``. Messages name what was wrong
    but never echo the token.
    """

    CODES = frozenset(
        {
            "token_malformed",
            "issuer_unknown",
            "algorithm_not_allowed",
            "key_unknown",
            "signature_invalid",
            "token_expired",
            "token_not_yet_valid",
            "audience_mismatch",
            "claim_missing",
            "subject_invalid",
            "jwks_unavailable",
        }
    )

    def __init__(self, code: str, message: str):
        if code not in self.CODES:
            raise ValueError(f"unknown identity token error code {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _echo(value) -> str:
    """``value`` (from a token) quoted for a message: at most ``MAX_ECHOED_CHARS`` characters,
    a longer one cut and ending in "…", unprintable characters shown as "?"."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_ECHOED_CHARS:
        text = text[: MAX_ECHOED_CHARS - 1] + "…"
    return "'" + "".join(ch if ch.isprintable() else "?" for ch in text) + "'"


def _keys_unavailable(issuer: TrustedIssuer) -> IdentityTokenError:
    """The one ``jwks_unavailable`` refusal an owner reads, whatever the cause (logged apart)."""
    return IdentityTokenError(
        "jwks_unavailable", f"The signing keys of issuer {issuer.name!r} could not be fetched or read."
    )


@dataclass(frozen=True)
class VerifiedSubject:
    """The workload a verified identity token speaks for, as ``inventory.WorkloadIdentity`` columns.

    - OIDC: ``type="oidc"``, ``issuer`` the token's ``iss``, ``identifier`` its ``sub``.
    - SPIFFE: ``type="spiffe"``, ``issuer=""``, ``identifier`` the SPIFFE ID (the ``sub``).

    ``issuer_name`` is the ``TrustedIssuer.name`` that vouched for it; ``expires_at`` the token's
    ``exp`` (aware, UTC).
    """

    type: str
    issuer: str
    identifier: str
    issuer_name: str
    expires_at: datetime


# --- SPIFFE IDs and URLs --------------------------------------------------------------------


def parse_spiffe_id(value: str, *, require_path: bool = True) -> str:
    """The trust domain ID (``spiffe://<trust domain>``) of the SPIFFE ID ``value``.

    Follows SPIFFE-ID §2 strictly: scheme ``spiffe``; a trust domain of lowercase letters,
    digits, dots, dashes and underscores (so no user info, port, percent-encoding or uppercase);
    path segments of letters, digits, dots, dashes and underscores, none empty, ``.`` or ``..``,
    no trailing ``/``; no query or fragment; at most 2048 bytes. With ``require_path`` the ID
    must have a path: a workload's ID, not the trust domain's own. Raises ``ValueError`` with the
    reason.
    """
    if not isinstance(value, str):
        raise ValueError("A SPIFFE ID is a string.")
    if len(value.encode()) > MAX_SPIFFE_ID_BYTES:
        raise ValueError(f"A SPIFFE ID is at most {MAX_SPIFFE_ID_BYTES} bytes.")
    if not value.startswith(_SPIFFE_SCHEME):
        raise ValueError("A SPIFFE ID starts with spiffe://.")
    trust_domain, slash, path = value[len(_SPIFFE_SCHEME) :].partition("/")
    if not trust_domain:
        raise ValueError("A SPIFFE ID names its trust domain: spiffe://example.org/….")
    if not _TRUST_DOMAIN_RE.match(trust_domain) or len(trust_domain) > 255:
        raise ValueError(
            "A trust domain holds only lowercase letters, digits, dots, dashes and underscores "
            "(no user info, port, percent-encoding, query or fragment)."
        )
    if not slash:
        if require_path:
            raise ValueError("A workload's SPIFFE ID has a path after its trust domain.")
        return _SPIFFE_SCHEME + trust_domain
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError("A SPIFFE ID path has no empty, '.' or '..' segments and no trailing '/'.")
        if not _PATH_SEGMENT_RE.match(segment):
            raise ValueError(
                "A SPIFFE ID path segment holds only letters, digits, dots, dashes and underscores "
                "(no percent-encoding, query or fragment)."
            )
    return _SPIFFE_SCHEME + trust_domain


def _claimed_trust_domain(sub) -> str | None:
    """``spiffe://<host>`` read leniently from a ``sub`` that looks like a SPIFFE ID, to find its
    issuer; the strict check (``parse_spiffe_id``) comes after the signature."""
    if not isinstance(sub, str) or sub[: len(_SPIFFE_SCHEME)].lower() != _SPIFFE_SCHEME:
        return None
    authority = re.split(r"[/?#]", sub[len(_SPIFFE_SCHEME) :], maxsplit=1)[0]
    host = authority.rpartition("@")[2].partition(":")[0].lower()
    return _SPIFFE_SCHEME + host if host else None


def http_jwks_allowed() -> bool:
    """True when ``http://`` to a loopback host is allowed for JWKS URLs and OIDC issuers:
    ``settings.DEBUG`` or ``settings.WARRANT_ALLOW_HTTP_JWKS`` (default False)."""
    return bool(settings.DEBUG or getattr(settings, "WARRANT_ALLOW_HTTP_JWKS", False))


def _https_url_problem(value: str, *, what: str) -> str | None:
    """Why ``value`` is not an acceptable https URL (http only to 127.0.0.1/localhost/::1 when
    ``http_jwks_allowed()``), or None."""
    if not isinstance(value, str) or not value:
        return f"Give the {what}."
    if value != value.strip() or any(ch.isspace() for ch in value):
        return f"The {what} contains spaces."
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        return f"The {what} is not a valid URL."
    if parts.scheme == "http" and host in LOOPBACK_HOSTS and http_jwks_allowed():
        pass
    elif parts.scheme != "https":
        hint = " (http:// only to 127.0.0.1 or localhost, and only when DEBUG or WARRANT_ALLOW_HTTP_JWKS is on)"
        return f"The {what} must use https://{hint}."
    if not host:
        return f"The {what} names no host."
    if parts.username is not None or parts.password is not None:
        return f"The {what} must not carry user info."
    if parts.fragment or value.endswith("#"):
        return f"The {what} must not have a fragment."
    return None


#: Shorthand IPv4 forms the system resolver reads as addresses (``127.1``, ``2130706433``,
#: ``0x7f.0.0.1``, ``0177.0.0.1``), which ``ipaddress`` does not accept.
_IPV4_SHORTHAND_RE = re.compile(r"[0-9a-fx.]+\Z")


def _ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` (lowercase, IDNA-encoded) spells, or None for a host name; an
    IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is its IPv4 address."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if not _IPV4_SHORTHAND_RE.match(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _jwks_host_problem(host: str) -> str | None:
    """Why Warrant must not fetch keys from ``host`` (a URL's host name or IP literal), or None.

    Refused, against server-side request forgery (OWASP SSRF Prevention Cheat Sheet; cloud
    metadata answers at the link-local 169.254.169.254): IP literals that are loopback,
    link-local, private (RFC 1918, RFC 4193 fc00::/7, and the other non-global ranges of RFC 6890),
    unspecified or multicast, in any spelling the resolver accepts (``127.1``, ``2130706433``,
    IPv4-mapped IPv6, full-width digits), and the names ``localhost`` / ``*.localhost``
    (RFC 6761 §6.3). Loopback (127.0.0.0/8, ::1, localhost) stays allowed while
    ``http_jwks_allowed()``, for development identity providers. Host names are not resolved.
    """
    try:
        name = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        return "The JWKS URL's host is not a valid host name."
    kind: str | None
    if name == "localhost" or name.endswith(".localhost"):
        kind = "loopback"
    else:
        address = _ip_literal(name)
        if address is None:
            return None
        if address.is_loopback:
            kind = "loopback"
        elif address.is_link_local:
            kind = "link-local"
        elif address.is_unspecified:
            kind = "unspecified"
        elif address.is_multicast:
            kind = "multicast"
        elif address.is_private:
            kind = "private"
        elif not address.is_global:
            kind = "reserved (non-public)"
        else:
            kind = None
    if kind is None or (kind == "loopback" and http_jwks_allowed()):
        return None
    hint = " (loopback only when DEBUG or WARRANT_ALLOW_HTTP_JWKS is on)" if kind == "loopback" else ""
    return f"The JWKS URL's host is a {kind} address; Warrant fetches signing keys only from public hosts{hint}."


def jwks_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a JWKS URL, or None: https only (see ``http_jwks_allowed``), a public
    host (``_jwks_host_problem``: no loopback, link-local, private, unspecified or multicast
    address, no ``localhost``), and no literal secret in it (DESIGN.md invariant 9; rules in
    ``inventory.secrets``)."""
    from .secrets import url_refusal

    problem = _https_url_problem(url, what="JWKS URL")
    if problem:
        return problem
    return _jwks_host_problem(urlsplit(url).hostname) or url_refusal(url)


def oidc_issuer_problem(issuer: str) -> str | None:
    """Why ``issuer`` cannot be an OIDC issuer identifier, or None: an https URL with a host and
    no query or fragment (OpenID Connect Core 1.0 §2, Discovery 1.0 §4), compared exactly."""
    problem = _https_url_problem(issuer, what="issuer")
    if problem:
        return problem
    if urlsplit(issuer).query or "?" in issuer:
        return "The issuer must not have a query."
    return None


# --- keys -----------------------------------------------------------------------------------


def _key_label(index: int, jwk: dict) -> str:
    kid = jwk.get("kid")
    return f"Key {index + 1}" + (f" (kid {kid!r})" if isinstance(kid, str) else "")


def _usable_uses(kind: str) -> frozenset:
    """The JWK ``use`` values whose keys verify this kind's tokens: ``sig`` or unset; for SPIFFE
    also ``jwt-svid`` (JWT-SVID §6.2). Keys marked ``x509-svid`` or ``enc`` never verify a JWT."""
    return frozenset({None, "sig", "jwt-svid"} if kind == TrustedIssuer.Kind.SPIFFE else {None, "sig"})


def static_jwks_problem(jwks, *, kind: str) -> str | None:
    """Why ``jwks`` cannot be an issuer's static JWK Set, or None.

    It must be ``{"keys": [...]}`` with 1–20 keys, at most 64 KiB of JSON, parsable by
    ``jwt.PyJWKSet``; every key public (RSA, EC or OKP, none of the private members
    ``d p q dp dq qi oth k``), RSA keys of at least 2048 bits, ``kid`` values distinct, and at
    least one key usable for signatures of ``kind`` (RFC 7517 §4.2, §5; JWT-SVID §6).
    """
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        return 'A JWK Set is a JSON object {"keys": [...]}.'
    keys = jwks["keys"]
    if not keys:
        return "The JWK Set holds no keys."
    if len(keys) > MAX_STATIC_JWKS_KEYS:
        return f"The JWK Set holds {len(keys)} keys; at most {MAX_STATIC_JWKS_KEYS}."
    try:
        size = len(json.dumps(jwks))
    except (TypeError, ValueError):
        return "The JWK Set is not plain JSON."
    if size > MAX_STATIC_JWKS_BYTES:
        return f"The JWK Set is {size} bytes of JSON; at most {MAX_STATIC_JWKS_BYTES}."
    kids: set[str] = set()
    usable = 0
    for index, jwk in enumerate(keys):
        if not isinstance(jwk, dict):
            return f"Key {index + 1} is not a JSON object."
        label = _key_label(index, jwk)
        private = [member for member in PRIVATE_JWK_MEMBERS if member in jwk]
        if private:
            return f"{label} holds private key material ({', '.join(private)}); publish public keys only."
        if jwk.get("kty") not in PUBLIC_KEY_TYPES:
            return f"{label}: key type {jwk.get('kty')!r} is not accepted; only {', '.join(PUBLIC_KEY_TYPES)}."
        try:
            parsed = jwt.PyJWK(jwk)
        except jwt.PyJWTError as exc:
            return f"{label} is not a usable public key: {exc}"
        if not _is_public_key(parsed.key):
            return f"{label} is not a public key."
        if isinstance(parsed.key, rsa.RSAPublicKey) and parsed.key.key_size < MIN_RSA_KEY_BITS:
            return f"{label} is a {parsed.key.key_size}-bit RSA key; at least {MIN_RSA_KEY_BITS} bits."
        kid = jwk.get("kid")
        if kid is not None:
            if not isinstance(kid, str):
                return f"{label}: kid must be a string."
            if kid in kids:
                return f"Two keys share the kid {kid!r}."
            kids.add(kid)
        if jwk.get("use") in _usable_uses(kind):
            usable += 1
    if not usable:
        uses = "sig, jwt-svid or no use" if kind == TrustedIssuer.Kind.SPIFFE else "sig or no use"
        return f"No key can verify signatures (use {uses})."
    try:
        jwt.PyJWKSet.from_dict(jwks)
    except jwt.PyJWTError as exc:
        return f"The JWK Set cannot be read: {exc}"
    return None


def _is_public_key(key) -> bool:
    return isinstance(
        key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
    )


#: Which key each algorithm needs: the JWK key type and, for ECDSA, the curve (RFC 7518 §3.4).
_ALGORITHM_KEYS = {
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), ("RSA", None)),
    "ES256": ("EC", "secp256r1"),
    "ES384": ("EC", "secp384r1"),
    "ES512": ("EC", "secp521r1"),
    "EdDSA": ("OKP", None),
}


def _fits(key: jwt.PyJWK, alg: str) -> bool:
    """True if ``key`` is the kind of public key ``alg`` verifies with (RSA for RS*/PS*, the named
    curve for ES*, Ed25519/Ed448 for EdDSA)."""
    kty, curve = _ALGORITHM_KEYS[alg]
    if key.key_type != kty or not _is_public_key(key.key):
        return False
    return curve is None or key.key.curve.name == curve


# --- the registry: rules for one row --------------------------------------------------------


def _audiences_problem(audiences) -> str | None:
    if not isinstance(audiences, list) or not audiences:
        return "Give at least one audience (a list of strings): the aud values this issuer's tokens carry for Warrant."
    if len(audiences) > MAX_AUDIENCES:
        return f"At most {MAX_AUDIENCES} audiences."
    for value in audiences:
        if not isinstance(value, str) or not value.strip():
            return "Each audience is a non-empty string."
        if value != value.strip() or len(value) > MAX_AUDIENCE_LENGTH:
            return f"Each audience is at most {MAX_AUDIENCE_LENGTH} characters, without surrounding spaces."
    if len(set(audiences)) != len(audiences):
        return "Audiences must not repeat."
    return None


def _algorithms_problem(algorithms, *, kind: str) -> str | None:
    if not isinstance(algorithms, list) or not algorithms:
        return 'Give at least one algorithm (a list), e.g. ["RS256", "ES256"].'
    allowed = JWT_SVID_ALGORITHMS if kind == TrustedIssuer.Kind.SPIFFE else ASYMMETRIC_ALGORITHMS
    for alg in algorithms:
        if not isinstance(alg, str):
            return "Each algorithm is a string."
        if alg.lower() == "none":
            return "'none' means an unsigned token; it is never accepted."
        if alg.upper().startswith("HS"):
            return f"{alg} uses a shared secret; only asymmetric algorithms are accepted: {', '.join(allowed)}."
        if alg not in allowed:
            spec = " (the JWT-SVID specification allows RS*, ES* and PS* only)" if alg in ASYMMETRIC_ALGORITHMS else ""
            return f"{alg} is not accepted{spec}. Allowed: {', '.join(allowed)}."
    if len(set(algorithms)) != len(algorithms):
        return "Algorithms must not repeat."
    return None


def trusted_issuer_errors(issuer: TrustedIssuer) -> dict[str, str]:
    """Field-keyed reasons why ``issuer`` (one ``TrustedIssuer`` row) is invalid; empty when valid.

    - ``issuer``: OIDC — an https URL without query or fragment; SPIFFE — a trust domain ID,
      ``spiffe://example.org`` (no path), per SPIFFE-ID §2.1.
    - ``jwks_url`` / ``jwks``: exactly one; the URL https (``jwks_url_problem``), the set public
      keys only (``static_jwks_problem``).
    - ``audiences``: 1–20 distinct non-empty strings. ``algorithms``: 1–10 distinct asymmetric
      algorithms (``ASYMMETRIC_ALGORITHMS``; SPIFFE: ``JWT_SVID_ALGORITHMS``).
    - ``clock_skew_seconds`` (0–300) is checked by the field itself.
    """
    errors: dict[str, str] = {}
    kind = issuer.kind
    if kind == TrustedIssuer.Kind.OIDC:
        problem = oidc_issuer_problem(issuer.issuer)
        if problem:
            errors["issuer"] = problem
    elif kind == TrustedIssuer.Kind.SPIFFE:
        try:
            trust_domain_id = parse_spiffe_id(issuer.issuer, require_path=False)
        except ValueError as exc:
            errors["issuer"] = f"{exc} Give the trust domain as spiffe://example.org."
        else:
            if trust_domain_id != issuer.issuer:
                errors["issuer"] = "Give the trust domain alone, spiffe://example.org, without a path."
    has_url, has_set = bool(issuer.jwks_url), issuer.jwks is not None
    if has_url and has_set:
        errors["jwks"] = "Give either a JWKS URL or a static JWK Set, not both."
    elif not has_url and not has_set:
        errors["jwks_url"] = "Give a JWKS URL or a static JWK Set."
    elif has_url:
        problem = jwks_url_problem(issuer.jwks_url)
        if problem:
            errors["jwks_url"] = problem
    else:
        problem = static_jwks_problem(issuer.jwks, kind=kind)
        if problem:
            errors["jwks"] = problem
    problem = _audiences_problem(issuer.audiences)
    if problem:
        errors["audiences"] = problem
    problem = _algorithms_problem(issuer.algorithms, kind=kind)
    if problem:
        errors["algorithms"] = problem
    return errors


# --- the registry: services and selector ----------------------------------------------------

TRUSTED_ISSUER_FIELDS = (
    "name",
    "kind",
    "issuer",
    "jwks_url",
    "jwks",
    "audiences",
    "algorithms",
    "clock_skew_seconds",
    "enabled",
)
#: Fields ``trusted_issuer_update`` changes; the kind is fixed (register another issuer instead).
TRUSTED_ISSUER_EDITABLE = tuple(f for f in TRUSTED_ISSUER_FIELDS if f != "kind")


def _require_admin(actor: Actor, what: str) -> None:
    if not (actor.is_system or is_iam_admin(actor.user)):
        raise PermissionDenied(f"Only IAM admins may {what}.")


def trusted_issuer_list(*, user) -> QuerySet[TrustedIssuer]:
    """Every trusted issuer, for IAM admins and auditors. Raises PermissionDenied for anyone else."""
    if not can_read_all(user):
        raise PermissionDenied("Only IAM admins and auditors may see trusted issuers.")
    return TrustedIssuer.objects.order_by("name", "id")


def trusted_issuer_create(
    *,
    actor: Actor,
    name: str,
    kind: str,
    issuer: str,
    audiences: list[str],
    jwks_url: str = "",
    jwks: dict | None = None,
    algorithms: list[str] | None = None,
    clock_skew_seconds: int = 60,
    enabled: bool = True,
) -> TrustedIssuer:
    """Register an issuer whose identity tokens Warrant accepts (IAM admins), audited as
    ``trusted_issuer.create``. ``jwks_url`` or ``jwks``, exactly one; ``algorithms`` default
    ``["RS256", "ES256"]``; ``clock_skew_seconds`` 0–300. Raises PermissionDenied,
    ValidationError (field-keyed; see ``trusted_issuer_errors``)."""
    _require_admin(actor, "register trusted issuers")
    now = timezone.now()
    with transaction.atomic():
        row = TrustedIssuer(
            name=name,
            kind=kind,
            issuer=issuer,
            jwks_url=jwks_url or "",
            jwks=jwks,
            audiences=audiences,
            algorithms=list(algorithms) if algorithms is not None else default_issuer_algorithms(),
            clock_skew_seconds=clock_skew_seconds,
            enabled=enabled,
            created_at=now,
            updated_at=now,
        )
        row.full_clean()
        row.save()
        audit_record(
            actor=actor, verb="trusted_issuer.create", obj=row, after=snapshot(row, TRUSTED_ISSUER_FIELDS), at=now
        )
    return row


def trusted_issuer_update(*, actor: Actor, trusted_issuer: TrustedIssuer, **changes) -> TrustedIssuer:
    """Change a trusted issuer's fields (IAM admins; not its ``kind``), audited as
    ``trusted_issuer.update`` with the changed fields before and after. Switching the key source
    means sending both ``jwks_url`` and ``jwks`` (one of them empty/None).
    Raises PermissionDenied, ValidationError."""
    _require_admin(actor, "change trusted issuers")
    unknown = set(changes) - set(TRUSTED_ISSUER_EDITABLE)
    if unknown:
        raise ValidationError({k: "This field cannot be changed." for k in sorted(unknown)})
    now = timezone.now()
    with transaction.atomic():
        row = TrustedIssuer.objects.select_for_update().get(pk=trusted_issuer.pk)
        before = snapshot(row, changes)
        for field, value in changes.items():
            setattr(row, field, "" if field == "jwks_url" and value is None else value)
        row.updated_at = now
        row.full_clean()
        row.save()
        audit_record(
            actor=actor,
            verb="trusted_issuer.update",
            obj=row,
            before=before,
            after=snapshot(row, changes),
            at=now,
        )
    return row


def trusted_issuer_delete(*, actor: Actor, trusted_issuer: TrustedIssuer) -> None:
    """Remove a trusted issuer (IAM admins): its tokens are refused from then on
    (``issuer_unknown``). Audited as ``trusted_issuer.delete`` with the row before.
    To stop trusting it for a while, set ``enabled`` false instead. Raises PermissionDenied."""
    _require_admin(actor, "remove trusted issuers")
    with transaction.atomic():
        row = TrustedIssuer.objects.select_for_update().get(pk=trusted_issuer.pk)
        audit_record(actor=actor, verb="trusted_issuer.delete", obj=row, before=snapshot(row, TRUSTED_ISSUER_FIELDS))
        row.delete()


# --- remote key sets ------------------------------------------------------------------------


class _RecentFailure(Exception):
    """A JWKS URL failed less than ``JWKS_FAILURE_CACHE_SECONDS`` ago; no fetch was tried."""


class _RemoteKeySet:
    """A JWKS URL's keys: fetched through ``jwt.PyJWKClient`` (https, no redirects, a
    ``JWKS_FETCH_TIMEOUT_SECONDS`` network timeout), the parsed set kept ``JWKS_CACHE_SECONDS``,
    at most one refetch per ``JWKS_REFRESH_COOLDOWN_SECONDS`` for a ``kid`` the set lacks (key
    rotation), and after a failed fetch no new one for ``JWKS_FAILURE_CACHE_SECONDS`` (each
    fetch in that window raises ``_RecentFailure`` at once). Times come from ``jwks_clock``.

    Keys are looked up in the cached *set*, never in a per-key cache, so that a key the issuer
    withdraws stops verifying at the next fetch. A stale set is never served after a failed
    fetch. One fetch per URL at a time: a request arriving during a fetch waits for its outcome.
    """

    def __init__(self, url: str):
        self.client = jwt.PyJWKClient(url, cache_keys=False, cache_jwk_set=False, timeout=JWKS_FETCH_TIMEOUT_SECONDS)
        self._lock = threading.Lock()
        self._keys: jwt.PyJWKSet | None = None
        self._fetched_at = 0.0
        self._failed_until: float | None = None
        self._last_forced_refresh: float | None = None

    def keys(self) -> jwt.PyJWKSet:
        """The cached set while it is fresh, else the set fetched now."""
        with self._lock:
            if self._keys is not None and jwks_clock() - self._fetched_at < JWKS_CACHE_SECONDS:
                return self._keys
            return self._fetch()

    def refreshed_keys(self) -> jwt.PyJWKSet | None:
        """The set fetched again now, or None while the cooldown after the last forced refetch runs."""
        with self._lock:
            last = self._last_forced_refresh
            if last is not None and jwks_clock() - last < JWKS_REFRESH_COOLDOWN_SECONDS:
                return None
            self._last_forced_refresh = jwks_clock()
            return self._fetch()

    def _fetch(self) -> jwt.PyJWKSet:
        """Fetch and parse the set (the caller holds the lock); any failure opens the failure window."""
        if self._failed_until is not None and jwks_clock() < self._failed_until:
            raise _RecentFailure()
        try:
            key_set = self.client.get_jwk_set()
        except Exception:
            self._failed_until = jwks_clock() + JWKS_FAILURE_CACHE_SECONDS
            raise
        self._keys, self._fetched_at, self._failed_until = key_set, jwks_clock(), None
        return key_set


_remote_key_sets: dict[str, _RemoteKeySet] = {}
_remote_key_sets_lock = threading.Lock()


def _remote_key_set(url: str) -> _RemoteKeySet:
    with _remote_key_sets_lock:
        source = _remote_key_sets.get(url)
        if source is None:
            if len(_remote_key_sets) >= JWKS_CLIENTS_MAX:
                _remote_key_sets.pop(next(iter(_remote_key_sets)))
            source = _remote_key_sets[url] = _RemoteKeySet(url)
        return source


def jwks_cache_clear() -> None:
    """Forget every fetched JWK Set and every recent fetch failure in this process (the next
    verification fetches again)."""
    with _remote_key_sets_lock:
        _remote_key_sets.clear()


def _fetch(call, issuer: TrustedIssuer):
    """Run ``call`` (a fetch of ``issuer``'s key set). Any failure is ``jwks_unavailable`` with a
    plain message; what went wrong (TLS, HTTP status, decoding) is logged as a warning, once per
    failed fetch, never put in the message."""
    try:
        return call()
    except _RecentFailure:
        raise _keys_unavailable(issuer) from None
    except Exception as exc:  # a network or parse boundary: nothing from here may reach the caller as a 500
        logger.warning(
            "JWK Set of trusted issuer %r (%s) could not be fetched or read; refusing its tokens for %s s: %s: %s",
            issuer.name,
            issuer.jwks_url,
            JWKS_FAILURE_CACHE_SECONDS,
            type(exc).__name__,
            exc,
        )
        raise _keys_unavailable(issuer) from exc


# --- verification ---------------------------------------------------------------------------


def _unverified(token) -> tuple[dict, dict]:
    """The header and claims of ``token`` before any check (JWS Compact Serialization only)."""
    if not isinstance(token, str) or not token:
        raise IdentityTokenError("token_malformed", "The identity token is empty.")
    if len(token) > MAX_TOKEN_LENGTH:
        raise IdentityTokenError("token_malformed", f"The identity token is longer than {MAX_TOKEN_LENGTH} characters.")
    if token.count(".") != 2:
        raise IdentityTokenError(
            "token_malformed",
            "The identity token is not a signed JWT (three dot-separated parts; JWE is not accepted).",
        )
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        logger.debug("Unreadable identity token: %s", exc)
        raise IdentityTokenError(
            "token_malformed",
            "The identity token cannot be read: its header and claims must be base64url-encoded JSON objects.",
        )
    return header, claims


def _select_issuer(claims: dict) -> TrustedIssuer:
    """The enabled issuer that vouches for these (unverified) claims, in one query: a SPIFFE
    trust domain matching the ``sub``'s (the trust domain decides, whatever ``iss`` says), else an
    OIDC provider whose issuer is exactly the ``iss``."""
    iss = claims.get("iss") if isinstance(claims.get("iss"), str) else ""
    trust_domain = _claimed_trust_domain(claims.get("sub"))
    if not iss and not trust_domain:
        raise IdentityTokenError("issuer_unknown", "The token names no issuer (iss) and no SPIFFE ID (sub).")
    match = Q()
    if iss:
        match |= Q(kind=TrustedIssuer.Kind.OIDC, issuer=iss)
    if trust_domain:
        match |= Q(kind=TrustedIssuer.Kind.SPIFFE, issuer=trust_domain)
    found = {row.kind: row for row in TrustedIssuer.objects.filter(match, enabled=True)}
    issuer = found.get(TrustedIssuer.Kind.SPIFFE) or found.get(TrustedIssuer.Kind.OIDC)
    if issuer is None:
        named = " or ".join(_echo(n) for n in (trust_domain, iss) if n)
        raise IdentityTokenError("issuer_unknown", f"No enabled trusted issuer for {named}.")
    return issuer


def _key_for(issuer: TrustedIssuer, header: dict) -> jwt.PyJWK:
    """The issuer's public key the token's ``kid`` names (or its only signing key when the token
    names none), refetching a JWKS URL once when the ``kid`` is new to the cached set."""
    kid = header.get("kid")
    usable = _usable_uses(issuer.kind)

    def pick(key_set: jwt.PyJWKSet) -> jwt.PyJWK | None:
        keys = [k for k in key_set.keys if k.public_key_use in usable and k.key_type in PUBLIC_KEY_TYPES]
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.key_id == kid), None)

    if issuer.jwks_url:
        url = issuer.jwks_url
        problem = jwks_url_problem(url)
        if problem:
            logger.warning("JWKS URL of trusted issuer %r is not fetched: %s (%s)", issuer.name, problem, url)
            raise _keys_unavailable(issuer)
        source = _remote_key_set(url)
        key = pick(_fetch(source.keys, issuer))
        if key is None and kid is not None:
            refreshed = _fetch(source.refreshed_keys, issuer)
            key = pick(refreshed) if refreshed is not None else None
    else:
        try:
            key = pick(jwt.PyJWKSet.from_dict(issuer.jwks))
        except (jwt.PyJWTError, AttributeError, TypeError, ValueError) as exc:
            logger.warning(
                "Static JWK Set of trusted issuer %r cannot be read: %s: %s", issuer.name, type(exc).__name__, exc
            )
            raise _keys_unavailable(issuer)
    if key is None:
        if kid is None:
            raise IdentityTokenError(
                "key_unknown", f"The token names no key (kid) and issuer {issuer.name!r} has more than one."
            )
        raise IdentityTokenError("key_unknown", f"Issuer {issuer.name!r} has no signing key with kid {_echo(kid)}.")
    if not _is_public_key(key.key):
        logger.warning(
            "Trusted issuer %r publishes private key material (kid %r); its tokens are refused.", issuer.name, kid
        )
        raise IdentityTokenError(
            "jwks_unavailable",
            f"Issuer {issuer.name!r} publishes private key material as key {_echo(kid)}; refusing it.",
        )
    return key


def _numeric_date(claims: dict, name: str) -> float | None:
    """The NumericDate claim ``name`` (RFC 7519 §2) in seconds since the epoch, None when absent."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise IdentityTokenError("token_malformed", f"The {name} claim is not a number of seconds (NumericDate).")
    if not 0 <= value <= MAX_NUMERIC_DATE:
        raise IdentityTokenError("token_malformed", f"The {name} claim is out of range.")
    return float(value)


def _check_times(claims: dict, *, now: datetime, leeway: int) -> datetime:
    """Check ``exp`` (required), ``nbf`` and ``iat`` against ``now`` with ``leeway`` seconds
    (RFC 7519 §4.1.4–4.1.6); returns ``exp`` as an aware UTC datetime."""
    at = now.timestamp()
    exp = _numeric_date(claims, "exp")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    if exp is None:
        raise IdentityTokenError("claim_missing", "The token has no exp claim.")
    if at >= exp + leeway:
        raise IdentityTokenError("token_expired", f"The token expired at {_iso(exp)}.")
    if nbf is not None and at < nbf - leeway:
        raise IdentityTokenError("token_not_yet_valid", f"The token is not valid before {_iso(nbf)}.")
    if iat is not None and iat > at + leeway:
        raise IdentityTokenError("token_not_yet_valid", f"The token says it was issued in the future ({_iso(iat)}).")
    return datetime.fromtimestamp(exp, UTC)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _decode(token: str, issuer: TrustedIssuer, key: jwt.PyJWK) -> dict:
    """``jwt.decode`` with the issuer's rules; PyJWT's errors as ``IdentityTokenError``.

    exp/nbf/iat are *not* checked here: PyJWT compares them with the real clock, while the
    caller's ``now`` decides (``_check_times``). ``exp``, ``sub`` and ``aud`` are required.
    """
    oidc = issuer.kind == TrustedIssuer.Kind.OIDC
    try:
        return jwt.decode(
            token,
            key=key.key,
            algorithms=list(issuer.algorithms),
            audience=list(issuer.audiences),
            issuer=issuer.issuer if oidc else None,
            leeway=issuer.clock_skew_seconds,
            options={
                "verify_signature": True,
                "require": ["exp", "sub", "aud"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": True,
                "verify_iss": oidc,
                "verify_sub": True,
                "verify_jti": True,
                "strict_aud": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.MissingRequiredClaimError as exc:
        raise IdentityTokenError("claim_missing", f"The token has no {exc.claim} claim.")
    except jwt.InvalidAudienceError:
        raise IdentityTokenError(
            "audience_mismatch", f"The token's aud is not among issuer {issuer.name!r}'s audiences for Warrant."
        )
    except jwt.InvalidSignatureError:
        raise IdentityTokenError(
            "signature_invalid", f"The signature does not verify with issuer {issuer.name!r}'s key."
        )
    except jwt.InvalidAlgorithmError:
        raise IdentityTokenError(
            "algorithm_not_allowed", f"The token's algorithm is not allowed for issuer {issuer.name!r}."
        )
    except jwt.InvalidKeyError as exc:
        logger.warning("A key of trusted issuer %r cannot be trusted: %s", issuer.name, exc)
        raise IdentityTokenError(
            "signature_invalid", f"Issuer {issuer.name!r}'s key cannot be trusted (too short or unusable)."
        )
    except InvalidSubjectError:
        raise IdentityTokenError("subject_invalid", "The sub claim is not a string.")
    except jwt.InvalidIssuerError:
        raise IdentityTokenError("issuer_unknown", "The iss claim does not match the issuer.")
    except jwt.PyJWTError as exc:
        logger.debug("Identity token refused by jwt.decode: %s: %s", type(exc).__name__, exc)
        raise IdentityTokenError("token_malformed", "The identity token cannot be read.")


def verify_identity_token(token: str, *, now: datetime) -> VerifiedSubject:
    """Verify an identity token (an OIDC JWT or a SPIFFE JWT-SVID) and return its subject.

    ``token`` is the compact JWS (at most 16 KiB); ``now`` an aware datetime (UTC) that decides
    ``exp``, ``nbf`` and ``iat``, each with the issuer's ``clock_skew_seconds`` of leeway
    (RFC 7519 §4.1.4–4.1.6). PyJWT verifies the signature, ``aud`` and (OIDC) ``iss``; it does not
    see the clock (its own checks would use the real one).

    Steps: read the token without trusting it; refuse ``alg`` outside ``ASYMMETRIC_ALGORITHMS``
    (so ``none`` and HS*: RFC 8725 §2.1); find the enabled issuer (one query: the SPIFFE trust
    domain of ``sub``, else the OIDC issuer equal to ``iss``); refuse an ``alg`` the issuer does
    not list or that does not fit the named key; take the key by ``kid`` from the static set or
    the JWKS URL (fetched with ``jwt.PyJWKClient``: cached 300 s, 3 s timeout, refetched when the
    ``kid`` is new; after a failed fetch, refused at once for 30 s); ``jwt.decode``; check times
    against ``now``; check the subject (SPIFFE: a valid SPIFFE ID with a path, in the issuer's
    trust domain, per SPIFFE-ID §2 and JWT-SVID §3.1).

    Raises ``IdentityTokenError`` with ``code`` one of ``IdentityTokenError.CODES`` and a message
    fit for the agent's owner (token values cut to ``MAX_ECHOED_CHARS``, no exception text);
    ``ValueError`` if ``now`` is naive. Makes one database query, plus a network fetch only when a
    JWKS URL's set is not cached (or a new ``kid`` forces one) and it has not failed in the last
    ``JWKS_FAILURE_CACHE_SECONDS``.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC).")
    header, claims = _unverified(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        raise IdentityTokenError("token_malformed", "The token header has no alg.")
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise IdentityTokenError(
            "algorithm_not_allowed",
            f"The algorithm {_echo(alg)} is never accepted; only asymmetric ones: {', '.join(ASYMMETRIC_ALGORITHMS)}.",
        )
    if "kid" in header and not isinstance(header["kid"], str):
        raise IdentityTokenError("token_malformed", "The token's kid is not a string.")

    issuer = _select_issuer(claims)
    spiffe = issuer.kind == TrustedIssuer.Kind.SPIFFE
    if spiffe:
        extra = sorted(set(header) - JWT_SVID_HEADER_PARAMETERS)
        if extra:
            raise IdentityTokenError(
                "token_malformed", f"A JWT-SVID header carries only alg, kid and typ, not {_echo(', '.join(extra))}."
            )
        if header.get("typ", "JWT") not in ("JWT", "JOSE"):
            raise IdentityTokenError("token_malformed", "A JWT-SVID's typ is JWT or JOSE.")
    if alg not in issuer.algorithms:
        raise IdentityTokenError(
            "algorithm_not_allowed",
            f"Issuer {issuer.name!r} accepts {', '.join(issuer.algorithms)}, not {alg}.",
        )
    key = _key_for(issuer, header)
    if not _fits(key, alg):
        raise IdentityTokenError(
            "algorithm_not_allowed", f"The algorithm {alg} does not fit key {_echo(key.key_id)} ({key.key_type})."
        )

    verified = _decode(token, issuer, key)
    expires_at = _check_times(verified, now=now, leeway=issuer.clock_skew_seconds)
    subject = verified["sub"]
    if not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise IdentityTokenError("subject_invalid", f"The sub claim is empty or longer than {MAX_SUBJECT_LENGTH}.")
    if spiffe:
        try:
            trust_domain_id = parse_spiffe_id(subject)
        except ValueError as exc:
            raise IdentityTokenError("subject_invalid", f"The sub is not a valid SPIFFE ID: {exc}")
        if trust_domain_id != issuer.issuer:
            raise IdentityTokenError(
                "subject_invalid", f"The SPIFFE ID is not in trust domain {issuer.issuer} of issuer {issuer.name!r}."
            )
        return VerifiedSubject("spiffe", "", subject, issuer.name, expires_at)
    return VerifiedSubject("oidc", verified["iss"], subject, issuer.name, expires_at)
