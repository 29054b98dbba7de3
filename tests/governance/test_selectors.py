from datetime import timedelta

import pytest

from governance.findings import Condition, findings_sync
from governance.selectors import finding_list
from inventory.models import Credential
from tests.factories import T0, CredentialFactory


@pytest.mark.django_db
def test_findings_queue_puts_the_most_severe_first_then_the_most_recent(admin_user, system_actor):
    low, medium, critical = (CredentialFactory() for _ in range(3))
    findings_sync(
        actor=system_actor,
        kind="expiring_credential",
        subject_model=Credential,
        now=T0,
        conditions=[Condition(low, low.agent_id)],
    )
    findings_sync(
        actor=system_actor,
        kind="credential_on_decommissioned_agent",
        subject_model=Credential,
        now=T0 - timedelta(days=1),
        conditions=[Condition(critical, critical.agent_id)],
    )
    findings_sync(
        actor=system_actor,
        kind="unused_credential",
        subject_model=Credential,
        now=T0,
        conditions=[Condition(medium, medium.agent_id)],
    )

    ordered = [(f.severity, f.subject_id) for f in finding_list(user=admin_user)]

    assert ordered == [("critical", critical.pk), ("medium", medium.pk), ("low", low.pk)]


@pytest.mark.django_db
def test_findings_show_agent_name_and_credential_external_id(admin_user, system_actor):
    credential = CredentialFactory(external_id="arn:aws:iam::1:user/x#access_key_1")
    findings_sync(
        actor=system_actor,
        kind="unused_credential",
        subject_model=Credential,
        now=T0,
        conditions=[Condition(credential, credential.agent_id)],
    )

    finding = finding_list(user=admin_user).get()

    assert finding.agent_name == credential.agent.name
    assert finding.credential_external_id == "arn:aws:iam::1:user/x#access_key_1"


@pytest.mark.django_db
def test_agent_trail_includes_its_credentials_tools_identities_and_findings(admin_actor, frozen_now):
    from governance.selectors import audit_events_for_agent
    from inventory import services
    from tests.factories import AgentFactory

    agent, other = AgentFactory(), AgentFactory()
    credential = services.credential_record(
        actor=admin_actor,
        agent=agent,
        kind="api_key",
        provider="github",
        external_id="k1",
        created_at=T0 - timedelta(days=400),
    )
    services.tool_add(actor=admin_actor, agent=agent, name="fetch", transport="stdio", command="uvx")
    services.workload_identity_add(actor=admin_actor, agent=agent, type="spiffe", identifier="spiffe://e.org/a")
    services.agent_suspend(actor=admin_actor, agent=agent, reason="Investigating")
    services.credentials_flag_stale_due(now=T0)
    services.tool_add(actor=admin_actor, agent=other, name="other-tool", transport="stdio", command="npx")

    verbs = [e.verb for e in audit_events_for_agent(agent=agent)]

    assert verbs == [
        "finding.open",
        "finding.open",
        "agent.suspend",
        "workload_identity.add",
        "tool.add",
        "credential.record",
    ]  # the never-used, unrotated key: unused + unrotated findings
    assert credential.pk
