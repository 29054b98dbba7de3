"""``make run``: the address e-mailed links carry follows HOST and PORT unless WARRANT_BASE_URL is set,
and the demo logins banner names every demo person. Read from ``make -n`` (nothing is run)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(*args: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "WARRANT_BASE_URL"} | env
    done = subprocess.run(
        ["make", "-n", "run", *args], cwd=ROOT, env=environ, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_run_gives_the_processes_a_base_url_from_host_and_port():
    out = dry_run("HOST=0.0.0.0", "PORT=9000")
    seed = next(line for line in out.splitlines() if "manage.py seed_demo" in line)
    assert seed.startswith("WARRANT_BASE_URL='http://0.0.0.0:9000' ")
    assert "export WARRANT_BASE_URL='http://0.0.0.0:9000';" in out
    assert "127.0.0.1:8000" not in out


def test_a_base_url_the_user_set_is_kept():
    out = dry_run("PORT=9000", WARRANT_BASE_URL="https://warrant.example.com")
    assert "export WARRANT_BASE_URL='https://warrant.example.com';" in out
    assert "http://127.0.0.1:9000/" in out  # where it listens still follows HOST/PORT


def test_the_demo_logins_banner_names_ines():
    assert 'echo "  ines    IAM admin"' in dry_run()
