"""Runtime decision pages: test a decision, the decision log, an agent's recent decisions.

Each page has its permission matrix; an owner tests and reads only the agents they own or back up
(a forged request for another agent gets a form error, never that agent's answer); the test form
answers as ``decide`` does at the pinned instant and writes nothing; bad input is a form error and
nothing is decided; the log's filters work and bad ones are a 400; htmx gets the part it swaps;
times are in the viewer's timezone; the log runs a constant number of queries.
"""

import html
from datetime import timedelta

import pytest
from django.urls import reverse

from delegations import views_decisions
from delegations.decisions import REASONS
from delegations.models import DecisionLog
from governance.models import AuditEvent, Finding, Policy
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory, ToolFactory, UserFactory
from tests.support import client_as

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
TEST_URL = "/decisions/test/"
LOG_URL = "/decisions/"


@pytest.fixture
def live(low_agent, frozen_now):
    """An active grant of ``low_agent``: github read on ``repo:acme/*``, T0 to T0 + 1 day."""
    return GrantFactory(agent=low_agent, scopes=[("github", "read", "repo:acme/*")])


@pytest.fixture
def others_agent(other_owner):
    """An active agent of ``other_owner`` with a live grant: jira read on any resource."""
    agent = AgentFactory(owner=other_owner, name="Billing bot", slug="billing-bot", risk_tier="low")
    ToolFactory(agent=agent, name="jira", access_levels=["read"])
    GrantFactory(agent=agent, scopes=[("jira", "read", "")])
    return agent


def ask(**fields) -> dict:
    """The test form's query: ``ticket-triage`` reading github on ``repo:acme/docs`` unless overridden."""
    query = {"agent": "ticket-triage", "tool": "github", "access": "read", "resource": "repo:acme/docs"}
    query.update(fields)
    return {k: v for k, v in query.items() if v is not None}


def log(agent, *, at=T0, outcome="deny", reasons=("no_grant",), tool="github", **fields) -> DecisionLog:
    """A decision-log entry as the API writes it."""
    return DecisionLog.objects.create(
        decided_at=at,
        agent=agent,
        presented=f"agent #{agent.pk}" if agent else "spiffe:spiffe://example.org/nobody",
        tool_name=tool,
        access=fields.pop("access", "read"),
        outcome=outcome,
        reasons=list(reasons),
        out_of_scope=outcome == "deny" and any(r in ("no_grant", "resource_outside_pattern") for r in reasons),
        **fields,
    )


def result_of(response) -> str:
    body = response.content.decode()
    assert 'data-testid="decision-result"' in body, body
    return body.split('data-testid="decision-result"')[1].split("</section>")[0]


# --- permission matrix ------------------------------------------------------------------------------

PAGES = {
    "test": (lambda a: TEST_URL, {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 200, "no_role": 403}),
    "log": (lambda a: LOG_URL, {"owner": 200, "other_owner": 200, "admin": 200, "auditor": 200, "no_role": 200}),
    "agent": (
        lambda a: reverse("agent-decisions", args=[a.slug]),
        {"owner": 200, "other_owner": 404, "admin": 200, "auditor": 200, "no_role": 404},
    ),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ["anonymous", "owner", "other_owner", "admin", "auditor", "no_role"])
def test_permission_matrix(people, low_agent, page, role):
    url_of, expected = PAGES[page]
    url = url_of(low_agent)
    user = UserFactory(username="nora.nobody") if role == "no_role" else people[role]
    response = client_as(user).get(url)
    if role == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith(f"/login/?next={url}")
    else:
        assert response.status_code == expected[role]


# --- test a decision: who may ask about which agent --------------------------------------------------


def test_owner_is_offered_only_the_agents_they_own_or_back_up(owner, other_owner, low_agent, others_agent):
    backed_up = AgentFactory(owner=other_owner, backup_owner=owner, name="Backup bot", slug="backup-bot")
    form = client_as(owner).get(TEST_URL).context["form"]
    assert [a.slug for a in form.fields["agent"].queryset] == ["backup-bot", "ticket-triage"]
    assert backed_up.slug in client_as(owner).get(TEST_URL).content.decode()
    assert "billing-bot" not in client_as(owner).get(TEST_URL).content.decode()


