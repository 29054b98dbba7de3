"""Recognising literal secrets, so that Warrant never stores one (invariant 9; OWASP NHI Top 10 2025: NHI2).

One set of rules serves every write path: the MCP importer redacts what it finds and raises a
``literal_secret_in_config`` finding; ``Tool.clean`` and ``Credential.clean`` (and so every
service, the API, the web UI and the admin) refuse the value with a field-keyed message that
never repeats it.

What counts as a literal secret:

- a value under a name that says it holds a secret (``--token x``, ``--password=x``,
  ``API_KEY=x``, an ``env``/``headers`` entry such as ``GITHUB_TOKEN``/``Authorization``);
- known token shapes anywhere in a value: GitHub (``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_``,
  ``github_pat_``), ``sk-``/``sk-proj-`` API keys, Stripe ``sk_live_``/``rk_live_``, Slack
  ``xox[abprs]-``, GitLab ``glpat-``, Google ``AIza…``, JSON Web Tokens (``eyJ…`` in three parts),
  private key blocks (``-----BEGIN … PRIVATE KEY-----``), ``Bearer <literal>``;
- in a URL: a userinfo password (``https://user:pw@host``) and query parameters whose name
  says they hold a secret (``?api_key=…``, ``?access_token=…``);
- an AWS secret access key (40 characters of base64, mixed case and digits) as the whole value or as
  one part of it, parts being split on whitespace and separators (``:``, ``,``, ``;``, ``=``, ``@``,
  quotes, brackets, ``|``, ``&``), including an access key id joined to its secret
  (``AKIA…:<secret>``, ``AKIA…<secret>``).

Scanning is linear in the value's length: every pattern either starts only where a run of its
characters starts, or is bounded, or uses possessive quantifiers, so a hostile value cannot make
matching backtrack catastrophically.

Not secrets: references (``${VAR}``, ``${VAR:-default}``, ``${input:id}``, ``$VAR``), placeholders
(``REDACTED``, ``<your-token>``, ``****``), flags, numbers and paths, ARNs, and AWS access key ids
(``AKIA…``/``ASIA…``), which identify a key and are its ``external_id``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from django.conf import settings

REDACTED = "REDACTED"
FINGERPRINT_PREFIX = "hmac-sha256:"
FINGERPRINT_CONTEXT = b"warrant:secret-fingerprint"
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CREDENTIAL_FINGERPRINT = re.compile(r"^sha256:[0-9a-fA-F]{64}$")

# --- names that say a value is a secret -----------------------------------------------------

_SECRET_FRAGMENTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "credential",
    "authorization",
    "privatekey",
    "accesskey",
    "clientsecret",
)
_SECRET_WORDS = frozenset({"key", "auth", "pwd", "pat", "pass", "sig", "signature"})
_NOT_SECRET_LAST_WORDS = frozenset(
    {
        "id",
        "url",
        "uri",
        "endpoint",
        "host",
        "hostname",
        "port",
        "type",
        "mode",
        "method",
        "file",
        "path",
        "dir",
        "enabled",
        "name",
        "header",
        "region",
        "scheme",
        "user",
        "username",
        "email",
        "scope",
        "scopes",
        "expiry",
        "expires",
        "ttl",
        "length",
        "version",
        "provider",
        "strategy",
        "server",
        "domain",
        "issuer",
        "audience",
        "prefix",
        "suffix",
        "format",
        "size",
        "count",
        "limit",
        "timeout",
        "env",
        "var",
        "variable",
    }
)


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def is_secret_name(name: str) -> bool:
    """True if a variable, flag, header or parameter name says it holds a secret (token, key, password …).

    ``GITHUB_TOKEN``, ``--api-key``, ``Authorization``, ``PGPASSWORD`` are; names ending in a word
    such as ``id``, ``url``, ``file``, ``path`` (``AWS_ACCESS_KEY_ID``, ``SSH_KEY_PATH``) are not.
    """
    words = _words(name)
    if not words or words[-1] in _NOT_SECRET_LAST_WORDS:
        return False
    compact = "".join(words)
    return any(f in compact for f in _SECRET_FRAGMENTS) or any(w in _SECRET_WORDS for w in words)


def _reference_for(name: str) -> str:
    words = _words(name)
    return "_".join(words).upper()[:40] if words else "SECRET"


# --- values that are not secrets ------------------------------------------------------------

# ``${`` … ``}`` stops at the next ``$``/``{`` (a nested ``${B}`` is matched on its own), so matching
# ``${${${…`` is linear, not quadratic.
_REFERENCE = re.compile(r"\$\{[^{}$]*+\}|\$[A-Za-z_][A-Za-z0-9_]*+")
_NOT_SECRET_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none", "", "-", REDACTED.lower()})


def is_reference(value: str) -> bool:
    """True if ``value`` holds a ``${VAR}``, ``${VAR:-default}``, ``${input:id}`` or ``$VAR`` reference."""
    return bool(_REFERENCE.search(value))


def _is_placeholder(value: str) -> bool:
    v = value.strip()
    return v.lower() in _NOT_SECRET_VALUES or bool(re.fullmatch(r"<[^<>]*>|[*xX•.]+", v))


def is_literal(value: str) -> bool:
    """True if ``value`` could be a literal secret: not a reference, placeholder, flag value, number or path."""
    v = value.strip()
    if len(v) < 4 or _is_placeholder(v) or is_reference(v):
        return False
    if re.fullmatch(r"[-+]?\d+(\.\d+)?", v):
        return False
    return not (v.startswith(("/", "~", "./", "../")) or re.match(r"^[A-Za-z]:[\\/]", v))


def _token_like(value: str) -> bool:
    """A credential-looking word: 8+ characters without spaces, not a plain lower-case word."""
    v = value.strip()
    return is_literal(v) and len(v) >= 8 and not re.fullmatch(r"[a-z]+", v)


# --- known token shapes ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    kind: str
    reference: str
    pattern: re.Pattern
    check: object = None  # optional predicate on the match


def _sk_key_body(match: re.Match) -> bool:
    """``sk-…`` only when it carries key material: a run of 16+ letters/digits with a digit or a capital."""
    return any(re.search(r"[0-9A-Z]", run) for run in re.findall(r"[A-Za-z0-9]{16,}", match.group(0)[3:]))


_EDGE_L, _EDGE_R = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"
_SHAPES = (
    _Shape("a GitHub token", "GITHUB_TOKEN", re.compile(_EDGE_L + r"gh[pousr]_[A-Za-z0-9]{20,}" + _EDGE_R)),
    _Shape("a GitHub token", "GITHUB_TOKEN", re.compile(_EDGE_L + r"github_pat_[A-Za-z0-9_]{20,}")),
    _Shape("a GitLab token", "GITLAB_TOKEN", re.compile(_EDGE_L + r"glpat-[A-Za-z0-9_-]{20,}")),
    _Shape("a Slack token", "SLACK_TOKEN", re.compile(r"(?<![A-Za-z0-9])xox[abprs]-[A-Za-z0-9-]{8,}")),
    _Shape("a Stripe key", "STRIPE_KEY", re.compile(_EDGE_L + r"[sr]k_(?:live|test)_[A-Za-z0-9]{16,}")),
    _Shape("a Google API key", "GOOGLE_API_KEY", re.compile(_EDGE_L + r"AIza[A-Za-z0-9_-]{35}" + _EDGE_R)),
    _Shape("an API key", "API_KEY", re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{16,}(?![A-Za-z0-9])"), _sk_key_body),
    _Shape(
        "a JSON Web Token",
        "TOKEN",
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    ),
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.DOTALL,
)
_BEARER = re.compile(r"\b(Bearer)\s+([^\s\"',;]+)", re.IGNORECASE)
# Both start only where a run of their characters starts, which keeps matching linear in the text's length.
_URL_IN_TEXT = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_ASSIGNMENT = re.compile(r"(?<![\w.$-])-*([A-Za-z_][\w.-]*)=(\"[^\"]*\"|'[^']*'|[^\s&;,]+)")
_AWS_SECRET_ACCESS_KEY = re.compile(r"[A-Za-z0-9/+]{40}")
# The parts of a value: maximal runs between separators (possessive, so each character is read once).
_PART_SEPARATORS = r"\s:,;=@\"'`()\[\]{}<>|&"
_PART = re.compile(rf"[^{_PART_SEPARATORS}]++")
# An access key id written directly before its secret, with or without a ``/`` between them.
_AWS_KEY_ID_PREFIX = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}/?+")


def _is_aws_secret_access_key(value: str) -> bool:
    """40 characters of base64 with lower case, upper case and digits; not a key id, not a path."""
    v = value.strip()
    return bool(
        _AWS_SECRET_ACCESS_KEY.fullmatch(v)
        and re.search(r"[a-z]", v)
        and re.search(r"[A-Z]", v)
        and re.search(r"[0-9]", v)
        and not v.startswith(("AKIA", "ASIA"))
        and not (v.startswith("/") and v.count("/") >= 3)  # /srv/Reports2024/… is a path
    )


def _aws_secret_in_part(part: str) -> tuple[str, str] | None:
    """``(prefix, secret)`` if the part is an AWS secret access key, optionally after its access key id."""
    part = part.rstrip(".!?")
    if len(part) > 40:
        prefix = _AWS_KEY_ID_PREFIX.match(part)
        if prefix and len(part) - prefix.end() == 40:
            return (prefix.group(0), part[prefix.end() :]) if _is_aws_secret_access_key(part[prefix.end() :]) else None
        return None
    return ("", part) if _is_aws_secret_access_key(part) else None


def _shape_of(value: str) -> _Shape | None:
    """The known token shape ``value`` is, as a whole, or None."""
    for shape in _SHAPES:
        m = shape.pattern.fullmatch(value.strip())
        if m and (shape.check is None or shape.check(m)):
            return shape
    return None


def _looks_like_url(value: str) -> bool:
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value.strip()))


# --- fingerprints ---------------------------------------------------------------------------


def fingerprint(value: str) -> str:
    """``hmac-sha256:<16 hex>`` of a secret value: enough to recognise it again, never the value.

    HMAC-SHA256 (RFC 2104) keyed with a server-side key derived from ``settings.SECRET_KEY``
    (``HMAC(SECRET_KEY, "warrant:secret-fingerprint")``), so a fingerprint cannot be reversed by
    hashing a dictionary of weak secrets without that key; the first 64 bits are shown. The
    same secret gives the same fingerprint everywhere in one deployment (two configurations
    holding one token match); rotating ``SECRET_KEY`` changes every fingerprint, so findings
    raised before the rotation no longer match a re-import and are replaced.
    """
    key = hmac.new(settings.SECRET_KEY.encode("utf-8"), FINGERPRINT_CONTEXT, hashlib.sha256).digest()
    return FINGERPRINT_PREFIX + hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


# --- the scanner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretHit:
    """A literal secret found: where (``env.GITHUB_TOKEN``, ``args[2]``, ``url.password``), what kind
    (``"a GitHub token"``), a reference name to suggest instead, and its fingerprint — never the value."""

    location: str
    kind: str
    reference: str
    fingerprint: str


class SecretScanner:
    """Finds literal secrets in the parts of a tool or credential and returns them redacted.

    Each method returns the value with every secret replaced by ``REDACTED`` and appends a
    ``SecretHit`` per secret to ``hits``. Locations are built from the ``location`` given.
    """

    def __init__(self):
        self.hits: list[SecretHit] = []

    def _add(self, location: str, kind: str, reference: str, value: str) -> None:
        self.hits.append(SecretHit(location, kind, reference, fingerprint(value)))

    def value(self, location: str, name: str, value: str) -> None:
        """Check an ``env`` or ``headers`` value stored under ``name`` (such values are never stored)."""
        if _looks_like_url(value):
            self.url(location, value)
        else:
            self.text(location, value, name=name)

    def text(self, location: str, value: str, *, name: str = "") -> str:
        """Check a free-text value given under ``name`` (a flag, variable or header; may be empty)."""
        if not value:
            return value
        if name and is_secret_name(name) and is_literal(value):
            bearer = _BEARER.fullmatch(value.strip())
            if bearer and is_literal(bearer.group(2)):
                self._add(location, "a bearer token", "API_TOKEN", bearer.group(2))
                return f"{bearer.group(1)} {REDACTED}"
            shape = _shape_of(value)
            kind, reference = (shape.kind, shape.reference) if shape else (f"the value of {name[:60]}", "")
            self._add(location, kind, reference or _reference_for(name), value.strip())
            return REDACTED
        if _is_aws_secret_access_key(value):
            self._add(location, "an AWS secret access key", "AWS_SECRET_ACCESS_KEY", value.strip())
            return REDACTED
        if _looks_like_url(value):
            return self.url(location, value)
        return self._free_text(location, value)

    def _free_text(self, location: str, value: str) -> str:
        def private_key(m: re.Match) -> str:
            self._add(location, "a private key", "PRIVATE_KEY", m.group(0))
            return REDACTED

        out = _PRIVATE_KEY.sub(private_key, value)
        out = _URL_IN_TEXT.sub(lambda m: self.url(location, m.group(0)), out)
        out = self._tokens(location, out)

        def assignment(m: re.Match) -> str:
            raw = m.group(2)
            inner = raw[1:-1] if raw[:1] in "\"'" and raw[-1:] == raw[:1] and len(raw) > 1 else raw
            if not (is_secret_name(m.group(1)) and is_literal(inner)):
                return m.group(0)
            self._add(location, f"the value of {m.group(1)[:60]}", _reference_for(m.group(1)), inner)
            return m.group(0)[: m.start(2) - m.start(0)] + REDACTED

        return _ASSIGNMENT.sub(assignment, out)

    def _tokens(self, location: str, value: str) -> str:
        """Bearer credentials, known token shapes anywhere in ``value`` and AWS secret access keys in any part."""

        def bearer(m: re.Match) -> str:
            if not _token_like(m.group(2)) or _shape_of(m.group(2)):
                return m.group(0)  # a known shape is reported as what it is, below
            self._add(location, "a bearer token", "API_TOKEN", m.group(2))
            return f"{m.group(1)} {REDACTED}"

        out = _BEARER.sub(bearer, value)
        for shape in _SHAPES:

            def replace(m: re.Match, shape=shape) -> str:
                if shape.check is not None and not shape.check(m):
                    return m.group(0)
                self._add(location, shape.kind, shape.reference, m.group(0))
                return REDACTED

            out = shape.pattern.sub(replace, out)

        def aws_secret(m: re.Match) -> str:
            found = _aws_secret_in_part(m.group(0))
            if found is None:
                return m.group(0)
            prefix, secret = found
            self._add(location, "an AWS secret access key", "AWS_SECRET_ACCESS_KEY", secret)
            return prefix + REDACTED + m.group(0)[len(prefix) + len(secret) :]

        return _PART.sub(aws_secret, out)

    def url(self, location: str, value: str) -> str:
        """Check a URL: its userinfo password, its query parameters, tokens anywhere in it."""
        if not _looks_like_url(value):
            return self._free_text(location, value)
        try:
            parts = urlsplit(value)
            password = parts.password
        except ValueError:
            return self._tokens(location, value)
        netloc = parts.netloc
        if password and not is_reference(password) and not _is_placeholder(password):
            self._add(f"{location}.password", "a password in the URL", "PASSWORD", password)
            userinfo, _, hostport = netloc.rpartition("@")
            netloc = f"{userinfo.split(':', 1)[0]}:{REDACTED}@{hostport}"
        query = parse_qsl(parts.query, keep_blank_values=True)
        redacted_query, changed = [], False
        for name, val in query:
            shape = _shape_of(val)
            if shape or (is_secret_name(name) and is_literal(val)):
                kind = shape.kind if shape else f"the {name[:60]} parameter of the URL"
                self._add(f"{location}.query.{name}", kind, shape.reference if shape else _reference_for(name), val)
                redacted_query.append((name, REDACTED))
                changed = True
            else:
                redacted_query.append((name, val))
        new_query = urlencode(redacted_query, quote_via=quote, safe="${}:/") if changed else parts.query
        out = value
        if netloc != parts.netloc or changed:
            out = urlunsplit((parts.scheme, netloc, parts.path, new_query, parts.fragment))
        return self._tokens(location, out)

    def args(self, args: list[str], *, location: str = "args") -> list[str]:
        """Check command-line arguments: ``--flag=value``, ``--flag value``, ``NAME=value``, URLs, token shapes."""
        out = []
        for i, arg in enumerate(args):
            loc = f"{location}[{i}]"
            flag = re.match(r"^(--?[A-Za-z][\w.-]*)=(.*)$", arg, re.DOTALL)
            env_pair = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", arg, re.DOTALL)
            prev = args[i - 1] if i else ""
            if flag or env_pair:
                m = flag or env_pair
                out.append(f"{m.group(1)}={self._named(loc, m.group(1), m.group(2))}")
            elif prev.startswith("-") and "=" not in prev and is_secret_name(prev) and not arg.startswith("-"):
                out.append(self._named(loc, prev, arg))
            else:
                out.append(self.text(loc, arg))
        return out

    def _named(self, location: str, name: str, value: str) -> str:
        if _looks_like_url(value):
            return self.url(location, value)
        return self.text(location, value, name=name)


# --- refusals for model validation ----------------------------------------------------------


def refusal(hit: SecretHit) -> str:
    """The message refusing a literal secret: names what it looks like, never repeats the value."""
    return f"This looks like a secret ({hit.kind}). Store a reference such as ${{{hit.reference}}}, never the value."


def _first(scanner: SecretScanner) -> str | None:
    return refusal(scanner.hits[0]) if scanner.hits else None


def text_refusal(value: str, *, name: str = "") -> str | None:
    """A refusal message if the text ``value`` holds a literal secret, else None."""
    scanner = SecretScanner()
    if isinstance(value, str):
        scanner.text("value", value, name=name)
    return _first(scanner)


def url_refusal(value: str) -> str | None:
    """A refusal message if the URL ``value`` holds a literal secret (password, query, token), else None."""
    scanner = SecretScanner()
    if isinstance(value, str) and value:
        scanner.url("url", value)
    return _first(scanner)


def args_refusal(args) -> str | None:
    """A refusal message if ``args`` is not a list of strings or holds a literal secret, else None."""
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        return "Give the arguments as a list of strings."
    scanner = SecretScanner()
    scanner.args(args)
    return _first(scanner)


def env_keys_refusal(env_keys) -> str | None:
    """A refusal message unless ``env_keys`` is a list of environment variable names (never values)."""
    if not isinstance(env_keys, list):
        return "Give the environment variables' names as a list."
    for key in env_keys:
        if isinstance(key, str):
            secret = text_refusal(key)
            if secret:
                return secret
        if not isinstance(key, str) or not ENV_NAME.match(key):
            return (
                "Give environment variable names only (letters, digits and _, not starting with a digit), "
                "never their values."
            )
    return None


def credential_fingerprint_refusal(value: str) -> str | None:
    """A refusal message unless ``value`` is blank or ``sha256:<64 hex>`` of a public part or key id."""
    if not value:
        return None
    secret = text_refusal(value)
    if secret:
        return secret
    if not CREDENTIAL_FINGERPRINT.match(value):
        return (
            "Give a fingerprint as sha256:<hex>, never the secret. "
            "<hex> is the 64 hexadecimal digits of the SHA-256 digest of the public part or key id."
        )
    return None


__all__ = [
    "REDACTED",
    "SecretHit",
    "SecretScanner",
    "args_refusal",
    "credential_fingerprint_refusal",
    "env_keys_refusal",
    "fingerprint",
    "is_literal",
    "is_reference",
    "is_secret_name",
    "refusal",
    "text_refusal",
    "url_refusal",
]
