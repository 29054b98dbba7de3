"""Benchmark: the runtime decision (``delegations.decisions.decide``) on a large inventory, in process and over HTTP.

Run by hand (never as a test), against a scratch PostgreSQL database:

    createdb -h 127.0.0.1 -U postgres warrant_bench_decisions
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/warrant_bench_decisions \\
        .venv/bin/python bench/decisions.py --agents 100000 --grants-per-agent 10 --heavy 5000
    dropdb -h 127.0.0.1 -U postgres warrant_bench_decisions

Loading. It migrates, then loads with set-based ``INSERT … SELECT generate_series`` (a minute or
two): ``--agents`` active agents, each with a SPIFFE workload identity
``spiffe://bench.example/agent/<n>``, a ``crm`` tool (data class ``pii``, which every agent is
cleared for), every third one a ``tickets`` tool (no grant names it), every fifth a ``payments``
tool (data class ``payment``, which no agent is cleared for); and ``--grants-per-agent`` (10)
grants per agent, one scope each, 90 % of them ended: the last of each agent is active and in its
window (``crm:read on accounts/*``), grant 0 expired (``crm:write on accounts/*``), grant 1
revoked (``crm:execute on reports/*``), grants 2–8 expired or revoked (``crm:read on
archive/<k>/*``). The active and the first expired grant of one agent in five sit in delegation
chains of depth 2 or 3. One more agent, the heavy one, holds ``--heavy`` expired grants for
``crm:read on accounts/*`` and one active grant. Windows are relative to the load instant, which
the marker table ``bench_decisions_marker`` keeps: a rerun finds the marker and skips the load
(``--reload`` drops the schema and loads again; so does a load older than 25 days, whose active
grants are about to end). ``ANALYZE`` afterwards.

In process. ``decide()`` over ``--requests`` requests drawn at random, ``now`` pinned to the
load instant: 70 % should be allowed; the rest denied for an expired grant, a revoked grant, a
resource outside the pattern, another access level, an unknown tool, no grant, or a data class
not cleared. Each outcome is checked against what the data says it must be. It prints median,
p90, p99 and max per decision, the SQL queries of one decision of each kind
(``CaptureQueriesContext``; must be at most 3), the heavy agent against an ordinary one, and
``EXPLAIN (ANALYZE, BUFFERS)`` of each query ``decide`` ran for both (captured as it ran them).

Over HTTP. For each ``--workers`` count and each ``--conn-max-age`` it starts gunicorn
(``governance.wsgi`` with ``DJANGO_SETTINGS_MODULE=bench.decision_settings``: the production
settings, DEBUG off; ``CONN_MAX_AGE`` 60 is what production runs with by default —
``WARRANT_DB_CONN_MAX_AGE`` — and 0 would open a database connection per request) on a free local
port, and drives with the same load generator, in windows of ``--duration`` seconds each after
``--warmup`` seconds: ``POST /bench/ping`` (the framework floor: same authentication,
permissions, parser and renderer, answers ``{"ok": true}``), then ``POST /api/v1/decisions`` with
the policy's ``decision_allow_sample_percent`` at 10 (the default) and at 0, then the floor again
and so on, ``--rounds`` times. Each endpoint's windows are merged (requests over their summed
time, latencies pooled) and the ratio to the floor taken over the merged figures; the lowest and
highest ratio of a single round are printed beside it. Short windows in turn matter on a shared
host, whose speed can change by a third within a minute: one long window per endpoint measures
each at another moment of it. The generator is ``--processes`` processes of ``--connections`` /
``--processes`` threads each, one ``http.client`` connection per thread (gunicorn's sync worker
closes each connection after its response, so every request opens a new local TCP connection,
for both endpoints alike); it runs on the same cores as gunicorn and PostgreSQL, and its own CPU
share is printed. Requests carry ``X-Forwarded-Proto: https`` as behind the production proxy and a
bearer integration token with ``decisions:check`` issued to an IAM admin. Each decision answer is
checked against the expected outcome, and the decision log rows written are counted. gunicorn is
always stopped at the end.

A shared machine. Before each timed part it waits up to ``--wait-quiet`` seconds for the CPUs to
be idle, and during each window it counts the CPU that other processes used (``CpuWatch``); a
window in which they used more than ``OTHERS_LIMIT`` of the CPUs is taken again, up to
``--retries`` times, and the share is printed next to every figure. It also prints the CPU time
per request of gunicorn's processes and of the database's backends over the window: unlike
requests per second, that holds on a busy machine.

The last block printed is ready to paste into bench/README.md.
"""

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.decision_settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext, override_settings  # noqa: E402

from delegations.decisions import DecisionRequest, Subject, decide  # noqa: E402
from delegations.models import DecisionLog, DelegationGrant, GrantScope  # noqa: E402
from governance.audit import Actor  # noqa: E402
from governance.roles import AGENT_OWNER, IAM_ADMIN, ensure_groups  # noqa: E402
from governance.services import integration_token_issue, policy_update  # noqa: E402
from inventory.models import Agent, Tool, WorkloadIdentity  # noqa: E402

MARKER = "bench_decisions_marker"
MAX_AGE = timedelta(days=25)
#: A timed window during which other processes used more than this share of the CPUs is taken again (--retries).
OTHERS_LIMIT = 0.05
SPIFFE = "spiffe://bench.example/agent/{}"
AGENTS, IDENTITIES, TOOLS = Agent._meta.db_table, WorkloadIdentity._meta.db_table, Tool._meta.db_table
GRANTS, SCOPES = DelegationGrant._meta.db_table, GrantScope._meta.db_table
DECISION_PATH = "/api/v1/decisions"
FLOOR_PATH = "/bench/ping"

