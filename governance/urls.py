"""URL routes: web UI, REST API under /api/v1/ (namespace ``api``), OpenAPI schema and offline docs, admin.

The API's route names live in the ``api`` namespace (``api:agent-list``) so that they never
collide with the web UI's (``agent-list`` is the UI's agent page). Any other path under
``/api/`` is a JSON 404, and the error handlers answer JSON under ``/api/`` and the HTML
error pages elsewhere (``governance.api.error_views``).

Under ``/api/`` every path answers with or without its trailing slash, never with a redirect
(which would drop a POST's body): the API routes and the schema and docs match both forms,
``/api/v1`` leads to the API root, and the catch-all JSON 404 takes any other path.
"""

from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from delegations.api.tokens import WellKnownJwksView
from governance.api import error_views

urlpatterns = [
    path("admin/", admin.site.urls),
    re_path(r"^\.well-known/jwks\.json$", WellKnownJwksView.as_view(), name="jwks"),
    path("api/v1/", include(("governance.api.urls", "api"), namespace="api")),
    re_path(r"^api/v1$", RedirectView.as_view(url="/api/v1/", query_string=True)),
    re_path(r"^api/schema/?$", SpectacularAPIView.as_view(), name="schema"),
    re_path(r"^api/docs/?$", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    re_path(r"^api/redoc/?$", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    re_path(r"^api(?:/.*)?$", error_views.api_not_found),
    path("", include("governance.web_urls")),
]

handler400 = error_views.bad_request
handler403 = error_views.permission_denied
handler404 = error_views.page_not_found
handler500 = error_views.server_error
