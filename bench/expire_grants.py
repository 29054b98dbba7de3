"""Benchmark: the grant expiry job over 1,000,000 grants, against the floor (one raw SQL UPDATE of the same rows).

Run by hand (never as a test), against a scratch PostgreSQL database:

    createdb -h 127.0.0.1 -U postgres warrant_bench_expire
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/warrant_bench_expire \\
        .venv/bin/python bench/expire_grants.py --grants 1000000 --due 500000 --due-early 100000 \\
        --layout ordered --verify
    dropdb -h 127.0.0.1 -U postgres warrant_bench_expire

It migrates, then loads ``--grants`` active grants on ``--agents`` agents with one
``INSERT … SELECT generate_series`` (a minute, not an hour): ``--due`` of them, spread evenly
over the ids, have ``expires_at <= NOW``; ``--due-early`` of those already had at ``NOW - 1 h``;
the rest end up to 30 days later. ``--layout ordered``: older grants end first (the due rows'
expiry grows with their id, as when grants are requested over time); ``--layout spread``: the
due rows' expiry bears no relation to their id, so every batch the job takes (in expiry order)
is scattered over the whole table — the worst case for the job, not for the floor.

The loaded database then serves as a template: each measurement runs on a fresh copy
(``CREATE DATABASE <name>_run TEMPLATE <name>``, dropped afterwards; so run one benchmark per
database at a time), so the floor and the job start from the same state, on disk and in the
planner's statistics. For each due count (``--due-early`` at ``NOW - 1 h``, ``--due`` at
``NOW``) it measures:

- the floor: one ``UPDATE`` setting the same columns of the same rows, in a transaction rolled
  back — once as the planner likes it (a sequential scan, when half the table is due) and once
  with sequential and bitmap scans turned off, so that it reads the due rows through
  ``grant_status_expires_idx`` as the job does; the ratio is taken against the faster of the two;
- ``grants_expire_due(now=…)``: the job, audit events included (one per grant, hash-chained),
  with this process's CPU time;
- its peak Python memory (tracemalloc), in a separate run on another copy, since tracing slows
  Python down and would inflate the timed run;
- then, on the state the job left, 20 runs with nothing due (the same instant again), in ms —
  right after the job, and after a ``VACUUM`` has cleared the index entries the job left behind.

Notifications: the job hands the ids of each committed batch to
``send_grant_notifications.delay`` (on commit). Here that call is replaced by a counter, so the
figures are the job's own work; sending is the Celery worker's, and the script times it
separately for one batch of ``JOB_BATCH_SIZE`` grants into the locmem e-mail backend.
``--verify`` also walks the whole audit chain after the job. The plans of the floors and of one
job batch are printed.
"""

import argparse
import os
import statistics
import sys
import threading
import time
import tracemalloc
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings.local")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from delegations import services, tasks  # noqa: E402
from delegations.models import DelegationGrant  # noqa: E402
from governance.audit import audit_check  # noqa: E402
from governance.models import AuditEvent  # noqa: E402
from inventory.models import Agent  # noqa: E402

NOW = datetime(2026, 11, 15, 6, tzinfo=UTC)
EARLY = NOW - timedelta(hours=1)
GRANTS = DelegationGrant._meta.db_table
FLOOR_SQL = (
    f"UPDATE {GRANTS} SET status = 'expired', ended_at = %(now)s, ended_by = 'system', "
    "end_reason = 'Reached its expiry.' WHERE status = 'active' AND expires_at <= %(now)s"
)


