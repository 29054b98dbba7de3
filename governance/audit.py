"""The audit writer: append-only, hash-chained audit events, written in the caller's transaction.

Every service writes its audit event with ``audit_record`` (or ``audit_record_many`` for a
set-based job) inside the same ``transaction.atomic()`` block as the change, so the change and
its record commit or roll back together (DESIGN.md invariant 2). Part of the kernel: it names
objects generically (``app_label.model`` + primary key) and imports no app.

The chain: each row stores the previous row's ``hash`` as ``prev_hash`` and its own
``hash = SHA-256(canonical JSON of its content + prev_hash)``. Writers serialise on the chain
head (a transaction-scoped advisory lock on PostgreSQL; SQLite serialises writers itself).

Verification (``audit_check``) walks the chain from genesis. A chain cut short at its end is
still valid, so removing the newest events shows only against a head recorded outside the
database (``ChainHead``, logged hourly by ``audit_head_record``); on PostgreSQL the
append-only trigger also refuses DELETE and TRUNCATE.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models, transaction
from django.utils import timezone

from governance.bulk import copy_fields, copy_lines, copy_text, insert_rows
from governance.models import AuditEvent

GENESIS_HASH = "0" * 64
_CHAIN_LOCK_KEY = 0x57A1_2A47  # arbitrary constant naming the audit chain's advisory lock

logger = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("warrant_request_id", default="")


@dataclass(frozen=True)
class Actor:
    """Who acts: a person, an integration (token acting for a person), an agent, or the system.

    ``user`` is the Django user whose permissions apply (None for the system); it is not part
    of equality.
    """

    type: str
    id: str
    label: str
    user: object | None = field(default=None, compare=False, repr=False)
    scopes: frozenset[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def person(cls, user) -> Actor:
        """The actor for a signed-in person."""
        return cls(AuditEvent.ActorType.PERSON, str(user.pk), user.get_username(), user=user)

    @classmethod
    def integration(cls, token) -> Actor:
        """The actor for an integration token; acts with its user's permissions within its scopes."""
        label = f"{token.name} (token {token.prefix}, for {token.user.get_username()})"
        return cls(
            AuditEvent.ActorType.INTEGRATION, str(token.pk), label, user=token.user, scopes=frozenset(token.scopes)
        )

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        """The actor for a scheduled job or other automatic change."""
        return cls(AuditEvent.ActorType.SYSTEM, "", name)

    @classmethod
    def from_request(cls, request) -> Actor:
        """The actor for a web or API request (integration token if one authenticated it)."""
        token = getattr(request, "auth", None)
        if token is not None and hasattr(token, "scopes"):
            return cls.integration(token)
        return cls.person(request.user)

    @property
    def is_system(self) -> bool:
        return self.type == AuditEvent.ActorType.SYSTEM


class PendingEvent(NamedTuple):
    """One audit event to write with ``audit_record_many`` (immutable; a named tuple, so that a
    set-based job builds hundreds of thousands of them cheaply)."""

    verb: str
    object_type: str
    object_id: str
    object_label: str = ""
    before: dict | None = None
    after: dict | None = None


def object_type_of(obj: models.Model) -> str:
    """``app_label.model`` for a model instance (the generic object name used in audit rows)."""
    return obj._meta.label_lower


def to_json(value):
    """``value`` as plain JSON data (datetimes as ISO 8601 strings, decimals as strings)."""
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def snapshot(obj: models.Model, fields: Iterable[str]) -> dict:
    """A JSON-ready dict of ``fields`` of ``obj`` (foreign keys by id) for before/after."""
    data = {}
    for name in fields:
        f = obj._meta.get_field(name)
        data[name] = getattr(obj, f.attname)
    return to_json(data)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


_HASHED_FIELDS = (
    "occurred_at", "actor_type", "actor_id", "actor_label", "verb", "object_type", "object_id", "object_label",
    "before", "after", "request_id", "prev_hash",
)  # fmt: skip


def event_digest(event: AuditEvent) -> str:
    """SHA-256 hex digest of an event's canonical content chained to ``event.prev_hash``."""
    return _digest({name: getattr(event, name) for name in _HASHED_FIELDS})


