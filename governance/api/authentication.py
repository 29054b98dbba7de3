"""Integration-token authentication for the REST API: ``Authorization: Bearer wrt_…``.

Tokens are looked up by the SHA-256 digest of the presented value (never stored in clear);
an expired or revoked token, or one whose user is inactive, is refused with 401.
"""

from django.utils import timezone
from rest_framework import authentication, exceptions

from governance.models import IntegrationToken
from governance.services import TOKEN_PREFIX, token_digest


class IntegrationTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate ``Bearer`` integration tokens; ``request.auth`` is the IntegrationToken."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        parts = header.split()
        if parts[0] != self.keyword:
            return None
        if len(parts) != 2 or not parts[1].startswith(TOKEN_PREFIX):
            raise exceptions.AuthenticationFailed("Malformed bearer token.")
        token = IntegrationToken.objects.select_related("user").filter(digest=token_digest(parts[1])).first()
        now = timezone.now()
        if token is None:
            raise exceptions.AuthenticationFailed("Unknown token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if now >= token.expires_at:
            raise exceptions.AuthenticationFailed("This token has expired.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("This token's user is inactive.")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            IntegrationToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
