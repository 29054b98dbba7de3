"""Governance pages: dashboard, findings queue (inline actions over htmx), integration tokens,
sign-in, error pages and the viewer's timezone."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import reverse

from governance.models import AuditEvent, Finding, IntegrationToken, Policy
from governance.services import token_digest
from inventory.models import Agent, Credential
from tests.factories import T0, AgentFactory, CredentialFactory
from tests.support import audit_verbs, client_as

pytestmark = pytest.mark.django_db


def make_finding(agent, *, kind="unrotated_credential", severity="medium", status=Finding.Status.OPEN, **extra):
    credential = CredentialFactory(agent=agent)
    return Finding.objects.create(
        kind=kind,
        severity=severity,
        status=status,
        subject_type=ContentType.objects.get_for_model(Credential),
        subject_id=credential.pk,
        subject_label=str(credential),
        agent_id=agent.pk,
        title="Access key past rotation",
        framework_refs=["NHI7"],
        first_seen_at=T0,
        last_seen_at=T0,
        **extra,
    )


HTMX = {"HX-Request": "true"}


# --- sign-in ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dashboard", "finding-list", "token-list"])
def test_anonymous_is_sent_to_login(name):
    response = Client().get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse(name)}"


def test_login_and_logout(owner):
    client = Client()
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    response = client.post(reverse("login"), {"username": "olivia.owner", "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    dashboard = client.get(reverse("dashboard"))
    assert b"olivia.owner" in dashboard.content and b"Agent owner" in dashboard.content
    assert client.get(reverse("logout")).status_code == 405  # signing out is a POST
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_a_wrong_password_says_so(owner):
    response = Client().post(reverse("login"), {"username": "olivia.owner", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.parametrize(
    "role, links",
    [
        (
            "admin",
            [
                "Dashboard",
                "Agents",
                "Grants",
                "Decisions",
                "Approvals",
                "Attestations",
                "Findings",
                "Import",
                "Audit log",
                "Evidence",
                "Policy",
                "Tokens",
                "Admin",
                "API docs",
            ],
        ),
        ("owner", ["Dashboard", "Agents", "Grants", "Decisions", "Attestations", "Findings", "Tokens", "API docs"]),
        (
            "auditor",
            [
                "Dashboard",
                "Agents",
                "Grants",
                "Decisions",
                "Approvals",
                "Attestations",
                "Findings",
                "Audit log",
                "Evidence",
                "Policy",
                "Tokens",
                "API docs",
            ],
        ),
    ],
)
def test_navigation_by_role(people, role, links):
    people["admin"].is_staff = True
    people["admin"].save()
    body = client_as(people[role]).get(reverse("dashboard")).content.decode()
    nav = body.split('<nav aria-label="Main">')[1].split("</nav>")[0]
    shown = [a.split(">", 1)[1].split("<")[0] for a in nav.split("<a ")[1:]]
    assert shown == links


# --- dashboard -------------------------------------------------------------------------------


def test_dashboard_says_which_tier_counts_are_of_all_agents_and_which_of_live_ones(owner, agent, frozen_now):
    AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED, risk_tier=Agent.RiskTier.HIGH)
    body = client_as(owner).get(reverse("dashboard")).content.decode()
    assert "All agents by risk tier" in body and "Risk tiers of live agents" in body
    assert "are up to date with their attestation" in body and "are not overdue" not in body


def test_dashboard_counts_what_the_viewer_may_see(owner, auditor, agent, frozen_now):
    AgentFactory(owner=owner, state=Agent.State.SUSPENDED, risk_tier=Agent.RiskTier.HIGH)
    AgentFactory(state=Agent.State.ACTIVE)  # someone else's
    make_finding(agent, severity="high")
    CredentialFactory(agent=agent, external_id="OLD-KEY", last_rotated_at=datetime(2026, 7, 1, tzinfo=UTC))

    ctx = client_as(owner).get(reverse("dashboard")).context
    assert ctx["agents_total"] == 2
    assert dict((v, n) for v, _, n in ctx["by_state"]) == {
        "proposed": 0,
        "active": 1,
        "suspended": 1,
        "decommissioned": 0,
    }
    assert dict((v, n) for v, _, n in ctx["by_tier"])["high"] == 1
    assert dict((v, n) for v, _, n in ctx["by_severity"])["high"] == 1
    assert [c.external_id for c in ctx["due_rows"]] == ["OLD-KEY"] and ctx["due_count"] == 1

    assert client_as(auditor).get(reverse("dashboard")).context["agents_total"] == 3


@pytest.mark.parametrize("rows", [1, 25])
def test_dashboard_query_count_is_constant(admin_user, django_assert_max_num_queries, rows, frozen_now):
    Policy.current()
    for i in range(rows):
        a = AgentFactory()
        make_finding(a)
        CredentialFactory(agent=a, last_rotated_at=datetime(2026, 1, 1, tzinfo=UTC), rotation_period_days=30 + i)
    client = client_as(admin_user)
    # 10, and 3 for delegation grants: those expiring within 7 days, their scopes, the queue's count in the nav;
    # and 4 for the charts (governance.charts.dashboard_charts: one query each).
    with django_assert_max_num_queries(17):
        response = client.get(reverse("dashboard"))
    assert response.context["due_count"] == rows


# --- findings list ---------------------------------------------------------------------------


def test_findings_default_to_unresolved_and_filter(admin_user, agent):
    open_ = make_finding(agent, severity="high")
    resolved = make_finding(agent, status=Finding.Status.RESOLVED)
    client = client_as(admin_user)
    listed = lambda **p: [f.pk for f in client.get(reverse("finding-list"), p).context["page"].object_list]  # noqa: E731
    assert listed() == [open_.pk]
    assert listed(status="resolved") == [resolved.pk]
    assert listed(severity="medium") == []
    assert listed(framework="NHI7") == [open_.pk]
    assert listed(agent="ticket-triage", status="") == [open_.pk]


def test_findings_list_shows_kind_severity_subject_agent_refs_and_times(admin_user, agent):
    finding = make_finding(agent, severity="high")
    body = client_as(admin_user).get(reverse("finding-list")).content.decode()
    for text in ("Access key past rotation", "High", finding.subject_label, "Ticket triage", "NHI7", T0.isoformat()):
        assert text in body, text


def test_owners_see_only_findings_of_their_agents(owner, other_owner, agent):
    mine = make_finding(agent)
    make_finding(AgentFactory(owner=other_owner))
    listed = client_as(owner).get(reverse("finding-list")).context["page"].object_list
    assert [f.pk for f in listed] == [mine.pk]


@pytest.mark.parametrize(
    "params, message",
    [
        ({"colour": "blue"}, "Unknown filter"),
        ({"severity": "apocalyptic"}, "severity: Select a valid choice"),
        ({"framework": "NHI99"}, "framework: Select a valid choice"),
    ],
)
def test_findings_list_rejects_unknown_filters(admin_user, agent, params, message):
    make_finding(agent)
    response = client_as(admin_user).get(reverse("finding-list"), params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "Access key past rotation" not in response.content.decode()


def test_findings_list_htmx_gets_the_partial(admin_user, agent):
    make_finding(agent)
    response = client_as(admin_user).get(reverse("finding-list"), {"severity": "medium"}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith('<div id="results"')
    assert "<html" not in body and "Access key past rotation" in body
    assert response["HX-Push-Url"] == "/findings/?severity=medium"


@pytest.mark.parametrize("rows", [2, 30])
def test_findings_list_query_count_is_constant(owner, django_assert_max_num_queries, rows):
    for _ in range(rows):
        make_finding(AgentFactory(owner=owner))
    client = client_as(owner)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("finding-list"), {"page_size": "100"})
    assert len(response.context["page"].object_list) == rows


# --- acting on findings ----------------------------------------------------------------------

ACK = ("acknowledge", {})
RESOLVE = ("resolve", {"note": "Rotated the key."})
ACCEPT = ("accept-risk", {"until": "2026-12-01T09:00", "note": "Vendor fix due."})


@pytest.mark.parametrize(
    "action, data, role, status",
    [
        (*ACK, "owner", 200),
        (*ACK, "other_owner", 404),
        (*ACK, "admin", 200),
        (*ACK, "auditor", 403),
        (*RESOLVE, "owner", 200),
        (*RESOLVE, "other_owner", 404),
        (*RESOLVE, "admin", 200),
        (*RESOLVE, "auditor", 403),
        (*ACCEPT, "owner", 403),
        (*ACCEPT, "other_owner", 404),
        (*ACCEPT, "admin", 200),
        (*ACCEPT, "auditor", 403),
    ],
)
def test_finding_action_permission_matrix_over_htmx(people, agent, action, data, role, status, frozen_now):
    finding = make_finding(agent)
    response = client_as(people[role]).post(reverse("finding-act", args=[finding.pk, action]), data, headers=HTMX)
    assert response.status_code == status
    body = response.content.decode()
    expected_verb = {
        "acknowledge": "finding.acknowledge",
        "resolve": "finding.resolve",
        "accept-risk": "finding.accept_risk",
    }[action]
    if status == 200:
        assert body.lstrip().startswith(f'<tr id="finding-{finding.pk}"')  # the row only
        assert audit_verbs(finding) == [expected_verb]
        assert AuditEvent.objects.get(verb=expected_verb).actor_label == people[role].username
    else:
        assert audit_verbs(finding) == []
        finding.refresh_from_db()
        assert finding.status == Finding.Status.OPEN
    if status == 403:
        assert body.lstrip().startswith(f'<tr id="finding-{finding.pk}"')
        assert "Only IAM admins may accept a risk." in body or "You may work only the findings" in body


def test_accepting_risk_reads_the_time_in_the_viewers_timezone(admin_user, agent, frozen_now):
    finding = make_finding(agent)
    client = client_as(admin_user)
    client.cookies["tz"] = "Europe/Berlin"
    client.post(reverse("finding-act", args=[finding.pk, "accept-risk"]), ACCEPT[1], headers=HTMX)
    finding.refresh_from_db()
    assert finding.status == Finding.Status.RISK_ACCEPTED
    assert finding.risk_accepted_until == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "action, data, message, status",
    [
        ("resolve", {"note": " "}, "Say what was done to resolve it.", 400),
        ("accept-risk", {"until": "2025-01-01T00:00", "note": "x"}, "The acceptance must end in the future.", 400),
        ("accept-risk", {"until": "", "note": "x"}, "Give the date and time the acceptance ends", 400),
    ],
)
def test_a_refused_finding_action_shows_the_services_message_in_the_row(
    admin_user, agent, action, data, message, status, frozen_now
):
    finding = make_finding(agent)
    response = client_as(admin_user).post(reverse("finding-act", args=[finding.pk, action]), data, headers=HTMX)
    assert response.status_code == status
    assert message in response.content.decode()
    assert audit_verbs(finding) == []


def test_acknowledging_twice_is_a_409_with_the_reason(admin_user, agent):
    finding = make_finding(agent, status=Finding.Status.ACKNOWLEDGED)
    response = client_as(admin_user).post(reverse("finding-act", args=[finding.pk, "acknowledge"]), headers=HTMX)
    assert response.status_code == 409
    assert "Only an open finding can be acknowledged; this one is acknowledged." in response.content.decode()


def test_without_htmx_an_action_redirects_and_a_refusal_is_the_error_page(owner, agent):
    finding = make_finding(agent)
    client = client_as(owner)
    response = client.post(reverse("finding-act", args=[finding.pk, "acknowledge"]))
    assert response.status_code == 302 and response["Location"] == reverse("finding-list")
    refused = client.post(reverse("finding-act", args=[finding.pk, "acknowledge"]))
    assert refused.status_code == 409
    assert b"<html" in refused.content and b"Refused in the current state" in refused.content


def test_anonymous_cannot_act_on_findings(agent):
    finding = make_finding(agent)
    response = Client().post(reverse("finding-act", args=[finding.pk, "resolve"]), RESOLVE[1])
    assert response.status_code == 302
    assert audit_verbs(finding) == []


# --- integration tokens ----------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "auditor"])
def test_a_person_issues_a_token_for_themselves_and_sees_it_once(people, role, frozen_now):
    client = client_as(people[role])
    response = client.post(
        reverse("token-list"), {"name": "SIEM export", "scopes": ["audit:read"], "expires_on": "2027-01-01"}
    )
    # POST/redirect/GET: the clear token is never in a URL.
    assert response.status_code == 302 and response["Location"] == reverse("token-list")
    token = IntegrationToken.objects.get()
    assert token.user == people[role] and token.expires_at == datetime(2027, 1, 1, tzinfo=UTC)
    assert audit_verbs(token) == ["token.issue"]

    shown = client.get(reverse("token-list"))
    clear = shown.context["issued"]["clear"]
    assert token.digest == token_digest(clear)
    assert clear in shown.content.decode() and shown["Cache-Control"] == "no-store"
    assert clear not in str(dict(client.session))  # removed from the session once shown

    reloaded = client.get(reverse("token-list"))
    body = reloaded.content.decode()
    assert clear not in body and token.prefix in body and "no-store" not in reloaded.get("Cache-Control", "")
    assert IntegrationToken.objects.count() == 1


def test_reloading_the_page_after_issuing_issues_no_second_token(owner, frozen_now):
    client = client_as(owner)
    data = {"name": "SIEM export", "scopes": ["audit:read"], "expires_on": "2027-01-01"}
    response = client.post(reverse("token-list"), data, follow=True)
    # The browser is left on a GET: reloading it repeats the GET, not the POST.
    assert response.redirect_chain == [(reverse("token-list"), 302)]
    assert response.request["REQUEST_METHOD"] == "GET"
    for _ in range(2):
        assert client.get(reverse("token-list")).context["issued"] is None
    assert IntegrationToken.objects.count() == 1 and AuditEvent.objects.filter(verb="token.issue").count() == 1


def test_the_page_showing_a_token_does_not_reload_itself(owner, frozen_now):
    client = client_as(owner)
    client.post(reverse("token-list"), {"name": "CI", "scopes": ["audit:read"], "expires_on": "2027-01-01"})
    assert 'data-reloadable="0"' in client.get(reverse("token-list")).content.decode()
    assert 'data-reloadable="1"' in client.get(reverse("token-list")).content.decode()


def test_token_form_errors_come_from_the_service(owner, frozen_now):
    response = client_as(owner).post(reverse("token-list"), {"name": "x", "scopes": [], "expires_on": "2030-01-01"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Choose at least one scope." in body and "A token may live at most 365 days." in body
    assert IntegrationToken.objects.count() == 0


def _token_for(user):
    return IntegrationToken.objects.create(
        name="CI",
        user=user,
        prefix=f"wrt_{user.pk:08d}",
        digest=f"{user.pk:064d}",
        scopes=["inventory:read"],
        created_at=T0,
        expires_at=T0 + timedelta(days=30),
    )


@pytest.mark.parametrize("role, status", [("owner", 302), ("other_owner", 404), ("admin", 302), ("auditor", 404)])
def test_token_revoke_permission_matrix(people, role, status):
    token = _token_for(people["owner"])
    response = client_as(people[role]).post(reverse("token-revoke", args=[token.pk]))
    assert response.status_code == status
    token.refresh_from_db()
    assert (token.revoked_at is not None) == (status == 302)
    assert audit_verbs(token) == (["token.revoke"] if status == 302 else [])


def test_tokens_list_shows_only_ones_own_tokens(owner, other_owner):
    _token_for(owner)
    _token_for(other_owner)
    tokens = client_as(owner).get(reverse("token-list")).context["tokens"]
    assert [t.user for t in tokens] == [owner]


# --- error pages and the viewer's timezone ----------------------------------------------------


def test_an_unknown_page_is_a_plain_404(owner):
    response = client_as(owner).get("/no-such-page/")
    assert response.status_code == 404
    assert b"Not found" in response.content and b"Resolver404" not in response.content


def test_a_timezone_cookie_renders_utc_times_in_the_viewers_zone(owner, agent):
    client = client_as(owner)
    client.cookies["tz"] = "Europe/Berlin"
    body = client.get(reverse("agent-detail", args=[agent.slug])).content.decode()
    # T0 is 2026-11-15 06:00 UTC, which is 07:00 in Berlin (CET).
    assert f'<time datetime="{T0.isoformat()}" title="Europe/Berlin">2026-11-15 07:00 CET</time>' in body
    assert "Times are shown in Europe/Berlin." in body


def test_without_a_cookie_times_are_utc_and_a_bad_cookie_is_ignored(owner, agent):
    client = client_as(owner)
    client.cookies["tz"] = "Mars/Olympus_Mons"
    body = client.get(reverse("agent-detail", args=[agent.slug])).content.decode()
    assert "2026-11-15 06:00 UTC" in body


@pytest.mark.parametrize("cookie", ["A" * 256, "Europe/" + "x" * 300, "Factory", "localtime", "../../etc/passwd"])
def test_an_overlong_or_odd_timezone_cookie_is_ignored_on_every_page(owner, agent, cookie):
    signed_out = Client()
    signed_out.cookies["tz"] = cookie
    login = signed_out.get(reverse("login"))
    assert login.status_code == 200
    assert "Times are shown in UTC." in login.content.decode()
    client = client_as(owner)
    client.cookies["tz"] = cookie
    body = client.get(reverse("agent-detail", args=[agent.slug])).content.decode()
    assert "2026-11-15 06:00 UTC" in body and "Times are shown in UTC." in body


def test_every_known_zone_is_accepted_and_the_set_is_read_once():
    from governance.middleware import known_timezones, zone_from_cookie

    assert known_timezones() is known_timezones()
    assert zone_from_cookie("America/Argentina/ComodRivadavia").key == "America/Argentina/ComodRivadavia"
    assert zone_from_cookie("UTC").key == "UTC"
    assert zone_from_cookie("") is None and zone_from_cookie("Factory") is None


def test_each_dashboard_count_links_to_the_list_it_counts(admin_user, agent, frozen_now):
    AgentFactory(state=Agent.State.SUSPENDED, risk_tier=Agent.RiskTier.HIGH)
    make_finding(agent, severity="high")
    make_finding(agent, severity="high", status=Finding.Status.ACKNOWLEDGED)
    make_finding(
        agent,
        severity="high",
        status=Finding.Status.RISK_ACCEPTED,  # not an open finding
        risk_accepted_until=T0 + timedelta(days=30),
    )
    make_finding(agent, severity="low", status=Finding.Status.RESOLVED)
    client = client_as(admin_user)
    response = client.get(reverse("dashboard"))
    body = response.content.decode()
    ctx = response.context

    def listed(href: str) -> int:
        page = client.get(href.replace("&amp;", "&"))
        assert page.status_code == 200, href
        return page.context["page"].paginator.count

    for value, _, n in ctx["by_state"]:
        href = f"{reverse('agent-list')}?state={value}"
        assert f'href="{href}"' in body and listed(href) == n
    for value, _, n in ctx["by_tier"]:
        href = f"{reverse('agent-list')}?risk_tier={value}"
        assert f'href="{href}"' in body and listed(href) == n
    for value, _, n in ctx["by_severity"]:
        href = f"{reverse('finding-list')}?severity={value}&amp;status=open&amp;status=acknowledged"
        assert f'href="{href}"' in body and listed(href) == n
    assert dict((v, n) for v, _, n in ctx["by_severity"])["high"] == 2


def test_a_list_of_several_statuses_keeps_them_when_filtering_again(admin_user, agent):
    body = (
        client_as(admin_user)
        .get(reverse("finding-list"), {"severity": "high", "status": ["open", "acknowledged"]})
        .content.decode()
    )
    assert '<input type="hidden" name="status" value="open">' in body
    assert '<input type="hidden" name="status" value="acknowledged">' in body
    assert "Open or Acknowledged" in body
    assert '<a href="?severity=high">change</a>' in body


# --- a refused form keeps what was typed; confirmations; evidence times ------------------------


def test_a_refused_accept_risk_keeps_the_note_and_date_with_the_field_errors(admin_user, agent, frozen_now):
    finding = make_finding(agent)
    data = {"until": "2025-01-01T09:30", "note": "Vendor patch expected next sprint."}
    response = client_as(admin_user).post(reverse("finding-act", args=[finding.pk, "accept-risk"]), data, headers=HTMX)
    assert response.status_code == 400
    body = response.content.decode()
    assert body.lstrip().startswith(f'<tr id="finding-{finding.pk}"')
    assert '<details class="actions" open>' in body
    assert f'id="until-{finding.pk}" name="until" value="2025-01-01T09:30"' in body
    assert ">Vendor patch expected next sprint.</textarea>" in body
    # The message sits under its field, once.
    assert body.count("The acceptance must end in the future.") == 1
    assert '<ul class="errorlist"><li>The acceptance must end in the future.</li></ul>' in body
    # The resolve form is not filled with the accept-risk note.
    assert f'id="note-r-{finding.pk}" name="note" rows="2" required></textarea>' in body
    assert audit_verbs(finding) == []


def test_a_refused_accept_risk_without_a_note_keeps_the_date(admin_user, agent, frozen_now):
    finding = make_finding(agent)
    response = client_as(admin_user).post(
        reverse("finding-act", args=[finding.pk, "accept-risk"]),
        {"until": "2026-12-24T18:00", "note": " "},
        headers=HTMX,
    )
    body = response.content.decode()
    assert response.status_code == 400 and 'value="2026-12-24T18:00"' in body
    assert '<ul class="errorlist"><li>Say why the risk is acceptable.</li></ul>' in body


def test_a_refused_resolve_keeps_its_form_open(owner, agent, frozen_now):
    finding = make_finding(agent)
    response = client_as(owner).post(reverse("finding-act", args=[finding.pk, "resolve"]), {"note": ""}, headers=HTMX)
    body = response.content.decode()
    assert response.status_code == 400 and '<details class="actions" open>' in body
    assert '<ul class="errorlist"><li>Say what was done to resolve it.</li></ul>' in body


def test_token_revoke_asks_for_confirmation(owner):
    token = _token_for(owner)
    body = client_as(owner).get(reverse("token-list")).content.decode()
    form = body.split(f'action="{reverse("token-revoke", args=[token.pk])}"')[1].split(">")[0]
    assert 'data-confirm="Revoke the token “CI” (' in form and "cannot be undone" in form


def test_the_confirmation_script_is_served(owner):
    from django.contrib.staticfiles import finders

    script = open(finders.find("js/warrant.js"), encoding="utf-8").read()
    assert 'getAttribute("data-confirm")' in script and "window.confirm(" in script


def test_finding_evidence_times_are_shown_in_the_viewers_timezone(owner, agent):
    make_finding(
        agent,
        kind="unused_credential",
        detail="Last used 2026-08-01 22:30 UTC, more than 90 days before the source's report of 2026-11-15 06:00 UTC.",
        evidence={"last_used_at": "2026-08-01T22:30:00Z", "observed_at": "2026-11-15T06:00:00Z"},
    )
    client = client_as(owner)
    client.cookies["tz"] = "America/New_York"
    for url in (reverse("finding-list"), reverse("agent-detail", args=[agent.slug])):
        body = client.get(url).content.decode()
        assert "Last used 2026-08-01 22:30 UTC" in body  # the stored detail, as written
        assert (
            'In your time: last used <time datetime="2026-08-01T22:30:00+00:00" title="America/New_York">'
            "2026-08-01 18:30 EDT</time>" in body
        ), url
        assert "source&#x27;s report <time" in body and "2026-11-15 01:00 EST" in body


def test_evidence_without_times_adds_nothing(owner, agent):
    make_finding(agent, kind="console_password_on_nhi", evidence={"kind": "console_password"})
    assert "In your time" not in client_as(owner).get(reverse("finding-list")).content.decode()


@pytest.mark.django_db
def test_token_form_offers_only_the_scopes_the_role_can_use(auditor):
    from tests.support import client_as

    page = client_as(auditor).get("/tokens/").content.decode()
    assert 'value="inventory:read"' in page and 'value="audit:read"' in page
    assert 'value="inventory:write"' not in page and 'value="imports:write"' not in page