def _digest(content: dict) -> str:
    """SHA-256 hex of the canonical JSON (sorted keys, no spaces, UTC microsecond timestamp) of ``content``."""
    canonical = json.dumps(
        {**content, "occurred_at": _iso(content["occurred_at"])},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


#: Encodes ``before``/``after`` values as ``_digest`` does inside the canonical JSON: sorted keys, no
#: spaces, non-ASCII kept; datetimes, decimals, UUIDs and lazy strings as ``DjangoJSONEncoder`` writes them.
_CANONICAL_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=DjangoJSONEncoder().default
)
_encode_str = json.encoder.encode_basestring
_CONTAINERS = (dict, list, tuple)

if json.encoder.c_make_encoder is not None:
    # The C encoder that ``_CANONICAL_ENCODER.encode`` builds on every call, built once (no
    # circular-reference bookkeeping: a value that contains itself fails with RecursionError).
    _c_encoder = json.encoder.c_make_encoder(
        None, _CANONICAL_ENCODER.default, _encode_str, None, ":", ",", True, False, True
    )

    def _encode(value) -> str:
        return "".join(_c_encoder(value, 0))

else:  # pragma: no cover - CPython always has the C encoder
    _encode = _CANONICAL_ENCODER.encode


def _enc(value) -> str:
    """``value`` as it appears inside the canonical JSON (a JSON string literal for a ``str``)."""
    return _encode_str(value) if type(value) is str else _encode(value)


#: Types whose values hold no dict (so no key to check) and encode the same with or without the round trip.
_LEAF_TYPES = frozenset({str, int, float, bool, type(None), datetime})


def _keys_are_str(value) -> bool:
    """True if every dict key in ``value`` (at any depth) is a string."""
    if isinstance(value, dict):
        for k, v in value.items():
            if type(k) is not str and not isinstance(k, str):
                return False
            if type(v) not in _LEAF_TYPES and isinstance(v, _CONTAINERS) and not _keys_are_str(v):
                return False
    elif isinstance(value, (list, tuple)):
        for v in value:
            if type(v) not in _LEAF_TYPES and isinstance(v, _CONTAINERS) and not _keys_are_str(v):
                return False
    return True


def canonical_json(value) -> str:
    """The canonical JSON text of a before/after value, as the hashed content holds it.

    Equal to ``json.dumps(to_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    — the round trip through ``to_json`` is skipped when every key is a string, the only case in
    which it would change the text (a non-string key is stringified before it is sorted).
    Raises ``TypeError`` for a value JSON cannot hold.
    """
    if not _keys_are_str(value):
        value = to_json(value)
    return _encode(value)


def _lock_chain_head() -> str:
    """Serialise audit writers until the transaction ends; return the current head hash."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    head = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
    return head or GENESIS_HASH


def _require_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit events are written inside the transaction of the change they record")


def audit_record(
    *,
    actor: Actor,
    verb: str,
    obj: models.Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_label: str = "",
    before: dict | None = None,
    after: dict | None = None,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one audit event, chained to the previous one; call inside the change's transaction.

    ``obj`` names the object (or pass ``object_type``/``object_id``/``object_label``);
    ``before``/``after`` are JSON-ready dicts of the changed fields; ``at`` defaults to now (UTC).
    Raises ``RuntimeError`` outside a transaction.
    """
    _require_transaction()
    pending = PendingEvent(
        verb=verb,
        object_type=object_type_of(obj) if obj is not None else object_type,
        object_id=str(obj.pk) if obj is not None else str(object_id),
        object_label=(str(obj) if obj is not None else object_label)[:300],
        before=before,
        after=after,
    )
    event = _build(actor, pending, at or timezone.now(), request_id_var.get(), _lock_chain_head())
    event.save()
    return event


def _build(actor: Actor, pending: PendingEvent, occurred_at: datetime, request_id: str, prev: str) -> AuditEvent:
    event = AuditEvent(
        occurred_at=occurred_at,
        actor_type=actor.type,
        actor_id=actor.id,
        actor_label=actor.label[:200],
        verb=pending.verb,
        object_type=pending.object_type,
        object_id=pending.object_id,
        object_label=pending.object_label[:300],
        before=to_json(pending.before),
        after=to_json(pending.after),
        request_id=request_id,
        prev_hash=prev,
    )
    event.hash = event_digest(event)
    return event


#: The columns of an audit event besides its id, in the order they are written.
AUDIT_EVENT_FIELDS = (
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "verb",
    "object_type",
    "object_id",
    "object_label",
    "before",
    "after",
    "request_id",
    "prev_hash",
    "hash",
)


