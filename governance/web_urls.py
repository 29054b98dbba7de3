"""Web UI routes: sign-in, dashboard, agents, findings, imports, integration tokens, the audit log."""

from django.contrib.auth import views as auth_views
from django.urls import path

from governance import views
from inventory import views as inventory_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("agents/", inventory_views.agent_list, name="agent-list"),
    path("agents/new/", inventory_views.agent_create, name="agent-create"),
    path("agents/<slug:slug>/", inventory_views.agent_detail, name="agent-detail"),
    path("agents/<slug:slug>/risk-tier/", inventory_views.agent_set_risk_tier, name="agent-set-risk-tier"),
    path("agents/<slug:slug>/owner/", inventory_views.agent_assign_owner, name="agent-assign-owner"),
    path("agents/<slug:slug>/describe/", inventory_views.agent_update, name="agent-update"),
    path("agents/<slug:slug>/credentials/", inventory_views.credential_record, name="credential-record"),
    path(
        "agents/<slug:slug>/credentials/<int:pk>/rotate/", inventory_views.credential_rotate, name="credential-rotate"
    ),
    path(
        "agents/<slug:slug>/credentials/<int:pk>/revoke/", inventory_views.credential_revoke, name="credential-revoke"
    ),
    path("agents/<slug:slug>/identities/", inventory_views.workload_identity_add, name="workload-identity-add"),
    path(
        "agents/<slug:slug>/identities/<int:pk>/remove/",
        inventory_views.workload_identity_remove,
        name="workload-identity-remove",
    ),
    path("agents/<slug:slug>/tools/", inventory_views.tool_add, name="tool-add"),
    path("agents/<slug:slug>/tools/<int:pk>/", inventory_views.tool_update, name="tool-update"),
    path("agents/<slug:slug>/tools/<int:pk>/remove/", inventory_views.tool_remove, name="tool-remove"),
    path("agents/<slug:slug>/<slug:action>/", inventory_views.agent_transition, name="agent-transition"),
    path("findings/", views.finding_list, name="finding-list"),
    path("findings/<int:pk>/<slug:action>/", views.finding_act, name="finding-act"),
    path("imports/", inventory_views.import_create, name="import-create"),
    path("imports/stale-check/", inventory_views.stale_check_run, name="stale-check-run"),
    path("tokens/", views.token_list, name="token-list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("audit/", views.audit_list, name="audit-list"),
    path("audit/verify/", views.audit_verify_chain, name="audit-verify"),
]
