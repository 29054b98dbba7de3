"""Benchmark: the stale-credential job over a large inventory, on the configured database.

Run by hand (never as a test), against a scratch PostgreSQL database:

    createdb -h 127.0.0.1 -U postgres warrant_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/warrant_bench \\
        .venv/bin/python bench/stale_credentials.py --agents 20000 --credentials-per-agent 5

It migrates, loads agents and credentials with ``bulk_create`` (a third of them stale in some
way), then times: the first run (opens findings), a second run at the same instant (nothing
changes: idempotence), and a run after rotating every credential (resolves them). It prints
wall time, findings per second and peak Python memory (tracemalloc) for each run.
"""

import argparse
import os
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings.local")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from governance.models import AuditEvent, Finding  # noqa: E402
from inventory.models import Agent, Credential  # noqa: E402
from inventory.services import credentials_flag_stale_due  # noqa: E402

NOW = datetime(2026, 11, 15, 6, tzinfo=UTC)


def load(agents: int, per_agent: int) -> None:
    """Create ``agents`` active agents with ``per_agent`` credentials each, a mix of ages."""
    from django.contrib.auth import get_user_model

    owner, _ = get_user_model().objects.get_or_create(username="bench-owner")
    Agent.objects.bulk_create(
        [
            Agent(
                slug=f"bench-{i}",
                name=f"Bench agent {i}",
                kind=Agent.Kind.SERVICE_ACCOUNT,
                owner=owner,
                state=Agent.State.ACTIVE,
                state_changed_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
            for i in range(agents)
        ],
        batch_size=5000,
    )
    ids = list(Agent.objects.filter(slug__startswith="bench-").values_list("id", flat=True))
    batch = []
    n = 0
    for agent_id in ids:
        for _ in range(per_agent):
            n += 1
            stale = n % 3 == 0
            created = NOW - timedelta(days=400 if stale else 30)
            batch.append(
                Credential(
                    agent_id=agent_id,
                    kind=Credential.Kind.ACCESS_KEY,
                    provider="bench",
                    external_id=f"k{n}",
                    created_at=created,
                    last_rotated_at=created,
                    last_used_at=NOW - timedelta(days=200 if stale else 1),
                    observed_at=NOW,
                    recorded_at=NOW,
                )
            )
            if len(batch) >= 10000:
                Credential.objects.bulk_create(batch)
                batch = []
    Credential.objects.bulk_create(batch)


def timed(label: str, fn):
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    opened = sum(r["opened"] for r in result.values())
    resolved = sum(r["resolved"] for r in result.values())
    print(f"{label:<34} {elapsed:8.2f} s   opened {opened:>7}   resolved {resolved:>7}   peak {peak / 2**20:7.1f} MiB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20000)
    parser.add_argument("--credentials-per-agent", type=int, default=5)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if Credential.objects.exists() or Finding.objects.exists() or AuditEvent.objects.exists():
        sys.exit("use an empty scratch database (drop and recreate it)")
    started = time.perf_counter()
    load(args.agents, args.credentials_per_agent)
    total = Credential.objects.count()
    print(
        f"{connection.vendor}: loaded {total} credentials on {args.agents} agents in "
        f"{time.perf_counter() - started:.1f} s"
    )
    timed("first run (opens findings)", lambda: credentials_flag_stale_due(now=NOW))
    timed("second run, same instant", lambda: credentials_flag_stale_due(now=NOW))
    Credential.objects.update(last_rotated_at=NOW - timedelta(days=1), last_used_at=NOW - timedelta(days=1))
    timed("after rotating all (resolves)", lambda: credentials_flag_stale_due(now=NOW))
    print(f"findings {Finding.objects.count()}, audit events {AuditEvent.objects.count()}")


if __name__ == "__main__":
    main()
