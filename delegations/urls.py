"""Web UI routes of delegation grants and runtime decisions, included at the site root by ``governance.web_urls``."""

from django.urls import path

from . import views, views_decisions

urlpatterns = [
    path("approvals/", views.approval_queue, name="approval-queue"),
    path("approvals/approve-selected/", views.approval_bulk_approve, name="approval-bulk-approve"),
    path("grants/", views.grant_list, name="grant-list"),
    path("grants/mine/", views.grant_list, {"mine": True}, name="grant-mine"),
    path("grants/new/", views.grant_create, name="grant-create"),
    path("grants/<int:pk>/", views.grant_detail, name="grant-detail"),
    path("grants/<int:pk>/<slug:action>/", views.grant_act, name="grant-act"),
    path("agents/<slug:slug>/grants/", views.agent_grants, name="agent-grants"),
    path("decisions/", views_decisions.decision_list, name="decision-list"),
    path("decisions/test/", views_decisions.decision_test, name="decision-test"),
    path("agents/<slug:slug>/decisions/", views_decisions.agent_decisions, name="agent-decisions"),
]
