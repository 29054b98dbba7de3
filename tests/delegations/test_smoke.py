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