#: Request kinds: (share in percent, expected outcome: "allow" or the first reason code).
MIX = {
    "allow": (70, "allow"),
    "expired grant": (6, "grant_expired"),
    "outside pattern": (5, "resource_outside_pattern"),
    "wrong access": (5, "access_not_granted"),
    "unknown tool": (5, "tool_unknown"),
    "revoked grant": (3, "grant_revoked"),
    "no grant": (3, "no_grant"),
    "data class": (3, "data_class_not_cleared"),
}


# --- loading ------------------------------------------------------------------------------------


def _marker() -> dict | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [MARKER])
        if cursor.fetchone()[0] is None:
            return None
        cursor.execute(f"SELECT loaded_at, agents, grants_per_agent, heavy, seconds FROM {MARKER}")
        row = cursor.fetchone()
    if row is None:
        return None
    return dict(zip(("loaded_at", "agents", "grants_per_agent", "heavy", "seconds"), row, strict=True))


def _reset_schema() -> None:
    """Drop every table of the scratch database (the public schema) and migrate again."""
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE")
        cursor.execute("CREATE SCHEMA public")
    connection.close()
    call_command("migrate", verbosity=0)


def _users():
    """The agents' owner, the grants' requester and the IAM admin who approved them and holds the token."""
    ensure_groups()
    User = get_user_model()
    owner, _ = User.objects.get_or_create(username="bench-owner", defaults={"email": "owner@example.com"})
    requester, _ = User.objects.get_or_create(username="bench-requester", defaults={"email": "req@example.com"})
    admin, _ = User.objects.get_or_create(username="bench-admin", defaults={"email": "admin@example.com"})
    owner.groups.add(Group.objects.get(name=AGENT_OWNER))
    requester.groups.add(Group.objects.get(name=AGENT_OWNER))
    admin.groups.add(Group.objects.get(name=IAM_ADMIN))
    return owner, requester, admin