def test_admin_and_auditor_are_offered_every_agent_active_ones_first(admin_user, auditor, low_agent, others_agent):
    AgentFactory(name="Aardvark", slug="aardvark", state="suspended")
    for user in (admin_user, auditor):
        form = client_as(user).get(TEST_URL).context["form"]
        assert [a.slug for a in form.fields["agent"].queryset] == ["billing-bot", "ticket-triage", "aardvark"]
        assert "Aardvark (aardvark) — suspended" in client_as(user).get(TEST_URL).content.decode()


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_forged_request_for_another_owners_agent_is_a_form_error_never_its_answer(
    owner, others_agent, method, frozen_now
):
    client = client_as(owner)
    query = ask(agent="billing-bot", tool="jira", resource="")
    response = getattr(client, method)(TEST_URL, query)
    assert response.status_code == 400
    assert response.context["decision"] is None
    assert response.context["form"].errors["agent"] == ["No agent with this name that you may test."]
    body = response.content.decode()
    assert 'data-testid="decision-result"' not in body and "Allow" not in body
    # and the tools of an agent the owner may not see are not offered either
    assert response.context["tools"] == []


def test_an_agent_the_viewer_may_not_see_reads_identity_unknown_even_past_the_form(
    owner, others_agent, monkeypatch, frozen_now
):
    """The second line: ``decide`` is asked with the viewer, so the form's list is not the only guard."""
    monkeypatch.setattr(views_decisions, "_testable_agents", lambda user: Agent.objects.all())
    response = client_as(owner).get(TEST_URL, ask(agent="billing-bot", tool="jira", resource=""))
    assert response.status_code == 200
    decision = response.context["decision"]
    assert not decision.allowed and [r.code for r in decision.reasons] == ["identity_unknown"]
    assert decision.grant_id is None and decision.agent_slug == ""
    assert 'data-testid="reason-identity_unknown"' in result_of(response)


# --- test a decision: the answers ---------------------------------------------------------------------


def test_a_live_grant_allows_with_the_grant_its_chain_and_its_end_in_the_viewers_timezone(owner, live, frozen_now):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    response = client.get(TEST_URL, ask())
    assert response.status_code == 200
    decision = response.context["decision"]
    assert decision.allowed and decision.grant_id == live.pk and decision.grant_chain == (live.pk,)
    result = result_of(response)
    assert 'data-testid="decision-outcome">Allow<' in result
    assert f'href="/grants/{live.pk}/" data-testid="decision-grant"' in result
    assert f'<a href="/grants/{live.pk}/">#{live.pk}</a>' in result  # the chain
    ends = result.split('data-testid="decision-authority-ends">')[1]
    assert ends.startswith(
        '<time datetime="2026-11-16T06:00:00+00:00" title="Europe/Berlin">2026-11-16 07:00 CET</time>'
    )


def test_a_chain_shows_each_grant_and_links_only_those_the_viewer_may_see(owner, other_owner, low_agent, frozen_now):
    parent_agent = AgentFactory(owner=other_owner, slug="lead-agent")
    ToolFactory(agent=parent_agent, name="github", access_levels=["read"])
    parent = GrantFactory(agent=parent_agent, scopes=[("github", "read", "")])
    child = GrantFactory(agent=low_agent, parent=parent, scopes=[("github", "read", "")])
    response = client_as(owner).get(TEST_URL, ask(grant_chain=f"{child.pk}, {parent.pk}"))
    assert response.context["decision"].grant_chain == (child.pk, parent.pk)
    chain = result_of(response).split('data-testid="decision-chain">')[1].split("</dd>")[0]
    assert f'<a href="/grants/{child.pk}/">#{child.pk}</a> ← ' in chain
    assert f'<span title="A grant you may not see">#{parent.pk}</span>' in chain


def test_an_expired_grant_denies_with_grant_expired(owner, low_agent, frozen_now):
    GrantFactory(
        agent=low_agent,
        starts_at=T0 - timedelta(days=2),
        expires_at=T0 - timedelta(days=1),
        scopes=[("github", "read", "repo:acme/*")],
    )
    response = client_as(owner).get(TEST_URL, ask())
    assert response.status_code == 200
    assert [r.code for r in response.context["decision"].reasons] == ["grant_expired"]
    result = result_of(response)
    assert 'data-testid="decision-outcome">Deny<' in result
    assert f'<code data-testid="reason-grant_expired">grant_expired</code> — {REASONS["grant_expired"]}' in result
    assert 'data-testid="decision-grant"' not in result


