"""The dashboard's charts: the data behind each (pinned time, the viewer's calendar, what the viewer
may see, one query each), and the page: a captioned table behind every chart, data passed with
json_script, no inline script, and tables that stay when no script runs."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from delegations.models import DelegationGrant
from governance import charts
from governance.models import Attestation, Finding
from governance.roles import can_read_all
from inventory.models import Agent
from tests.factories import T0, AgentFactory, GrantFactory
from tests.governance.evidence_support import make_attestation, make_finding
from tests.support import client_as

pytestmark = pytest.mark.django_db

BERLIN = "Europe/Berlin"


def warm(*users):
    """Read the users' roles once (cached on the user), as the page does before its charts."""
    for user in users:
        can_read_all(user)


def values(chart, key=None) -> dict:
    """``{category: value}`` of the chart's only series, or of the series ``key``."""
    series = chart.series[0] if key is None else next(s for s in chart.series if s.key == key)
    return dict(zip(chart.categories, series.values, strict=True))


# --- tier distribution ----------------------------------------------------------------------------


def test_tier_distribution_counts_live_agents_the_viewer_may_see(
    owner, other_owner, auditor, django_assert_num_queries
):
    AgentFactory(owner=owner, risk_tier="high")
    AgentFactory(owner=owner, risk_tier="high", state=Agent.State.SUSPENDED)
    AgentFactory(owner=owner, risk_tier="low", state=Agent.State.DECOMMISSIONED)  # not live
    AgentFactory(owner=owner, risk_tier="critical", state=Agent.State.PROPOSED)  # not live
    AgentFactory(owner=other_owner, risk_tier="critical")
    AgentFactory(owner=other_owner)  # unassessed

    warm(owner)
    with django_assert_num_queries(1):
        chart = charts.tier_distribution(user=owner)
    assert chart.categories == ("Critical", "High", "Medium", "Low", "Unassessed")
    assert values(chart) == {"Critical": 0, "High": 2, "Medium": 0, "Low": 0, "Unassessed": 0}
    assert values(charts.tier_distribution(user=auditor)) == {
        "Critical": 1,
        "High": 2,
        "Medium": 0,
        "Low": 0,
        "Unassessed": 1,
    }
    assert chart.links[1] == f"{reverse('agent-list')}?risk_tier=high&state=active&state=suspended"


# --- attestation compliance -----------------------------------------------------------------------


def test_attestation_compliance_at_a_pinned_instant(owner, other_owner, auditor, frozen_now, django_assert_num_queries):
    today = date(2026, 11, 15)
    AgentFactory(owner=owner, next_attestation_due=today + timedelta(days=30))  # up to date
    AgentFactory(owner=owner, next_attestation_due=today)  # due today: not overdue yet
    make_attestation(AgentFactory(owner=owner, next_attestation_due=today + timedelta(days=1)), due_on=today)  # open
    make_attestation(AgentFactory(owner=owner), due_on=today - timedelta(days=1))  # overdue
    AgentFactory(owner=owner, next_attestation_due=today - timedelta(days=2))  # overdue, not yet opened
    AgentFactory(owner=owner, state=Agent.State.SUSPENDED)  # unscheduled
    AgentFactory(owner=owner, state=Agent.State.DECOMMISSIONED, next_attestation_due=today - timedelta(days=9))
    AgentFactory(owner=owner, state=Agent.State.PROPOSED)
    old = AgentFactory(owner=other_owner, next_attestation_due=today + timedelta(days=5))
    make_attestation(old, due_on=today - timedelta(days=100), status=Attestation.Status.CANCELLED)  # closed: ignored

    warm(owner)
    with django_assert_num_queries(1):
        chart = charts.attestation_compliance(user=owner, now=T0)
    assert dict(zip(chart.category_keys, chart.series[0].values, strict=True)) == {
        "current": 2,
        "open": 1,
        "overdue": 2,
        "unscheduled": 1,
    }
    assert chart.summary == (
        "3 of 6 live agents (50%) are up to date with their attestation; 2 overdue, 1 not scheduled."
    )
    assert chart.caption.endswith("2026-11-15")
    assert chart.links[2] == f"{reverse('finding-list')}?kind=attestation_overdue"
    assert sum(charts.attestation_compliance(user=auditor, now=T0).series[0].values) == 7