def load(agents: int, per_agent: int, heavy: int, now: datetime) -> None:
    """The data the module doc describes; ``now`` is the load instant every window is relative to."""
    owner, requester, admin = _users()
    heavy_id = agents + 1
    p = {
        "n": agents,
        "per": per_agent,
        "heavy": heavy,
        "heavy_id": heavy_id,
        "t": now,
        "owner": owner.pk,
        "requester": requester.pk,
        "admin": admin.pk,
    }
    statements = [
        # Agents 1..N, and the heavy one (N + 1); one in ten is high tier, attested until T + 60 d.
        f"""
        INSERT INTO {AGENTS} (id, slug, name, purpose, kind, platform, environment, state, state_changed_at,
            state_reason, autonomy_level, data_classes, risk_tier, source, next_attestation_due, created_at,
            updated_at, owner_id)
        SELECT n, CASE WHEN n = %(heavy_id)s THEN 'bench-heavy' ELSE 'bench-' || n END, 'Bench agent ' || n,
               'Benchmark.', 'autonomous_agent', 'bench', 'production', 'active',
               %(t)s::timestamptz - interval '90 days', '', 'human_on_the_loop', '["pii", "confidential"]'::jsonb,
               CASE WHEN n %% 10 < 6 OR n = %(heavy_id)s THEN 'low' WHEN n %% 10 < 9 THEN 'medium' ELSE 'high' END,
               'registered',
               CASE WHEN n %% 10 = 9 AND n <> %(heavy_id)s THEN (%(t)s::timestamptz + interval '60 days')::date END,
               %(t)s::timestamptz - interval '90 days', %(t)s::timestamptz - interval '90 days', %(owner)s
        FROM generate_series(1, %(heavy_id)s) AS n
        """,
        f"""
        INSERT INTO {IDENTITIES} (id, type, issuer, identifier, created_at, agent_id)
        SELECT n, 'spiffe', '', 'spiffe://bench.example/agent/' || n, %(t)s::timestamptz - interval '90 days', n
        FROM generate_series(1, %(heavy_id)s) AS n
        """,
        # crm for every agent; tickets for every third (no grant names it); payments for every fifth
        # (a data class no agent is cleared for).
        f"""
        INSERT INTO {TOOLS} (agent_id, name, transport, command, args, url, env_keys, access_levels, data_classes,
            destination, source, created_at, updated_at)
        SELECT n, tool, 'http', '', '[]', 'https://' || tool || '.bench.example/mcp', '[]',
               '["read", "write", "execute"]', classes::jsonb, destination, 'bench',
               %(t)s::timestamptz - interval '90 days', %(t)s::timestamptz - interval '90 days'
        FROM (
            SELECT n, 'crm' AS tool, '["pii"]' AS classes, 'internal' AS destination
                FROM generate_series(1, %(heavy_id)s) AS n
            UNION ALL SELECT n, 'tickets', '["confidential"]', 'internal'
                FROM generate_series(3, %(n)s, 3) AS n
            UNION ALL SELECT n, 'payments', '["payment"]', 'external'
                FROM generate_series(5, %(n)s, 5) AS n
        ) AS t
        """,
        # Grant i is grant k = (i - 1) / N of agent (i - 1) %% N + 1: k = per - 1 active, k = 0 expired,
        # odd k revoked (k = 1 before its end, still in the future), other k expired. Grants 0 and
        # per - 1 of agents n > 10, n %% 10 in (1, 2) have the same grant of agent n - 1 as parent (depth 2, 3).
        f"""
        INSERT INTO {GRANTS} (id, agent_id, purpose, intents, justification, depth, parent_id, requested_via,
            requested_by_id, requested_at, starts_at, expires_at, approvals_required, status, decided_at,
            decided_by_id, decision_reason, ended_at, ended_by, end_reason)
        SELECT i, n, 'Bench grant', '[]', 'Benchmark.', CASE WHEN chain THEN n %% 10 + 1 ELSE 1 END,
               CASE WHEN chain THEN i - 1 END, '', %(requester)s, s - interval '2 hours', s, e, 1, status,
               s - interval '1 hour', %(admin)s, '',
               CASE status WHEN 'expired' THEN e WHEN 'revoked' THEN s + interval '1 day' END,
               CASE status WHEN 'expired' THEN 'system' WHEN 'revoked' THEN 'bench-admin' ELSE '' END,
               CASE status WHEN 'expired' THEN 'Reached its expiry.' WHEN 'revoked' THEN 'No longer needed.'
                    ELSE '' END
        FROM (
            SELECT i, k, n, chain,
                   CASE WHEN k = %(per)s - 1 THEN 'active' WHEN k %% 2 = 1 THEN 'revoked' ELSE 'expired' END AS status,
                   CASE WHEN k = %(per)s - 1 THEN %(t)s::timestamptz - interval '1 day'
                        WHEN k = 0 THEN %(t)s::timestamptz - interval '40 days'
                        ELSE %(t)s::timestamptz - make_interval(days => (3 * k + 5)::int) END AS s,
                   CASE WHEN k = %(per)s - 1 THEN %(t)s::timestamptz + interval '30 days' - shorter
                        WHEN k = 0 THEN %(t)s::timestamptz - interval '10 days' - shorter
                        WHEN k = 1 THEN %(t)s::timestamptz + interval '5 days'
                        ELSE %(t)s::timestamptz - make_interval(days => (3 * k)::int) END AS e
            FROM (
                SELECT i, (i - 1) / %(n)s AS k, (i - 1) %% %(n)s + 1 AS n,
                       ((i - 1) / %(n)s IN (0, %(per)s - 1) AND (i - 1) %% %(n)s + 1 > 10
                        AND ((i - 1) %% %(n)s + 1) %% 10 IN (1, 2)) AS chain,
                       CASE WHEN ((i - 1) / %(n)s IN (0, %(per)s - 1) AND (i - 1) %% %(n)s + 1 > 10
                        AND ((i - 1) %% %(n)s + 1) %% 10 IN (1, 2))
                            THEN make_interval(hours => (((i - 1) %% %(n)s + 1) %% 10)::int)
                            ELSE interval '0' END AS shorter
                FROM generate_series(1::bigint, %(n)s::bigint * %(per)s) AS i
            ) AS a
        ) AS b
        """,
        f"""
        INSERT INTO {SCOPES} (id, grant_id, tool_name, access, resource_pattern, data_classes)
        SELECT i, i, 'crm',
               CASE WHEN k = %(per)s - 1 THEN 'read' WHEN k = 0 THEN 'write' WHEN k = 1 THEN 'execute' ELSE 'read' END,
               CASE WHEN k = %(per)s - 1 OR k = 0 THEN 'accounts/*' WHEN k = 1 THEN 'reports/*'
                    ELSE 'archive/' || k || '/*' END,
               '["pii"]'
        FROM (SELECT i, (i - 1) / %(n)s AS k FROM generate_series(1::bigint, %(n)s::bigint * %(per)s) AS i) AS a
        """,
        # The heavy agent: ``heavy`` expired grants for crm:read on accounts/*, then one active grant.
        f"""
        INSERT INTO {GRANTS} (id, agent_id, purpose, intents, justification, depth, requested_via, requested_by_id,
            requested_at, starts_at, expires_at, approvals_required, status, decided_at, decided_by_id,
            decision_reason, ended_at, ended_by, end_reason)
        SELECT %(n)s::bigint * %(per)s + j, %(heavy_id)s, 'Bench grant', '[]', 'Benchmark.', 1, '', %(requester)s,
               s - interval '2 hours', s, e, 1, status, s - interval '1 hour',
               %(admin)s, '', CASE WHEN status = 'expired' THEN e END,
               CASE WHEN status = 'expired' THEN 'system' ELSE '' END,
               CASE WHEN status = 'expired' THEN 'Reached its expiry.' ELSE '' END
        FROM (
            SELECT j, CASE WHEN j <= %(heavy)s THEN 'expired' ELSE 'active' END AS status,
                   CASE WHEN j <= %(heavy)s
                        THEN %(t)s::timestamptz - interval '1 hour' - make_interval(mins => (%(heavy)s - j)::int)
                        ELSE %(t)s::timestamptz + interval '29 days' END AS e,
                   CASE WHEN j <= %(heavy)s
                        THEN %(t)s::timestamptz - interval '1 day 1 hour' - make_interval(mins => (%(heavy)s - j)::int)
                        ELSE %(t)s::timestamptz - interval '1 day' END AS s
            FROM generate_series(1, %(heavy)s + 1) AS j
        ) AS h
        """,
        f"""
        INSERT INTO {SCOPES} (id, grant_id, tool_name, access, resource_pattern, data_classes)
        SELECT %(n)s::bigint * %(per)s + j, %(n)s::bigint * %(per)s + j, 'crm', 'read', 'accounts/*', '["pii"]'
        FROM generate_series(1, %(heavy)s + 1) AS j
        """,
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, p)
        for table in (AGENTS, IDENTITIES, TOOLS, GRANTS, SCOPES):
            cursor.execute(f"SELECT setval(pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM {table}))", [table])
    with connection.cursor() as cursor:
        for table in (AGENTS, IDENTITIES, TOOLS, GRANTS, SCOPES):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")


