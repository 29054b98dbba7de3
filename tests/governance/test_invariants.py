"""DESIGN.md invariants that apply to the inventory slice, one test each, named after the invariant.

Invariants 1, 4, 5, 6 and 10 concern delegation grants and are tested with them.
"""

from datetime import UTC, datetime, timedelta, timezone
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, models, transaction

from governance.errors import ValidationError
from governance.models import AuditEvent, Finding, IntegrationToken
from governance.services import finding_accept_risk, integration_token_issue
from inventory import services
from inventory.models import Agent, Credential
from inventory.services import credentials_flag_stale_due
from tests.factories import T0, AgentFactory, CredentialFactory, OwnerFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def test_invariant_2_every_write_commits_with_its_audit_event_or_not_at_all(monkeypatch, admin_actor, owner):
    def broken_audit(**kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "audit_record", broken_audit)
    with pytest.raises(RuntimeError):
        services.agent_register(actor=admin_actor, name="Triage", kind=Agent.Kind.ASSISTANT, owner=owner)
    assert not Agent.objects.exists()

    agent = AgentFactory(owner=owner)
    with pytest.raises(RuntimeError):
        services.agent_suspend(actor=admin_actor, agent=agent, reason="Odd calls.")
    assert Agent.objects.get(pk=agent.pk).state == Agent.State.ACTIVE
    monkeypatch.undo()

    # Bad input changes nothing and names the field.
    with pytest.raises(ValidationError) as exc:
        services.agent_register(actor=admin_actor, name="Triage", kind="robot", owner=owner, data_classes=["gold"])
    assert {"kind", "data_classes"} <= set(exc.value.message_dict)
    assert Agent.objects.count() == 1 and not AuditEvent.objects.exists()

    # A good write leaves exactly one event, in the same transaction.
    services.agent_suspend(actor=admin_actor, agent=agent, reason="Odd calls.")
    assert list(AuditEvent.objects.values_list("verb", "object_id")) == [("agent.suspend", str(agent.pk))]


def test_invariant_3_datetimes_are_aware_and_stored_in_utc(admin_actor, owner, frozen_now):
    assert connection.timezone == UTC or str(connection.timezone) == "UTC"
    agent = AgentFactory(owner=owner)
    paris = timezone(timedelta(hours=1))
    cred = services.credential_record(
        actor=admin_actor,
        agent=agent,
        kind=Credential.Kind.API_KEY,
        provider="openai",
        external_id="key-1",
        created_at=datetime(2026, 1, 1, 13, 0, tzinfo=paris),
        last_used_at=datetime(2026, 11, 1, 10, 0, tzinfo=paris),
    )
    credentials_flag_stale_due(now=T0)
    cred = Credential.objects.get(pk=cred.pk)
    assert cred.created_at == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert cred.created_at.utcoffset() == timedelta(0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT created_at FROM inventory_credential WHERE id = %s", [cred.pk])
        raw = cursor.fetchone()[0]
    assert str(raw).startswith("2026-01-01 12:00:00")

    # Every datetime Warrant stored in this flow reads back aware, in UTC.
    for model in (Agent, Credential, Finding, AuditEvent):
        fields = [f.name for f in model._meta.fields if isinstance(f, models.DateTimeField)]
        for row in model.objects.values(*fields):
            for name, value in row.items():
                if value is not None:
                    assert value.utcoffset() == timedelta(0), (model.__name__, name, value)

    # A datetime without an offset is refused, never guessed.
    finding = Finding.objects.first()
    with pytest.raises(ValidationError) as exc:
        finding_accept_risk(actor=admin_actor, finding=finding, until=datetime(2026, 12, 1), note="ok")
    assert "until" in exc.value.message_dict
    with pytest.raises(CommandError, match="no UTC offset"):
        call_command("run_job", "flag-stale-credentials", "--now", "2026-11-15T06:00:00", stdout=StringIO())


def test_invariant_7_every_live_agent_has_an_owner(admin_actor):
    for state in Agent.LIVE_STATES:
        with pytest.raises(IntegrityError), transaction.atomic():
            AgentFactory(owner=None, state=state)
    agent = AgentFactory(owner=OwnerFactory(), state=Agent.State.ACTIVE)
    with pytest.raises(IntegrityError), transaction.atomic():
        Agent.objects.filter(pk=agent.pk).update(owner=None)
    # Ownerless is allowed only before activation and after decommissioning.
    imported = AgentFactory(owner=None, state=Agent.State.PROPOSED)
    AgentFactory(owner=None, state=Agent.State.DECOMMISSIONED)
    with pytest.raises(ValidationError):
        services.agent_activate(actor=admin_actor, agent=imported)
    assert Agent.objects.get(pk=imported.pk).state == Agent.State.PROPOSED


def test_invariant_8_jobs_are_idempotent_with_one_open_finding_per_kind_and_subject():
    stale = CredentialFactory(created_at=T0 - 200 * DAY, last_rotated_at=None, last_used_at=T0 - 150 * DAY)
    CredentialFactory(kind=Credential.Kind.CONSOLE_PASSWORD)
    credentials_flag_stale_due(now=T0)
    first = sorted(Finding.objects.values_list("id", "kind", "subject_id", "status"))
    events = AuditEvent.objects.count()
    credentials_flag_stale_due(now=T0)
    credentials_flag_stale_due(now=T0 + DAY)
    assert sorted(Finding.objects.values_list("id", "kind", "subject_id", "status")) == first
    assert AuditEvent.objects.count() == events

    unresolved = Finding.objects.exclude(status="resolved")
    assert unresolved.values("kind", "subject_type", "subject_id").distinct().count() == unresolved.count()
    dup = unresolved.first()
    dup.pk = None
    with pytest.raises(IntegrityError), transaction.atomic():
        dup.save()

    # The condition clears: its findings resolve themselves.
    Credential.objects.filter(pk=stale.pk).update(last_rotated_at=T0, last_used_at=T0, observed_at=T0)
    credentials_flag_stale_due(now=T0 + DAY)
    assert not Finding.objects.filter(subject_id=stale.pk).exclude(status="resolved").exists()


def test_invariant_9_secrets_are_never_stored_in_clear(admin_actor, owner, frozen_now):
    token, clear = integration_token_issue(
        actor=admin_actor, user=owner, name="Gateway", scopes=["inventory:read"], expires_at=T0 + 30 * DAY
    )
    secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    agent = AgentFactory(owner=owner)
    with pytest.raises(ValidationError) as exc:
        services.credential_record(
            actor=admin_actor,
            agent=agent,
            kind=Credential.Kind.ACCESS_KEY,
            provider="aws",
            external_id="AKIAEXAMPLE",
            created_at=T0 - DAY,
            fingerprint=secret_key,
        )
    assert "fingerprint" in exc.value.message_dict

    # No column of any table holds the clear token or the refused secret.
    dump = StringIO()
    call_command("dumpdata", stdout=dump)
    assert clear not in dump.getvalue() and secret_key not in dump.getvalue()
    assert IntegrationToken.objects.get(pk=token.pk).digest != clear
    # Credential has no field that could hold a secret.
    names = {f.name for f in apps.get_model("inventory", "Credential")._meta.fields}
    assert not names & {"secret", "secret_value", "password", "private_key", "token"}
