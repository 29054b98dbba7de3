"""Web UI routes: sign-in, dashboard, agents, delegation grants, findings, imports, integration tokens, the
audit log, policy settings."""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from governance import views, views_assessments, views_attestations, views_evidence
from inventory import views as inventory_views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    # Delegation grants (before the agent routes: ``agents/<slug>/grants/`` is one of them).
    path("", include("delegations.urls")),
    path("agents/", inventory_views.agent_list, name="agent-list"),
    path("agents/new/", inventory_views.agent_create, name="agent-create"),
    path("agents/<slug:slug>/", inventory_views.agent_detail, name="agent-detail"),
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
    path("agents/<slug:slug>/assessments/", views_assessments.agent_assessments, name="agent-assessments"),
    path("agents/<slug:slug>/assessments/new/", views_assessments.assessment_create, name="assessment-create"),
    path("assessments/", views_assessments.assessment_list_view, name="assessment-list"),
    path("assessments/<int:pk>/", views_assessments.assessment_detail, name="assessment-detail"),
    path("agents/<slug:slug>/<slug:action>/", inventory_views.agent_transition, name="agent-transition"),
    path("attestations/", views_attestations.attestation_inbox, name="attestation-inbox"),
    path("attestations/all/", views_attestations.attestation_list, name="attestation-list"),
    path("attestations/<int:pk>/", views_attestations.attestation_detail, name="attestation-detail"),
    path("campaigns/", views_attestations.campaign_list, name="campaign-list"),
    path("campaigns/<int:pk>/", views_attestations.campaign_detail, name="campaign-detail"),
    path("findings/", views.finding_list, name="finding-list"),
    path("findings/<int:pk>/<slug:action>/", views.finding_act, name="finding-act"),
    path("imports/", inventory_views.import_create, name="import-create"),
    path("imports/stale-check/", inventory_views.stale_check_run, name="stale-check-run"),
    path("tokens/", views.token_list, name="token-list"),
    path("tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("audit/", views.audit_list, name="audit-list"),
    path("audit/verify/", views.audit_verify_chain, name="audit-verify"),
    path("evidence/", views_evidence.evidence_index, name="evidence"),
    path("evidence/frameworks/", views_evidence.framework_list, name="evidence-frameworks"),
    path("evidence/findings.<slug:fmt>", views_evidence.evidence_findings_export, name="evidence-findings"),
    path("evidence/assessments.<slug:fmt>", views_evidence.evidence_assessments_export, name="evidence-assessments"),
    path(
        "evidence/campaigns/<int:pk>/attestations.<slug:fmt>",
        views_evidence.evidence_campaign_export,
        name="evidence-campaign-attestations",
    ),
    path("settings/policy/", views.policy_settings, name="policy-settings"),
]