@override_settings(WARRANT_TIME_ZONE="Pacific/Kiritimati")
def test_attestation_compliance_counts_days_in_the_organisations_calendar(owner, frozen_now):
    # T0 is 2026-11-15 06:00Z, already 2026-11-15 20:00 in UTC+14; at 11:00Z it is the 16th there.
    AgentFactory(owner=owner, next_attestation_due=date(2026, 11, 15))

    def overdue(now):
        chart = charts.attestation_compliance(user=owner, now=now)
        return dict(zip(chart.category_keys, chart.series[0].values, strict=True))["overdue"]

    assert overdue(T0) == 0
    assert overdue(T0 + timedelta(hours=5)) == 1


def test_no_live_agent_says_so(owner, frozen_now):
    chart = charts.attestation_compliance(user=owner, now=T0)
    assert chart.total == 0 and chart.summary == "No live agent."


# --- findings by severity over time ---------------------------------------------------------------


def test_findings_open_at_the_end_of_each_day(owner, other_owner, frozen_now, django_assert_num_queries):
    agent = AgentFactory(owner=owner)
    make_finding(agent, kind="orphaned_agent", severity="high", first_seen_at=T0 - timedelta(days=40))  # all along
    make_finding(
        agent,
        kind="unused_credential",
        severity="medium",
        first_seen_at=T0 - timedelta(days=10),  # 2026-11-05 06:00Z
        status=Finding.Status.RESOLVED,
        resolved_at=T0 - timedelta(days=3),  # 2026-11-12 06:00Z
    )
    make_finding(agent, kind="console_password_on_nhi", severity="critical", first_seen_at=T0 - timedelta(hours=1))
    make_finding(agent, kind="expiring_credential", severity="low", status=Finding.Status.ACKNOWLEDGED)  # at T0
    make_finding(
        agent,
        kind="shared_workload_identity",
        severity="low",
        first_seen_at=T0 - timedelta(days=50),
        status=Finding.Status.RESOLVED,
        resolved_at=T0 - timedelta(days=31),
    )  # resolved before the window
    make_finding(AgentFactory(owner=other_owner), severity="critical")  # not the owner's

    warm(owner)
    with timezone.override("UTC"), django_assert_num_queries(1):
        chart = charts.findings_by_severity_over_time(user=owner, now=T0)
    assert len(chart.categories) == 30
    assert (chart.categories[0], chart.categories[-1]) == ("2026-10-17", "2026-11-15")
    assert [s.key for s in chart.series] == ["critical", "high", "medium", "low"]
    high, medium = values(chart, "high"), values(chart, "medium")
    critical, low = values(chart, "critical"), values(chart, "low")
    assert set(high.values()) == {1}
    assert [d for d, n in medium.items() if n] == [f"2026-11-{d:02d}" for d in range(5, 12)]
    assert [d for d, n in critical.items() if n] == ["2026-11-15"]
    assert [d for d, n in low.items() if n] == ["2026-11-15"]  # counted at now, acknowledged is still open


def test_findings_days_follow_the_viewers_time_zone(owner, frozen_now):
    agent = AgentFactory(owner=owner)
    # Seen 2026-11-12 23:30Z (the 13th 00:30 in Berlin, UTC+1), resolved 2026-11-13 23:30Z (the 14th in Berlin).
    make_finding(
        agent,
        kind="unused_credential",
        first_seen_at=T0 - timedelta(days=2, hours=6, minutes=30),
        status=Finding.Status.RESOLVED,
        resolved_at=T0 - timedelta(days=1, hours=6, minutes=30),
    )
    with timezone.override("UTC"):
        utc = values(charts.findings_by_severity_over_time(user=owner, now=T0), "medium")
    with timezone.override(BERLIN):
        berlin = values(charts.findings_by_severity_over_time(user=owner, now=T0), "medium")
    assert [d for d, n in utc.items() if n] == ["2026-11-12"]  # open at midnight UTC ending the 12th only
    assert [d for d, n in berlin.items() if n] == ["2026-11-13"]  # open at midnight Berlin ending the 13th only


# --- grants ending per day ------------------------------------------------------------------------