def audit_record_many(*, actor: Actor, events: Iterable[PendingEvent], at: datetime | None = None) -> int:
    """Append many audit events in order, chained, streamed to the database (COPY on PostgreSQL).

    Used by set-based jobs: ``events`` may be a generator, and memory stays bounded whatever
    its length. All events share ``actor``, ``at`` (default now, UTC) and the current request
    id. Returns the number written. Raises ``RuntimeError`` outside a transaction.

    Each event's canonical JSON (the text ``_digest`` hashes, byte for byte) is assembled once
    from parts: the fields every event shares are encoded once per call, ``before``/``after``
    once per event (``canonical_json``), and that same text is what the JSON columns receive.
    """
    _require_transaction()
    occurred_at = at or timezone.now()
    request_id = request_id_var.get()
    actor_label = actor.label[:200]
    prev = _lock_chain_head()
    # The canonical JSON's keys in sorted order; the parts every event of this call shares.
    lead = f'{{"actor_id":{_enc(actor.id)},"actor_label":{_enc(actor_label)},"actor_type":{_enc(actor.type)},"after":'
    at_prev = f',"occurred_at":{_enc(_iso(occurred_at))},"prev_hash":'  # then the previous hash, quoted
    request_verb = f',"request_id":{_enc(request_id)},"verb":'
    sha256 = hashlib.sha256

    def chained():
        nonlocal prev
        for pending in events:
            label = pending.object_label[:300]
            before, after = pending.before, pending.after
            before = None if before is None else canonical_json(before)
            after = None if after is None else canonical_json(after)
            canonical = (
                f'{lead}{"null" if after is None else after},"before":{"null" if before is None else before}'
                f',"object_id":{_enc(pending.object_id)},"object_label":{_enc(label)}'
                f',"object_type":{_enc(pending.object_type)}{at_prev}"{prev}"{request_verb}{_enc(pending.verb)}}}'
            )
            digest = sha256(canonical.encode()).hexdigest()
            yield pending, label, before, after, prev, digest
            prev = digest

    if connection.vendor == "postgresql":
        shared = copy_fields((occurred_at.isoformat(), actor.type, actor.id, actor_label))
        request = copy_text(request_id)
        lines = (
            f"{shared}\t{copy_fields((p.verb, p.object_type, p.object_id, label, before, after))}\t{request}"
            f"\t{prev_hash}\t{digest}\n"
            for p, label, before, after, prev_hash, digest in chained()
        )
        return copy_lines(AuditEvent, AUDIT_EVENT_FIELDS, lines)
    rows = (
        (
            occurred_at,
            actor.type,
            actor.id,
            actor_label,
            pending.verb,
            pending.object_type,
            pending.object_id,
            label,
            None if before is None else json.loads(before),
            None if after is None else json.loads(after),
            request_id,
            prev_hash,
            digest,
        )
        for pending, label, before, after, prev_hash, digest in chained()
    )
    return insert_rows(AuditEvent, AUDIT_EVENT_FIELDS, rows)


@dataclass(frozen=True)
class ChainBreak:
    """Where verification failed: the row id and what is wrong with it."""

    event_id: int
    problem: str


@dataclass(frozen=True)
class ChainHead:
    """The newest audit event: its id, its hash, and how many events the chain holds up to it.

    Recorded outside the database (an operator's note, a log shipped to a SIEM), it is the anchor
    that lets ``audit_check(expect_head=...)`` detect the deletion of the newest events, which a
    hash chain alone cannot: a chain cut short at its end is still a valid chain.
    """

    id: int
    hash: str
    events: int

    def __str__(self) -> str:
        return f"id={self.id} hash={self.hash}"


@dataclass(frozen=True)
class ChainReport:
    """What ``audit_check`` found: events walked, the head reached, the first break (None when intact)."""

    events: int
    head: ChainHead | None
    broken: ChainBreak | None


_HEAD_PATTERN = re.compile(r"^([1-9][0-9]*):([0-9a-f]{64})$")


