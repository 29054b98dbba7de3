"""The framework catalogue: OWASP Non-Human Identities Top 10 (2025), NHI1–NHI10, and the OWASP
Top 10 for Agentic Applications (2026), ASI01–ASI10, with the Warrant controls that answer each
item and the finding kinds and risk-assessment factors that evidence it.

What evidences an item is derived, never restated: a finding kind evidences the items in its
``framework_refs`` (``governance.findings.KINDS``); a risk-assessment factor evidences the items
in its OWASP references (``governance.assessments.FACTORS``), and an out-of-date assessment
(the ``reassessment_due`` finding) then evidences those items too. The controls are stated here,
once, each naming the items it answers.

Item ids follow the lists' own numbering: ``NHI1`` … ``NHI10`` (published as ``NHI1:2025``) and
``ASI01`` … ``ASI10``. Titles are the published ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from governance.assessments import FACTORS
from governance.findings import KINDS, FindingKind

NHI = "nhi"
ASI = "asi"

#: The finding that says an agent's risk assessment is out of date: it evidences every item an
#: assessment factor answers, since that factor is then not currently assessed.
REASSESSMENT_DUE = "reassessment_due"


@dataclass(frozen=True)
class Framework:
    """One published list: its code (``nhi`` / ``asi``), name and edition year."""

    code: str
    name: str
    edition: str


@dataclass(frozen=True)
class FrameworkItem:
    """One item of a list: its id (``NHI7``, ``ASI03``), framework code, published title, and a
    note saying where Warrant's answer stops (empty when it answers the item directly)."""

    id: str
    framework: str
    title: str
    note: str = ""

    @property
    def label(self) -> str:
        """``"NHI7 Long-Lived Secrets"``."""
        return f"{self.id} {self.title}"


@dataclass(frozen=True)
class Control:
    """A control Warrant enforces or records: a stable code, its name, what it does, the framework
    items it answers, and the name of the web page (URL name) where it is seen, if any."""

    code: str
    name: str
    description: str
    answers: tuple[str, ...]
    url_name: str = ""


@dataclass(frozen=True)
class FactorRef:
    """A risk-assessment factor as the catalogue sees it: its code, label and framework item ids."""

    code: str
    label: str
    refs: tuple[str, ...]


FRAMEWORKS: dict[str, Framework] = {
    NHI: Framework(NHI, "OWASP Non-Human Identities Top 10", "2025"),
    ASI: Framework(ASI, "OWASP Top 10 for Agentic Applications", "2026"),
}

_CONTAINMENT = (
    "Warrant does not inspect prompts, memory or model output; it bounds what an affected agent can do "
    "(narrow grants that always expire, approved with separation of duties; suspension at once)."
)

ITEMS: tuple[FrameworkItem, ...] = (
    FrameworkItem("NHI1", NHI, "Improper Offboarding"),
    FrameworkItem("NHI2", NHI, "Secret Leakage"),
    FrameworkItem("NHI3", NHI, "Vulnerable Third-Party NHI"),
    FrameworkItem("NHI4", NHI, "Insecure Authentication"),
    FrameworkItem("NHI5", NHI, "Overprivileged NHI"),
    FrameworkItem(
        "NHI6",
        NHI,
        "Insecure Cloud Deployment Configurations",
        "Warrant records tool configurations and flags literal secrets in them; it does not scan cloud "
        "deployment settings.",
    ),
    FrameworkItem("NHI7", NHI, "Long-Lived Secrets"),
    FrameworkItem("NHI8", NHI, "Environment Isolation"),
    FrameworkItem("NHI9", NHI, "NHI Reuse"),
    FrameworkItem("NHI10", NHI, "Human Use of NHI"),
    FrameworkItem("ASI01", ASI, "Agent Goal Hijack", _CONTAINMENT),
    FrameworkItem("ASI02", ASI, "Tool Misuse and Exploitation"),
    FrameworkItem("ASI03", ASI, "Identity and Privilege Abuse"),
    FrameworkItem(
        "ASI04",
        ASI,
        "Agentic Supply Chain Vulnerabilities",
        "Warrant records each agent's tools and their destinations and assesses the supply chain; it does "
        "not vet packages or models itself.",
    ),
    FrameworkItem("ASI05", ASI, "Unexpected Code Execution (RCE)", _CONTAINMENT),
    FrameworkItem("ASI06", ASI, "Memory & Context Poisoning", _CONTAINMENT),
    FrameworkItem("ASI07", ASI, "Insecure Inter-Agent Communication"),
    FrameworkItem("ASI08", ASI, "Cascading Failures"),
    FrameworkItem("ASI09", ASI, "Human-Agent Trust Exploitation"),
    FrameworkItem("ASI10", ASI, "Rogue Agents"),
)