def test_grants_ending_on_each_of_the_next_seven_days(owner, other_owner, frozen_now, django_assert_num_queries):
    agent = AgentFactory(owner=owner)
    start = T0 - timedelta(days=1)
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 + timedelta(hours=3))  # today
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 + timedelta(days=2))  # 17th
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 + timedelta(days=2, hours=1))  # 17th
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 + timedelta(days=7))  # 22nd, the last instant counted
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 + timedelta(days=7, seconds=1))  # beyond
    GrantFactory(agent=agent, starts_at=start, expires_at=T0 - timedelta(minutes=1))  # already over
    GrantFactory(agent=agent, status=DelegationGrant.Status.PENDING, starts_at=start, expires_at=T0 + timedelta(days=1))
    GrantFactory(agent=agent, status=DelegationGrant.Status.REVOKED, starts_at=start, expires_at=T0 + timedelta(days=1))
    GrantFactory(agent=AgentFactory(owner=other_owner), starts_at=start, expires_at=T0 + timedelta(days=1))

    warm(owner)
    with timezone.override("UTC"), django_assert_num_queries(1):
        chart = charts.grants_expiring_per_day(user=owner, now=T0)
    assert values(chart) == {
        "2026-11-15": 1,
        "2026-11-16": 0,
        "2026-11-17": 2,
        "2026-11-18": 0,
        "2026-11-19": 0,
        "2026-11-20": 0,
        "2026-11-21": 0,
        "2026-11-22": 1,
    }


def test_grants_days_follow_the_viewers_time_zone(owner, frozen_now):
    agent = AgentFactory(owner=owner)
    GrantFactory(agent=agent, starts_at=T0 - timedelta(days=1), expires_at=T0 + timedelta(hours=17, minutes=30))
    # 2026-11-15 23:30Z: the 15th in UTC, the 16th in Berlin.
    with timezone.override("UTC"):
        assert values(charts.grants_expiring_per_day(user=owner, now=T0))["2026-11-15"] == 1
    with timezone.override(BERLIN):
        assert values(charts.grants_expiring_per_day(user=owner, now=T0))["2026-11-16"] == 1


# --- all four, and the page -----------------------------------------------------------------------


def test_the_dashboards_charts_cost_four_queries(admin_user, frozen_now, django_assert_num_queries):
    for _ in range(5):
        a = AgentFactory()
        make_finding(a)
        GrantFactory(agent=a, starts_at=T0 - timedelta(days=1), expires_at=T0 + timedelta(days=2))
    warm(admin_user)
    with django_assert_num_queries(4):
        out = charts.dashboard_charts(user=admin_user, now=T0)
    assert [c.id for c in out["charts"]] == [
        "tier-distribution",
        "attestation-compliance",
        "findings-over-time",
        "grants-expiring",
    ]


def _scripts(html: str) -> list[str]:
    return re.findall(r"<script\b[^>]*>", html)


def test_the_dashboard_shows_each_chart_as_a_captioned_table_with_its_data(owner, frozen_now):
    agent = AgentFactory(owner=owner, risk_tier="high")
    make_finding(agent, severity="high")
    response = client_as(owner).get(reverse("dashboard"))
    html = response.content.decode()
    for chart in response.context["charts"]:
        section = html.split(f'data-chart="{chart.id}"')[1].split("</figure>")[0]
        assert '<div class="chart-canvas" hidden>' in section  # drawn over the table only by the script
        assert '<details class="chart-data" open>' in section  # the table shows without script
        assert f"<caption>{chart.caption}</caption>" in section
        assert section.count('<tr><th scope="row">') == len(chart.categories)
        data = re.search(rf'<script id="{chart.data_id}" type="application/json">(.*?)</script>', html, re.S)
        assert data and json.loads(data.group(1)) == chart.payload()
    tiers = next(c for c in response.context["charts"] if c.id == "tier-distribution")
    assert values(tiers)["High"] == 1


def test_the_dashboard_has_no_inline_script(owner, frozen_now):
    html = client_as(owner).get(reverse("dashboard")).content.decode()
    for tag in _scripts(html):
        assert 'type="application/json"' in tag or " src=" in tag, tag
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    srcs = re.findall(r'<script src="([^"]+)"', html)
    assert f"/{settings.STATIC_URL.strip('/')}/js/vendor/chartjs-4.6.1/chart.umd.min.js" in srcs
    assert f"/{settings.STATIC_URL.strip('/')}/js/charts.js" in srcs


def test_the_charting_library_is_served_from_our_static_files():
    library = Path(finders.find("js/vendor/chartjs-4.6.1/chart.umd.min.js"))
    head = library.read_text()[:200]
    assert "Chart.js v4.6.1" in head and "MIT License" in head
    assert Path(finders.find("js/vendor/chartjs-4.6.1/LICENSE.md")).read_text().startswith("The MIT License")
    # The build names its source map; the manifest storage needs it beside the library.
    assert library.read_text().rstrip().endswith("//# sourceMappingURL=chart.umd.min.js.map")
    assert finders.find("js/vendor/chartjs-4.6.1/chart.umd.min.js.map")
    script = Path(finders.find("js/charts.js")).read_text()
    assert "eval(" not in script and "innerHTML" not in script