def parse_head(value: str) -> tuple[int, str]:
    """``(id, hash)`` from ``"ID:HASH"`` (decimal id, 64 lowercase hex digits of SHA-256).

    Raises ``ValueError`` naming the expected form for anything else.
    """
    match = _HEAD_PATTERN.match(value.strip().lower())
    if match is None:
        raise ValueError(f"{value!r} is not a chain head; expected ID:HASH, e.g. 1234:{'ab' * 32}")
    return int(match.group(1)), match.group(2)


def audit_head() -> ChainHead | None:
    """The current chain head (newest event by id) and the number of events up to it; None when empty.

    Reads only; verifies nothing (``audit_check`` does). Two queries, the count bounded by the
    head's id so that events appended in between are not counted.
    """
    row = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
    if row is None:
        return None
    return ChainHead(id=row[0], hash=row[1], events=AuditEvent.objects.filter(id__lte=row[0]).count())


def audit_check(*, expect_head: tuple[int, str] | None = None, chunk_size: int = 5000) -> ChainReport:
    """Walk the chain in id order from genesis; report the events walked, the head and the first break.

    A changed row fails its own digest; an inserted or deleted row breaks the next row's
    ``prev_hash`` link. Deleting the newest rows leaves a valid, shorter chain, which only an
    anchor recorded elsewhere reveals: with ``expect_head=(id, hash)`` (a head printed by
    ``verify_audit`` or logged by the ``record-audit-head`` job), the walk also fails when that
    event is missing or its hash differs, and — since every row up to it is checked — passes
    only when the chain still extends through it. Reads in chunks, so memory stays bounded by
    ``chunk_size``; events appended while it runs are walked too.
    """
    prev = GENESIS_HASH
    last_id = 0
    count = 0
    head: ChainHead | None = None
    anchor_seen = expect_head is None

    def report(broken: ChainBreak | None) -> ChainReport:
        return ChainReport(events=count, head=head, broken=broken)

    while True:
        rows = list(AuditEvent.objects.filter(id__gt=last_id).order_by("id")[:chunk_size])
        if not rows:
            break
        for event in rows:
            if not anchor_seen and event.id > expect_head[0]:
                return report(
                    ChainBreak(
                        expect_head[0],
                        f"the recorded head (event {expect_head[0]}) is missing: it was deleted",
                    )
                )
            if event.prev_hash != prev:
                return report(
                    ChainBreak(event.id, "previous-hash link broken: a row before it was inserted, deleted or changed")
                )
            if event_digest(event) != event.hash:
                return report(ChainBreak(event.id, "content does not match its hash: the row was changed"))
            if not anchor_seen and event.id == expect_head[0]:
                if event.hash != expect_head[1]:
                    return report(
                        ChainBreak(
                            event.id,
                            f"hash {event.hash} differs from the recorded head's {expect_head[1]}: "
                            "the chain was rewritten from this row or before",
                        )
                    )
                anchor_seen = True
            prev = event.hash
            last_id = event.id
            count += 1
            head = ChainHead(id=event.id, hash=event.hash, events=count)
    if not anchor_seen:
        return report(
            ChainBreak(
                expect_head[0],
                f"the recorded head (event {expect_head[0]}) is missing: the chain ends before it, "
                "so the newest events were deleted",
            )
        )
    return report(None)


def audit_head_record(*, now: datetime) -> dict:
    """Write the current chain head as one structured INFO log line; change nothing, audit nothing.

    The line — ``audit head id=<id> hash=<sha256 hex> events=<n> at=<now, ISO 8601 UTC>``, or
    ``audit head none events=0 at=…`` on an empty log — goes to the ``governance.audit`` logger,
    so that log shipping keeps a copy outside the database: the external anchor that
    ``verify_audit --expect-head ID:HASH`` checks the chain against. ``now`` is an aware
    datetime (UTC). Returns ``{"id", "hash", "events"}`` (id and hash None on an empty log).
    """
    head = audit_head()
    at = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if head is None:
        logger.info("audit head none events=0 at=%s", at)
        return {"id": None, "hash": None, "events": 0}
    logger.info("audit head id=%d hash=%s events=%d at=%s", head.id, head.hash, head.events, at)
    return {"id": head.id, "hash": head.hash, "events": head.events}


def audit_verify(*, chunk_size: int = 5000, expect_head: tuple[int, str] | None = None) -> ChainBreak | None:
    """Walk the chain (see ``audit_check``); return the first broken row, or None when intact."""
    return audit_check(expect_head=expect_head, chunk_size=chunk_size).broken
