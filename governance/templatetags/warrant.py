"""Template helpers for Warrant's pages: datetimes in the viewer's timezone, ages in days, a finding's
evidence times and an audit event's before/after in compact form.

Datetimes are stored in UTC; ``ViewerTimezoneMiddleware`` activates the viewer's timezone and
these helpers render in it, always naming the zone so that a time is never ambiguous.
"""

from datetime import date, datetime

from django import template
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An aware datetime as ``<time>`` in the viewer's timezone with the zone's abbreviation.

    The ``datetime`` attribute carries the UTC instant (ISO 8601) and the title names the zone.
    ``None`` renders as an em dash.
    """
    if value is None or value == "":
        return mark_safe('<span class="muted">—</span>')
    if not isinstance(value, datetime):
        return str(value)
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    zone = timezone.get_current_timezone_name()
    return format_html(
        '<time datetime="{}" title="{}">{} {}</time>',
        value.isoformat(),
        zone,
        local.strftime(fmt),
        local.tzname() or zone,
    )


@register.filter
def days_since(value: datetime | date | None, now: datetime | None = None) -> int | None:
    """Whole days from ``value`` to ``now`` (default: the current time, UTC); ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    now = now or timezone.now()
    if isinstance(value, datetime):
        return (now - value).days
    return (now.date() - value).days


@register.filter
def days_until(value: datetime | None, now: datetime | None = None) -> int | None:
    """Whole days from ``now`` (default: the current time, UTC) until ``value``; ``None`` stays ``None``."""
    if value is None or value == "":
        return None
    return (value - (now or timezone.now())).days


@register.simple_tag
def viewer_timezone() -> str:
    """The name of the timezone the page is rendered in, e.g. ``Europe/Berlin``."""
    return timezone.get_current_timezone_name()


@register.filter
def label_of(value: str, choices) -> str:
    """The human label of ``value`` in a ``TextChoices`` class or a list of pairs (the value itself if unknown)."""
    pairs = getattr(choices, "choices", choices)
    return dict(pairs).get(value, value)


@register.filter
def words(value: str) -> str:
    """``agents_created`` → ``Agents created``: a machine key as a label."""
    text = str(value).replace("_", " ").replace("-", " ").strip()
    return text[:1].upper() + text[1:]


#: Labels of the datetimes a finding's evidence carries, in the order shown (others follow, by key,
#: labelled with the key as words, without "at"). The order is fixed here: JSONB keeps no key order.
EVIDENCE_TIME_LABELS = {
    "last_used_at": "last used",
    "last_rotated_at": "last rotated",
    "created_at": "created",
    "expires_at": "expires",
    "observed_at": "source's report",
}


def _aware(value) -> datetime | None:
    """``value`` as an aware datetime when it is one or an ISO 8601 string with an offset, else None."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else None
    if not isinstance(value, str) or len(value) < 16 or value[4:5] != "-":
        return None
    try:
        parsed = parse_datetime(value)
    except ValueError:
        return None
    return parsed if parsed is not None and timezone.is_aware(parsed) else None


@register.filter
def evidence_times(evidence) -> list[tuple[str, datetime]]:
    """The datetimes in a finding's ``evidence`` (ISO 8601 strings, UTC) as ``(label, aware datetime)``.

    A finding's detail text is written once, in UTC; these let the page repeat its times in the
    viewer's timezone without rewriting what was stored. Non-datetime evidence is skipped.
    """
    if not isinstance(evidence, dict):
        return []
    rank = {key: i for i, key in enumerate(EVIDENCE_TIME_LABELS)}
    out = []
    for key in sorted(evidence, key=lambda k: (rank.get(k, len(rank)), k)):
        value = evidence[key]
        moment = _aware(value)
        if moment is not None:
            label = EVIDENCE_TIME_LABELS.get(key) or words(key.removesuffix("_at")).lower()
            out.append((label, moment))
    return out


#: Longest value shown in a compact before/after; the full value is in the element's title.
CHANGE_VALUE_MAX = 60


def _compact(value) -> str:
    if value is None:
        return "—"
    moment = _aware(value)
    if moment is not None:
        local = timezone.localtime(moment)
        return f"{local:%Y-%m-%d %H:%M} {local.tzname() or timezone.get_current_timezone_name()}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_compact(v) for v in value) or "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items()) or "{}"
    if value == "":
        return "“”"
    return str(value)


@register.filter
def audit_changes(event) -> list[dict]:
    """An audit event's ``before`` / ``after`` as compact rows: ``{"key", "before", "after", "full"}``.

    Only keys whose value changed (or that only one side has) are listed, in the order written;
    datetimes are shown in the viewer's timezone; long values are cut to ``CHANGE_VALUE_MAX``
    characters with the whole value in ``full``. ``before`` is ``None`` when the key was not there.
    """
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    rows = []
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if key in before and key in after and old == new:
            continue
        old_text = _compact(old) if key in before else None
        new_text = _compact(new) if key in after else "(removed)"
        full = f"{key}: {old_text} → {new_text}" if old_text is not None else f"{key}: {new_text}"
        rows.append(
            {
                "key": key,
                "before": None if old_text is None else _cut(old_text),
                "after": _cut(new_text),
                "full": full,
            }
        )
    return rows


def _cut(text: str) -> str:
    return text if len(text) <= CHANGE_VALUE_MAX else text[: CHANGE_VALUE_MAX - 1] + "…"
