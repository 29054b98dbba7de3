"""The domain-event registry: how a lower part makes an upper part act, without importing it.

A lower part (inventory) calls ``announce(name, **payload)`` inside its transaction; parts
above it (delegations, governance domain) ``subscribe(name, handler)`` at startup, in their
``AppConfig.ready()``. Handlers run synchronously, in the announcer's transaction, in the
order they subscribed, so their writes commit or roll back with the change that caused them.
Side effects outside the database belong in ``transaction.on_commit``.

Events announced today (payload keys):

- ``agent.decommissioned`` — ``agent`` (the locked Agent), ``actor`` (audit Actor), ``now``; subscribers
  revoke its grants (delegations) and cancel its open attestation (``governance.attestations``).
- ``agent.owner_changed`` — ``agent``, ``actor``, ``previous_owner_id``
- ``person.deactivated`` — ``user`` (the locked, now inactive user), ``actor``, ``now``; announced by
  ``inventory.services.person_deactivate``. Subscribers: ``governance.attestations.on_person_deactivated``
  (orphaned-agent findings), ``delegations.services.on_person_deactivated`` (pending requests cancelled).
"""

from collections import defaultdict
from collections.abc import Callable

_handlers: dict[str, list[Callable]] = defaultdict(list)

KNOWN_EVENTS = frozenset({"agent.decommissioned", "agent.owner_changed", "person.deactivated"})


def subscribe(name: str, handler: Callable) -> None:
    """Register ``handler(**payload)`` for event ``name``; subscribing twice is a no-op.

    Raises ``ValueError`` for an event name that is not in ``KNOWN_EVENTS``.
    """
    if name not in KNOWN_EVENTS:
        raise ValueError(f"unknown domain event {name!r}")
    if handler not in _handlers[name]:
        _handlers[name].append(handler)


def announce(name: str, **payload) -> None:
    """Call every handler subscribed to ``name`` with ``payload``; errors propagate."""
    if name not in KNOWN_EVENTS:
        raise ValueError(f"unknown domain event {name!r}")
    for handler in list(_handlers[name]):
        handler(**payload)