ITEMS_BY_ID: dict[str, FrameworkItem] = {item.id: item for item in ITEMS}


def normalise_ref(ref: str) -> str:
    """A framework reference in this catalogue's form: ``"NHI7:2025"`` → ``"NHI7"``, ``"ASI3"`` /
    ``"ASI03:2026"`` → ``"ASI03"``; anything else comes back stripped and upper-cased."""
    ref = ref.strip().upper().split(":", 1)[0].replace(" ", "")
    if ref.startswith("ASI") and ref[3:].isdigit():
        return f"ASI{int(ref[3:]):02d}"
    if ref.startswith("NHI") and ref[3:].isdigit():
        return f"NHI{int(ref[3:])}"
    return ref


#: The items some risk-assessment factor answers, in published order: what the assessment control answers.
_FACTOR_ITEMS = tuple(
    item.id for item in ITEMS if any(item.id in map(normalise_ref, f.framework_refs) for f in FACTORS.values())
)

CONTROLS: tuple[Control, ...] = (
    Control(
        "owner_lifecycle",
        "Named owner and lifecycle",
        "Every live agent has an active owner (and may have a backup owner); it moves proposed → active ⇄ "
        "suspended → decommissioned, each transition recorded with who, when and why. Suspension blocks "
        "decisions at once.",
        ("NHI1", "NHI10", "ASI03", "ASI10"),
        "agent-list",
    ),
    Control(
        "offboarding",
        "Offboarding on decommission and on an owner's departure",
        "Decommissioning revokes every grant and flags each credential still active; a deactivated owner's "
        "agents become orphaned-agent findings routed to the backup owner or the team.",
        ("NHI1",),
        "finding-list",
    ),
    Control(
        "workload_identity",
        "One workload identity per agent",
        "Each agent, registered in one environment, proves what it is with its own workload identity (SPIFFE "
        "ID, OIDC subject, cloud role, Kubernetes service account); an identity shared by several agents, in "
        "one environment or across environments, is a finding.",
        ("NHI4", "NHI8", "NHI9", "ASI03", "ASI07"),
        "agent-list",
    ),
    Control(
        "credential_hygiene",
        "Credential register: rotation, use and expiry",
        "Credentials are recorded by fingerprint, never the secret, with rotation period, last use and "
        "expiry; unrotated, unused, expiring and expired-but-active credentials are findings.",
        ("NHI1", "NHI2", "NHI7"),
        "finding-list",
    ),
    Control(
        "secret_hygiene",
        "No secrets in configuration or on non-human identities",
        "A literal secret in a tool's configuration and a console password on a non-human identity are "
        "findings; tool configurations keep environment variable names, never values.",
        ("NHI2", "NHI4", "NHI6", "NHI10"),
        "finding-list",
    ),
    Control(
        "scoped_grants",
        "Delegation grants: narrow scopes with an explicit expiry",
        "An agent acts only under a delegation grant naming tool, access level (read, write, execute) and "
        "resource pattern, for a purpose, with an end always set and capped by the agent's risk tier.",
        ("NHI5", "NHI7", "ASI02", "ASI03", "ASI05"),
    ),
    Control(
        "separation_of_duties",
        "Approval with separation of duties",
        "Nobody approves a grant they requested, own or act for; a high or critical agent, or a scope reaching "
        "payment, health or production data, needs two distinct approvers.",
        ("NHI5", "NHI8", "ASI03", "ASI09"),
    ),
    Control(
        "chain_attenuation",
        "Delegation chains attenuate",
        "A child grant's scopes are a subset of its parent's and end no later; chain depth is bounded and "
        "revoking a grant revokes its descendants.",
        ("ASI03", "ASI07", "ASI08"),
    ),
    Control(
        "enforcement_on_time",
        "Authority ends on time",
        "A grant authorises only while its window is open, its status active, every grant up its chain active "
        "and its agent active: expiry, revocation and suspension take effect at once, whether or not a job "
        "has run.",
        ("NHI7", "ASI01", "ASI02", "ASI05", "ASI06", "ASI08", "ASI10"),
    ),
    Control(
        "risk_assessment",
        "Risk assessment and tier",
        "Each agent is assessed on autonomy, data classes, write or execute scopes, external destinations, "
        "delegation, human oversight and supply chain; the tier sets grant caps and the attestation cadence, "
        "and an out-of-date assessment is a finding. It answers the items its factors name.",
        _FACTOR_ITEMS,
    ),
    Control(
        "attestation",
        "Periodic owner attestation",
        "On a cadence set by the tier the owner vouches that the agent is still needed, its owner right, its "
        "grants appropriate and its credentials rotated; an overdue attestation escalates and, past grace, "
        "suspends or flags the agent.",
        ("NHI1", "NHI5", "NHI7", "ASI10"),
    ),
    Control(
        "integration_tokens",
        "Scoped, expiring integration tokens",
        "Integrations use tokens stored as digests only, limited to scopes their person's role allows, always "
        "expiring and revocable at once.",
        ("NHI2", "NHI5", "NHI7"),
        "token-list",
    ),
    Control(
        "audit_chain",
        "Tamper-evident audit trail",
        "Every state change and decision that matters is an append-only audit event, hash-chained so that "
        "tampering shows; evidence exports are audited too.",
        ("NHI9", "NHI10", "ASI08", "ASI09", "ASI10"),
        "audit-list",
    ),
)

