from datetime import timedelta

from delegations import services
from delegations.models import DelegationGrant
from delegations.services import ScopeRequest
from tests.factories import T0


def test_request_approve_expire(
    frozen_now,
    high_agent,
    owner_actor,
    approver_actor,
    second_approver_actor,
    mailoutbox,
    django_capture_on_commit_callbacks,
):
    g = services.grant_request(
        actor=owner_actor,
        agent=high_agent,
        scopes=[ScopeRequest("github", "read")],
        purpose="p",
        justification="j",
        expires_at=T0 + timedelta(hours=24),
    )
    assert g.approvals_required == 2
    services.grant_approve(actor=approver_actor, grant=g)
    g = services.grant_approve(actor=second_approver_actor, grant=g)
    assert g.status == "active"
    assert DelegationGrant.objects.active_at(T0).filter(pk=g.pk).exists()
    assert not DelegationGrant.objects.active_at(T0 + timedelta(hours=24)).exists()
    frozen_now.move_to(T0 + timedelta(hours=25))
    with django_capture_on_commit_callbacks(execute=True):
        assert services.grants_expire_due(now=T0 + timedelta(hours=25)) == {"expired": 1}
    assert services.grants_expire_due(now=T0 + timedelta(hours=25)) == {"expired": 0}
    print([m.subject for m in mailoutbox])


def test_states(frozen_now, low_agent):
    from tests.factories import GrantFactory

    g = GrantFactory(agent=low_agent)
    p = GrantFactory(agent=low_agent, status="pending")
    s = GrantFactory(agent=low_agent, starts_at=T0 + timedelta(hours=1))
    qs = DelegationGrant.objects.with_state_at(T0)
    assert {x.pk: x.state for x in qs} == {g.pk: "active", p.pk: "pending", s.pk: "scheduled"}
    assert {x.state for x in DelegationGrant.objects.with_state_at(T0 + timedelta(days=3))} == {"expired", "pending"}
    assert list(DelegationGrant.objects.in_state_at(["active"], T0)) == [g]
