"""The framework catalogue: every OWASP NHI Top 10 (2025) and Agentic Top 10 (2026) item with its
published title, the controls that answer it, and the finding kinds and assessment factors that
evidence it — derived from the findings catalogue and the questionnaire, never restated."""

import pytest

from governance import frameworks as F
from governance.assessments import FACTORS
from governance.findings import KINDS

NHI_TITLES = {
    "NHI1": "Improper Offboarding",
    "NHI2": "Secret Leakage",
    "NHI3": "Vulnerable Third-Party NHI",
    "NHI4": "Insecure Authentication",
    "NHI5": "Overprivileged NHI",
    "NHI6": "Insecure Cloud Deployment Configurations",
    "NHI7": "Long-Lived Secrets",
    "NHI8": "Environment Isolation",
    "NHI9": "NHI Reuse",
    "NHI10": "Human Use of NHI",
}
ASI_TITLES = {
    "ASI01": "Agent Goal Hijack",
    "ASI02": "Tool Misuse and Exploitation",
    "ASI03": "Identity and Privilege Abuse",
    "ASI04": "Agentic Supply Chain Vulnerabilities",
    "ASI05": "Unexpected Code Execution (RCE)",
    "ASI06": "Memory & Context Poisoning",
    "ASI07": "Insecure Inter-Agent Communication",
    "ASI08": "Cascading Failures",
    "ASI09": "Human-Agent Trust Exploitation",
    "ASI10": "Rogue Agents",
}


def test_both_lists_are_complete_in_published_order_with_their_titles():
    assert {i.id: i.title for i in F.items_of(F.NHI)} == NHI_TITLES
    assert [i.id for i in F.items_of(F.NHI)] == list(NHI_TITLES)
    assert {i.id: i.title for i in F.items_of(F.ASI)} == ASI_TITLES
    assert [i.id for i in F.items_of(F.ASI)] == list(ASI_TITLES)
    assert [i.id for i in F.ITEMS] == [*NHI_TITLES, *ASI_TITLES]
    assert F.FRAMEWORKS[F.NHI].edition == "2025" and F.FRAMEWORKS[F.ASI].edition == "2026"
    with pytest.raises(KeyError):
        F.items_of("llm")


def test_every_item_is_answered_by_a_control_and_controls_name_only_known_items():
    for item in F.ITEMS:
        assert F.controls_for(item.id), f"{item.id} has no control"
    for control in F.CONTROLS:
        assert control.answers and set(control.answers) <= set(F.ITEMS_BY_ID), control.code
        assert len(set(control.answers)) == len(control.answers), control.code
    assert len({c.code for c in F.CONTROLS}) == len(F.CONTROLS)


def test_control_pages_exist():
    from django.urls import reverse

    for control in F.CONTROLS:
        if control.url_name:
            assert reverse(control.url_name)


def test_every_finding_kind_ref_is_an_item_of_the_catalogue():
    for kind in KINDS.values():
        for ref in kind.framework_refs:
            assert F.normalise_ref(ref) in F.ITEMS_BY_ID, (kind.code, ref)


def test_finding_kinds_are_derived_from_the_kinds_refs():
    assert [k.code for k in F.finding_kinds_for("NHI7")] == [
        code for code, k in KINDS.items() if "NHI7" in k.framework_refs
    ]
    assert "shared_workload_identity" in [k.code for k in F.finding_kinds_for("NHI9")]
    assert "console_password_on_nhi" in [k.code for k in F.finding_kinds_for("NHI10")]
    assert "literal_secret_in_config" not in [k.code for k in F.finding_kinds_for("NHI7")]


def test_an_item_answered_by_an_assessment_factor_is_evidenced_by_the_reassessment_finding():
    factor_items = {F.normalise_ref(r) for f in FACTORS.values() for r in f.framework_refs}
    for item in F.ITEMS:
        kinds = [k.code for k in F.finding_kinds_for(item.id)]
        by_kind_refs = item.id in {r for k in KINDS.values() for r in k.framework_refs if k.code == "reassessment_due"}
        assert ("reassessment_due" in kinds) == (item.id in factor_items or by_kind_refs), item.id
    # The risk-assessment control answers exactly the items its factors name.
    assert set(F.CONTROLS_BY_CODE["risk_assessment"].answers) == factor_items & set(F.ITEMS_BY_ID)


def test_factor_refs_come_from_the_questionnaire():
    by_code = {f.code: f for f in F.assessment_factors()}
    assert list(by_code) == list(FACTORS)
    for code, factor in FACTORS.items():
        assert by_code[code].label == factor.title
        assert set(by_code[code].refs) == {F.normalise_ref(r) for r in factor.framework_refs}


def test_coverage_lists_every_item_once_with_its_controls_kinds_and_factors():
    cov = F.coverage()
    assert [c.item.id for c in cov] == [i.id for i in F.ITEMS]
    nhi1 = cov[0]
    assert {"owner_lifecycle", "offboarding", "attestation"} <= {c.code for c in nhi1.controls}
    assert {"orphaned_agent", "unowned_agent", "attestation_overdue"} <= {k.code for k in nhi1.finding_kinds}
    asi04 = next(c for c in cov if c.item.id == "ASI04")
    assert [f.code for f in asi04.factors] == [f.code for f in FACTORS.values() if "ASI04" in f.framework_refs]
    assert asi04.item.note  # says where Warrant's answer stops


@pytest.mark.parametrize(
    "raw, expected",
    [("NHI7:2025", "NHI7"), ("nhi10", "NHI10"), ("ASI3", "ASI03"), ("ASI03:2026", "ASI03"), (" MAP ", "MAP")],
)
def test_normalise_ref(raw, expected):
    assert F.normalise_ref(raw) == expected
