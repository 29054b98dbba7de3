"""The audit log: hash chain, tamper detection (``verify_audit``), chain head anchor, append-only, request id."""

import json
import logging
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory

from governance.audit import (
    GENESIS_HASH,
    Actor,
    PendingEvent,
    audit_check,
    audit_head,
    audit_head_record,
    audit_record,
    audit_record_many,
    audit_verify,
    canonical_json,
    event_digest,
    parse_head,
    to_json,
)
from governance.middleware import RequestIdMiddleware
from governance.models import AuditEvent

pytestmark = pytest.mark.django_db

ON_POSTGRES = connection.vendor == "postgresql"


def _write(n: int, actor: Actor | None = None) -> list[AuditEvent]:
    actor = actor or Actor.system("test")
    with transaction.atomic():
        return [
            audit_record(
                actor=actor,
                verb=f"thing.change{i}",
                object_type="tests.thing",
                object_id=str(i),
                before={"n": i},
                after={"n": i + 1},
            )
            for i in range(n)
        ]


def _forge(*, id: int, prev_hash: str, verb: str = "thing.forged") -> AuditEvent:
    """A row written past the audit writer, with a self-consistent hash."""
    e = AuditEvent(
        id=id,
        occurred_at=AuditEvent.objects.get(hash=prev_hash).occurred_at,
        actor_type="system",
        actor_label="forger",
        verb=verb,
        object_type="tests.thing",
        object_id="x",
        prev_hash=prev_hash,
    )
    e.hash = event_digest(e)
    AuditEvent.objects.bulk_create([e])
    return e


@contextmanager
def append_only_trigger_disabled():
    """On PostgreSQL, tamper as the superuser would: with the table's user triggers disabled.

    DDL is transactional in PostgreSQL, so the test's rollback restores the triggers anyway.
    """
    if ON_POSTGRES:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER USER")
    try:
        yield
    finally:
        if ON_POSTGRES:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER USER")


