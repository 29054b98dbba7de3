"""The audit log: hash chain, tamper detection (``verify_audit``), append-only, transactions, request id."""

from contextlib import contextmanager

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
    audit_record,
    audit_record_many,
    audit_verify,
    event_digest,
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


def _verify_output() -> str:
    from io import StringIO

    out = StringIO()
    call_command("verify_audit", stdout=out)
    return out.getvalue()


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


def test_an_event_records_actor_verb_object_and_before_after():
    event = _write(1, Actor("person", "7", "olivia.owner"))[0]
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.actor_type, event.actor_id, event.actor_label) == ("person", "7", "olivia.owner")
    assert (event.verb, event.object_type, event.object_id) == ("thing.change0", "tests.thing", "0")
    assert (event.before, event.after) == ({"n": 0}, {"n": 1})


# --- tampering -----------------------------------------------------------------------------


def test_verify_audit_reports_an_intact_chain():
    _write(3)
    assert _verify_output().strip() == "audit chain intact: 3 events"


def test_verify_audit_on_an_empty_log():
    assert _verify_output().strip() == "audit chain intact: 0 events"


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
