"""The runtime decision (``delegations.decisions``): every reason code, the exact-second boundary,
chains, the agent-level checks, the query bound, agreement with ``active_at``, and the decision log."""

import itertools
from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from delegations.decisions import (
    REASONS,
    DecisionRequest,
    Subject,
    decide,
    decision_log_write,
    grant_authority,
    should_log,
)
from delegations.models import DecisionLog, DelegationGrant
from governance.models import Policy
from inventory.models import Agent
from tests.factories import (
    T0,
    AgentFactory,
    GrantFactory,
    OwnerFactory,
    ToolFactory,
    UserFactory,
    WorkloadIdentityFactory,
)

pytestmark = pytest.mark.django_db

NOW = T0 + timedelta(hours=2)
SPIFFE = "spiffe://example.org/agents/triage"


@pytest.fixture
def agent(owner):
    agent = AgentFactory(owner=owner, slug="triage", risk_tier="low", data_classes=["pii"])
    ToolFactory(agent=agent, name="crm", access_levels=["read", "write"], data_classes=["pii"])
    ToolFactory(agent=agent, name="payments", access_levels=["read"], data_classes=["payment"])
    WorkloadIdentityFactory(agent=agent, identifier=SPIFFE)
    return agent


def ask(tool="crm", access="read", resource="", **kwargs) -> DecisionRequest:
    return DecisionRequest(tool=tool, access=access, resource=resource, subject=Subject("spiffe", SPIFFE), **kwargs)


def codes(decision) -> list[str]:
    return [r.code for r in decision.reasons]


def grant(agent, pattern="accounts/*", access="read", **kwargs):
    return GrantFactory(agent=agent, scopes=[("crm", access, pattern)], **kwargs)


# --- allow ----------------------------------------------------------------------------------------


def test_a_grant_covering_the_scope_allows_and_names_the_grant_and_its_end(agent):
    g = grant(agent)
    decision = decide(ask(resource="accounts/7"), now=NOW)
    assert decision.allowed and decision.reasons == ()
    assert decision.grant_id == g.pk and decision.grant_chain == (g.pk,)
    assert decision.authority_ends_at == g.expires_at
    assert decision.agent_slug == "triage"


def test_exact_second_boundary_allows_until_the_instant_before_expiry_even_before_the_job(agent):
    g = grant(agent)
    assert decide(ask(resource="accounts/7"), now=g.expires_at - timedelta(microseconds=1)).allowed
    at_end = decide(ask(resource="accounts/7"), now=g.expires_at)
    assert not at_end.allowed and codes(at_end) == ["grant_expired"]
    g.refresh_from_db()
    assert g.status == DelegationGrant.Status.ACTIVE  # the job has not run: enforcement did not wait for it


def test_of_several_grants_the_live_one_decides_and_the_latest_end_is_used(agent):
    grant(agent, status=DelegationGrant.Status.EXPIRED)
    grant(agent, status=DelegationGrant.Status.REVOKED)
    short = grant(agent, expires_at=NOW + timedelta(hours=1))
    long = grant(agent, expires_at=NOW + timedelta(hours=5))
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert decision.allowed and decision.grant_id == long.pk != short.pk


def test_an_oidc_identity_is_matched_with_its_issuer(owner):
    agent = AgentFactory(owner=owner)
    ToolFactory(agent=agent, name="crm")
    WorkloadIdentityFactory(agent=agent, type="oidc", issuer="https://idp.example.com", identifier="svc-1")
    grant(agent, pattern="")
    request = DecisionRequest(tool="crm", access="read", subject=Subject("oidc", "svc-1", "https://idp.example.com"))
    assert decide(request, now=NOW).allowed
    other_issuer = DecisionRequest(tool="crm", access="read", subject=Subject("oidc", "svc-1", "https://evil.example"))
    assert codes(decide(other_issuer, now=NOW)) == ["identity_unknown"]


# --- agent-level reasons ------------------------------------------------------------------------------


