"""Shared fixtures: people in each role, their audit actors, API clients, pinned time."""

import pytest
import time_machine
from rest_framework.test import APIClient

from governance.audit import Actor
from tests.factories import T0, AuditorFactory, IamAdminFactory, OwnerFactory


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


def client_for(user):
    """An APIClient logged in (session) as ``user``."""
    client = APIClient()
    client.force_login(user)
    return client


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
