"""Benchmark: the literal-secret scanner on 100 KB adversarial values (every check path).

Run by hand: ``.venv/bin/python bench/secret_scanner.py``. A pattern that backtracks shows up
as seconds per value here; a linear scan takes milliseconds. The adversarial inputs are the
ones ``tests/inventory/test_secrets.py`` feeds through every check.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings.local")

import django  # noqa: E402

django.setup()

from inventory.secrets import (  # noqa: E402
    args_refusal,
    credential_fingerprint_refusal,
    env_keys_refusal,
    text_refusal,
    url_refusal,
)
from tests.inventory.test_secrets import ADVERSARIAL  # noqa: E402


def main() -> None:
    worst = 0.0
    for name, value in ADVERSARIAL.items():
        started = time.perf_counter()
        text_refusal(value)
        text_refusal(value, name="TOKEN")
        args_refusal([value, "--token", value, f"--opt={value}"])
        url_refusal(f"https://u:{value}@h.example/?token={value}")
        env_keys_refusal([value])
        credential_fingerprint_refusal(value)
        elapsed = time.perf_counter() - started
        worst = max(worst, elapsed)
        print(f"{name:<22} {len(value):>8} chars   {elapsed * 1000:8.1f} ms")
    print(f"worst {worst * 1000:.1f} ms")


if __name__ == "__main__":
    main()
