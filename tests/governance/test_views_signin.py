"""Sign-in throttling (django-axes): 5 failures of one username from one address lock that pair out
for 15 minutes, on the web and the admin sign-in; and refusals logged in one line, errors in full."""

import logging
from datetime import timedelta

import pytest
import time_machine
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.test import Client
from django.urls import path, reverse

from tests.factories import T0, IamAdminFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"  # the factories' password


@pytest.fixture(autouse=True)
def _fresh_attempts():
    """Start and end each test with no recorded sign-in attempts (``axes.utils.reset``)."""
    axes_reset()
    yield
    axes_reset()


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


def sign_in(client: Client, username: str, password: str, *, path: str | None = None, ip: str = "192.0.2.10"):
    return client.post(path or reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failures_lock_the_username_and_address_for_15_minutes(owner, clock):
    client = Client()
    for _ in range(4):
        response = sign_in(client, "olivia.owner", "wrong")
        assert response.status_code == 200  # the form again, with the usual message
    locked = sign_in(client, "olivia.owner", "wrong")  # the fifth failure locks
    assert locked.status_code == 429
    right = sign_in(client, "olivia.owner", PASSWORD)
    assert right.status_code == 429 and "_auth_user_id" not in client.session
    body = right.content.decode()
    assert "Too many failed sign-ins for this username from your address" in body
    assert "locked for 15 minutes" in body and 'name="password"' in body
    assert 'value="olivia.owner"' in body  # the username stays filled in
    assert right["Retry-After"] == "900"

    clock.shift(timedelta(minutes=16))
    after = sign_in(client, "olivia.owner", PASSWORD)
    assert after.status_code == 302 and after["Location"] == reverse("dashboard")


def test_a_failure_during_the_lockout_starts_the_wait_again(owner, clock):
    client = Client()
    for _ in range(5):
        sign_in(client, "olivia.owner", "wrong")
    clock.shift(timedelta(minutes=10))
    assert sign_in(client, "olivia.owner", "wrong").status_code == 429
    clock.shift(timedelta(minutes=10))  # 20 minutes after the fifth failure, 10 after the last
    assert sign_in(client, "olivia.owner", PASSWORD).status_code == 429


def test_the_lock_is_for_the_username_and_address_pair(owner, other_owner, clock):
    for _ in range(5):
        sign_in(Client(), "olivia.owner", "wrong", ip="192.0.2.10")
    # Another person from the same address, and the same person from another address, still sign in.
    assert sign_in(Client(), "oscar.owner", PASSWORD, ip="192.0.2.10").status_code == 302
    assert sign_in(Client(), "olivia.owner", PASSWORD, ip="198.51.100.7").status_code == 302
    assert sign_in(Client(), "olivia.owner", PASSWORD, ip="192.0.2.10").status_code == 429


def test_a_success_before_the_limit_clears_the_count(owner, clock):
    client = Client()
    for _ in range(4):
        sign_in(client, "olivia.owner", "wrong")
    assert sign_in(client, "olivia.owner", PASSWORD).status_code == 302
    client.post(reverse("logout"))
    for _ in range(4):
        sign_in(client, "olivia.owner", "wrong")
    assert sign_in(client, "olivia.owner", PASSWORD).status_code == 302


def test_the_admin_sign_in_is_throttled_too(clock):
    IamAdminFactory(username="iris", is_staff=True)
    client = Client()
    admin_login = reverse("admin:login")
    for _ in range(5):
        sign_in(client, "iris", "wrong", path=admin_login)
    response = sign_in(client, "iris", PASSWORD, path=admin_login)
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert "Too many failed sign-ins" in response.content.decode()
    # The same pair is locked on the web sign-in as well.
    assert sign_in(client, "iris", PASSWORD).status_code == 429


def test_attempts_are_recorded_and_reset_between_tests(owner, clock):
    sign_in(Client(), "olivia.owner", "wrong")
    assert AccessAttempt.objects.get().failures_since_start == 1


# --- log lines of refusals and errors ------------------------------------------------------


def test_a_refused_action_is_one_log_line_without_traceback(owner, caplog):
    client = Client()
    client.force_login(owner)
    with caplog.at_level(logging.INFO):
        response = client.get(reverse("audit-list"))
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1
    record = records[0]
    assert record.levelno == logging.WARNING and record.exc_info is None and record.exc_text is None
    assert record.getMessage() == (
        "Forbidden (Permission denied): /audit/ (Only IAM admins and auditors read the audit log; "
        "an agent's page shows its trail.)"
    )
    assert "Traceback" not in caplog.text


def _broken(request):
    raise RuntimeError("boom")


urlpatterns = [path("broken/", _broken)]


@pytest.mark.urls(__name__)
def test_a_server_error_keeps_its_traceback(caplog):
    with caplog.at_level(logging.INFO):
        response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
    records = [r for r in caplog.records if r.name == "django.request"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR
    assert records[0].exc_info is not None and records[0].exc_info[0] is RuntimeError


def test_refusals_are_logged_once_through_the_root_handler():
    """Django's own console handler is not configured: each record reaches one handler, not two."""
    django_logger = logging.getLogger("django")
    assert not any(type(h) is logging.StreamHandler for h in django_logger.handlers)
    assert any(type(h) is logging.StreamHandler for h in logging.getLogger().handlers)