def ensure_loaded(args) -> dict:
    """Load unless the marker says this database already holds the same data, recently enough."""
    call_command("migrate", verbosity=0)
    marker = _marker()
    wanted = {"agents": args.agents, "grants_per_agent": args.grants_per_agent, "heavy": args.heavy}
    fresh = marker is not None and datetime.now(UTC) - marker["loaded_at"] < MAX_AGE
    if marker is not None and not args.reload and fresh and all(marker[k] == v for k, v in wanted.items()):
        loaded = f"{marker['loaded_at']:%Y-%m-%d %H:%M:%S}Z in {marker['seconds']:.1f} s"
        print(f"already loaded at {loaded} (--reload to load again)")
        return marker
    if marker is None and not args.reload and Agent.objects.exists():
        sys.exit("this database holds agents but no benchmark marker: use a scratch database, or pass --reload")
    if marker is not None or args.reload:
        _reset_schema()
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    load(args.agents, args.grants_per_agent, args.heavy, now)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {MARKER} (loaded_at timestamptz, agents int, grants_per_agent int, heavy int, seconds float)"
        )
        cursor.execute(
            f"INSERT INTO {MARKER} VALUES (%s, %s, %s, %s, %s)",
            [now, args.agents, args.grants_per_agent, args.heavy, seconds],
        )
    print(f"loaded in {seconds:.1f} s")
    return _marker()


def describe_data() -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {AGENTS}")
        agents = cursor.fetchone()[0]
        cursor.execute(f"SELECT count(*) FROM {TOOLS}")
        tools = cursor.fetchone()[0]
        cursor.execute(f"SELECT status, count(*) FROM {GRANTS} GROUP BY status ORDER BY status")
        statuses = ", ".join(f"{n:,} {s}" for s, n in cursor.fetchall())
        cursor.execute(f"SELECT depth, count(*) FROM {GRANTS} GROUP BY depth ORDER BY depth")
        depths = ", ".join(f"depth {d}: {n:,}" for d, n in cursor.fetchall())
        cursor.execute(f"SELECT count(*) FROM {SCOPES}")
        scopes = cursor.fetchone()[0]
    return f"{agents:,} agents, {tools:,} tools, {scopes:,} scopes; grants: {statuses} ({depths})"


# --- requests -----------------------------------------------------------------------------------


def make_requests(count: int, agents: int, seed: int) -> list[tuple[str, DecisionRequest, str]]:
    """``count`` requests ``(kind, request, expected)`` drawn from ``MIX`` (see module doc)."""
    rng = random.Random(seed)
    kinds = list(MIX)
    weights = [MIX[k][0] for k in kinds]
    out = []
    for kind in rng.choices(kinds, weights, k=count):
        n = rng.randint(1, agents)
        tool, access, res = "crm", "read", f"accounts/{rng.randint(1, 10**6)}"
        if kind == "expired grant":
            access = "write"
        elif kind == "outside pattern":
            res = f"contacts/{rng.randint(1, 10**6)}"
        elif kind == "wrong access":
            access = "execute"
        elif kind == "unknown tool":
            tool = "shell"
        elif kind == "revoked grant":
            access, res = "execute", f"reports/{rng.randint(1, 10**6)}"
        elif kind == "no grant":
            n, tool = rng.randrange(3, agents + 1, 3), "tickets"
        elif kind == "data class":
            n, tool = rng.randrange(5, agents + 1, 5), "payments"
        request = DecisionRequest(tool=tool, access=access, subject=Subject("spiffe", SPIFFE.format(n)), resource=res)
        out.append((kind, request, MIX[kind][1]))
    return out


def outcome(decision) -> str:
    return "allow" if decision.allowed else decision.codes[0]


def body(request: DecisionRequest) -> bytes:
    """The JSON body of ``POST /api/v1/decisions`` for ``request``."""
    return json.dumps(
        {
            "workload_identity": {"type": request.subject.type, "identifier": request.subject.identifier},
            "tool": request.tool,
            "access": request.access,
            "resource": request.resource,
            "intent": request.intent,
            "on_behalf_of": request.on_behalf_of,
            "grant_chain": list(request.grant_chain),
        }
    ).encode()


# --- in process ---------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": statistics.median(ordered), "p90": q[89], "p99": q[98], "max": ordered[-1]}


def _fmt_ms(stats: dict) -> str:
    return ", ".join(f"{k} {v:.3f} ms" for k, v in stats.items())


