"""Concurrency on PostgreSQL (DESIGN.md invariant 10): real threads, each with its own connection.

Each race runs two services at once, lined up by a ``threading.Barrier``, and checks the one
consistent end state it must reach whichever goes first: rows, audit events (exactly one per
change, never two for one grant), e-mails, and an audit chain that still verifies. The free
races leave the order to the scheduler; the *ordered* ones pin it without sleeping: the thread
that goes first stops just after taking its row locks and goes on only once the other thread
is waiting for one of those locks (``pg_locks``), or has finished when it never waits
(``SKIP LOCKED``) — so both orders are exercised on every run.

SQLite serialises whole transactions and has no row locks, so these run on PostgreSQL only.
"""

import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection, connections

from delegations import services
from delegations.models import Approval, DelegationGrant
from governance.audit import Actor, audit_check, to_json
from governance.errors import Conflict
from governance.models import AuditEvent
from tests.factories import T0, AgentFactory, GrantFactory, ToolFactory

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="row locks, SKIP LOCKED and concurrent transactions need PostgreSQL; SQLite serialises writers",
    ),
    pytest.mark.django_db(transaction=True),
]

#: Seconds a thread may take before the test fails instead of hanging (a deadlock, a lost wake-up).
TIMEOUT = 30
#: Free races run this many times each, on fresh grants, to meet more interleavings.
ROUNDS = 3
GRANT_TYPE = "delegations.delegationgrant"


@dataclass
class Outcome:
    """What one thread's call returned or raised."""

    value: object = None
    error: BaseException | None = None