def test_the_grant_ends_at_the_exact_second(owner, live, frozen_now):
    client = client_as(owner)
    frozen_now.move_to(live.expires_at - timedelta(seconds=1))
    assert client.get(TEST_URL, ask()).context["decision"].allowed
    frozen_now.move_to(live.expires_at)
    assert [r.code for r in client.get(TEST_URL, ask()).context["decision"].reasons] == ["grant_expired"]


def test_another_resource_denies_with_resource_outside_pattern(admin_user, live, frozen_now):
    response = client_as(admin_user).get(TEST_URL, ask(resource="repo:other/x"))
    assert [r.code for r in response.context["decision"].reasons] == ["resource_outside_pattern"]
    assert 'data-testid="reason-resource_outside_pattern"' in result_of(response)


def test_a_test_decision_writes_nothing_and_says_so(owner, auditor, live, frozen_now):
    audit_before = AuditEvent.objects.count()
    for user in (owner, auditor):
        client = client_as(user)
        for _ in range(Policy.current().decision_out_of_scope_threshold + 1):
            client.get(TEST_URL, ask(resource="repo:other/x"))  # out of scope: the API would log each
            client.post(TEST_URL, ask(tool="not-a-tool"))
        client.get(TEST_URL, ask())
    assert not DecisionLog.objects.exists()
    assert not Finding.objects.exists()
    assert AuditEvent.objects.count() == audit_before
    body = client_as(owner).get(TEST_URL).content.decode()
    assert "is <strong>not</strong> written to the decision log and raises no finding" in body


def test_post_answers_like_get_and_offers_a_link_that_asks_again(owner, live, frozen_now):
    client = client_as(owner)
    posted = client.post(TEST_URL, ask(grant_chain=f" {live.pk} "))
    assert posted.status_code == 200 and posted.context["decision"].allowed
    link = html.unescape(result_of(posted).split('" data-testid="decision-link"')[0].rsplit('href="', 1)[1])
    assert (
        link
        == f"{TEST_URL}?agent=ticket-triage&tool=github&access=read&resource=repo%3Aacme%2Fdocs&grant_chain={live.pk}"
    )
    again = client.get(link)
    assert again.status_code == 200 and again.context["decision"].grant_id == live.pk


