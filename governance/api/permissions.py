"""Request-level permissions of the REST API.

Who may change which object is decided by the services (and the rules in
``inventory.permissions`` they call); these classes only add what is known before any object
is read:

- ``TokenScopePermission`` — a request authenticated by an integration token acts with its
  user's permissions *intersected with* the token's scopes: reads need the view's
  ``read_scope`` (default ``inventory:read``), writes its ``write_scope`` (default
  ``inventory:write``). A scope counts only while the user's role still allows it
  (``governance.services.token_scopes_for``): a token issued to an agent owner who has since
  become an auditor no longer writes. OWASP NHI Top 10 (2025) NHI5: least privilege for
  non-human identities.
- ``AuditorsReadOnly`` — an auditor reads everything and changes nothing (unless the same
  person is also an IAM admin or an agent owner).
"""

from rest_framework.permissions import SAFE_METHODS, BasePermission

from governance.models import IntegrationToken
from governance.roles import is_agent_owner, is_auditor, is_iam_admin
from governance.services import token_scopes_for


def required_scope(request, view) -> str:
    """The token scope ``view`` needs for ``request``: its ``read_scope`` for safe methods, else ``write_scope``."""
    if request.method in SAFE_METHODS:
        return getattr(view, "read_scope", IntegrationToken.Scope.INVENTORY_READ)
    return getattr(view, "write_scope", IntegrationToken.Scope.INVENTORY_WRITE)


class TokenScopePermission(BasePermission):
    """Refuse (403) a token-authenticated request whose token lacks the scope the view requires,
    or whose user's role no longer allows that scope.

    Session-authenticated requests are not limited by scopes.
    """

    def has_permission(self, request, view):
        token = request.auth
        if not isinstance(token, IntegrationToken):
            return True
        scope = str(required_scope(request, view))
        if scope not in token.scopes:
            self.message = f"This token lacks the {scope} scope."
            return False
        if scope not in token_scopes_for(request.user):
            self.message = f"This token's user's role no longer allows the {scope} scope."
            return False
        return True


class AuditorsReadOnly(BasePermission):
    """Refuse (403) every write by a person whose only role is auditor."""

    message = "Auditors read; they do not change anything."

    def has_permission(self, request, view):
        if request.method in SAFE_METHODS:
            return True
        user = request.user
        return not (is_auditor(user) and not (is_iam_admin(user) or is_agent_owner(user)))
