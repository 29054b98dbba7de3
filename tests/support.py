"""Helpers shared by the tests of pages, the admin and the services: signed-in clients, audit trails, refusals.

The REST API tests have their own helpers in ``tests.api_support``; fixtures (people in each
role, pinned time) are in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.messages import get_messages
from django.db.models import Max
from django.test import Client

from governance.models import AuditEvent


def client_as(user) -> Client:
    """A browser-like test client signed in as ``user`` (anonymous for ``None``)."""
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    """The texts of the messages (``django.contrib.messages``) a response's request left."""
    return [str(m) for m in get_messages(response.wsgi_request)]


def audit_verbs(obj) -> list[str]:
    """The verbs of the audit events about ``obj``, oldest first."""
    return list(
        AuditEvent.objects.filter(object_type=obj._meta.label_lower, object_id=str(obj.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )


class Trail:
    """The audit events written since it was made (or last reset)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.mark = AuditEvent.objects.aggregate(m=Max("id"))["m"] or 0

    def new(self):
        return list(AuditEvent.objects.filter(id__gt=self.mark).order_by("id"))

    def verbs(self):
        return [e.verb for e in self.new()]

    def one(self, verb, actor=None, obj=None):
        """The single new event of ``verb`` (other verbs may have been written too), checked against
        ``actor`` and ``obj`` when given."""
        matching = [e for e in self.new() if e.verb == verb]
        assert len(matching) == 1, self.verbs()
        return _checked(matching[0], actor, obj)

    def only(self, verb, actor=None, obj=None):
        """The one event written since, which must be of ``verb`` (checked like ``one``)."""
        events = self.new()
        assert [e.verb for e in events] == [verb]
        return _checked(events[0], actor, obj)


def _checked(event, actor, obj):
    if actor is not None:
        assert (event.actor_type, event.actor_id, event.actor_label) == (actor.type, actor.id, actor.label)
    if obj is not None:
        assert (event.object_type, event.object_id) == (obj._meta.label_lower, str(obj.pk))
    return event


def refusal_checker(*models) -> Callable:
    """A ``refuses(exc, fn, match=None, field=None, **kwargs)`` proving that a refused call changed none of ``models``.

    ``refuses`` calls ``fn(**kwargs)``, expects ``exc`` (keyed on ``field`` for a ValidationError,
    its message matching ``match``), checks that every row of ``models`` is as before, and
    returns the exception.
    """

    def db_state():
        return [list(m.objects.order_by("id").values()) for m in models]

    def refuses(exc, fn, match=None, field=None, **kwargs):
        before = db_state()
        with pytest.raises(exc, match=match) as info:
            fn(**kwargs)
        if field is not None:
            assert field in info.value.message_dict, info.value.message_dict
        assert db_state() == before, "a refused call changed the database"
        return info.value

    return refuses