# --- test a decision: bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"access": "admin"}, "access"),
        ({"access": None}, "access"),
        ({"tool": None}, "tool"),
        ({"tool": "t" * 101}, "tool"),
        ({"resource": "r" * 501}, "resource"),
        ({"intent": "i" * 201}, "intent"),
        ({"on_behalf_of": "u" * 151}, "on_behalf_of"),
        ({"grant_chain": "1, x"}, "grant_chain"),
        ({"grant_chain": "1,,2"}, "grant_chain"),
        ({"grant_chain": "0"}, "grant_chain"),
        ({"grant_chain": "-3"}, "grant_chain"),
        ({"grant_chain": "1.5"}, "grant_chain"),
        ({"grant_chain": "1, 2, 1"}, "grant_chain"),
        ({"grant_chain": "1, 2, 3, 4, 5, 6"}, "grant_chain"),
        ({"agent": "no-such-agent"}, "agent"),
        ({"agent": None}, "agent"),
        ({"colour": "blue"}, "__all__"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_decided(owner, live, fields, field, monkeypatch, frozen_now):
    def refuse(*args, **kwargs):
        raise AssertionError("decide() was called for a bad request")

    monkeypatch.setattr(views_decisions, "decide", refuse)
    response = client_as(owner).get(TEST_URL, ask(**fields))
    assert response.status_code == 400
    assert list(response.context["form"].errors) == [field]
    assert response.context["decision"] is None
    assert 'data-testid="decision-result"' not in response.content.decode()
    assert not DecisionLog.objects.exists()


def test_an_unknown_parameter_is_named(owner, live):
    response = client_as(owner).get(TEST_URL, ask(colour="blue"))
    assert "Unknown field &#x27;colour&#x27;" in response.content.decode()


# --- test a decision: prefill and htmx ---------------------------------------------------------------------


def test_agent_alone_prefills_the_form_and_offers_its_tools(owner, low_agent):
    response = client_as(owner).get(TEST_URL, {"agent": "ticket-triage"})
    assert response.status_code == 200 and response.context["decision"] is None
    assert not response.context["form"].is_bound
    body = response.content.decode()
    assert '<option value="ticket-triage" selected>' in body
    assert (
        '<datalist id="tool-options"><option value="github"></option><option value="jira"></option></datalist>' in body
    )
    assert 'list="tool-options"' in body


def test_htmx_gets_the_form_with_its_result_and_a_full_page_without(owner, live, frozen_now):
    client = client_as(owner)
    partial = client.get(TEST_URL, ask(), headers=HTMX)
    body = partial.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="decision-test">') and "<html" not in body
    assert 'data-testid="decision-outcome">Allow<' in body
    assert "HX-Request" in partial["Vary"]
    invalid = client.get(TEST_URL, ask(access="admin"), headers=HTMX)
    assert invalid.status_code == 400 and invalid.content.decode().lstrip().startswith('<section class="panel"')
    page = client.get(TEST_URL, ask())
    assert b"<html" in page.content and b'data-testid="decision-outcome">Allow<' in page.content


def test_htmx_choosing_an_agent_swaps_only_its_tool_list(owner, low_agent, others_agent):
    client = client_as(owner)
    headers = {**HTMX, "HX-Target": "tool-options"}
    mine = client.get(TEST_URL, {"agent": "ticket-triage"}, headers=headers).content.decode()
    assert (
        mine == '<datalist id="tool-options"><option value="github"></option><option value="jira"></option></datalist>'
    )
    theirs = client.get(TEST_URL, {"agent": "billing-bot"}, headers=headers).content.decode()
    assert theirs == '<datalist id="tool-options"></datalist>'


# --- the decision log --------------------------------------------------------------------------------------


@pytest.fixture
def entries(low_agent, others_agent, live):
    """Four entries, oldest first: one of another owner's agent, an allow and a denial of ``low_agent``, and one
    naming no known agent."""
    return [
        log(others_agent, at=T0 - timedelta(minutes=4), tool="jira"),
        log(
            low_agent,
            at=T0 - timedelta(minutes=3),
            outcome="allow",
            reasons=(),
            grant=live,
            authority_ends_at=live.expires_at,
            resource="repo:acme/docs",
        ),
        log(low_agent, at=T0 - timedelta(minutes=2), reasons=("grant_expired",), resource="repo:acme/x"),
        log(None, at=T0 - timedelta(minutes=1), reasons=("identity_unknown",)),
    ]


def listed(response) -> list[int]:
    assert response.status_code == 200, response.context and response.context.get("errors")
    return [e.pk for e in response.context["page"].object_list]


def test_admin_and_auditor_read_every_entry_newest_first(admin_user, auditor, entries):
    for user in (admin_user, auditor):
        assert listed(client_as(user).get(LOG_URL)) == [e.pk for e in reversed(entries)]


def test_owners_read_only_the_entries_of_their_agents_and_others_none(people, entries):
    a, b, c, _ = entries
    assert listed(client_as(people["owner"]).get(LOG_URL)) == [c.pk, b.pk]
    assert listed(client_as(people["other_owner"]).get(LOG_URL)) == [a.pk]
    assert listed(client_as(UserFactory(username="nora.nobody")).get(LOG_URL)) == []


def test_a_backup_owner_reads_the_entries_of_the_agents_they_back_up(other_owner, owner, low_agent, entries):
    low_agent.backup_owner = other_owner
    low_agent.save(update_fields=["backup_owner"])
    assert len(listed(client_as(other_owner).get(LOG_URL))) == 3


def test_a_row_shows_time_in_the_viewers_timezone_agent_grant_reasons_and_who_asked(admin_user, entries, live):
    allow, deny = entries[1], entries[2]
    allow.requested_by = admin_user
    allow.requested_via = "gateway-prod"
    allow.save()
    client = client_as(admin_user)
    client.cookies["tz"] = "America/New_York"
    body = client.get(LOG_URL).content.decode()
    row = body.split(f'data-testid="decision-row-{allow.pk}"')[1].split("</tr>")[0]
    assert '<time datetime="2026-11-15T05:57:00+00:00" title="America/New_York">2026-11-15 00:57:00 EST</time>' in row
    assert '<a href="/agents/ticket-triage/">Ticket triage</a>' in row and "github:read" in row
    assert f'<a href="/grants/{live.pk}/">#{live.pk}</a>' in row and "gateway-prod" in row and "iris.admin" in row
    denied = body.split(f'data-testid="decision-row-{deny.pk}"')[1].split("</tr>")[0]
    assert f'<span class="tag mono" title="{REASONS["grant_expired"]}">grant_expired</span>' in denied
    assert '<span class="badge status-open">Deny</span>' in denied
    unknown = body.split(f'data-testid="decision-row-{entries[3].pk}"')[1].split("</tr>")[0]
    assert "spiffe:spiffe://example.org/nobody" in unknown


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"agent": "ticket-triage"}, [4, 2, 1]),
        ({"agent": " billing-bot "}, [0]),
        ({"outcome": "allow"}, [1]),
        ({"outcome": "deny"}, [4, 3, 2, 0]),
        ({"reason": "grant_expired"}, [2]),
        ({"reason": "parent_grant_expired"}, [4]),
        ({"reason": "no_grant"}, [0]),
        ({"out_of_scope": "true"}, [0]),
        ({"out_of_scope": "false"}, [4, 3, 2, 1]),
        ({"tool": "jira"}, [0]),
        ({"agent": "ticket-triage", "outcome": "deny", "reason": "grant_expired"}, [2]),
        ({"agent": "", "outcome": ""}, [4, 3, 2, 1, 0]),
    ],
)
def test_filters(admin_user, entries, low_agent, query, expected):
    entries.append(log(low_agent, at=T0, reasons=("parent_grant_expired",)))
    assert listed(client_as(admin_user).get(LOG_URL, query)) == [entries[i].pk for i in expected]


