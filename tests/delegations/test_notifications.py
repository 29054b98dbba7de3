"""E-mails about delegation grants: who receives each kind, what it says, and that it leaves only after commit."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from delegations import services
from delegations.models import DelegationGrant
from delegations.notifications import KINDS, grant_notifications_send, message_for
from delegations.services import ScopeRequest as S
from governance.audit import Actor
from governance.errors import ValidationError
from tests.factories import T0, AgentFactory, GrantFactory, IamAdminFactory, OwnerFactory, ToolFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAY = timedelta(days=1)


@pytest.fixture
def agent(owner):
    agent = AgentFactory(owner=owner, name="Ticket triage", slug="ticket-triage", risk_tier="low")
    ToolFactory(agent=agent, name="github", access_levels=["read", "write"])
    return agent


@pytest.fixture
def requester(db):
    return OwnerFactory(username="rita.requester")


def ask(actor, agent, **kwargs):
    return services.grant_request(
        actor=actor,
        agent=agent,
        scopes=[S("github", "read", "repo:acme/*")],
        purpose="Read the issue tracker.",
        justification="Ticket triage needs it.",
        expires_at=T0 + DAY,
        **kwargs,
    )


# --- a new request: the approvers ------------------------------------------------------------


def test_a_new_request_goes_to_the_iam_admins_who_may_decide_it(
    admin_user, approver, second_approver, superuser, mailoutbox, django_capture_on_commit_callbacks
):
    olga = IamAdminFactory(username="olga.owner")  # owns the agent
    bea = IamAdminFactory(username="bea.backup")  # backs it up
    pat = IamAdminFactory(username="pat.person")  # the grant acts for her
    IamAdminFactory(username="gil.gone", is_active=False)
    IamAdminFactory(username="nomail.admin", email="")
    OwnerFactory(username="oscar.owner")
    agent = AgentFactory(owner=olga, backup_owner=bea, name="Deploy bot", risk_tier="high")
    ToolFactory(agent=agent, name="github", access_levels=["read"])

    with django_capture_on_commit_callbacks(execute=True):
        g = ask(Actor.person(admin_user), agent, on_behalf_of=pat)

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert sorted(mail.to) == sorted(
        ["amara.approver@example.com", "bruno.approver@example.com", "root.admin@example.com"]
    )
    assert mail.subject == "[Warrant] Grant request for Deploy bot awaits approval"
    assert "iris.admin asks for a grant to Deploy bot (risk tier high)." in mail.body
    assert "Scopes: github:read on repo:acme/*" in mail.body
    assert "Purpose: Read the issue tracker.\nJustification: Ticket triage needs it.\n" in mail.body
    assert "From 2026-11-15 06:00 UTC until 2026-11-16 06:00 UTC" in mail.body
    assert "Approvals required: 2" in mail.body
    assert f"http://127.0.0.1:8000/grants/{g.pk}/" in mail.body


def test_the_requester_is_never_asked_to_approve_their_own_request(
    agent, approver, admin_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ask(Actor.person(approver), agent)
    assert mailoutbox[0].to == ["iris.admin@example.com"]


def test_no_mail_when_nobody_may_decide(agent, owner):
    g = ask(Actor.person(owner), agent)
    assert message_for("requested", g) is None
    assert grant_notifications_send(kind="requested", grant_ids=[g.pk]) == 0


# --- a decision: the requester, who decided and why ------------------------------------------


def test_an_approval_tells_the_requester_who_approved_and_why(
    agent, requester, approver_actor, mailoutbox, django_capture_on_commit_callbacks
):
    g = GrantFactory(agent=agent, requested_by=requester, status="pending", scopes=[("github", "read", "")])
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_approve(actor=approver_actor, grant=g, comment="Fine for a day.")
    (mail,) = mailoutbox
    assert mail.to == ["rita.requester@example.com"]
    assert mail.subject == "[Warrant] Your grant request for Ticket triage was approved"
    assert mail.body.startswith(
        f"Your request #{g.pk} for Ticket triage was approved by amara.approver.\n"
        "Reason: Fine for a day.\n"
        "It authorises from 2026-11-15 06:00 UTC until 2026-11-16 06:00 UTC.\n"
    )


def test_a_two_approver_decision_names_both_approvers_and_their_comments(
    owner, requester, approver_actor, second_approver_actor, mailoutbox, django_capture_on_commit_callbacks
):
    agent = AgentFactory(owner=owner, name="Deploy bot", risk_tier="high")
    g = GrantFactory(agent=agent, requested_by=requester, status="pending", approvals_required=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_approve(actor=approver_actor, grant=g, comment="Scoped tightly enough.")
    assert mailoutbox == []  # not decided yet
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_approve(actor=second_approver_actor, grant=g)
    (mail,) = mailoutbox
    assert mail.body.startswith(
        f"Your request #{g.pk} for Deploy bot was approved by amara.approver and bruno.approver.\n"
        "Their comments:\n- amara.approver: Scoped tightly enough.\n- bruno.approver: (no comment)\n"
    )


def test_a_denial_tells_the_requester_who_denied_and_why(
    agent, requester, approver_actor, mailoutbox, django_capture_on_commit_callbacks
):
    g = GrantFactory(agent=agent, requested_by=requester, status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_deny(actor=approver_actor, grant=g, reason="Too broad; ask for one repository.")
    (mail,) = mailoutbox
    assert mail.to == ["rita.requester@example.com"]
    assert mail.subject == "[Warrant] Your grant request for Ticket triage was denied"
    assert (
        f"was denied by amara.approver.\nReason: Too broad; ask for one repository.\n\nhttp://127.0.0.1:8000/grants/{g.pk}/"
        in mail.body
    )
    assert "It authorises" not in mail.body


# --- endings: the requester and the owner ----------------------------------------------------


@pytest.mark.parametrize(
    "kind, subject",
    [
        ("expiring", "[Warrant] Grant #{pk} for Ticket triage expires 2026-11-16 06:00 UTC"),
        ("expired", "[Warrant] Grant #{pk} for Ticket triage has expired"),
        ("cancelled", "[Warrant] Grant request #{pk} for Ticket triage was cancelled"),
    ],
)
def test_endings_go_to_the_requester_and_the_owner_in_one_message(agent, requester, kind, subject, mailoutbox):
    g = GrantFactory(agent=agent, requested_by=requester, scopes=[("github", "read", "")], end_reason="Not needed.")
    assert grant_notifications_send(kind=kind, grant_ids=[g.pk]) == 1
    (mail,) = mailoutbox
    assert mail.to == ["rita.requester@example.com", "olivia.owner@example.com"]
    assert mail.subject == subject.format(pk=g.pk)
    assert f"/grants/{g.pk}/" in mail.body
    if kind == "cancelled":
        assert "was cancelled by" not in mail.body and "was cancelled: Not needed." in mail.body
    else:
        assert "(github:read)" in mail.body


def test_a_person_is_written_to_once_and_only_with_an_address(agent, owner, mailoutbox):
    mine = GrantFactory(agent=agent, requested_by=owner)
    assert message_for("expiring", mine).to == ["olivia.owner@example.com"]
    silent = UserFactory(email="")
    theirs = GrantFactory(agent=AgentFactory(owner=silent), requested_by=silent)
    assert message_for("expired", theirs) is None
    gone = UserFactory(is_active=False)
    assert message_for("expired", GrantFactory(agent=agent, requested_by=gone)).to == ["olivia.owner@example.com"]


def test_an_unknown_kind_is_an_error(agent):
    assert KINDS == ("requested", "approved", "denied", "expiring", "expired", "revoked", "cancelled")
    with pytest.raises(ValueError, match="unknown notification 'decided'"):
        message_for("decided", GrantFactory(agent=agent))


# --- each mail tells its own event, whatever happened before it was sent ------------------------


def test_approvers_are_not_asked_to_decide_a_request_that_no_longer_waits(agent, requester, approver, mailoutbox):
    g = GrantFactory(agent=agent, requested_by=requester, status="pending")
    services.grant_cancel(actor=Actor.person(requester), grant=g)
    assert grant_notifications_send(kind="requested", grant_ids=[g.pk]) == 0
    assert mailoutbox == []


def test_an_approval_mailed_after_a_revocation_still_names_the_approver_and_the_comment(
    agent, requester, owner, approver_actor, mailoutbox
):
    """The approval's task runs late (a busy worker): by then the grant was revoked by someone else.
    The approval mail still says who approved and why; the revocation has its own mail."""
    g = GrantFactory(agent=agent, requested_by=requester, status="pending", scopes=[("github", "read", "")])
    services.grant_approve(actor=approver_actor, grant=g, comment="fine")
    services.grant_revoke(actor=Actor.person(owner), grant=g, reason="Done by the owner.")
    assert grant_notifications_send(kind="approved", grant_ids=[g.pk]) == 1
    assert grant_notifications_send(kind="revoked", grant_ids=[g.pk]) == 1
    approved, revoked = mailoutbox
    assert approved.subject == "[Warrant] Your grant request for Ticket triage was approved"
    assert approved.body.startswith(
        f"Your request #{g.pk} for Ticket triage was approved by amara.approver.\nReason: fine\n"
        "It authorises from 2026-11-15 06:00 UTC until 2026-11-16 06:00 UTC.\n"
        "It has since been revoked (2026-11-15 06:00 UTC).\n"
    )
    assert revoked.subject == f"[Warrant] Grant #{g.pk} for Ticket triage was revoked"
    assert revoked.to == ["rita.requester@example.com", "olivia.owner@example.com"]
    assert revoked.body.startswith(
        f"Grant #{g.pk} to Ticket triage (github:read) was revoked by olivia.owner at 2026-11-15 06:00 UTC: "
        "Done by the owner.\n"
    )


def test_a_revocation_mails_every_grant_it_ends_down_the_chain(
    agent, requester, owner, mailoutbox, django_capture_on_commit_callbacks
):
    parent = GrantFactory(agent=agent, requested_by=requester, scopes=[("github", "read", "")])
    child = GrantFactory(agent=AgentFactory(owner=owner), requested_by=owner, parent=parent, depth=2)
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_revoke(actor=Actor.person(owner), grant=parent, reason="Incident 42.")
    assert sorted(m.subject for m in mailoutbox) == sorted(
        [
            f"[Warrant] Grant #{parent.pk} for Ticket triage was revoked",
            f"[Warrant] Grant #{child.pk} for {child.agent.name} was revoked",
        ]
    )
    assert all("was revoked by olivia.owner" in m.body and "Incident 42." in m.body for m in mailoutbox)


def test_a_request_cancelled_by_someone_else_needs_a_reason_and_tells_the_requester(
    agent, requester, owner, mailoutbox, django_capture_on_commit_callbacks
):
    g = GrantFactory(agent=agent, requested_by=requester, status="pending")
    with pytest.raises(ValidationError, match="not your own request"):
        services.grant_cancel(actor=Actor.person(owner), grant=g, reason="  ")
    g.refresh_from_db()
    assert g.status == "pending" and mailoutbox == []
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_cancel(actor=Actor.person(owner), grant=g, reason="Use the shared grant instead.")
    (mail,) = mailoutbox
    assert mail.to == ["rita.requester@example.com", "olivia.owner@example.com"]
    cancelled = f"Request #{g.pk} for Ticket triage was cancelled by olivia.owner: Use the shared grant instead."
    assert cancelled in mail.body


def test_a_requester_withdrawing_their_own_request_needs_no_reason_and_gets_no_mail(
    agent, requester, mailoutbox, django_capture_on_commit_callbacks
):
    g = GrantFactory(agent=agent, requested_by=requester, status="pending")
    with django_capture_on_commit_callbacks(execute=True):
        services.grant_cancel(actor=Actor.person(requester), grant=g)
    g.refresh_from_db()
    assert (g.status, g.end_reason) == ("cancelled", "Cancelled.")
    assert mailoutbox == []


def test_sending_reads_a_fixed_number_of_queries_whatever_the_number_of_grants(agent, requester):
    def queries_for(n):
        ids = [GrantFactory(agent=agent, requested_by=requester, scopes=[("github", "read", "")]).pk for _ in range(n)]
        with CaptureQueriesContext(connection) as ctx:
            assert grant_notifications_send(kind="expiring", grant_ids=ids) == n
        return len(ctx.captured_queries)

    assert queries_for(1) == queries_for(4)


# --- after commit only -----------------------------------------------------------------------


def test_no_mail_leaves_for_a_change_that_rolls_back(agent, owner, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            ask(Actor.person(owner), agent)
            raise RuntimeError("the surrounding work failed")
    assert callbacks == [] and mailoutbox == []
    assert not DelegationGrant.objects.exists()


def test_no_mail_leaves_before_commit(agent, owner, approver, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ask(Actor.person(owner), agent)
        assert mailoutbox == []
    assert len(callbacks) == 1
    callbacks[0]()
    assert [m.to for m in mailoutbox] == [["amara.approver@example.com"]]