def test_unknown_identity_is_denied(agent):
    request = DecisionRequest(tool="crm", access="read", subject=Subject("spiffe", "spiffe://example.org/nobody"))
    decision = decide(request, now=NOW)
    assert codes(decision) == ["identity_unknown"] and decision.agent_id is None


def test_an_owner_asks_only_about_their_own_agents(agent, other_owner, owner):
    grant(agent)
    assert codes(decide(ask(resource="accounts/1"), now=NOW, viewer=other_owner)) == ["identity_unknown"]
    assert decide(ask(resource="accounts/1"), now=NOW, viewer=owner).allowed


@pytest.mark.parametrize("state", ["suspended", "decommissioned", "proposed"])
def test_an_agent_that_is_not_active_is_denied_at_once(agent, state):
    grant(agent)
    Agent.objects.filter(pk=agent.pk).update(state=state)
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert codes(decision) == ["agent_not_active"] and state in decision.reasons[0].message


@pytest.mark.parametrize(
    ("tier", "due", "denied"),
    [
        ("high", date(2026, 10, 31), True),  # 15 days before NOW's date, grace 14
        ("critical", date(2026, 10, 31), True),
        ("high", date(2026, 11, 1), False),  # exactly at the end of grace
        ("medium", date(2026, 10, 1), False),  # only high and critical are denied
        ("high", None, False),
    ],
)
def test_attestation_overdue_past_grace_denies_high_and_critical_agents(agent, tier, due, denied):
    grant(agent)
    Agent.objects.filter(pk=agent.pk).update(risk_tier=tier, next_attestation_due=due)
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert (codes(decision) == ["attestation_overdue"]) is denied
    assert decision.allowed is not denied


def test_the_grace_period_comes_from_the_policy(agent):
    grant(agent)
    Agent.objects.filter(pk=agent.pk).update(risk_tier="high", next_attestation_due=date(2026, 11, 10))
    assert decide(ask(resource="accounts/1"), now=NOW).allowed
    Policy.current()
    Policy.objects.filter(pk=1).update(attestation_grace_days=2)
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["attestation_overdue"]


def test_a_tool_not_in_the_inventory_is_denied(agent):
    assert codes(decide(ask(tool="shell"), now=NOW)) == ["tool_unknown"]


def test_a_tool_reaching_a_data_class_the_agent_is_not_cleared_for_is_denied(agent):
    GrantFactory(agent=agent, scopes=[("payments", "read", "")])
    decision = decide(ask(tool="payments"), now=NOW)
    assert codes(decision) == ["data_class_not_cleared"] and "payment" in decision.reasons[0].message
    assert decision.out_of_scope


# --- grant-level reasons ----------------------------------------------------------------------------------


def test_no_grant_for_the_tool(agent):
    decision = decide(ask(), now=NOW)
    assert codes(decision) == ["no_grant"] and decision.out_of_scope


def test_a_pending_request_gives_no_authority(agent):
    grant(agent, status=DelegationGrant.Status.PENDING)
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["no_grant"]


def test_another_access_level_is_not_granted(agent):
    grant(agent, access="read")
    assert codes(decide(ask(access="write", resource="accounts/1"), now=NOW)) == ["access_not_granted"]


def test_a_resource_outside_the_pattern_is_denied(agent):
    grant(agent, pattern="accounts/*")
    assert decide(ask(resource="accounts/eu/9"), now=NOW).allowed
    decision = decide(ask(resource="invoices/9"), now=NOW)
    assert codes(decision) == ["resource_outside_pattern"] and decision.out_of_scope


def test_an_exact_pattern_matches_only_that_resource(agent):
    grant(agent, pattern="accounts/7")
    assert decide(ask(resource="accounts/7"), now=NOW).allowed
    assert codes(decide(ask(resource="accounts/70"), now=NOW)) == ["resource_outside_pattern"]


def test_when_a_grant_names_intents_the_request_intent_must_be_one(agent):
    grant(agent, intents=["triage", "reporting"])
    assert decide(ask(resource="accounts/1", intent="triage"), now=NOW).allowed
    assert codes(decide(ask(resource="accounts/1", intent="export"), now=NOW)) == ["intent_not_allowed"]
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["intent_not_allowed"]