def _assert_refused_on_postgres(sql: str, params=()):
    if not ON_POSTGRES:
        return
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def _verify_output(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def _head_of(output: str) -> str:
    """``ID:HASH`` from verify_audit's ``head: id=N hash=H`` line, as an operator records it."""
    line = next(line for line in output.splitlines() if line.startswith("head: id="))
    id_part, hash_part = line.removeprefix("head: ").split()
    return f"{id_part.removeprefix('id=')}:{hash_part.removeprefix('hash=')}"


# --- the chain -----------------------------------------------------------------------------


def test_each_event_links_to_the_previous_one_from_genesis():
    events = _write(3)
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    for e in AuditEvent.objects.order_by("id"):
        assert e.hash == event_digest(e)
    assert audit_verify() is None


def test_a_batch_streams_in_order_and_continues_the_head():
    head = _write(1)[0]
    with transaction.atomic():
        written = audit_record_many(
            actor=Actor.system("job"),
            events=(PendingEvent(f"thing.v{i}", "tests.thing", str(i)) for i in range(5)),
        )
    assert written == 5
    rows = list(AuditEvent.objects.order_by("id"))
    assert [r.verb for r in rows] == ["thing.change0"] + [f"thing.v{i}" for i in range(5)]
    assert rows[1].prev_hash == head.hash
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
    assert audit_verify(chunk_size=2) is None


#: before/after values whose canonical JSON is easy to get wrong: non-string keys (stringified before
#: they are sorted), datetimes, decimals, durations, tuples, escapes, non-ASCII, empty and absent values.
AWKWARD_BEFORE_AFTER = [
    ({"n": 1}, {"n": 2}),
    (None, {"when": datetime(2026, 11, 15, 6, 0, 0, 123456, tzinfo=UTC), "amount": Decimal("1.10")}),
    ({2: "two", 10: "ten"}, {"nested": [{"k": (1, 2)}, {3: None}], "span": timedelta(hours=3)}),
    ({"text": 'quote " backslash \\ tab \t newline \n return \r \u00fc \U0001f600'}, {}),
    ({}, None),
]
AWKWARD_LABELS = ["plain", "tab\tin a label", "new\nline", "back\\slash", "x" * 400]


def test_canonical_json_is_the_round_trip_through_to_json():
    for before, after in AWKWARD_BEFORE_AFTER:
        for value in (before, after):
            if value is not None:
                expected = json.dumps(to_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                assert canonical_json(value) == expected


def test_a_batch_writes_and_hashes_awkward_content_as_single_events_do():
    actor = Actor("person", "7", "tab\there, back\\slash and new\nline \u00e9")
    at = datetime(2026, 11, 15, 6, 0, 0, 654321, tzinfo=UTC)

    def pending(i, before, after):
        return PendingEvent("thing.batch", "tests.thing", f"id\t{i}", AWKWARD_LABELS[i], before, after)

    with transaction.atomic():
        audit_record_many(
            actor=actor, events=(pending(i, b, a) for i, (b, a) in enumerate(AWKWARD_BEFORE_AFTER)), at=at
        )
        for i, (b, a) in enumerate(AWKWARD_BEFORE_AFTER):
            p = pending(i, b, a)
            audit_record(
                actor=actor, verb=p.verb, object_type=p.object_type, object_id=p.object_id,
                object_label=p.object_label, before=b, after=a, at=at,
            )  # fmt: skip
    rows = list(AuditEvent.objects.order_by("id"))
    fields = ("occurred_at", "actor_label", "object_id", "object_label", "before", "after")
    n = len(AWKWARD_BEFORE_AFTER)
    assert [[getattr(r, f) for f in fields] for r in rows[:n]] == [[getattr(r, f) for f in fields] for r in rows[n:]]
    assert rows[1].after == {"when": "2026-11-15T06:00:00.123Z", "amount": "1.10"}
    assert rows[2].before == {"2": "two", "10": "ten"}
    assert rows[4].object_label == "x" * 300
    assert all(event_digest(r) == r.hash for r in rows)
    assert audit_verify() is None


def test_an_event_records_actor_verb_object_and_before_after():
    event = _write(1, Actor("person", "7", "olivia.owner"))[0]
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_type, event.actor_id, event.actor_label) == ("person", "7", "olivia.owner")
    assert (event.verb, event.object_type, event.object_id) == ("thing.change0", "tests.thing", "0")
    assert (event.before, event.after) == ({"n": 0}, {"n": 1})


# --- tampering -----------------------------------------------------------------------------


def test_verify_audit_reports_an_intact_chain_and_its_head():
    events = _write(3)
    assert _verify_output().splitlines() == [
        "audit chain intact: 3 events",
        f"head: id={events[2].pk} hash={events[2].hash}",
    ]


def test_verify_audit_on_an_empty_log():
    assert _verify_output().splitlines() == ["audit chain intact: 0 events", "head: none (no events yet)"]


def test_verify_audit_catches_a_changed_row():
    events = _write(3)
    _assert_refused_on_postgres("UPDATE governance_auditevent SET verb = 'x' WHERE id = %s", [events[1].pk])
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[1].pk).update(after={"n": 999})
    broken = audit_verify()
    assert broken.event_id == events[1].pk
    assert "changed" in broken.problem
    with pytest.raises(CommandError, match=f"broken at event {events[1].pk}: .*changed") as exc:
        call_command("verify_audit")
    assert exc.value.returncode == 1


def test_verify_audit_catches_a_changed_row_whose_hash_was_recomputed():
    events = _write(3)
    with append_only_trigger_disabled():
        tampered = AuditEvent.objects.get(pk=events[1].pk)
        tampered.actor_label = "someone else"
        AuditEvent.objects.filter(pk=tampered.pk).update(actor_label="someone else", hash=event_digest(tampered))
    broken = audit_verify()
    assert broken.event_id == events[2].pk
    assert "link broken" in broken.problem


def test_verify_audit_catches_an_inserted_row():
    first = _write(1)[0]
    # The next legitimate row, leaving an id free before it.
    second = _forge(id=first.pk + 2, prev_hash=first.hash, verb="thing.legit")
    assert audit_verify() is None
    # A row slipped in between, self-consistent and linked to the row before it.
    _forge(id=first.pk + 1, prev_hash=first.hash)
    broken = audit_verify()
    assert broken.event_id == second.pk
    assert "inserted" in broken.problem
    with pytest.raises(CommandError, match=f"broken at event {second.pk}") as exc:
        call_command("verify_audit")
    assert exc.value.returncode == 1


def test_verify_audit_catches_a_deleted_row():
    events = _write(3)
    _assert_refused_on_postgres("DELETE FROM governance_auditevent WHERE id = %s", [events[1].pk])
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[1].pk).delete()
    broken = audit_verify()
    assert broken.event_id == events[2].pk
    assert "deleted" in broken.problem
    with pytest.raises(CommandError) as exc:
        call_command("verify_audit")
    assert exc.value.returncode == 1


