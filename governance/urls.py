"""URL routes: web UI, REST API under /api/v1/ (namespace ``api``), OpenAPI schema and offline docs, admin.

The API's route names live in the ``api`` namespace (``api:agent-list``) so that they never
collide with the web UI's (``agent-list`` is the UI's agent page). Any other path under
``/api/`` is a JSON 404, and the error handlers answer JSON under ``/api/`` and the HTML
error pages elsewhere (``governance.api.error_views``).
"""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from governance.api import error_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(("governance.api.urls", "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    re_path(r"^api/(?:.*/)?$", error_views.api_not_found),
    path("", include("governance.web_urls")),
]

handler400 = error_views.bad_request
handler403 = error_views.permission_denied
handler404 = error_views.page_not_found
handler500 = error_views.server_error
