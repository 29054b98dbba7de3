"""Routes of the decision benchmark's server: the project's own, plus ``/bench/ping`` — the framework floor.

``/bench/ping`` (GET or POST) answers ``{"ok": true}`` through the same DRF stack as the API:
the same authentication classes (the settings' defaults: integration token, session), the same
permission classes as every API viewset (``IsAuthenticated``, ``TokenScopePermission``,
``AuditorsReadOnly``), the token scope the decision endpoint asks for (``decisions:check``), the
same JSON parser (a POST's body is parsed) and renderer. What the decision endpoint costs above
it is the decision itself: validating the request, ``decide``, the decision log.
"""

from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from governance import urls as project_urls
from governance.api.permissions import AuditorsReadOnly, TokenScopePermission
from governance.models import IntegrationToken


class PingView(APIView):
    """``{"ok": true}`` for an authenticated caller whose token holds ``decisions:check``."""

    permission_classes = [IsAuthenticated, TokenScopePermission, AuditorsReadOnly]
    read_scope = IntegrationToken.Scope.DECISIONS_CHECK
    write_scope = IntegrationToken.Scope.DECISIONS_CHECK

    def get(self, request):
        return Response({"ok": True})

    def post(self, request):
        _ = request.data  # parse the body, as the decision endpoint does
        return Response({"ok": True})


# First: the project's catch-all routes would take any path after them.
urlpatterns = [path("bench/ping", PingView.as_view()), *project_urls.urlpatterns]

handler400 = project_urls.handler400
handler403 = project_urls.handler403
handler404 = project_urls.handler404
handler500 = project_urls.handler500