def test_verify_audit_catches_a_deleted_first_row():
    events = _write(2)
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[0].pk).delete()
    assert audit_verify().event_id == events[1].pk


def test_verify_audit_catches_a_break_past_the_first_chunk():
    events = _write(5)
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[4].pk).update(verb="thing.other")
    assert audit_verify(chunk_size=2).event_id == events[4].pk


@pytest.mark.postgres
@pytest.mark.skipif(not ON_POSTGRES, reason="the append-only trigger exists on PostgreSQL only")
def test_postgres_trigger_refuses_update_delete_and_truncate():
    events = _write(2)
    _assert_refused_on_postgres("UPDATE governance_auditevent SET verb = 'x'")
    _assert_refused_on_postgres("DELETE FROM governance_auditevent")
    _assert_refused_on_postgres("TRUNCATE governance_auditevent")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=events[0].pk).update(verb="x")
    assert AuditEvent.objects.count() == 2
    assert audit_verify() is None


# --- the chain head: an anchor kept outside the database ---------------------------------


def _expect_head_fails(anchor: str, match: str) -> None:
    with pytest.raises(CommandError, match=match) as exc:
        call_command("verify_audit", "--expect-head", anchor)
    assert exc.value.returncode == 1


def test_deleting_the_newest_events_passes_plain_verify_but_not_the_recorded_head():
    _write(4)
    anchor = _head_of(_verify_output())
    newest = AuditEvent.objects.order_by("-id")[:2]
    newest_ids = [e.pk for e in newest]
    _assert_refused_on_postgres("DELETE FROM governance_auditevent WHERE id = ANY(%s)", [newest_ids])
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk__in=newest_ids).delete()

    # A chain cut short at its end is a valid chain: the hash chain alone cannot tell.
    assert _verify_output().splitlines()[0] == "audit chain intact: 2 events"
    assert audit_verify() is None
    anchor_id = int(anchor.split(":")[0])
    _expect_head_fails(anchor, rf"broken at event {anchor_id}: the recorded head \(event {anchor_id}\) is missing")


def test_the_recorded_head_is_missing_even_after_new_events_follow_the_cut():
    _write(3)
    anchor = _head_of(_verify_output())
    anchor_id = int(anchor.split(":")[0])
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=anchor_id).delete()
    _write(2)  # new events chained to what is left: the chain verifies again
    assert audit_verify() is None
    _expect_head_fails(anchor, rf"broken at event {anchor_id}: the recorded head \(event {anchor_id}\) is missing")


def test_a_recorded_head_that_was_changed_and_rehashed_fails():
    events = _write(3)
    anchor = _head_of(_verify_output())
    with append_only_trigger_disabled():
        tampered = AuditEvent.objects.get(pk=events[2].pk)
        tampered.after = {"n": 999}
        AuditEvent.objects.filter(pk=tampered.pk).update(after=tampered.after, hash=event_digest(tampered))
    assert audit_verify() is None  # self-consistent: only the anchor shows it
    _expect_head_fails(anchor, rf"broken at event {events[2].pk}: hash .* differs from the recorded head's")


def test_a_chain_rewritten_before_the_recorded_head_fails():
    events = _write(3)
    anchor = _head_of(_verify_output())
    with append_only_trigger_disabled():
        # Change the first row and recompute every hash after it, so the chain is valid again.
        prev = GENESIS_HASH
        for e in AuditEvent.objects.order_by("id"):
            e.prev_hash = prev
            if e.pk == events[0].pk:
                e.actor_label = "someone else"
            e.hash = prev = event_digest(e)
            AuditEvent.objects.filter(pk=e.pk).update(actor_label=e.actor_label, prev_hash=e.prev_hash, hash=e.hash)
    assert audit_verify() is None
    _expect_head_fails(anchor, rf"broken at event {events[2].pk}: .*differs from the recorded head's")


def test_a_recorded_head_still_on_the_chain_passes_with_later_events():
    _write(2)
    anchor = _head_of(_verify_output())
    later = _write(3)
    assert _verify_output("--expect-head", anchor).splitlines() == [
        "audit chain intact: 5 events",
        f"head: id={later[-1].pk} hash={later[-1].hash}",
        f"recorded head id={anchor.split(':')[0]} matches: the chain extends through it",
    ]


