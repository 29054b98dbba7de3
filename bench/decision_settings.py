"""Settings for the decision benchmark's server (``bench/decisions.py``): production settings, plus one route.

The production settings as they ship (DEBUG off, the same middleware, authentication and database
settings), with what they demand from the environment given bench-only defaults, and
``ROOT_URLCONF`` pointing at ``bench.decision_urls`` (the project's routes plus ``/bench/ping``,
the framework floor). ``DATABASE_URL`` names the scratch database, as for every benchmark.

``BENCH_CONN_MAX_AGE`` (seconds), when set, overrides ``CONN_MAX_AGE`` for every request alike —
the floor and the decision endpoint are served by the same processes with the same database
settings. Unset, it stays what ``DATABASE_URL`` gives, which is what production runs with.

Requests are expected to carry ``X-Forwarded-Proto: https``, as behind the TLS-terminating proxy
production runs behind; the SSL redirect stays on.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

from governance.settings.production import *  # noqa: E402, F403
from governance.settings.production import DATABASES  # noqa: E402

ROOT_URLCONF = "bench.decision_urls"

if os.environ.get("BENCH_CONN_MAX_AGE"):
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])