def test_a_grant_acting_for_a_person_serves_only_that_person(agent):
    alice = UserFactory(username="alice")
    grant(agent, on_behalf_of=alice)
    assert decide(ask(resource="accounts/1", on_behalf_of="alice"), now=NOW).allowed
    assert codes(decide(ask(resource="accounts/1", on_behalf_of="bob"), now=NOW)) == ["on_behalf_mismatch"]
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["on_behalf_mismatch"]


def test_a_grant_not_started_yet(agent):
    grant(agent, starts_at=NOW + timedelta(minutes=1), expires_at=NOW + timedelta(hours=1))
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["grant_not_started"]


@pytest.mark.parametrize(("status", "code"), [("revoked", "grant_revoked"), ("expired", "grant_expired")])
def test_a_revoked_or_expired_grant(agent, status, code):
    grant(agent, status=status)
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert codes(decision) == [code] and not decision.out_of_scope


def test_a_lapsed_grant_covering_the_scope_is_reported_before_a_live_one_that_does_not(agent):
    grant(agent, pattern="invoices/*")
    grant(agent, pattern="accounts/*", status="revoked")
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["grant_revoked"]


# --- chains ------------------------------------------------------------------------------------------------


@pytest.fixture
def chain(agent, owner):
    """A root grant to ``planner`` and a child handing crm:read on accounts/* to ``agent``."""
    planner = AgentFactory(owner=owner, slug="planner")
    ToolFactory(agent=planner, name="crm", access_levels=["read"])
    root = GrantFactory(agent=planner, scopes=[("crm", "read", "accounts/*")], expires_at=NOW + timedelta(hours=3))
    child = GrantFactory(agent=agent, parent=root, scopes=[("crm", "read", "accounts/*")])
    return root, child


def test_a_child_grant_allows_until_its_parent_ends(chain):
    root, child = chain
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert decision.allowed and decision.grant_chain == (child.pk, root.pk)
    assert decision.authority_ends_at == root.expires_at < child.expires_at


def test_a_revoked_parent_denies_its_child_at_once(chain):
    root, child = chain
    DelegationGrant.objects.filter(pk=root.pk).update(status="revoked")
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["parent_grant_revoked"]


def test_an_expired_parent_denies_its_child(chain):
    root, _ = chain
    assert codes(decide(ask(resource="accounts/1"), now=root.expires_at)) == ["parent_grant_expired"]


def test_a_parent_whose_agent_is_suspended_denies_its_child(chain):
    root, _ = chain
    Agent.objects.filter(pk=root.agent_id).update(state="suspended")
    assert codes(decide(ask(resource="accounts/1"), now=NOW)) == ["parent_grant_inactive"]


def test_the_claimed_chain_must_match(chain):
    root, child = chain
    assert decide(ask(resource="accounts/1", grant_chain=(child.pk, root.pk)), now=NOW).allowed
    assert codes(decide(ask(resource="accounts/1", grant_chain=(child.pk,)), now=NOW)) == ["grant_chain_mismatch"]


# --- one rule ------------------------------------------------------------------------------------------------


