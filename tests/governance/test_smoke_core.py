from datetime import UTC, datetime

import pytest

from governance.audit import audit_verify
from governance.models import AuditEvent, Finding
from inventory import services
from inventory.models import Agent, Credential


@pytest.mark.django_db
def test_register_activate_and_stale_job(admin_actor, owner, frozen_now):
    agent = services.agent_register(
        actor=admin_actor, name="Invoice agent", kind=Agent.Kind.AUTONOMOUS_AGENT, owner=owner
    )
    services.agent_activate(actor=admin_actor, agent=agent)
    cred = services.credential_record(
        actor=admin_actor,
        agent=agent,
        kind=Credential.Kind.ACCESS_KEY,
        provider="aws",
        external_id="k1",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        last_used_at=datetime(2024, 2, 1, tzinfo=UTC),
    )
    now = datetime(2026, 11, 15, 6, tzinfo=UTC)
    r1 = services.credentials_flag_stale_due(now=now)
    r2 = services.credentials_flag_stale_due(now=now)
    kinds = sorted(Finding.objects.values_list("kind", flat=True))
    assert kinds == ["unrotated_credential", "unused_credential"]
    assert r1["unused_credential"]["opened"] == 1 and r2["unused_credential"]["opened"] == 0
    services.credential_revoke(actor=admin_actor, credential=cred, reason="gone")
    assert set(Finding.objects.values_list("status", flat=True)) == {"resolved"}
    assert audit_verify() is None
    assert AuditEvent.objects.count() >= 6