@pytest.mark.parametrize(
    "query, message",
    [
        ({"outcome": "maybe"}, "outcome: Select a valid choice."),
        ({"reason": "grant_lost"}, "reason: Select a valid choice."),
        ({"out_of_scope": "yes"}, "out_of_scope: Select a valid choice."),
        ({"agent": "no-such-agent"}, "agent: Select a valid choice."),
        ({"colour": "blue"}, "Unknown filter 'colour'."),
        ({"page": "x"}, "page: give a page number from 1."),
    ],
)
def test_bad_filters_are_a_400_that_says_why(admin_user, entries, query, message):
    response = client_as(admin_user).get(LOG_URL, query)
    assert response.status_code == 400 and response.context["page"] is None
    assert any(e.startswith(message) for e in response.context["errors"]), response.context["errors"]
    assert "This filter was not applied." in response.content.decode()


def test_the_log_is_paginated(admin_user, low_agent):
    for i in range(30):
        log(low_agent, at=T0 + timedelta(seconds=i))
    client = client_as(admin_user)
    first = client.get(LOG_URL)
    assert len(first.context["page"].object_list) == 25 and "Page 1 of 2" in first.content.decode()
    second = client.get(LOG_URL, {"page": "2"})
    assert len(second.context["page"].object_list) == 5