def test_decide_agrees_with_active_at_on_every_state(owner):
    """Each combination of the grant's status and window, its parent's, and both agents' states:
    ``decide`` allows exactly when ``DelegationGrant.objects.active_at`` holds (invariant 1)."""
    statuses = ["active", "expired", "revoked"]
    windows = {
        "in": (NOW - timedelta(hours=1), NOW + timedelta(hours=1)),
        "ends_now": (NOW - timedelta(hours=1), NOW),
        "later": (NOW + timedelta(seconds=1), NOW + timedelta(hours=2)),
    }
    n = 0
    for status, window, parent_status, parent_window, parent_agent_state in itertools.product(
        statuses, windows, [None, *statuses], ["in", "ends_now"], ["active", "suspended"]
    ):
        if parent_status is None and (parent_window != "in" or parent_agent_state != "active"):
            continue
        n += 1
        identity = f"spiffe://example.org/matrix/{n}"
        agent = AgentFactory(owner=owner)
        ToolFactory(agent=agent, name="crm")
        WorkloadIdentityFactory(agent=agent, identifier=identity)
        parent = None
        if parent_status:
            parent_agent = AgentFactory(owner=owner, state=parent_agent_state)
            starts, ends = windows[parent_window]
            parent = GrantFactory(agent=parent_agent, status=parent_status, starts_at=starts, expires_at=ends)
        starts, ends = windows[window]
        g = GrantFactory(agent=agent, parent=parent, status=status, starts_at=starts, expires_at=ends)
        g.scopes.create(tool_name="crm", access="read", resource_pattern="")
        expected = DelegationGrant.objects.active_at(NOW).filter(pk=g.pk).exists()
        request = DecisionRequest(tool="crm", access="read", subject=Subject("spiffe", identity))
        assert decide(request, now=NOW).allowed is expected, (status, window, parent_status, parent_window)
        assert grant_authority(g.pk, now=NOW).ok is expected
    assert n > 30


def test_a_decision_is_one_query_however_many_grants_the_agent_has(agent):
    for _ in range(80):
        grant(agent, status=DelegationGrant.Status.EXPIRED)
    live = grant(agent)
    with CaptureQueriesContext(connection) as queries:
        decision = decide(ask(resource="accounts/1"), now=NOW)
    assert decision.allowed and decision.grant_id == live.pk
    assert len(queries) == 1
    with CaptureQueriesContext(connection) as queries:
        assert not decide(ask(resource="invoices/1"), now=NOW).allowed
    assert len(queries) == 1


def test_every_reason_code_has_a_message():
    assert all(REASONS.values())


# --- grant_authority -------------------------------------------------------------------------------------------


def test_grant_authority_reports_the_chain_end_and_the_agent_checks(chain):
    root, child = chain
    authority = grant_authority(child.pk, now=NOW)
    assert authority.ok and authority.chain == (child.pk, root.pk) and authority.ends_at == root.expires_at
    Agent.objects.filter(pk=child.agent_id).update(risk_tier="critical", next_attestation_due=date(2026, 10, 1))
    assert [r.code for r in grant_authority(child.pk, now=NOW).reasons] == ["attestation_overdue"]
    Agent.objects.filter(pk=child.agent_id).update(state="suspended")
    assert [r.code for r in grant_authority(child.pk, now=NOW).reasons] == ["agent_not_active"]
    assert grant_authority(999999, now=NOW).ok is False


# --- the decision log ---------------------------------------------------------------------------------------------


def test_every_denial_is_logged_with_its_reasons(agent, owner):
    request = ask(resource="invoices/1", intent="export")
    decision = decide(request, now=NOW)
    assert decision_log_write(request, decision, requested_by=owner, requested_via="gateway") is True
    row = DecisionLog.objects.get()
    assert (row.outcome, row.reasons, row.out_of_scope, row.agent_id) == ("deny", ["no_grant"], True, agent.pk)
    assert (row.tool_name, row.resource, row.intent, row.requested_via) == ("crm", "invoices/1", "export", "gateway")
    assert row.decided_at == NOW


@pytest.mark.parametrize(("percent", "logged"), [(0, 0), (100, 1)])
def test_allows_are_logged_as_the_policy_samples(agent, percent, logged):
    grant(agent)
    Policy.current()
    Policy.objects.filter(pk=1).update(decision_allow_sample_percent=percent)
    request = ask(resource="accounts/1")
    decision = decide(request, now=NOW)
    decision_log_write(request, decision)
    assert DecisionLog.objects.filter(outcome="allow", grant__isnull=False).count() == logged


def test_sampling_follows_the_percentage(agent):
    grant(agent)
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert decision.allow_sample_percent == 10
    assert should_log(decision, sample=lambda: 0.099)
    assert not should_log(decision, sample=lambda: 0.10)


