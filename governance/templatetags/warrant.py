"""Template helpers for Warrant's pages: datetimes in the viewer's timezone, ages in days.

Datetimes are stored in UTC; ``ViewerTimezoneMiddleware`` activates the viewer's timezone and
these helpers render in it, always naming the zone so that a time is never ambiguous.
"""

from datetime import date, datetime

from django import template
from django.utils import timezone
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