class Race:
    """Run named calls at once, each in its own thread with its own database connection.

    ``hold(first, after=…, until=…)`` pins the order: thread ``until`` starts its call only once
    thread ``first`` has returned from the service function ``after`` (a name in
    ``delegations.services``: by then ``first`` holds its row locks); ``first`` then waits until
    ``until`` is blocked on a lock or has finished, and goes on.
    """

    def __init__(self, monkeypatch, **calls):
        self.monkeypatch = monkeypatch
        self.calls = calls
        self.pids: dict[str, int] = {}
        self.done = {name: threading.Event() for name in calls}
        self.gates: dict[str, threading.Event] = {}

    def hold(self, first: str, *, after: str, until: str) -> "Race":
        self.monkeypatch.setattr(services, after, self.held_in(first, getattr(services, after), until, before=False))
        return self

    def held_in(self, thread: str, function, until: str, *, before: bool):
        """``function``, made to hold thread ``thread`` (see ``hold``) before or after its first call there."""
        fired = threading.Event()
        self.gates[until] = fired

        def held(*args, **kwargs):
            mine = threading.current_thread().name == thread and not fired.is_set()
            if mine and before:
                fired.set()
                self._wait_until_blocked_or_done(until)
            result = function(*args, **kwargs)
            if mine and not before:
                fired.set()
                self._wait_until_blocked_or_done(until)
            return result

        return held

    def _wait_until_blocked_or_done(self, name: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not self.done[name].is_set():
            pid = self.pids.get(name)
            if pid is not None:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = %s AND NOT granted)", [pid])
                    if cursor.fetchone()[0]:
                        return
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} neither waited for a lock nor finished")
            self.done[name].wait(0.001)

    def run(self) -> dict[str, Outcome]:
        barrier = threading.Barrier(len(self.calls), timeout=TIMEOUT)
        outcomes: dict[str, Outcome] = {}

        def target(name, call):
            try:
                connection.ensure_connection()
                self.pids[name] = connection.connection.info.backend_pid
                barrier.wait()
                if name in self.gates:
                    assert self.gates[name].wait(TIMEOUT), f"{name} was never let through"
                outcomes[name] = Outcome(value=call())
            except BaseException as exc:  # noqa: BLE001 - reported to the test below
                outcomes[name] = Outcome(error=exc)
            finally:
                self.done[name].set()
                connections.close_all()

        threads = [threading.Thread(target=target, args=item, name=item[0]) for item in self.calls.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a thread is still running: a deadlock?"
        return outcomes


def _ok(outcome: Outcome):
    if outcome.error is not None:
        raise outcome.error
    return outcome.value


def _succeeded_or_conflict(outcomes: dict[str, Outcome]) -> tuple[set[str], set[str]]:
    """The names of the calls that returned and of those refused with Conflict; anything else fails the test."""
    won = {n for n, o in outcomes.items() if o.error is None}
    refused = {n for n, o in outcomes.items() if isinstance(o.error, Conflict)}
    other = {n: o.error for n, o in outcomes.items() if n not in won | refused}
    assert not other, other
    return won, refused


def _verbs(grant: DelegationGrant) -> list[str]:
    return list(
        AuditEvent.objects.filter(object_type=GRANT_TYPE, object_id=str(grant.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


def _assert_chain_intact():
    report = audit_check()
    assert report.broken is None, report.broken


def _mails(fragment: str) -> list:
    return [m for m in mail.outbox if fragment in m.subject]


@pytest.fixture
def outbox(mailoutbox):
    """The locmem e-mail outbox, which every thread appends to."""
    return mailoutbox


@pytest.fixture
def child_agent(owner):
    """A second low-tier agent of ``owner``, with ``github`` (read), to receive delegated work."""
    agent = AgentFactory(owner=owner, name="Release notes", slug="release-notes", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    return agent


def _pending(agent, **kwargs) -> DelegationGrant:
    return GrantFactory(agent=agent, status=DelegationGrant.Status.PENDING, scopes=[("github", "read", "")], **kwargs)


# --- two approvals at once ---------------------------------------------------------------------


def _assert_activated_once(grant, approvers, outbox):
    grant.refresh_from_db()
    assert grant.status == DelegationGrant.Status.ACTIVE
    assert grant.decided_by_id in {a.pk for a in approvers}
    assert sorted(Approval.objects.filter(grant=grant).values_list("approver_id", flat=True)) == sorted(
        a.pk for a in approvers
    )
    events = AuditEvent.objects.filter(object_type=GRANT_TYPE, object_id=str(grant.pk), verb="grant.approve")
    assert events.count() == 2
    assert sorted(e.after["status"] for e in events) == ["active", "pending"]
    assert sorted(e.actor_id for e in events) == sorted(str(a.pk) for a in approvers)
    assert len([m for m in _mails("was approved") if f"#{grant.pk} " in m.body]) == 1
    _assert_chain_intact()


def test_two_approvals_at_once_activate_the_grant_exactly_once(
    frozen_now, monkeypatch, high_agent, approver, second_approver, outbox
):
    for _ in range(ROUNDS):
        grant = _pending(high_agent, approvals_required=2)
        outcomes = Race(
            monkeypatch,
            first=lambda g=grant: services.grant_approve(actor=Actor.person(approver), grant=g),
            second=lambda g=grant: services.grant_approve(actor=Actor.person(second_approver), grant=g),
        ).run()
        statuses = sorted(_ok(o).status for o in outcomes.values())
        assert statuses == ["active", "pending"]
        _assert_activated_once(grant, [approver, second_approver], outbox)


@pytest.mark.parametrize("first", ["first", "second"])
def test_two_approvals_one_waiting_for_the_others_lock_activate_it_once(
    frozen_now, monkeypatch, high_agent, approver, second_approver, outbox, first
):
    grant = _pending(high_agent, approvals_required=2)
    outcomes = (
        Race(
            monkeypatch,
            first=lambda: services.grant_approve(actor=Actor.person(approver), grant=grant),
            second=lambda: services.grant_approve(actor=Actor.person(second_approver), grant=grant),
        )
        .hold(first, after="_lock", until="second" if first == "first" else "first")
        .run()
    )
    # The one that held the lock saw one approval; the one that waited saw both and activated.
    assert _ok(outcomes[first]).status == DelegationGrant.Status.PENDING
    assert _ok(outcomes["second" if first == "first" else "first"]).status == DelegationGrant.Status.ACTIVE
    _assert_activated_once(grant, [approver, second_approver], outbox)


def test_one_approver_twice_at_once_decides_once(frozen_now, monkeypatch, high_agent, approver, outbox):
    for _ in range(ROUNDS):
        grant = _pending(high_agent, approvals_required=2)
        outcomes = Race(
            monkeypatch,
            a=lambda g=grant: services.grant_approve(actor=Actor.person(approver), grant=g),
            b=lambda g=grant: services.grant_approve(actor=Actor.person(approver), grant=g),
        ).run()
        won, refused = _succeeded_or_conflict(outcomes)
        assert len(won) == 1 and len(refused) == 1
        assert "already decided" in str(outcomes[refused.pop()].error)
        grant.refresh_from_db()
        assert grant.status == DelegationGrant.Status.PENDING
        assert Approval.objects.filter(grant=grant).count() == 1
        assert _verbs(grant) == ["grant.approve"]
        _assert_chain_intact()
    assert outbox == []


def test_one_approver_twice_the_second_waiting_gets_a_conflict_not_an_integrity_error(
    frozen_now, monkeypatch, high_agent, approver
):
    grant = _pending(high_agent, approvals_required=2)
    outcomes = (
        Race(
            monkeypatch,
            a=lambda: services.grant_approve(actor=Actor.person(approver), grant=grant),
            b=lambda: services.grant_approve(actor=Actor.person(approver), grant=grant),
        )
        .hold("a", after="_lock", until="b")
        .run()
    )
    assert _ok(outcomes["a"]).status == DelegationGrant.Status.PENDING
    assert isinstance(outcomes["b"].error, Conflict)
    assert Approval.objects.filter(grant=grant).count() == 1
    assert _verbs(grant) == ["grant.approve"]
    _assert_chain_intact()


# --- approval racing the end of a request or of its parent --------------------------------------


def _assert_approved_or_ended(grant, outcomes, *, approve: str, end_verb: str) -> str:
    """Which of the two whole end states ``grant`` reached: ``"approved"`` (the approval went
    through: one approval row, decided, its event first) or ``"ended"`` (the approval was refused:
    no approval row, not decided, the one ``end_verb`` event); never a mix."""
    grant.refresh_from_db()
    won, refused = _succeeded_or_conflict(outcomes)
    approvals = Approval.objects.filter(grant=grant)
    if approve in won:
        assert approvals.count() == 1 and grant.decided_at is not None
        assert _verbs(grant)[0] == "grant.approve"
    else:
        assert approve in refused
        assert approvals.count() == 0 and grant.decided_at is None
        assert _verbs(grant) == [end_verb]
    _assert_chain_intact()
    return "approved" if approve in won else "ended"


def _cancel_race(monkeypatch, grant, approver, owner):
    return Race(
        monkeypatch,
        approve=lambda: services.grant_approve(actor=Actor.person(approver), grant=grant),
        cancel=lambda: services.grant_cancel(actor=Actor.person(owner), grant=grant, reason="No longer needed."),
    )


def _assert_cancel_race(grant, outcomes) -> str:
    ended = _assert_approved_or_ended(grant, outcomes, approve="approve", end_verb="grant.cancel")
    # Exactly one of the two went through; the other was refused, whole.
    if ended == "approved":
        assert isinstance(outcomes["cancel"].error, Conflict)
        assert grant.status == DelegationGrant.Status.ACTIVE
        assert _verbs(grant) == ["grant.approve"]
    else:
        assert _ok(outcomes["cancel"]).status == DelegationGrant.Status.CANCELLED
        assert grant.status == DelegationGrant.Status.CANCELLED
    return ended


def test_approval_racing_cancellation_ends_in_one_state(frozen_now, monkeypatch, low_agent, approver, owner):
    for _ in range(ROUNDS):
        grant = _pending(low_agent)
        _assert_cancel_race(grant, _cancel_race(monkeypatch, grant, approver, owner).run())


@pytest.mark.parametrize(("first", "expected"), [("approve", "approved"), ("cancel", "ended")])
def test_approval_racing_cancellation_in_either_order(
    frozen_now, monkeypatch, low_agent, approver, owner, first, expected
):
    grant = _pending(low_agent)
    race = _cancel_race(monkeypatch, grant, approver, owner)
    race.hold(first, after="_lock", until="cancel" if first == "approve" else "approve")
    assert _assert_cancel_race(grant, race.run()) == expected


def _parent_race(monkeypatch, parent, child, approver, owner):
    return Race(
        monkeypatch,
        approve=lambda: services.grant_approve(actor=Actor.person(approver), grant=child),
        revoke=lambda: services.grant_revoke(actor=Actor.person(owner), grant=parent, reason="Work moved elsewhere."),
    )


def _assert_parent_race(parent, child, outcomes) -> str:
    # The revocation always goes through; the child ends revoked (approved first) or cancelled
    # (still pending when the cascade reached it) — never active under a revoked parent.
    ended = _assert_approved_or_ended(child, outcomes, approve="approve", end_verb="grant.cancel")
    revoked = _ok(outcomes["revoke"])
    parent.refresh_from_db()
    assert parent.status == DelegationGrant.Status.REVOKED
    assert _verbs(parent) == ["grant.revoke"]
    if ended == "approved":
        assert child.status == DelegationGrant.Status.REVOKED
        assert _verbs(child) == ["grant.approve", "grant.revoke"]
        assert [g.pk for g in revoked] == [parent.pk, child.pk]
    else:
        assert child.status == DelegationGrant.Status.CANCELLED
    assert not DelegationGrant.objects.active_at(T0).filter(pk__in=[parent.pk, child.pk]).exists()
    return ended


def _parent_and_child(low_agent, child_agent):
    parent = GrantFactory(agent=low_agent, scopes=[("github", "read", "")])
    child = _pending(child_agent, parent=parent, requested_by=low_agent.owner)
    return parent, child


def test_approval_racing_revocation_of_the_parent_ends_in_one_state(
    frozen_now, monkeypatch, low_agent, child_agent, approver, owner
):
    for _ in range(ROUNDS):
        parent, child = _parent_and_child(low_agent, child_agent)
        _assert_parent_race(parent, child, _parent_race(monkeypatch, parent, child, approver, owner).run())


@pytest.mark.parametrize(
    ("first", "after", "expected"),
    [
        ("approve", "_lock", "approved"),  # the cascade waits for the child's lock, then revokes it
        ("revoke", "_end", "ended"),  # parent and child locked by the revocation; the approval waits, then is refused
    ],
)
def test_approval_racing_revocation_of_the_parent_in_either_order(
    frozen_now, monkeypatch, low_agent, child_agent, approver, owner, first, after, expected
):
    parent, child = _parent_and_child(low_agent, child_agent)
    race = _parent_race(monkeypatch, parent, child, approver, owner)
    race.hold(first, after=after, until="revoke" if first == "approve" else "approve")
    assert _assert_parent_race(parent, child, race.run()) == expected


def _stale_race(monkeypatch, grant, approver):
    return Race(
        monkeypatch,
        approve=lambda: services.grant_approve(actor=Actor.person(approver), grant=grant),
        job=lambda: services.requests_cancel_stale(now=T0),
    )


def _stale_request(low_agent) -> DelegationGrant:
    """A pending request older than the policy's 7 days, still approvable (its expiry is ahead)."""
    return _pending(
        low_agent,
        requested_at=T0 - timedelta(days=8),
        starts_at=T0 - timedelta(days=8),
        expires_at=T0 + timedelta(days=1),
    )


@pytest.mark.parametrize("first", [None, "approve", "job"])
def test_approval_racing_the_stale_request_job_ends_in_one_state(frozen_now, monkeypatch, low_agent, approver, first):
    grant = _stale_request(low_agent)
    race = _stale_race(monkeypatch, grant, approver)
    if first == "approve":
        race.hold("approve", after="_lock", until="job")  # the job skips the locked row
    elif first == "job":
        # Held before writing its audit events: the job has cancelled the request and holds its row.
        monkeypatch.setattr(
            services, "audit_record_many", race.held_in("job", services.audit_record_many, "approve", before=True)
        )
    outcomes = race.run()
    ended = _assert_approved_or_ended(grant, outcomes, approve="approve", end_verb="grant.cancel")
    assert grant.status == (DelegationGrant.Status.ACTIVE if ended == "approved" else DelegationGrant.Status.CANCELLED)
    assert _verbs(grant) == ["grant.approve" if ended == "approved" else "grant.cancel"]
    assert _ok(outcomes["job"]) == {"cancelled": 0 if ended == "approved" else 1}
    if first is not None:
        assert ended == ("approved" if first == "approve" else "ended")


# --- the expiry job racing a revocation, or itself ----------------------------------------------


#: The instant the expiry job runs for, a minute after the pinned clock (T0): a grant ending at
#: ``T0 + 30 s`` is due for the job and still revocable by a person acting at T0 — the window in
#: which a revocation in flight and the job meet.
JOB_NOW = T0 + timedelta(minutes=1)


def _due(agent, n: int = 0, **kwargs) -> DelegationGrant:
    """An active grant due for the job at ``JOB_NOW`` and still revocable at T0; ``n`` varies the
    fraction of a second of its expiry (none, whole milliseconds, microseconds)."""
    return GrantFactory(
        agent=agent,
        starts_at=T0 - timedelta(days=1),
        expires_at=T0 + timedelta(seconds=30, microseconds=(0, 250_000, 999_999, 123)[n % 4]),
        scopes=[("github", "read", "")],
        **kwargs,
    )


def _assert_each_ended_once(grants, outbox):
    """Every grant is expired or revoked, with exactly one matching audit event, and one expiry e-mail per expiry."""
    ends = Counter()
    for g in grants:
        g.refresh_from_db()
        verbs = _verbs(g)
        assert g.status in (DelegationGrant.Status.EXPIRED, DelegationGrant.Status.REVOKED), (g.pk, g.status)
        expected = "grant.expire" if g.status == DelegationGrant.Status.EXPIRED else "grant.revoke"
        assert verbs == [expected], (g.pk, g.status, verbs)
        if expected == "grant.expire":
            event = AuditEvent.objects.get(object_type=GRANT_TYPE, object_id=str(g.pk))
            assert (event.before, event.after) == (
                {"status": "active"},
                {"status": "expired", "expires_at": to_json(g.expires_at)},
            )
            assert event.object_label == str(g)
        assert g.ended_at is not None
        ends[g.status] += 1
    expired_mails = _mails("has expired")
    assert len(expired_mails) == ends[DelegationGrant.Status.EXPIRED]
    assert len({m.subject for m in expired_mails}) == len(expired_mails)
    _assert_chain_intact()
    return ends


def _revoke_each(grants, owner):
    def revoke_all():
        results = []
        for g in grants:
            try:
                results.append(
                    [x.pk for x in services.grant_revoke(actor=Actor.person(owner), grant=g, reason="Done.")]
                )
            except Conflict:
                results.append("conflict")
        return results

    return revoke_all


def test_the_expiry_job_and_revocations_at_once_never_log_a_grant_twice(
    frozen_now, monkeypatch, low_agent, child_agent, owner, outbox
):
    for _ in range(ROUNDS):
        outbox.clear()
        grants = [_due(low_agent, n) for n in range(6)]
        child = _due(child_agent, parent=grants[0], depth=2)
        outcomes = Race(
            monkeypatch,
            job=lambda: services.grants_expire_due(now=JOB_NOW, batch_size=2),
            revoke=_revoke_each(grants[:4], owner),
        ).run()
        ends = _assert_each_ended_once([*grants, child], outbox)
        assert _ok(outcomes["job"])["expired"] == ends[DelegationGrant.Status.EXPIRED]
        revoked = [r for r in _ok(outcomes["revoke"]) if r != "conflict"]
        assert sum(len(r) for r in revoked) == ends[DelegationGrant.Status.REVOKED]
        assert services.grants_expire_due(now=JOB_NOW) == {"expired": 0}


@pytest.mark.parametrize(
    ("first", "after", "expected"),
    [
        ("job", "_expire_batch", "expired"),  # the revocation waits for the job's row lock, then is refused
        ("revoke", "_lock", "revoked"),  # the job skips the locked row; the revocation commits
    ],
)
def test_the_expiry_job_and_a_revocation_in_either_order(
    frozen_now, monkeypatch, low_agent, owner, outbox, first, after, expected
):
    grant = _due(low_agent)
    outcomes = (
        Race(
            monkeypatch,
            job=lambda: services.grants_expire_due(now=JOB_NOW),
            revoke=lambda: services.grant_revoke(actor=Actor.person(owner), grant=grant, reason="Done."),
        )
        .hold(first, after=after, until="revoke" if first == "job" else "job")
        .run()
    )
    ends = _assert_each_ended_once([grant], outbox)
    assert ends == {expected: 1}
    if expected == "expired":
        assert _ok(outcomes["job"]) == {"expired": 1}
        assert isinstance(outcomes["revoke"].error, Conflict)
    else:
        assert _ok(outcomes["job"]) == {"expired": 0}
        assert [g.pk for g in _ok(outcomes["revoke"])] == [grant.pk]
    # A later run finds nothing more to do.
    assert services.grants_expire_due(now=JOB_NOW) == {"expired": 0}


def test_two_expiry_jobs_at_once_expire_each_grant_once(frozen_now, monkeypatch, low_agent, outbox):
    for _ in range(ROUNDS):
        outbox.clear()
        grants = [_due(low_agent, n) for n in range(12)]
        outcomes = Race(
            monkeypatch,
            a=lambda: services.grants_expire_due(now=JOB_NOW, batch_size=3),
            b=lambda: services.grants_expire_due(now=JOB_NOW, batch_size=3),
        ).run()
        assert _ok(outcomes["a"])["expired"] + _ok(outcomes["b"])["expired"] == len(grants)
        assert _assert_each_ended_once(grants, outbox) == {DelegationGrant.Status.EXPIRED: len(grants)}


def test_two_expiry_jobs_one_holding_a_batch_the_other_skips_it(frozen_now, monkeypatch, low_agent, outbox):
    grants = [_due(low_agent, n) for n in range(7)]
    outcomes = (
        Race(
            monkeypatch,
            a=lambda: services.grants_expire_due(now=JOB_NOW, batch_size=3),
            b=lambda: services.grants_expire_due(now=JOB_NOW, batch_size=3),
        )
        .hold("a", after="_expire_batch", until="b")
        .run()
    )
    # a holds its first batch of 3 until b has finished: b takes the other 4, a then finds nothing more.
    assert (_ok(outcomes["a"])["expired"], _ok(outcomes["b"])["expired"]) == (3, 4)
    assert _assert_each_ended_once(grants, outbox) == {DelegationGrant.Status.EXPIRED: len(grants)}


def test_the_expiry_job_updates_the_next_batch_while_the_previous_one_writes_its_audit_events(
    frozen_now, monkeypatch, low_agent, outbox
):
    """Outside a transaction, once its first batch came back full, the job works on two connections:
    the helper's UPDATE of a batch runs (and here even commits) while the main connection's batch has not
    written its audit events yet; each grant still ends once, with one audit event and one e-mail, and
    the chain stays intact."""
    grants = [_due(low_agent, n) for n in range(9)]
    main = threading.current_thread()
    helper_took_a_batch = threading.Event()
    backends = Counter()
    audits_in_main = []
    expire_batch, audit_record_many = services._expire_batch, services.audit_record_many

    def recording(*args, **kwargs):
        rows = expire_batch(*args, **kwargs)
        backends[connection.connection.info.backend_pid] += len(rows)
        if rows and threading.current_thread() is not main:
            helper_took_a_batch.set()
        return rows

    def second_waits_for_the_helper(*args, **kwargs):
        if threading.current_thread() is main:
            audits_in_main.append(1)
            if len(audits_in_main) == 2:
                assert helper_took_a_batch.wait(TIMEOUT), "the helper connection never took a batch"
        return audit_record_many(*args, **kwargs)

    monkeypatch.setattr(services, "_expire_batch", recording)
    monkeypatch.setattr(services, "audit_record_many", second_waits_for_the_helper)
    assert services.grants_expire_due(now=JOB_NOW, batch_size=2) == {"expired": 9}
    assert len(backends) == services.EXPIRY_CONNECTIONS == 2 and sum(backends.values()) == 9
    assert _assert_each_ended_once(grants, outbox) == {DelegationGrant.Status.EXPIRED: 9}
    assert services.grants_expire_due(now=JOB_NOW) == {"expired": 0}


def test_a_short_first_batch_needs_no_second_connection(frozen_now, monkeypatch, low_agent, outbox):
    grants = [_due(low_agent, n) for n in range(3)]
    started = []
    monkeypatch.setattr(services.threading, "Thread", lambda *a, **k: started.append(1))
    assert services.grants_expire_due(now=JOB_NOW, batch_size=5) == {"expired": 3}
    assert services.grants_expire_due(now=JOB_NOW, batch_size=5) == {"expired": 0}
    assert started == []
    assert _assert_each_ended_once(grants, outbox) == {DelegationGrant.Status.EXPIRED: 3}


def test_an_error_on_the_helper_connection_stops_the_job_and_is_raised(frozen_now, monkeypatch, low_agent, outbox):
    """The helper's batch rolls back whole (no grant ended without its event), the main connection's
    batches commit with their events, the run stops and the error reaches the caller; a later run
    expires the rest."""
    grants = [_due(low_agent, n) for n in range(6)]
    main = threading.current_thread()
    main_took_its_second_batch, helper_failed = threading.Event(), threading.Event()
    taken_in_main = []
    expire_batch, audit_record_many = services._expire_batch, services.audit_record_many

    def recording(*args, **kwargs):
        rows = expire_batch(*args, **kwargs)
        if threading.current_thread() is main:
            taken_in_main.append(len(rows))
            if len(taken_in_main) == 2:
                main_took_its_second_batch.set()
        return rows

    def failing_in_the_helper(*args, **kwargs):
        if threading.current_thread() is not main:
            assert main_took_its_second_batch.wait(TIMEOUT)
            helper_failed.set()
            raise RuntimeError("the helper's audit write failed")
        if len(taken_in_main) == 2:
            assert helper_failed.wait(TIMEOUT), "the helper connection never took a batch"
        return audit_record_many(*args, **kwargs)

    monkeypatch.setattr(services, "_expire_batch", recording)
    monkeypatch.setattr(services, "audit_record_many", failing_in_the_helper)
    with pytest.raises(RuntimeError, match="helper's audit write failed"):
        services.grants_expire_due(now=JOB_NOW, batch_size=2)
    statuses = Counter()
    for g in grants:
        g.refresh_from_db()
        statuses[g.status] += 1
        assert _verbs(g) == (["grant.expire"] if g.status == DelegationGrant.Status.EXPIRED else [])
    assert statuses == {DelegationGrant.Status.EXPIRED: 4, DelegationGrant.Status.ACTIVE: 2}
    _assert_chain_intact()
    monkeypatch.setattr(services, "_expire_batch", expire_batch)
    monkeypatch.setattr(services, "audit_record_many", audit_record_many)
    assert services.grants_expire_due(now=JOB_NOW) == {"expired": 2}