def test_an_unknown_user_model_field_is_not_needed_for_owners(agent):
    """An owner of another team cannot learn an agent exists from the log: nothing is logged under it."""
    stranger = OwnerFactory(username="stranger")
    request = ask(resource="accounts/1")
    decision = decide(request, now=NOW, viewer=stranger)
    decision_log_write(request, decision, requested_by=stranger)
    assert DecisionLog.objects.get().agent_id is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("durable", [False, True])
def test_a_log_insert_of_its_own_skips_the_flush_wait_unless_durable(agent, owner, settings, durable):
    """Autocommit (the endpoint): the row is committed with synchronous_commit off for that insert alone,
    unless WARRANT_DECISION_LOG_DURABLE; the connection's own setting is left as it was."""
    settings.WARRANT_DECISION_LOG_DURABLE = durable
    request = ask(resource="invoices/1")
    decision = decide(request, now=NOW)
    with CaptureQueriesContext(connection) as queries:
        assert decision_log_write(request, decision, requested_by=owner) is True
    (insert,) = [q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"]]
    assert ("set_config('synchronous_commit', 'off', true)" in insert) is not durable
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert DecisionLog.objects.get().reasons == ["no_grant"]


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="synchronous_commit is PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_a_log_insert_inside_a_transaction_commits_with_it_durably(agent):
    """Inside a transaction the insert never changes how that transaction commits."""
    from django.db import transaction

    request = ask(resource="invoices/1")
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        decision_log_write(request, decide(request, now=NOW))
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == "on"
    assert not any("synchronous_commit" in q["sql"] for q in queries.captured_queries if "INSERT" in q["sql"])
    assert DecisionLog.objects.count() == 1


# --- jobs ------------------------------------------------------------------------------------------


def _deny_out_of_scope(agent_request, times, start):
    for i in range(times):
        at = start + timedelta(minutes=i)
        decision_log_write(agent_request, decide(agent_request, now=at))


def test_repeated_out_of_scope_denials_raise_one_deduplicated_finding(agent):
    from delegations.decisions import decisions_flag_out_of_scope
    from governance.models import Finding

    request = ask(tool="shell", access="execute")
    _deny_out_of_scope(request, 4, NOW)
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=5)) == {"opened": 0, "refreshed": 0}
    _deny_out_of_scope(request, 1, NOW + timedelta(minutes=5))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=6)) == {"opened": 1, "refreshed": 0}
    finding = Finding.objects.get(kind="out_of_scope_actions")
    assert finding.subject_id == agent.pk and finding.evidence["attempts"] == 5
    assert finding.evidence["tools"] == ["shell"]
    _deny_out_of_scope(request, 5, NOW + timedelta(minutes=7))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=12)) == {"opened": 0, "refreshed": 1}
    assert Finding.objects.filter(kind="out_of_scope_actions").count() == 1


def test_lapsed_authority_is_not_out_of_scope(agent):
    from delegations.decisions import decisions_flag_out_of_scope

    grant(agent, status="expired")
    _deny_out_of_scope(ask(resource="accounts/1"), 10, NOW)
    assert DecisionLog.objects.filter(out_of_scope=False).count() == 10
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=10)) == {"opened": 0, "refreshed": 0}


def test_denials_outside_the_window_do_not_count(agent):
    from delegations.decisions import decisions_flag_out_of_scope

    _deny_out_of_scope(ask(tool="shell"), 5, NOW)  # NOW, NOW+1 min, … NOW+4 min
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=61))["opened"] == 0  # 3 in (NOW+1, NOW+61]
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=59))["opened"] == 1  # 5 in (NOW-1, NOW+59]


def test_the_decision_log_is_pruned_after_its_retention(agent):
    from delegations.decisions import decision_log_prune
    from governance.models import AuditEvent

    _deny_out_of_scope(ask(tool="shell"), 3, NOW)
    assert decision_log_prune(now=NOW + timedelta(days=90)) == {"deleted": 0}
    assert decision_log_prune(now=NOW + timedelta(days=90, minutes=1, seconds=1), batch_size=2) == {"deleted": 2}
    assert DecisionLog.objects.count() == 1
    assert AuditEvent.objects.filter(verb="decision_log.prune").count() == 1


