"""A real Celery worker process, a real Redis broker, the test database: the stale-credential task end to end.

The worker is started as ``celery -A governance worker --pool=solo`` with ``DATABASE_URL``
pointing at the test database, so it sees the rows this test commits (``transactional_db``)
and this test sees the findings it writes. Redis defaults to ``redis://127.0.0.1:6379/14``
(``WARRANT_TEST_REDIS_URL`` overrides it,
and so does a Redis ``CELERY_BROKER_URL``); each run listens on a queue of its own.
"""

import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection

from governance.audit import audit_verify
from governance.models import Finding
from inventory.models import Credential
from tests.factories import CredentialFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

# Celery prefers the CELERY_BROKER_URL environment variable over a client's ``broker=`` argument,
# so when it names a Redis server, worker and client both use it.
_BROKER_ENV = os.environ.get("CELERY_BROKER_URL", "")
REDIS_URL = os.environ.get("WARRANT_TEST_REDIS_URL") or (
    _BROKER_ENV if _BROKER_ENV.startswith("redis") else "redis://127.0.0.1:6379/14"
)
TASK = "inventory.tasks.flag_stale_credentials"
TIMEOUT_SECONDS = 60
POLL_SECONDS = 0.2


def _redis_unreachable_reason() -> str | None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        return f"Redis is unreachable at {REDIS_URL}: {exc}"
    return None


def _test_database_url() -> str:
    """The URL of the database this test runs on, for the worker process."""
    s = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = quote(s["USER"] or "", safe="")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"], safe="")
        host = s.get("HOST") or "127.0.0.1"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{s['NAME']}"
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    pytest.skip(f"no worker database URL for {connection.vendor}")


@pytest.fixture
def worker(tmp_path):
    """Start a Celery worker on a queue of its own; yield (queue, log path); stop it by its pid."""
    reason = _redis_unreachable_reason()
    if reason:
        pytest.skip(reason)
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("the test database is SQLite in memory, which another process cannot open")
    queue = f"warrant-test-{uuid.uuid4().hex[:12]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "governance.settings.test",
        "DATABASE_URL": _test_database_url(),
        "CELERY_BROKER_URL": REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "governance",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        queue,
        "-n",
        f"{queue}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield queue, log, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_for(predicate, proc, log):
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            pytest.fail(f"the worker exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(POLL_SECONDS)
    pytest.fail(f"no result within {TIMEOUT_SECONDS}s; worker log:\n{log.read_text(errors='replace')}")


def test_a_real_worker_runs_the_stale_credential_task_from_redis(worker):
    queue, log, proc = worker
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    password = CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    unrotated = CredentialFactory(
        created_at=long_ago,
        last_rotated_at=None,
        last_used_at=None,
        usage_tracked=False,
        observed_at=long_ago + timedelta(days=1),
    )
    expected = {("console_password_on_nhi", password.pk), ("unrotated_credential", unrotated.pk)}
    sent_at = datetime.now(UTC)

    client = Celery("warrant-test-client", broker=REDIS_URL)
    try:
        client.send_task(TASK, queue=queue)
    finally:
        client.close()

    def findings():
        return set(Finding.objects.values_list("kind", "subject_id"))

    _wait_for(lambda: findings() == expected, proc, log)
    opened = Finding.objects.get(kind="unrotated_credential")
    # ``now`` is the moment the task ran, in UTC.
    assert sent_at - timedelta(seconds=5) <= opened.first_seen_at <= datetime.now(UTC)
    assert opened.first_seen_at.utcoffset() == timedelta(0)
    assert audit_verify() is None

    # A second delivery changes nothing more: same findings, only last_seen_at moves.
    ids = sorted(Finding.objects.values_list("id", flat=True))
    client = Celery("warrant-test-client", broker=REDIS_URL)
    try:
        client.send_task(TASK, queue=queue)
    finally:
        client.close()
    _wait_for(lambda: Finding.objects.filter(last_seen_at__gt=opened.first_seen_at).count() == 2, proc, log)
    assert sorted(Finding.objects.values_list("id", flat=True)) == ids
    assert set(Finding.objects.values_list("status", flat=True)) == {"open"}