def in_process(requests, now: datetime, heavy_id: int) -> dict:
    """Time ``decide`` over ``requests`` at ``now``; queries per kind; the heavy agent against an ordinary one."""
    for _, request, _ in requests[:300]:  # warm-up: connection, statement strings, caches
        decide(request, now=now)
    times, by_kind, wrong = [], {}, []
    watch = CpuWatch()
    started = time.perf_counter()
    for kind, request, expected in requests:
        t0 = time.perf_counter()
        decision = decide(request, now=now)
        elapsed = (time.perf_counter() - t0) * 1000
        times.append(elapsed)
        by_kind.setdefault(kind, []).append(elapsed)
        if outcome(decision) != expected:
            wrong.append((kind, request, decision.codes))
    total = time.perf_counter() - started
    cpu = watch.stop(os.getpid())
    others = cpu["others"]
    print(f"\nIn process: decide() over {len(requests):,} requests at now = {now:%Y-%m-%d %H:%M:%S}Z")
    print(
        f"  [machine {cpu['machine']:.0%} busy meanwhile, other processes {others:.0%} of the CPUs; CPU per "
        f"decision: Python {cpu['server_s'] / len(requests) * 1000:.2f} ms, "
        f"PostgreSQL {cpu['database_s'] / len(requests) * 1000:.2f} ms]"
    )
    stats = _percentiles(times)
    print(f"  per decision: {_fmt_ms(stats)}  ({len(requests) / total:,.0f} decisions/s in one process)")
    for kind in MIX:
        if kind in by_kind:
            values = by_kind[kind]
            median = statistics.median(values)
            print(f"    {kind:<16} {len(values):>6}  median {median:.3f} ms, max {max(values):.3f} ms")
    print(f"  outcomes as expected: {len(requests) - len(wrong):,}/{len(requests):,}")
    for kind, request, codes in wrong[:5]:
        print(f"    UNEXPECTED {kind}: {request} -> {codes or 'allow'}")

    print("  SQL queries per decision (CaptureQueriesContext):")
    samples = {}
    for kind, request, expected in requests:
        samples.setdefault(kind, (request, expected))
    heavy_request = DecisionRequest(
        tool="crm", access="read", subject=Subject("spiffe", SPIFFE.format(heavy_id)), resource="accounts/7"
    )
    heavy_deny = DecisionRequest(
        tool="crm", access="write", subject=Subject("spiffe", SPIFFE.format(heavy_id)), resource="accounts/7"
    )
    samples[f"heavy agent ({heavy_grants(heavy_id):,} grants), allow"] = (heavy_request, "allow")
    samples["heavy agent, deny (another access)"] = (heavy_deny, "access_not_granted")
    most = 0
    for kind, (request, expected) in samples.items():
        with CaptureQueriesContext(connection) as queries:
            decision = decide(request, now=now)
        most = max(most, len(queries))
        mark = "" if outcome(decision) == expected else f"  UNEXPECTED {decision.codes}"
        print(f"    {kind:<40} {outcome(decision):<26} {len(queries)} queries{mark}")
    print(f"  most queries in one decision: {most} (limit 3)")

    ordinary = next(r for k, r, _ in requests if k == "allow")
    runs = {}
    for label, request in (("ordinary agent", ordinary), ("heavy agent", heavy_request)):
        values = []
        for _ in range(1000):
            t0 = time.perf_counter()
            decide(request, now=now)
            values.append((time.perf_counter() - t0) * 1000)
        runs[label] = _percentiles(values)
        print(f"  {label}, same allow 1,000 times: {_fmt_ms(runs[label])}")
    return {
        "all": stats,
        "wrong": len(wrong),
        "most_queries": most,
        "runs": runs,
        "rate": len(requests) / total,
        "others": others,
        "python_ms": cpu["server_s"] / len(requests) * 1000,
        "database_ms": cpu["database_s"] / len(requests) * 1000,
    }


def heavy_grants(heavy_id: int) -> int:
    return DelegationGrant.objects.filter(agent_id=heavy_id).count()


