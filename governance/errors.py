"""Application errors raised by services; ``governance.api.exception_handlers`` maps them to HTTP.

- ``django.core.exceptions.ValidationError`` → 400 (invalid input; field-level messages)
- ``django.core.exceptions.PermissionDenied`` → 403 (the actor may not do this)
- ``Conflict`` → 409 (the object is not in a state that allows this)
"""

from django.core.exceptions import PermissionDenied, ValidationError

__all__ = ["Conflict", "PermissionDenied", "ValidationError"]


class Conflict(Exception):
    """The action is refused because of the object's current state (HTTP 409)."""