def test_htmx_gets_the_results_and_the_url_is_pushed(admin_user, entries):
    response = client_as(admin_user).get(LOG_URL, {"outcome": "deny"}, headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results"') and "<html" not in body
    assert response["HX-Push-Url"] == "/decisions/?outcome=deny"
    bad = client_as(admin_user).get(LOG_URL, {"outcome": "maybe"}, headers=HTMX)
    assert bad.status_code == 400 and bad.content.decode().lstrip().startswith('<div id="results"')


def test_the_page_explains_what_is_kept_from_the_policy(admin_user, owner, entries):
    policy = Policy.current()
    policy.decision_allow_sample_percent = 25
    policy.decision_log_retention_days = 30
    policy.save()
    admin_body = client_as(admin_user).get(LOG_URL).content.decode()
    note = admin_body.split('data-testid="decision-log-policy">')[1].split("</p>")[0]
    assert "Every denial and a sample of allows (25 %, a" in note and "each for 30 days" in note
    assert '<a href="/settings/policy/">policy</a>' in note
    owner_note = client_as(owner).get(LOG_URL).content.decode().split('data-testid="decision-log-policy">')[1]
    owner_note = owner_note.split("</p>")[0]
    assert "(25 %, a policy setting)" in owner_note and "/settings/policy/" not in owner_note


@pytest.mark.parametrize("rows", [2, 30])
def test_log_query_count_is_constant(admin_user, owner, low_agent, live, django_assert_max_num_queries, rows):
    for i in range(rows):
        agent = AgentFactory(owner=owner)
        log(agent, at=T0 + timedelta(seconds=i), requested_by=admin_user, requested_via="gateway")
        log(low_agent, at=T0 + timedelta(seconds=i), outcome="allow", reasons=(), grant=live, requested_by=owner)
    for user in (admin_user, owner):
        client = client_as(user)
        client.get(LOG_URL)  # warm the session and groups
        with django_assert_max_num_queries(8):
            response = client.get(LOG_URL, {"page_size": "100"})
        assert response.context["page"].paginator.count == 2 * rows


# --- an agent's recent decisions ----------------------------------------------------------------------------


def test_agent_page_loads_its_recent_decisions_with_a_plain_link_fallback(owner, low_agent):
    body = client_as(owner).get(reverse("agent-detail", args=[low_agent.slug])).content.decode()
    section = body.split('id="decisions"')[1].split("</section>")[0]
    url = reverse("agent-decisions", args=[low_agent.slug])
    assert f'hx-get="{url}"' in section and 'hx-trigger="load"' in section and f'href="{url}"' in section


def test_agent_section_shows_its_last_ten_newest_first_with_links(owner, low_agent, others_agent, live):
    mine = [log(low_agent, at=T0 + timedelta(seconds=i), reasons=("grant_expired",)) for i in range(12)]
    log(others_agent, at=T0 + timedelta(minutes=5))
    client = client_as(owner)
    response = client.get(reverse("agent-decisions", args=[low_agent.slug]), headers=HTMX)
    assert [e.pk for e in response.context["entries"]] == [e.pk for e in reversed(mine)][:10]
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="panel" id="decisions"') and "<html" not in body
    assert 'href="/decisions/?agent=ticket-triage" data-testid="agent-all-decisions"' in body
    assert 'href="/decisions/test/?agent=ticket-triage" data-testid="agent-test-decision"' in body
    assert body.count('class="tag mono"') == 10 and "grant_expired" in body
    page = client.get(reverse("agent-decisions", args=[low_agent.slug]))
    assert b"<html" in page.content and b"Recent decisions of Ticket triage" in page.content


def test_a_burst_of_allows_never_pushes_the_denials_off_the_agent_section(owner, low_agent):
    denials = [log(low_agent, at=T0 + timedelta(seconds=i), reasons=("no_grant",)) for i in range(3)]
    allows = [log(low_agent, at=T0 + timedelta(minutes=1, seconds=i), outcome="allow", reasons=()) for i in range(12)]
    response = client_as(owner).get(reverse("agent-decisions", args=[low_agent.slug]), headers=HTMX)
    shown = [e.pk for e in response.context["entries"]]
    assert shown == [e.pk for e in reversed(allows)][:5] + [e.pk for e in reversed(denials)]


def test_agent_section_is_empty_for_an_agent_without_decisions_and_offers_no_test_to_others(people, low_agent):
    response = client_as(people["admin"]).get(reverse("agent-decisions", args=[low_agent.slug]), headers=HTMX)
    assert "No decisions logged for this agent." in response.content.decode()
    low_agent.backup_owner = UserFactory(username="bea.backup")  # a backup owner without the owner role
    low_agent.save(update_fields=["backup_owner"])
    body = client_as(low_agent.backup_owner).get(reverse("agent-decisions", args=[low_agent.slug])).content.decode()
    assert "agent-all-decisions" in body and "agent-test-decision" not in body


def test_agent_section_query_count_does_not_grow(owner, low_agent, django_assert_max_num_queries):
    for i in range(30):
        log(low_agent, at=T0 + timedelta(seconds=i))
    client = client_as(owner)
    client.get(reverse("agent-decisions", args=[low_agent.slug]))
    with django_assert_max_num_queries(6):  # the denials and the allows are read apart
        client.get(reverse("agent-decisions", args=[low_agent.slug]), headers=HTMX)
    for i in range(30):
        log(low_agent, at=T0 + timedelta(minutes=1, seconds=i), outcome="allow", reasons=())
    with django_assert_max_num_queries(6):
        client.get(reverse("agent-decisions", args=[low_agent.slug]), headers=HTMX)


# --- navigation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "auditor", "no_role"])
def test_navigation_links_the_decision_log_for_everybody(people, role):
    user = UserFactory(username="nora.nobody") if role == "no_role" else people[role]
    body = client_as(user).get(LOG_URL).content.decode()
    nav = body.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    assert '<a href="/decisions/" aria-current="page">Decisions</a>' in nav
