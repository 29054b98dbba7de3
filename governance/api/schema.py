"""OpenAPI description of Warrant's own authentication (drf-spectacular extension)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension

from governance.models import IntegrationToken


class IntegrationTokenScheme(OpenApiAuthenticationExtension):
    """``Authorization: Bearer wrt_…`` — an integration token acting for a person within its scopes."""

    target_class = "governance.api.authentication.IntegrationTokenAuthentication"
    name = "integrationToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "wrt_…",
            "description": "An integration token (shown once when issued). It acts with its user's permissions, "
            f"limited to its scopes: {', '.join(IntegrationToken.Scope.values)}.",
        }