def test_a_break_before_the_recorded_head_is_reported_as_such():
    events = _write(3)
    anchor = _head_of(_verify_output())
    with append_only_trigger_disabled():
        AuditEvent.objects.filter(pk=events[0].pk).update(verb="thing.other")
    _expect_head_fails(anchor, rf"broken at event {events[0].pk}: content does not match")


@pytest.mark.parametrize("value", ["", "12", "abc:" + "0" * 64, "0:" + "0" * 64, "12:" + "g" * 64, "12:" + "a" * 63])
def test_a_malformed_expected_head_is_a_usage_error(value):
    _write(1)
    with pytest.raises(CommandError, match="expected ID:HASH") as exc:
        call_command("verify_audit", "--expect-head", value)
    assert exc.value.returncode == 2


def test_parse_head_accepts_uppercase_hex():
    assert parse_head(f"7:{'AB' * 32}") == (7, "ab" * 32)


def test_audit_check_reports_events_and_head():
    events = _write(3)
    report = audit_check(chunk_size=2)
    assert (report.events, report.broken) == (3, None)
    assert (report.head.id, report.head.hash, report.head.events) == (events[2].pk, events[2].hash, 3)
    assert audit_head() == report.head
    assert audit_check(expect_head=(events[1].pk, events[1].hash), chunk_size=1).broken is None


def test_audit_head_record_logs_one_line_and_writes_nothing(caplog):
    events = _write(2)
    caplog.set_level(logging.INFO, logger="governance.audit")
    counts = audit_head_record(now=events[0].occurred_at + timedelta(hours=1))
    at = (events[0].occurred_at + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "governance.audit"] == [
        (logging.INFO, f"audit head id={events[1].pk} hash={events[1].hash} events=2 at={at}")
    ]
    assert counts == {"id": events[1].pk, "hash": events[1].hash, "events": 2}
    assert AuditEvent.objects.count() == 2
    # The logged head is what verify_audit --expect-head takes.
    assert "matches" in _verify_output("--expect-head", f"{counts['id']}:{counts['hash']}")


# --- append-only in the ORM and transactions -----------------------------------------------


def test_saving_or_deleting_an_existing_event_is_refused():
    event = _write(1)[0]
    event.verb = "thing.rewritten"
    with pytest.raises(ValidationError, match="append-only"):
        event.save()
    with pytest.raises(ValidationError, match="append-only"):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).verb == "thing.change0"


@pytest.mark.django_db(transaction=True)
def test_audit_writes_outside_a_transaction_are_refused():
    with pytest.raises(RuntimeError, match="inside the transaction"):
        audit_record(actor=Actor.system(), verb="thing.change", object_type="tests.thing", object_id="1")
    with pytest.raises(RuntimeError):
        audit_record_many(actor=Actor.system(), events=[PendingEvent("thing.change", "tests.thing", "1")])
    assert AuditEvent.objects.count() == 0


def test_an_event_rolls_back_with_its_transaction():
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        audit_record(actor=Actor.system(), verb="thing.change", object_type="tests.thing", object_id="1")
        raise ZeroDivisionError
    assert AuditEvent.objects.count() == 0


# --- request id ----------------------------------------------------------------------------


def _view_writing_an_event(request):
    with transaction.atomic():
        audit_record(actor=Actor.system(), verb="thing.change", object_type="tests.thing", object_id="1")
    return HttpResponse("ok")


def test_the_request_id_from_x_request_id_ends_up_on_the_event():
    request = RequestFactory().post("/", headers={"X-Request-ID": "req-42.abc"})
    response = RequestIdMiddleware(_view_writing_an_event)(request)
    assert response["X-Request-ID"] == "req-42.abc"
    assert AuditEvent.objects.get().request_id == "req-42.abc"
    _write(1)
    assert AuditEvent.objects.order_by("-id").first().request_id == ""  # outside a request: none


def test_a_malformed_request_id_is_replaced_by_a_generated_one():
    request = RequestFactory().post("/", headers={"X-Request-ID": "bad id; drop table"})
    response = RequestIdMiddleware(_view_writing_an_event)(request)
    event = AuditEvent.objects.get()
    assert event.request_id == response["X-Request-ID"] != "bad id; drop table"
    assert len(event.request_id) == 32
