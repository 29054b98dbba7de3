"""Template helpers of the delegation pages: a grant's length as people read it, and the number of
requests waiting in the approval queue (shown in the navigation to IAM admins)."""

from datetime import timedelta

from django import template
from django.utils import timezone

from governance.roles import is_iam_admin

from ..models import DelegationGrant

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A length in whole minutes: ``45 min``, ``24 h``, ``36 h 30 min`` (under two days), else
    ``7 d``, ``2 d 4 h``; ``None`` renders as an em dash. Seconds are dropped, never rounded up."""
    if value is None or value == "":
        return "—"
    minutes = int(value.total_seconds() // 60)
    if minutes <= 0:
        return "0 min"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if minutes < 48 * 60:
        hours += days * 24
        parts = [f"{hours} h" if hours else "", f"{mins} min" if mins else ""]
    else:
        parts = [f"{days} d", f"{hours} h" if hours else "", f"{mins} min" if mins else ""]
    return " ".join(p for p in parts if p)


@register.simple_tag(takes_context=True)
def pending_grant_count(context) -> int | None:
    """Requests an IAM admin may decide now (one ``COUNT`` query); ``None`` for anyone else.

    Pending requests less those ``permissions.decision_refusal`` keeps from them: their own, those of
    agents they own or back up, those acting on their behalf, and those they already decided.
    """
    request = context.get("request")
    user = getattr(request, "user", None)
    if not is_iam_admin(user):
        return None
    return (
        DelegationGrant.objects.pending()
        .exclude(requested_by=user)
        .exclude(agent__owner=user)
        .exclude(agent__backup_owner=user)
        .exclude(on_behalf_of=user)
        .exclude(approvals__approver=user)
        .count()
    )


_STATE_LABELS = dict(DelegationGrant.STATES)


@register.filter
def state_label(state: str) -> str:
    """The label of a grant's state as of now (``DelegationGrant.STATES``): ``blocked`` → ``Blocked (agent …)``."""
    return _STATE_LABELS.get(state, state)


@register.filter
def local_input(value) -> str:
    """An aware datetime as a ``datetime-local`` input's value in the viewer's timezone (``2026-11-15T07:00``)."""
    if value is None or value == "":
        return ""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