def test_a_live_grant_is_found_behind_any_number_of_lapsed_or_other_grants(agent):
    """Grants ending later than the live one — revoked, scheduled, or for other resources — never hide it."""
    from delegations.decisions import LAPSED_LIMIT

    live = grant(agent, expires_at=NOW + timedelta(hours=1))
    later = NOW + timedelta(days=5)
    for _ in range(LAPSED_LIMIT * 5):
        grant(agent, status="revoked", expires_at=later)
        grant(agent, pattern="invoices/*", expires_at=later)
        grant(agent, starts_at=NOW + timedelta(hours=2), expires_at=later)
    decision = decide(ask(resource="accounts/1"), now=NOW)
    assert decision.allowed and decision.grant_id == live.pk


@pytest.mark.parametrize(
    ("pattern", "resource", "covers"),
    [("", "anything", True), ("*", "x", True), ("accounts/*", "accounts/", True), ("accounts/*", "account", False),
     ("accounts/7", "accounts/7", True), ("accounts/7", "accounts/70", False), ("a%_/*", "a%_/x", True),
     ("a%_/*", "ab_/x", False)],
)  # fmt: skip
def test_the_sql_ordering_agrees_with_resource_matches(agent, pattern, resource, covers):
    """The candidates query puts covering scopes first with the same rule as ``resource_matches``."""
    from delegations.models import resource_matches

    assert resource_matches(pattern, resource) is covers
    for _ in range(70):
        grant(agent, status="revoked", pattern=pattern, expires_at=NOW + timedelta(days=9))
    live = grant(agent, pattern=pattern, expires_at=NOW + timedelta(hours=1))
    decision = decide(ask(resource=resource), now=NOW)
    assert decision.allowed is covers
    assert (decision.grant_id == live.pk) is covers


def test_a_resolved_out_of_scope_finding_reopens_only_for_new_attempts(agent, admin_user, frozen_now):
    from delegations.decisions import decisions_flag_out_of_scope
    from governance.audit import Actor
    from governance.models import Finding
    from governance.services import finding_resolve

    request = ask(tool="shell", access="execute")
    _deny_out_of_scope(request, 5, NOW)
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=5))["opened"] == 1
    frozen_now.move_to(NOW + timedelta(minutes=6))
    finding_resolve(actor=Actor.person(admin_user), finding=Finding.objects.get(), note="Prompt fixed.")
    # The same five denials are still in the window: they were looked at, they do not reopen it.
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=7)) == {"opened": 0, "refreshed": 0}
    _deny_out_of_scope(request, 4, NOW + timedelta(minutes=8))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=12))["opened"] == 0
    _deny_out_of_scope(request, 1, NOW + timedelta(minutes=13))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=14))["opened"] == 1
    assert Finding.objects.filter(kind="out_of_scope_actions", status="open").get().evidence["attempts"] == 5


def test_the_finding_follows_new_attempts_and_a_rerun_changes_nothing(agent):
    from delegations.decisions import decisions_flag_out_of_scope
    from governance.models import Finding

    request = ask(tool="shell", access="execute")
    _deny_out_of_scope(request, 5, NOW)
    decisions_flag_out_of_scope(now=NOW + timedelta(minutes=5))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=5)) == {"opened": 0, "refreshed": 0}
    seen = Finding.objects.get().last_seen_at
    _deny_out_of_scope(request, 3, NOW + timedelta(minutes=10))
    assert decisions_flag_out_of_scope(now=NOW + timedelta(minutes=20)) == {"opened": 0, "refreshed": 1}
    finding = Finding.objects.get()
    assert finding.evidence["attempts"] == 8 and "8 out-of-scope" in finding.detail
    assert finding.evidence["last"] == (NOW + timedelta(minutes=12)).isoformat()
    assert seen == NOW + timedelta(minutes=5) and finding.last_seen_at == NOW + timedelta(minutes=12)


