"""REST API v1 routes: the inventory's, delegations' and governance's viewsets on one router.

Included by ``governance.urls`` under ``/api/v1/`` in the ``api`` namespace: reverse
``api:agent-list``, ``api:agent-set-risk-tier`` …; the un-namespaced names are the web UI's.

Every route answers with or without its trailing slash (``/api/v1/agents`` and
``/api/v1/agents/``), so that a POST, PATCH or DELETE is never redirected (a redirect would
drop its body); ``reverse`` gives the form without the slash.
"""

from rest_framework.routers import DefaultRouter

from delegations.api.decisions import DecisionViewSet
from delegations.api.tokens import urlpatterns as task_token_urls
from delegations.api.views import GrantViewSet
from governance.api import schema  # noqa: F401  (registers the token scheme with drf-spectacular)
from governance.api.assessments import AssessmentViewSet
from governance.api.attestations import AttestationViewSet, CampaignViewSet
from governance.api.evidence import urlpatterns as evidence_urls
from governance.api.views import AuditEventViewSet, FindingViewSet
from inventory.api.issuers import TrustedIssuerViewSet
from inventory.api.views import (
    AgentViewSet,
    CredentialViewSet,
    ImportViewSet,
    TeamViewSet,
    ToolViewSet,
    WorkloadIdentityViewSet,
)


class OptionalSlashRouter(DefaultRouter):
    """A ``DefaultRouter`` whose routes match with or without the trailing slash."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
# First: Django tries the routes in order, and the decision endpoint is asked before every tool call
# an agent makes (the hot path); behind the other viewsets it would wait for some 80 patterns to fail.
router.register("decisions", DecisionViewSet, basename="decision")
router.register("agents", AgentViewSet, basename="agent")
router.register("teams", TeamViewSet, basename="team")
router.register("workload-identities", WorkloadIdentityViewSet, basename="workload-identity")
router.register("credentials", CredentialViewSet, basename="credential")
router.register("tools", ToolViewSet, basename="tool")
router.register("findings", FindingViewSet, basename="finding")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("imports", ImportViewSet, basename="import")
router.register("assessments", AssessmentViewSet, basename="assessment")
router.register("grants", GrantViewSet, basename="grant")
router.register("attestations", AttestationViewSet, basename="attestation")
router.register("campaigns", CampaignViewSet, basename="campaign")
router.register("trusted-issuers", TrustedIssuerViewSet, basename="trusted-issuer")

urlpatterns = router.urls + evidence_urls + task_token_urls
