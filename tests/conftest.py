"""Shared fixtures: people in each role, their audit actors, an agent, API and admin clients, pinned time."""

import pytest
import time_machine
from django.test import Client
from rest_framework.test import APIClient

from governance.audit import Actor
from tests.factories import T0, AgentFactory, AuditorFactory, IamAdminFactory, OwnerFactory, UserFactory


@pytest.fixture
def admin_user(db):
    return IamAdminFactory(username="iris.admin")


@pytest.fixture
def owner(db):
    return OwnerFactory(username="olivia.owner")


@pytest.fixture
def other_owner(db):
    return OwnerFactory(username="oscar.owner")


@pytest.fixture
def auditor(db):
    return AuditorFactory(username="aude.auditor")


@pytest.fixture
def people(owner, other_owner, admin_user, auditor):
    """The people above by role name; ``"anonymous"`` is ``None`` (not signed in)."""
    return {"owner": owner, "other_owner": other_owner, "admin": admin_user, "auditor": auditor, "anonymous": None}


@pytest.fixture
def superuser(db):
    """A Django superuser with staff access, for the admin."""
    return UserFactory(username="root.admin", is_superuser=True, is_staff=True)


@pytest.fixture
def admin_client(superuser):
    """A test client signed in to the Django admin as ``superuser``."""
    client = Client()
    client.force_login(superuser)
    return client


@pytest.fixture
def agent(owner):
    """An agent owned by ``owner``: "Ticket triage" (``ticket-triage``)."""
    return AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage")


@pytest.fixture
def admin_actor(admin_user):
    return Actor.person(admin_user)


@pytest.fixture
def owner_actor(owner):
    return Actor.person(owner)


@pytest.fixture
def system_actor():
    return Actor.system("test job")


@pytest.fixture
def frozen_now():
    """Pin the clock at 2026-11-15T06:00Z (the sample credential report's generation time)."""
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture(scope="session", autouse=True)
def _audit_table_flushable():
    """Let transactional tests empty the database on PostgreSQL.

    ``transactional_db`` (and ``live_server``) empty every table with TRUNCATE after each test,
    which the audit table's append-only trigger refuses. Only that flush runs with the
    TRUNCATE trigger disabled; the UPDATE/DELETE trigger stays on throughout.
    """
    from django.db import connections
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def _fixture_teardown(self):
        pg = [connections[a] for a in self._databases_names(include_mirrors=False)]
        pg = [c for c in pg if c.vendor == "postgresql"]
        for conn in pg:
            with conn.cursor() as cursor:
                cursor.execute("ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_no_truncate")
        try:
            original(self)
        finally:
            for conn in pg:
                with conn.cursor() as cursor:
                    cursor.execute("ALTER TABLE governance_auditevent ENABLE TRIGGER governance_auditevent_no_truncate")

    TransactionTestCase._fixture_teardown = _fixture_teardown
    yield
    TransactionTestCase._fixture_teardown = original
