"""Request-scoped context: the request id carried into audit events, the viewer's timezone."""

import re
import uuid
import zoneinfo
from functools import cache

from django.utils import timezone

from governance.audit import request_id_var

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class RequestIdMiddleware:
    """Take ``X-Request-ID`` when it is well formed, else make one; echo it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


#: The longest IANA zone name accepted from the ``tz`` cookie (the longest in the database is 32).
TZ_NAME_MAX_LENGTH = 64
#: Zones of the database that are no place a viewer is in ("Factory" renders times as "-00").
_UNPLACED_ZONES = frozenset({"Factory", "localtime"})


@cache
def known_timezones() -> frozenset[str]:
    """The IANA zone names the viewer's ``tz`` cookie may carry: ``zoneinfo.available_timezones()``
    without the placeholder zones (``Factory``, ``localtime``). Read once per process."""
    return frozenset(zoneinfo.available_timezones()) - _UNPLACED_ZONES


def zone_from_cookie(name: str) -> zoneinfo.ZoneInfo | None:
    """The zone named ``name`` (an IANA name such as ``Europe/Berlin``), or None when ``name`` is empty,
    longer than ``TZ_NAME_MAX_LENGTH`` characters or not one of ``known_timezones()``."""
    if not name or len(name) > TZ_NAME_MAX_LENGTH or name not in known_timezones():
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


class ViewerTimezoneMiddleware:
    """Activate the viewer's timezone from the ``tz`` cookie set by the browser, when it names a known
    IANA zone (``zone_from_cookie``); otherwise UTC.

    Datetimes stay UTC in the database; only rendering changes.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = zone_from_cookie(request.COOKIES.get("tz", ""))
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