def load(grants: int, due: int, early: int, agents: int, layout: str) -> None:
    """``agents`` active agents with e-mailed owners, and ``grants`` active grants spread over them (see module doc)."""
    from django.contrib.auth import get_user_model

    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "owner@example.com"})
    requester, _ = User.objects.get_or_create(username="bench-requester", defaults={"email": "req@example.com"})
    Agent.objects.bulk_create(
        [
            Agent(
                slug=f"bench-{i}",
                name=f"Bench agent {i}",
                kind=Agent.Kind.SERVICE_ACCOUNT,
                owner=owner,
                state=Agent.State.ACTIVE,
                risk_tier=Agent.RiskTier.LOW,
                state_changed_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
            for i in range(agents)
        ],
        batch_size=5000,
    )
    first_agent = Agent.objects.order_by("id").values_list("id", flat=True).first()
    # k is the due index (1..due) of row i when row i is due: due rows are spread evenly over the ids.
    if layout == "ordered":
        # Older grants end first: the due rows' expiry grows with their id, the early ones first.
        early_expiry = "%(now)s::timestamptz - interval '2 hours' + make_interval(secs => k * 3599.0 / %(early)s)"
        late_expiry = (
            "%(now)s::timestamptz - interval '1 hour' + make_interval(secs => (k - %(early)s) * 3600.0 / %(late)s)"
        )
        is_early = "k <= %(early)s"
    else:
        # Expiry in no relation to the id: each batch the job takes is scattered over the whole table.
        early_expiry = "%(now)s::timestamptz - interval '2 hours' + (i %% 3600) * interval '1 second'"
        late_expiry = (
            "%(now)s::timestamptz - interval '1 hour' + interval '1 second' + (i %% 3599) * interval '1 second'"
        )
        is_early = "(k * %(early)s) / %(due)s > ((k - 1) * %(early)s) / %(due)s"
    sql = f"""
        INSERT INTO {GRANTS} (
            agent_id, purpose, intents, justification, depth, requested_via, requested_by_id, requested_at,
            starts_at, expires_at, approvals_required, status, decided_at, decision_reason, ended_by, end_reason
        )
        SELECT %(first_agent)s + i %% %(agents)s, 'Bench grant', '[]', 'Benchmark.', 1, '', %(requester)s,
               e - interval '1 day', e - interval '1 day', e, 1, 'active', e - interval '1 day', '', '', ''
        FROM (
            SELECT i, CASE
                WHEN NOT due THEN %(now)s::timestamptz + interval '1 hour' + (i %% 2592000) * interval '1 second'
                WHEN {is_early} THEN {early_expiry}
                ELSE {late_expiry}
            END AS e
            FROM (
                SELECT i, (i * %(due)s) / %(grants)s > ((i - 1) * %(due)s) / %(grants)s AS due,
                       (i * %(due)s) / %(grants)s AS k
                FROM generate_series(1::bigint, %(grants)s::bigint) AS i
            ) AS s
        ) AS t
    """
    params = {
        "first_agent": first_agent,
        "agents": agents,
        "requester": requester.pk,
        "now": NOW,
        "grants": grants,
        "due": due,
        "early": early,
        "late": max(due - early, 1),
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        cursor.execute(f"VACUUM (ANALYZE) {GRANTS}")
        cursor.execute(f"VACUUM (ANALYZE) {Agent._meta.db_table}")
        cursor.execute("CHECKPOINT")


def _admin_connection(settings_dict):
    return psycopg.connect(
        dbname="postgres",
        user=settings_dict["USER"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
        password=settings_dict["PASSWORD"] or None,
        autocommit=True,
    )


@contextmanager
def fresh_copy(label: str):
    """Point Django at a fresh copy of the loaded database for the duration of the block, then drop it."""
    settings_dict = connection.settings_dict
    base = settings_dict["NAME"]
    copy = f"{base}_run"
    connection.close()
    with _admin_connection(settings_dict) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{copy}"')
        admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{base}" STRATEGY FILE_COPY')
    settings_dict["NAME"] = copy
    try:
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")
        yield
    finally:
        connection.close()
        settings_dict["NAME"] = base
        with _admin_connection(settings_dict) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{copy}"')


class NotificationCounter:
    """Stands in for ``send_grant_notifications.delay``: counts the tasks and grant ids handed over."""

    def __init__(self):
        self.tasks = 0
        self.grants = 0
        self.lock = threading.Lock()  # the job's connections commit from their own threads

    def __call__(self, kind, grant_ids):
        with self.lock:
            self.tasks += 1
            self.grants += len(grant_ids)


@contextmanager
def counted_notifications():
    counter = NotificationCounter()
    original = tasks.send_grant_notifications.delay
    tasks.send_grant_notifications.delay = counter
    try:
        yield counter
    finally:
        tasks.send_grant_notifications.delay = original


def explain(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join("    " + row[0] for row in cursor.fetchall())


def job_batch_sql(now: datetime) -> str:
    """The SQL of one batch of the job at ``now`` (parameters bound), captured from a batch rolled back."""
    from django.test.utils import CaptureQueriesContext

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        services._expire_batch(now, services.JOB_BATCH_SIZE)
        transaction.set_rollback(True)
    return next(q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith("UPDATE"))


def floor(now: datetime, *, index_only: bool) -> tuple[float, int, str]:
    """Seconds for the raw UPDATE of the rows due at ``now``, the rows it touched and its plan; rolled back.

    ``index_only`` turns off the planner's sequential and bitmap scans for the statement, so that
    it reads the due rows through ``grant_status_expires_idx``, as the job does.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        if index_only:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = explain(FLOOR_SQL, {"now": now})
        started = time.perf_counter()
        cursor.execute(FLOOR_SQL, {"now": now})
        elapsed = time.perf_counter() - started
        rows = cursor.rowcount
        transaction.set_rollback(True)
    return elapsed, rows, plan


def job(now: datetime, traced: bool) -> tuple[float, float, int, float, NotificationCounter]:
    """Run the expiry job at ``now``: wall seconds, this process's CPU seconds, grants expired, peak
    traced MiB (0 untraced), notifications handed over."""
    with counted_notifications() as counter:
        if traced:
            tracemalloc.start()
        started, cpu = time.perf_counter(), time.process_time()
        result = services.grants_expire_due(now=now)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = 0.0
        if traced:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    return elapsed, cpu, result["expired"], peak, counter


def nothing_due(now: datetime, runs: int = 20) -> list[float]:
    """Milliseconds of ``runs`` reruns of the job at ``now`` once nothing is due; each must expire nothing."""
    times = []
    with counted_notifications() as counter:
        for _ in range(runs):
            started = time.perf_counter()
            result = services.grants_expire_due(now=now)
            times.append((time.perf_counter() - started) * 1000)
            assert result == {"expired": 0}, result
    assert counter.tasks == 0
    return times


def send_one_batch() -> tuple[float, int]:
    """Seconds and messages for one notification task of ``JOB_BATCH_SIZE`` expired grants (locmem backend)."""
    from django.core import mail

    from delegations.notifications import grant_notifications_send

    ids = list(
        DelegationGrant.objects.filter(status=DelegationGrant.Status.EXPIRED)
        .order_by("pk")
        .values_list("pk", flat=True)[: services.JOB_BATCH_SIZE]
    )
    with override_settings(MAILERS={"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}):
        mail.outbox = []
        started = time.perf_counter()
        sent = grant_notifications_send(kind="expired", grant_ids=ids)
        elapsed = time.perf_counter() - started
    return elapsed, sent


def _ms(times: list[float]) -> str:
    return f"first {times[0]:.2f} ms, median {statistics.median(times):.2f} ms, max {max(times):.2f} ms"


def measure(now: datetime, label: str, expected: int, verify: bool, show_plans: bool) -> None:
    """Floors, job, its memory and the reruns at ``now``, each on a fresh copy of the loaded database."""
    floors = {}
    for index_only, name in ((False, "planner's choice"), (True, "index scan")):
        with fresh_copy(label):
            elapsed, rows, plan = floor(now, index_only=index_only)
            assert rows == expected, (rows, expected)
            floors[name] = elapsed
            if show_plans:
                print(f"  plan of the floor ({name}):\n{plan}")
    with fresh_copy(label):
        if show_plans:
            print("  plan of one job batch:\n" + explain(job_batch_sql(now), None))
        job_s, job_cpu, expired, _, counter = job(now, traced=False)
        assert expired == expected, (expired, expected)
        assert counter.grants == expected
        events = AuditEvent.objects.filter(verb="grant.expire").count()
        assert events == expected, events
        after_job = nothing_due(now)
        with connection.cursor() as cursor:
            cursor.execute(f"VACUUM {GRANTS}")
        after_vacuum = nothing_due(now)
        floor_s = min(floors.values())
        print(
            f"{label}: floor {' / '.join(f'{v:.2f} s ({k})' for k, v in floors.items())} | "
            f"job {job_s:.2f} s = {job_s / floor_s:.2f}x the faster floor "
            f"(Python CPU {job_cpu:.2f} s; {expired} expired, {events} audit events, "
            f"{counter.tasks} notification tasks for {counter.grants} grants)"
        )
        print(f"  nothing due, right after the job: {_ms(after_job)}; after VACUUM: {_ms(after_vacuum)}")
        if verify:
            started = time.perf_counter()
            report = audit_check()
            print(
                f"  audit chain: {report.events} events, "
                f"{'intact' if report.broken is None else report.broken} ({time.perf_counter() - started:.1f} s)"
            )
            assert report.broken is None
            send_s, sent = send_one_batch()
            print(
                f"  one notification task ({services.JOB_BATCH_SIZE} grants, locmem): {sent} e-mails in {send_s:.2f} s"
            )
    with fresh_copy(label):
        _, _, expired, peak, _ = job(now, traced=True)
        assert expired == expected
        print(f"  peak Python memory of the job (tracemalloc, separate run): {peak:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=500_000)
    parser.add_argument("--due-early", type=int, default=100_000, help="due already at NOW - 1 h (<= --due)")
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument(
        "--layout",
        choices=["spread", "ordered"],
        default="spread",
        help="spread: the due rows' expiry unrelated to their ids; ordered: older grants end first",
    )
    parser.add_argument("--verify", action="store_true", help="walk the audit chain after the job at NOW")
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("this benchmark needs PostgreSQL (DATABASE_URL=postgres://…)")
    if not 0 < args.due_early <= args.due <= args.grants:
        sys.exit("need 0 < --due-early <= --due <= --grants")
    call_command("migrate", verbosity=0)
    if DelegationGrant.objects.exists() or AuditEvent.objects.exists():
        sys.exit("use an empty scratch database (drop and recreate it)")
    started = time.perf_counter()
    load(args.grants, args.due, args.due_early, args.agents, args.layout)
    print(
        f"loaded {DelegationGrant.objects.count()} grants on {args.agents} agents in "
        f"{time.perf_counter() - started:.1f} s ({args.layout} layout); batch size {services.JOB_BATCH_SIZE}"
    )
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        print(f"PostgreSQL {cursor.fetchone()[0]}, Python {sys.version.split()[0]}")
    connection.close()
    measure(EARLY, f"{args.due_early:>9} due", args.due_early, verify=False, show_plans=False)
    measure(NOW, f"{args.due:>9} due", args.due, verify=args.verify, show_plans=True)


if __name__ == "__main__":
    main()