def test_grant_authority_refuses_a_scope_the_decision_would_deny(agent):
    """A task token must never carry a scope a decision denies: the tool's data classes and presence count."""
    g = GrantFactory(agent=agent, scopes=[("crm", "read", ""), ("payments", "read", "")])
    authority = grant_authority(g.pk, now=NOW)
    assert not authority.ok and [r.code for r in authority.reasons] == ["data_class_not_cleared"]
    assert "payments reaches payment" in authority.reasons[0].message
    Agent.objects.filter(pk=agent.pk).update(data_classes=["pii", "payment"])
    assert grant_authority(g.pk, now=NOW).ok
    agent.tools.filter(name="payments").delete()
    assert [r.code for r in grant_authority(g.pk, now=NOW).reasons] == ["tool_unknown"]


@pytest.mark.parametrize(
    "resource",
    [
        "accounts/../invoices/1",
        "accounts/./1",
        "accounts/..",
        "accounts\\..\\invoices",
        "accounts/%2e%2e/invoices",
        "accounts/%2E%2e/x",
        "accounts%2finvoices",
        "accounts/1\nrepo:other/x",
        "accounts/1\u202e",
    ],
)
def test_path_tricks_never_escape_a_prefix_pattern(agent, resource):
    from delegations.models import resource_problem

    grant(agent, pattern="accounts/*")
    assert resource_problem(resource)
    assert codes(decide(ask(resource=resource), now=NOW)) == ["resource_outside_pattern"]


def test_ordinary_resource_names_with_dots_are_fine(agent):
    from delegations.models import resource_problem

    grant(agent, pattern="accounts/*")
    for resource in ("accounts/report.v2.pdf", "accounts/...", "accounts/.hidden", "accounts/a..b"):
        assert resource_problem(resource) is None
        assert decide(ask(resource=resource), now=NOW).allowed


def test_each_grant_level_reason_names_its_grant_and_says_what_it_covers(agent):
    g = grant(agent, pattern="accounts/*", intents=["triage"])
    decision = decide(ask(resource="invoices/1"), now=NOW)
    by_code = {r.code: r for r in decision.reasons}
    assert set(by_code) == {"resource_outside_pattern", "intent_not_allowed"}
    assert all(r.grant == g.pk for r in decision.reasons)
    assert "It covers 'accounts/*'; asked 'invoices/1'." in by_code["resource_outside_pattern"].message
    assert "It serves triage; asked no intent." in by_code["intent_not_allowed"].message
    assert by_code["intent_not_allowed"].as_dict()["grant"] == g.pk
    assert decide(ask(tool="shell"), now=NOW).reasons[0].as_dict().keys() == {"code", "message"}


def test_a_delegated_grant_costs_one_more_query_whatever_its_history(chain, agent):
    root, child = chain
    with CaptureQueriesContext(connection) as queries:
        assert decide(ask(resource="accounts/1"), now=NOW).allowed
    assert len(queries) == 2
    for _ in range(40):
        GrantFactory(agent=agent, parent=root, status="expired", scopes=[("crm", "read", "accounts/*")])
    with CaptureQueriesContext(connection) as queries:
        assert decide(ask(resource="accounts/1"), now=NOW).grant_id == child.pk
    assert len(queries) == 2


def test_the_log_shows_an_identity_as_presented_without_repeating_its_type():
    assert str(Subject("spiffe", SPIFFE)) == SPIFFE
    assert str(Subject("oidc", "svc-1", "https://idp.example.com")) == "oidc:https://idp.example.com svc-1"
    assert str(Subject("aws_iam_role", "arn:aws:iam::1:role/x")) == "aws_iam_role:arn:aws:iam::1:role/x"


def test_a_lapsed_grant_says_what_it_gave(agent):
    g = grant(agent, status="revoked", pattern="accounts/*")
    reason_ = decide(ask(resource="accounts/1"), now=NOW).reasons[0]
    assert (reason_.code, reason_.grant) == ("grant_revoked", g.pk)
    assert reason_.message == f"The grant was revoked. Grant #{g.pk}. It gives crm:read on 'accounts/*'."
