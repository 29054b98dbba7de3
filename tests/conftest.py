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