CONTROLS_BY_CODE: dict[str, Control] = {c.code: c for c in CONTROLS}


def items_of(framework: str) -> list[FrameworkItem]:
    """The items of ``framework`` (``"nhi"`` or ``"asi"``) in published order; ``KeyError`` if unknown."""
    FRAMEWORKS[framework]
    return [item for item in ITEMS if item.framework == framework]


def controls_for(item_id: str) -> list[Control]:
    """The controls that answer ``item_id``, in catalogue order."""
    return [c for c in CONTROLS if item_id in c.answers]


def assessment_factors() -> list[FactorRef]:
    """The risk-assessment factors (``governance.assessments.FACTORS``) with the OWASP items each
    answers, in questionnaire order. (Their NIST AI RMF functions and CSA MAESTRO layers are not
    items of these lists.)"""
    return [
        FactorRef(f.code, f.title, tuple(r for r in map(normalise_ref, f.framework_refs) if r in ITEMS_BY_ID))
        for f in FACTORS.values()
    ]


def finding_kinds_for(item_id: str, factors: list[FactorRef] | None = None) -> list[FindingKind]:
    """The finding kinds that evidence ``item_id``: those whose ``framework_refs`` name it, and
    ``reassessment_due`` when an assessment factor answers it. Catalogue order."""
    factors = assessment_factors() if factors is None else factors
    by_factor = any(item_id in f.refs for f in factors)
    return [
        kind
        for kind in KINDS.values()
        if item_id in {normalise_ref(r) for r in kind.framework_refs} or (by_factor and kind.code == REASSESSMENT_DUE)
    ]


@dataclass(frozen=True)
class ItemCoverage:
    """What answers one item: its controls, the finding kinds and assessment factors that evidence it."""

    item: FrameworkItem
    controls: tuple[Control, ...]
    finding_kinds: tuple[FindingKind, ...]
    factors: tuple[FactorRef, ...]


@cache
def _coverage() -> tuple[ItemCoverage, ...]:
    factors = assessment_factors()
    return tuple(
        ItemCoverage(
            item=item,
            controls=tuple(controls_for(item.id)),
            finding_kinds=tuple(finding_kinds_for(item.id, factors)),
            factors=tuple(f for f in factors if item.id in f.refs),
        )
        for item in ITEMS
    )


def coverage() -> list[ItemCoverage]:
    """Every item of both lists, in published order (NHI first), with what answers it. Reads no
    database; computed once (the catalogues it reads are constants)."""
    return list(_coverage())
