"""Benchmark: importing a large AWS IAM credential report, then re-importing it.

Run by hand (never as a test), against a scratch database:

    createdb -h 127.0.0.1 -U postgres warrant_bench_import
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/warrant_bench_import \\
        .venv/bin/python bench/import_credential_report.py --users 5000

It writes a synthetic report in the exact column layout of ``aws iam generate-credential-report``
(every user with two access keys, a third of them also with a console password), imports it
through ``inventory.importers.run_import`` — the path the command, the upload page and the API
share — and times the first import (creates everything), a re-import of the same file (changes
nothing) and the stale-credential job on the result, with peak Python memory (tracemalloc).
"""

import argparse
import base64
import json
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

from governance.audit import Actor  # noqa: E402
from governance.models import AuditEvent, Finding  # noqa: E402
from inventory.importers import run_import  # noqa: E402
from inventory.models import Agent, Credential  # noqa: E402
from inventory.services import credentials_flag_stale_due  # noqa: E402

GENERATED = datetime(2026, 11, 15, 6, tzinfo=UTC)
HEADER = (
    "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,"
    "password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,"
    "access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,"
    "access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,"
    "cert_1_last_rotated,cert_2_active,cert_2_last_rotated"
)


def iso(dt: datetime) -> str:
    return dt.isoformat(timespec="seconds")


def report(users: int) -> bytes:
    """The JSON that ``aws iam get-credential-report`` prints, for ``users`` synthetic IAM users."""
    lines = [HEADER]
    for i in range(users):
        created = GENERATED - timedelta(days=30 + i % 900)
        used = iso(GENERATED - timedelta(days=i % 200)) if i % 4 else "N/A"
        password = i % 3 == 0
        lines.append(
            ",".join(
                [
                    f"svc-bench-{i}",
                    f"arn:aws:iam::123456789012:user/bench/svc-bench-{i}",
                    iso(created),
                    "true" if password else "false",
                    "no_information" if password else "N/A",
                    iso(created) if password else "N/A",
                    "N/A",
                    "false",
                    "true",
                    iso(created),
                    used,
                    "eu-west-1" if used != "N/A" else "N/A",
                    "s3" if used != "N/A" else "N/A",
                    "true",
                    iso(created + timedelta(days=1)),
                    "N/A",
                    "N/A",
                    "N/A",
                    "false",
                    "N/A",
                    "false",
                    "N/A",
                ]
            )
        )
    content = ("\n".join(lines) + "\n").encode()
    return json.dumps(
        {
            "Content": base64.b64encode(content).decode(),
            "ReportFormat": "text/csv",
            "GeneratedTime": iso(GENERATED),
        }
    ).encode()


def timed(label: str, fn):
    tracemalloc.start()
    started = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{label:<36} {elapsed:8.2f} s   peak {peak / 2**20:7.1f} MiB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    if Agent.objects.exists() or AuditEvent.objects.exists():
        sys.exit("use an empty scratch database (drop and recreate it)")
    data = report(args.users)
    print(f"{connection.vendor}: report of {args.users} users, {len(data) / 2**20:.1f} MiB")
    actor = Actor.system("benchmark")

    def do_import():
        return run_import(actor=actor, source="aws-credential-report", content=data, filename="bench.json")

    first = timed("first import (creates everything)", do_import)
    print("   ", {k: v for k, v in first.summary.items() if v})
    again = timed("re-import of the same file", do_import)
    print("   ", {k: v for k, v in again.summary.items() if v})
    timed("stale-credential job on the result", lambda: credentials_flag_stale_due(now=GENERATED))
    print(
        f"agents {Agent.objects.count()}, credentials {Credential.objects.count()}, "
        f"findings {Finding.objects.count()}, audit events {AuditEvent.objects.count()}"
    )


if __name__ == "__main__":
    main()