def plans(now: datetime, labelled: list[tuple[str, DecisionRequest]]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each query ``decide`` runs for each request, as it ran them (captured)."""
    print("\nPlans of the decision queries (EXPLAIN ANALYZE, BUFFERS), as decide() ran them:")
    for label, request in labelled:
        # Client-side binding for the capture, so that the logged SQL holds its parameters (the plans are
        # those PostgreSQL makes for these values; prepared, it reuses one per connection).
        with override_settings(WARRANT_DB_PREPARE=False), CaptureQueriesContext(connection) as queries:
            decide(request, now=now)
        for number, query in enumerate(queries.captured_queries, 1):
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query["sql"])
                plan = "\n".join("      " + row[0] for row in cursor.fetchall())
            print(f"  query {number}, {label}:\n{plan}")


# --- over HTTP ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def gunicorn(workers: int, conn_max_age: str, port: int):
    """A gunicorn serving ``bench.decision_settings`` on ``port``; stopped (TERM, then KILL) on the way out."""
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.decision_settings", BENCH_CONN_MAX_AGE=conn_max_age)
    log = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)
    command = [
        str(ROOT / ".venv/bin/gunicorn"),
        "governance.wsgi:application",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, log.name
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_until_up(process, port: int, token: str, log: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited ({process.returncode}); its log:\n{Path(log).read_text()[-3000:]}")
        try:
            status, _ = call(port, "GET", FLOOR_PATH, token)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"gunicorn did not answer within {timeout:.0f} s; its log:\n{Path(log).read_text()[-3000:]}")


def _headers(token: str) -> dict:
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-Forwarded-Proto": "https",
    }


def call(port: int, method: str, path: str, token: str, payload: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=payload, headers=_headers(token))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _drive(port, path, token, payloads, expected, threads, warm_end, end, seed, results):
    """One generator process: ``threads`` threads, one connection each, POSTing ``payloads`` in a
    random order until ``end``; requests started after ``warm_end`` are counted."""
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    headers = _headers(token)
    lock = threading.Lock()
    out = {"latencies": [], "statuses": {}, "unexpected": 0, "checked": 0, "answered": 0}

    def worker(offset):
        rng = random.Random(seed * 1000 + offset)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies, statuses, unexpected, checked, answered = [], {}, 0, 0, 0
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                break
            i = rng.randrange(len(payloads))
            try:
                conn.request("POST", path, body=payloads[i], headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                status, data = "error", b""
            t1 = time.monotonic()
            answered += status == 200
            if t0 < warm_end or t1 > end:
                continue
            latencies.append((t1 - t0) * 1000)
            statuses[status] = statuses.get(status, 0) + 1
            if expected is not None and status == 200:
                answer = json.loads(data)
                got = "allow" if answer["decision"] == "allow" else answer["reasons"][0]["code"]
                checked += 1
                unexpected += got != expected[i]
        conn.close()
        with lock:
            out["latencies"] += latencies
            for k, v in statuses.items():
                out["statuses"][k] = out["statuses"].get(k, 0) + v
            out["unexpected"] += unexpected
            out["checked"] += checked
            out["answered"] += answered

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu"] = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    results.put(out)


def drive(port, path, token, payloads, expected, *, server_pid, connections, processes, warmup, duration) -> dict:
    """Run the generator against ``path`` for ``warmup`` + ``duration`` seconds; the measured window's figures."""
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    start = time.monotonic() + 0.5
    warm_end, end = start + warmup, start + warmup + duration
    per = [connections // processes + (1 if i < connections % processes else 0) for i in range(processes)]
    connection.close()  # no database connection crosses the fork
    children = [
        ctx.Process(target=_drive, args=(port, path, token, payloads, expected, n, warm_end, end, i, results))
        for i, n in enumerate(per)
        if n
    ]
    for child in children:
        child.start()
    time.sleep(max(warm_end - time.monotonic(), 0))
    watch = CpuWatch()
    time.sleep(max(end - time.monotonic(), 0))
    cpu = watch.stop(server_pid)
    parts = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join()
    latencies = [v for part in parts for v in part["latencies"]]
    statuses = {}
    for part in parts:
        for k, v in part["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    ok = statuses.get(200, 0)
    stats = _percentiles(latencies) if len(latencies) > 1 else {"p50": 0, "p90": 0, "p99": 0, "max": 0}
    return {
        "rps": ok / duration,
        "duration": duration,
        "latencies": latencies,
        "requests": len(latencies),
        "statuses": statuses,
        "p50": stats["p50"],
        "p99": stats["p99"],
        "unexpected": sum(p["unexpected"] for p in parts),
        "checked": sum(p["checked"] for p in parts),
        "answered": sum(p["answered"] for p in parts),
        "generator_cpu": sum(p["cpu"] for p in parts) / (warmup + duration),
        **cpu,
    }


def set_sample(percent: int) -> None:
    policy_update(actor=Actor.system("bench"), decision_allow_sample_percent=percent)


def _measure(args, port, path, payloads, checks, server_pid, token, label) -> dict:
    """One window against ``path`` (taken again, up to ``--retries`` times, when other processes used the
    CPUs), with the decision log rows it wrote."""
    result = None
    for attempt in range(args.retries + 1):
        if attempt:
            print(f"  [others used {result['others']:.0%} of the CPUs during the window: again]")
        DecisionLog.objects.all().delete()
        connection.close()
        quiet(args.wait_quiet, label)
        result = drive(
            port,
            path,
            token,
            payloads,
            checks,
            server_pid=server_pid,
            connections=args.connections,
            processes=args.processes,
            warmup=args.warmup,
            duration=args.duration,
        )
        if result["others"] < OTHERS_LIMIT:
            break
    result["logged"] = DecisionLog.objects.count() if checks is not None else None
    return result


def _merge(windows: list[dict]) -> dict:
    """The figures of several windows of one endpoint taken together: requests per second over their
    summed durations, percentiles of the pooled latencies, CPU summed; ``rounds`` keeps each window's rate."""
    latencies = [v for w in windows for v in w["latencies"]]
    stats = _percentiles(latencies) if len(latencies) > 1 else {"p50": 0, "p99": 0}
    statuses: dict = {}
    for w in windows:
        for k, v in w["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
    total = lambda key: sum(w[key] for w in windows)  # noqa: E731
    logged = None if windows[0]["logged"] is None else total("logged")
    return {
        "rps": statuses.get(200, 0) / total("duration"),
        "requests": len(latencies),
        "statuses": statuses,
        "p50": stats["p50"],
        "p99": stats["p99"],
        "unexpected": total("unexpected"),
        "checked": total("checked"),
        "answered": total("answered"),
        "generator_cpu": total("generator_cpu") / len(windows),
        "others": max(w["others"] for w in windows),
        "machine": total("machine") / len(windows),
        "server_s": total("server_s"),
        "database_s": total("database_s"),
        "logged": logged,
        "rounds": [w["rps"] for w in windows],
    }


def over_http(args, requests, token: str) -> list[dict]:
    """For each CONN_MAX_AGE and worker count, one gunicorn; the floor and the decision endpoint (allow
    sample 10 %, then 0 %) measured in ``--rounds`` alternating windows, so that a change in the machine's
    speed during the run (a shared host) falls on every endpoint alike; each endpoint's windows merged."""
    payloads = [body(r) for _, r, _ in requests]
    expected = [e for _, _, e in requests]
    rows = []
    for conn_max_age in args.conn_max_age:
        for workers in args.workers:
            port = free_port()
            with gunicorn(workers, conn_max_age, port) as (process, log):
                wait_until_up(process, port, token, log)
                status, answer = call(port, "POST", DECISION_PATH, token, payloads[0])
                endpoint = status == 200
                if not endpoint:
                    print(f"  {DECISION_PATH} answered {status} ({answer[:200]!r}): measuring the floor only")
                phases = [("floor", FLOOR_PATH, None, None)]
                if endpoint:
                    phases += [("decision", DECISION_PATH, 10, expected), ("decision", DECISION_PATH, 0, expected)]
                windows: dict[int, list[dict]] = {i: [] for i in range(len(phases))}
                for round_ in range(1, args.rounds + 1):
                    for i, (name, path, sample, checks) in enumerate(phases):
                        if sample is not None:
                            set_sample(sample)
                        label = f"workers {workers}, {name}, round {round_}"
                        window = _measure(args, port, path, payloads, checks, process.pid, token, label)
                        windows[i].append(window)
                        print(f"  {label}: {window['rps']:,.0f} req/s")
                for i, (name, _, sample, _) in enumerate(phases):
                    row = {"workers": workers, "conn_max_age": conn_max_age, "endpoint": name, "sample": sample}
                    row.update(_merge(windows[i]))
                    rows.append(row)
                    print_http_row(row)
            set_sample(10)
    return rows


def print_http_row(row: dict) -> None:
    label = "floor /bench/ping" if row["endpoint"] == "floor" else f"decision, allow sample {row['sample']} %"
    other = {k: v for k, v in row["statuses"].items() if k != 200}
    checks = ""
    if row["endpoint"] == "decision":
        checks = f", outcomes as expected {row['checked'] - row['unexpected']:,}/{row['checked']:,}"
        share = row["logged"] / row["answered"] if row["answered"] else 0
        checks += f", decision log rows {row['logged']:,} for {row['answered']:,} decisions with warm-up ({share:.0%})"
    print(
        f"  workers {row['workers']}, CONN_MAX_AGE {row['conn_max_age']}: {label:<32} {row['rps']:>7,.0f} req/s  "
        f"p50 {row['p50']:.2f} ms  p99 {row['p99']:.2f} ms  ({row['requests']:,} requests"
        f"{', non-200: ' + str(other) if other else ''}{checks}; generator CPU {row['generator_cpu']:.0%} of a core; "
        f"machine {row['machine']:.0%} busy, other processes {row['others']:.0%})"
    )
    if row["requests"]:
        per = f"gunicorn {row['server_s'] / row['requests'] * 1000:.2f} ms"
        if row["conn_max_age"] != "0":
            per += f" + PostgreSQL {row['database_s'] / row['requests'] * 1000:.2f} ms"
        print(f"      CPU per request: {per}")


# --- report -------------------------------------------------------------------------------------


def machine() -> dict:
    info = {"nproc": os.cpu_count(), "python": platform.python_version(), "date": datetime.now(UTC).date()}
    meminfo = Path("/proc/meminfo").read_text()
    kib = int(next(line.split()[1] for line in meminfo.splitlines() if line.startswith("MemTotal:")))
    info["ram"] = f"{kib / 2**20:.1f} GiB"
    cpuinfo = Path("/proc/cpuinfo").read_text()
    info["cpu"] = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "?")
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        info["postgresql"] = cursor.fetchone()[0]
    return info


def _cpu_ticks() -> tuple[int, int]:
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over the next ``seconds`` (0..1), from /proc/stat."""
    used0, total0 = _cpu_ticks()
    time.sleep(seconds)
    used1, total1 = _cpu_ticks()
    return (used1 - used0) / max(total1 - total0, 1)


def quiet(wait: float, label: str) -> None:
    """Wait up to ``wait`` seconds for the machine to be idle (under 10 % busy over 2 s) before timing ``label``;
    print how busy it was, so that a figure taken on a busy machine says so."""
    deadline = time.monotonic() + wait
    share = busy(2.0)
    while share >= 0.10 and time.monotonic() < deadline:
        share = busy(2.0)
    others = others_running()
    print(f"  [{label}: machine {share:.0%} busy just before{'; other benchmarks: ' + str(others) if others else ''}]")


def others_running() -> list[str]:
    """Command lines of other benchmark scripts running now (they would skew the timings)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "bench/" in cmdline and "bench/decisions.py" not in cmdline and "python" in cmdline:
            found.append(cmdline)
    return found


def _processes() -> dict[int, tuple[int, int, int, str]]:
    """Every process now: pid → (parent pid, start time, CPU ticks used so far, command line)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3 (state) on
        out[int(entry.name)] = (int(fields[1]), int(fields[19]), int(fields[11]) + int(fields[12]), cmdline)
    return out


def _descendants(processes, root: int) -> set[int]:
    found, grew = {root}, True
    while grew:
        grew = False
        for pid, (ppid, *_) in processes.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


class CpuWatch:
    """CPU used over a window, from /proc: by the whole machine; by processes that are not this
    benchmark's; by the server (a process and its descendants: gunicorn, or this process in process);
    by PostgreSQL backends serving the benchmark's database. Per process, only those that lived through
    the whole window are seen: a lower bound (with ``CONN_MAX_AGE`` 0 every backend lives one request,
    so the database's share is not seen).

    Ours: this process and its descendants (gunicorn, the load generator), PostgreSQL's own background
    processes and its backends serving the benchmark's database.
    """

    def __init__(self):
        self.database = connection.settings_dict["NAME"]
        self.before, self.machine, self.started = _processes(), _cpu_ticks(), time.monotonic()

    def _backend(self, cmdline: str) -> bool:
        return cmdline.startswith("postgres") and ("(" in cmdline or "[local]" in cmdline)

    def stop(self, server_pid: int) -> dict:
        """``others`` and ``machine``: shares of all CPUs since the watch started; ``server_s`` and
        ``database_s``: CPU seconds of the server's processes and of the database's backends."""
        after, machine = _processes(), _cpu_ticks()
        ours = _descendants(after, os.getpid())
        ours |= {p for p, (*_, cmd) in after.items() if cmd.startswith("postgres") and not self._backend(cmd)}
        database = {p for p, (*_, cmd) in after.items() if self._backend(cmd) and f" {self.database} " in cmd}

        def ticks(pids) -> int:
            return sum(
                after[p][2] - self.before[p][2] for p in pids if p in self.before and after[p][1] == self.before[p][1]
            )

        hz = os.sysconf("SC_CLK_TCK")
        capacity = (time.monotonic() - self.started) * hz * os.cpu_count()
        used, total = machine[0] - self.machine[0], machine[1] - self.machine[1]
        return {
            "others": ticks(set(after) - ours - database) / capacity,
            "machine": used / max(total, 1),
            "server_s": ticks(_descendants(after, server_pid)) / hz,
            "database_s": ticks(database) / hz,
        }


def cpu_per_request(row: dict) -> str:
    """``gunicorn + PostgreSQL`` CPU milliseconds per request of a window (PostgreSQL unseen with CONN_MAX_AGE 0)."""
    if not row["requests"]:
        return ""
    server = row["server_s"] / row["requests"] * 1000
    if row["conn_max_age"] == "0":
        return f"{server:.2f} + (not seen)"
    return f"{server:.2f} + {row['database_s'] / row['requests'] * 1000:.2f}"


def summary(args, info, marker, data, inproc, rows) -> None:
    print("\n" + "=" * 100)
    print("Summary (for bench/README.md)\n")
    print(
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram']} RAM, PostgreSQL {info['postgresql']} "
        f"on the same host, Python {info['python']}. Date: {info['date']}."
    )
    print(f"Data: {data}; loaded in {marker['seconds']:.1f} s.")
    s = inproc["all"]
    print(
        f"decide() in process, {args.requests:,} requests ({', '.join(f'{v[0]} % {k}' for k, v in MIX.items())}): "
        f"median {s['p50']:.3f} ms, p90 {s['p90']:.3f} ms, p99 {s['p99']:.3f} ms, max {s['max']:.3f} ms; "
        f"{inproc['rate']:,.0f} decisions/s in one process; outcomes unexpected: {inproc['wrong']}; "
        f"most SQL queries in one decision: {inproc['most_queries']}; CPU per decision: Python "
        f"{inproc['python_ms']:.2f} ms + PostgreSQL {inproc['database_ms']:.2f} ms; other processes used "
        f"{inproc['others']:.0%} of the CPUs meanwhile."
    )
    for label, r in inproc["runs"].items():
        print(f"  {label}: median {r['p50']:.3f} ms, p99 {r['p99']:.3f} ms")
    if rows:
        print(
            f"\nHTTP: gunicorn sync workers, {args.connections} concurrent connections from {args.processes} "
            f"generator processes on the same {info['nproc']} CPUs, {args.warmup:g} s warm-up before each of "
            f"{args.rounds} windows of {args.duration:g} s per line, taken in turn (floor, sample 10 %, sample 0 %, "
            "floor, …) and merged; decision / floor over the merged windows (in brackets: the lowest and highest "
            "of the rounds); policy allow sample as stated (production default 10 %).\n"
        )
        print(
            "| workers | CONN_MAX_AGE | endpoint | req/s | p50 ms | p99 ms | decision / floor "
            "| CPU ms per request (gunicorn + PostgreSQL) | others' CPU |"
        )
        print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for row in rows:
            floor = next(
                r
                for r in rows
                if r["endpoint"] == "floor"
                and r["workers"] == row["workers"]
                and r["conn_max_age"] == row["conn_max_age"]
            )
            name = "floor (`/bench/ping`)" if row["endpoint"] == "floor" else f"decision, sample {row['sample']} %"
            ratio = ""
            if row["endpoint"] != "floor":
                each = [mine / theirs for mine, theirs in zip(row["rounds"], floor["rounds"], strict=True)]
                ratio = f"{row['rps'] / floor['rps']:.2f} ({min(each):.2f}–{max(each):.2f})"
            print(
                f"| {row['workers']} | {row['conn_max_age']} | {name} | {row['rps']:,.0f} | {row['p50']:.2f} | "
                f"{row['p99']:.2f} | {ratio} | {cpu_per_request(row)} | {row['others']:.0%} |"
            )
    print("=" * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--grants-per-agent", type=int, default=10, help="at least 3; one active, the rest ended")
    parser.add_argument("--heavy", type=int, default=5_000, help="expired grants of the heavy agent")
    parser.add_argument("--reload", action="store_true", help="drop the schema and load again")
    parser.add_argument("--requests", type=int, default=20_000, help="decisions timed in process")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--load-only", action="store_true", help="load (or check the marker), then stop")
    parser.add_argument("--skip-http", action="store_true", help="measure in process only")
    parser.add_argument("--workers", default="2,3", help="gunicorn worker counts, comma-separated")
    parser.add_argument("--conn-max-age", default="60", help="CONN_MAX_AGE values, comma-separated (60: the default)")
    parser.add_argument("--connections", type=int, default=4, help="concurrent connections of the load generator")
    parser.add_argument("--processes", type=int, default=2, help="load generator processes")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before each measured window")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured window")
    parser.add_argument(
        "--rounds", type=int, default=3, help="windows per endpoint, taken in turn with the other endpoints'"
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="times to take a window again when other processes used the CPUs"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to this many seconds for an idle machine before timing"
    )
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    args.conn_max_age = [c.strip() for c in args.conn_max_age.split(",")]
    if connection.vendor != "postgresql":
        sys.exit("this benchmark needs PostgreSQL (DATABASE_URL=postgres://…)")
    if args.grants_per_agent < 3 or args.agents < 10:
        sys.exit("need --grants-per-agent >= 3 and --agents >= 10")
    print(f"command: {' '.join(sys.argv)}")
    for other in others_running():
        print(f"WARNING: another benchmark is running, timings are skewed: {other}")

    marker = ensure_loaded(args)
    data = describe_data()
    print(data)
    if args.load_only:
        return
    info = machine()
    now = marker["loaded_at"]
    heavy_id = args.agents + 1
    requests = make_requests(args.requests, args.agents, args.seed)
    set_sample(10)
    quiet(args.wait_quiet, "in process")
    inproc = in_process(requests, now, heavy_id)
    ordinary = next(r for k, r, _ in requests if k == "allow")
    heavy = DecisionRequest(
        tool="crm", access="read", subject=Subject("spiffe", SPIFFE.format(heavy_id)), resource="accounts/7"
    )
    plans(now, [(f"ordinary agent ({ordinary.subject.identifier})", ordinary), ("heavy agent", heavy)])

    rows = []
    if not args.skip_http:
        _, token = integration_token_issue(
            actor=Actor.system("bench"),
            user=get_user_model().objects.get(username="bench-admin"),
            name="bench decisions",
            scopes=["decisions:check", "inventory:read"],
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        print(
            f"\nOver HTTP (gunicorn sync workers; load generator: {args.processes} processes, "
            f"{args.connections} connections, on the same {info['nproc']} CPUs as the server and PostgreSQL):"
        )
        for other in others_running():
            print(f"WARNING: another benchmark is running, timings are skewed: {other}")
        rows = over_http(args, requests, token)
    summary(args, info, marker, data, inproc, rows)


if __name__ == "__main__":
    main()
