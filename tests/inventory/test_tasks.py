"""The inventory's Celery tasks: thin wrappers that run their service as of the moment they run."""

from datetime import timedelta

import pytest
import time_machine

from governance.models import Finding
from inventory import tasks
from inventory.models import Credential
from tests.factories import T0, CredentialFactory

pytestmark = pytest.mark.django_db


def test_the_task_has_its_stable_dotted_name():
    assert tasks.flag_stale_credentials.name == "inventory.tasks.flag_stale_credentials"


def test_the_task_runs_the_stale_credential_job_as_of_the_time_it_runs(frozen_now):
    cred = CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    result = tasks.flag_stale_credentials.delay().get()
    assert result["console_password_on_nhi"]["opened"] == 1
    f = Finding.objects.get()
    assert (f.kind, f.subject_id, f.first_seen_at) == ("console_password_on_nhi", cred.pk, T0)


def test_the_task_is_idempotent():
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    CredentialFactory(created_at=T0 - timedelta(days=200), last_rotated_at=None)
    with time_machine.travel(T0, tick=False):
        tasks.flag_stale_credentials.delay()
    first = sorted(Finding.objects.values_list("id", "kind", "status"))
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        result = tasks.flag_stale_credentials.apply().get()
    assert sorted(Finding.objects.values_list("id", "kind", "status")) == first
    assert all(c["opened"] == 0 for c in result.values())
    assert set(Finding.objects.values_list("last_seen_at", flat=True)) == {T0 + timedelta(hours=1)}
