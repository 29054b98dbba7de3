"""The dashboard's charts: the data behind each one, limited to what the viewer may see.

Each chart is a ``Chart``: categories (table rows, chart axis) and one or more series (table
columns, chart datasets) of counts. The page renders every chart as an accessible table with a
caption; ``static/js/charts.js`` draws the same data (passed with ``json_script``) over it when
JavaScript runs. Days are calendar days in the viewer's time zone (the active one), counted up
to ``now``.

Four charts, one query each: live agents by risk tier; attestation compliance of live agents;
findings open per severity on each of the last 30 days; delegation grants ending on each of the
next 7 days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django.db.models import Count, DateField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from delegations.selectors import grants_expiring_within
from governance.attestations import org_today
from governance.models import Attestation, Finding
from governance.roles import can_read_all
from inventory.models import Agent
from inventory.permissions import visible_agents_q

SEVERITIES = (Finding.Severity.CRITICAL, Finding.Severity.HIGH, Finding.Severity.MEDIUM, Finding.Severity.LOW)
TIERS = (
    Agent.RiskTier.CRITICAL,
    Agent.RiskTier.HIGH,
    Agent.RiskTier.MEDIUM,
    Agent.RiskTier.LOW,
    Agent.RiskTier.UNASSESSED,
)
FINDINGS_DAYS = 30
GRANTS_DAYS = 7


@dataclass(frozen=True)
class Series:
    """One dataset: ``key`` names its colour (``--chart-<key>`` in the stylesheet), ``values`` one
    count per category."""

    key: str
    label: str
    values: tuple[int, ...]


@dataclass(frozen=True)
class Chart:
    """One chart and the table behind it.

    ``id`` is the DOM id stem; ``kind`` is ``bar``, ``stacked-bar`` or ``line``; ``categories`` are
    the rows (labels), ``links`` an optional URL per row; ``summary`` a sentence read before the
    table (e.g. the compliance share).
    """

    id: str
    title: str
    caption: str
    kind: str
    category_header: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    links: tuple[str, ...] = ()
    summary: str = ""
    empty: str = "Nothing to show."
    category_keys: tuple[str, ...] = field(default=())

    @property
    def data_id(self) -> str:
        """The DOM id of the ``json_script`` element holding ``payload()``."""
        return f"chart-data-{self.id}"

    @property
    def total(self) -> int:
        """The sum of every value (0 means an empty chart)."""
        return sum(sum(s.values) for s in self.series)

    @property
    def rows(self) -> list[tuple[str, str, list[int]]]:
        """``(category, link or "", [value per series])`` per category, for the table."""
        links = self.links or ("",) * len(self.categories)
        return [(cat, links[i], [s.values[i] for s in self.series]) for i, cat in enumerate(self.categories)]

    def payload(self) -> dict:
        """The JSON handed to the script (``json_script``): kind, labels, datasets."""
        return {
            "id": self.id,
            "kind": self.kind,
            "title": self.title,
            "labels": list(self.categories),
            "keys": list(self.category_keys),
            "datasets": [{"key": s.key, "label": s.label, "data": list(s.values)} for s in self.series],
        }


def _visible_agents(user):
    return Agent.objects.filter(visible_agents_q(user))


def _visible_findings(user):
    qs = Finding.objects.all()
    if not can_read_all(user):
        qs = qs.filter(agent_id__in=_visible_agents(user).values("pk"))
    return qs


def _day_start(day: date, tz) -> datetime:
    """The first instant of ``day`` in ``tz``, as an aware datetime."""
    return datetime.combine(day, time.min, tzinfo=tz)


def tier_distribution(*, user) -> Chart:
    """Live agents (active or suspended) visible to ``user`` by risk tier, most severe first; one query."""
    counts = dict(
        _visible_agents(user)
        .filter(state__in=Agent.LIVE_STATES)
        .order_by()
        .values_list("risk_tier")
        .annotate(n=Count("id"))
    )
    live = [("state", s) for s in Agent.LIVE_STATES]
    return Chart(
        id="tier-distribution",
        title="Risk tiers of live agents",
        caption="Live agents (active or suspended) by risk tier",
        kind="bar",
        category_header="Risk tier",
        categories=tuple(t.label for t in TIERS),
        category_keys=tuple(t.value for t in TIERS),
        series=(Series("agents", "Agents", tuple(counts.get(t, 0) for t in TIERS)),),
        links=tuple(f"{reverse('agent-list')}?{urlencode([('risk_tier', t), *live])}" for t in TIERS),
        empty="No live agent.",
    )


COMPLIANCE = (
    ("current", "Up to date"),
    ("open", "Open, not overdue"),
    ("overdue", "Overdue"),
    ("unscheduled", "Not scheduled"),
)


def attestation_compliance(*, user, now: datetime) -> Chart:
    """Live agents visible to ``user`` by where their attestation stands at ``now`` (aware, UTC); one query.

    An agent's due date is its open attestation's ``due_on``, else its ``next_attestation_due``;
    it is *overdue* when that date is before today (the organisation's calendar), *open* when an
    attestation is open and not overdue, *up to date* when none is open and the next is not yet
    due, *unscheduled* when it has no due date. The summary gives the share up to date (current or
    open, not overdue) and the counts overdue and not scheduled.
    """
    today = org_today(now)
    open_due = Attestation.objects.filter(agent_id=OuterRef("pk"), status=Attestation.Status.OPEN).values("due_on")[:1]
    due = Coalesce(Subquery(open_due, output_field=DateField()), "next_attestation_due", output_field=DateField())
    counts = (
        _visible_agents(user)
        .filter(state__in=Agent.LIVE_STATES)
        .annotate(open_due=Subquery(open_due, output_field=DateField()), due=due)
        .aggregate(
            overdue=Count("id", filter=Q(due__lt=today)),
            open=Count("id", filter=Q(open_due__isnull=False, due__gte=today)),
            current=Count("id", filter=Q(open_due__isnull=True, due__gte=today)),
            unscheduled=Count("id", filter=Q(due__isnull=True)),
        )
    )
    live = sum(counts.values())
    good = counts["current"] + counts["open"]
    summary = (
        f"{good} of {live} live agents ({round(100 * good / live)}%) are up to date with their attestation; "
        f"{counts['overdue']} overdue, {counts['unscheduled']} not scheduled."
        if live
        else "No live agent."
    )
    overdue_link = f"{reverse('finding-list')}?{urlencode({'kind': 'attestation_overdue'})}"
    return Chart(
        id="attestation-compliance",
        title="Attestation compliance",
        caption=f"Live agents by attestation status on {today:%Y-%m-%d}",
        kind="bar",
        category_header="Attestation",
        categories=tuple(label for _, label in COMPLIANCE),
        category_keys=tuple(key for key, _ in COMPLIANCE),
        series=(Series("agents", "Agents", tuple(counts[key] for key, _ in COMPLIANCE)),),
        links=tuple(overdue_link if key == "overdue" else "" for key, _ in COMPLIANCE),
        summary=summary,
        empty="No live agent.",
    )


def findings_by_severity_over_time(*, user, now: datetime, days: int = FINDINGS_DAYS) -> Chart:
    """Findings visible to ``user`` open at the end of each of the last ``days`` days, per severity; one query.

    Days are the viewer's (the active time zone), the last one being today, counted at ``now``.
    A finding is open at an instant ``t`` when ``first_seen_at <= t`` and it was not resolved by
    then (``resolved_at > t``, or not resolved at all). Today's point is counted at ``now``.
    """
    tz = timezone.get_current_timezone()
    today = timezone.localdate(now, tz)
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    instants = [min(_day_start(d + timedelta(days=1), tz), now) for d in dates]

    def open_at(t: datetime) -> Q:
        return Q(first_seen_at__lte=t) & (
            Q(resolved_at__gt=t) | (Q(resolved_at__isnull=True) & ~Q(status=Finding.Status.RESOLVED))
        )

    rows = (
        _visible_findings(user)
        .filter(Q(first_seen_at__lte=now) & (Q(resolved_at__gt=instants[0]) | Q(resolved_at__isnull=True)))
        .order_by()
        .values("severity")
        .annotate(**{f"d{i}": Count("id", filter=open_at(t)) for i, t in enumerate(instants)})
    )
    by_severity = {row["severity"]: tuple(row[f"d{i}"] for i in range(days)) for row in rows}
    zero = (0,) * days
    return Chart(
        id="findings-over-time",
        title="Findings by severity",
        caption=f"Findings open at the end of each day, by severity, {dates[0]:%Y-%m-%d} to {today:%Y-%m-%d}",
        kind="stacked-bar",
        category_header="Day",
        categories=tuple(f"{d:%Y-%m-%d}" for d in dates),
        series=tuple(Series(s.value, s.label, by_severity.get(s.value, zero)) for s in SEVERITIES),
        empty="No finding was open in this period.",
    )


def grants_expiring_per_day(*, user, now: datetime, days: int = GRANTS_DAYS) -> Chart:
    """Delegation grants visible to ``user`` that authorise at ``now`` and end within ``days`` days,
    per day of their end (the viewer's calendar, today first); one query.

    The set is ``delegations.selectors.grants_expiring_within``'s (the dashboard's list).
    """
    tz = timezone.get_current_timezone()
    today = timezone.localdate(now, tz)
    last = timezone.localdate(now + timedelta(days=days), tz)
    dates = [today + timedelta(days=i) for i in range((last - today).days + 1)]
    bounds = [(_day_start(d, tz), _day_start(d + timedelta(days=1), tz)) for d in dates]
    per_day = {f"d{i}": Count("id", filter=Q(expires_at__gte=a, expires_at__lt=b)) for i, (a, b) in enumerate(bounds)}
    counts = grants_expiring_within(user=user, now=now, within=timedelta(days=days)).order_by().aggregate(**per_day)
    return Chart(
        id="grants-expiring",
        title="Grants ending",
        caption=f"Active delegation grants ending on each of the next {days} days",
        kind="bar",
        category_header="Day",
        categories=tuple(f"{d:%Y-%m-%d}" for d in dates),
        series=(Series("grants", "Grants ending", tuple(counts[f"d{i}"] or 0 for i in range(len(dates)))),),
        empty=f"No active grant ends within {days} days.",
    )


def dashboard_charts(*, user, now: datetime) -> dict:
    """The dashboard's charts for ``user`` at ``now`` (aware): ``{"charts": [Chart, …]}`` for the
    template context; four queries."""
    return {
        "charts": [
            tier_distribution(user=user),
            attestation_compliance(user=user, now=now),
            findings_by_severity_over_time(user=user, now=now),
            grants_expiring_per_day(user=user, now=now),
        ]
    }
