"""Builders for the evidence and chart tests: campaigns, attestations, risk assessments and findings
made directly as rows (their services are tested elsewhere), with times pinned around T0."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta

from django.contrib.contenttypes.models import ContentType

from governance.models import Attestation, Campaign, Finding, RiskAssessment
from inventory.models import Agent
from tests.factories import T0

LOW_ANSWERS = {
    "autonomy": "human_in_the_loop",
    "data_classes": ["none"],
    "access": "read",
    "destinations": "internal",
    "delegation": "none",
    "oversight": "continuous",
    "supply_chain": "in_house",
}


def make_campaign(launched_by, *, name="Q4 review", scope_kind="all", scope_value="", **extra) -> Campaign:
    return Campaign.objects.create(
        name=name,
        scope_kind=scope_kind,
        scope_value=scope_value,
        deadline=date(2026, 12, 15),
        launched_by=launched_by,
        launched_at=T0,
        **extra,
    )


def make_attestation(agent, *, campaign=None, due_on=date(2026, 12, 1), status=Attestation.Status.OPEN, **extra):
    return Attestation.objects.create(
        agent=agent, campaign=campaign, due_on=due_on, opened_at=T0, status=status, **extra
    )


def attested(agent, by, *, campaign=None, comment="", **extra) -> Attestation:
    """A decided attestation of ``agent`` (keep), answered by ``by`` an hour after T0."""
    return make_attestation(
        agent,
        campaign=campaign,
        status=Attestation.Status.ATTESTED,
        still_needed=True,
        owner_correct=True,
        grants_appropriate=True,
        credentials_rotated=False,
        outcome=Attestation.Outcome.KEEP,
        comment=comment,
        attested_by=by,
        attested_at=T0 + timedelta(hours=1),
        **extra,
    )


def make_assessment(agent, by, *, at=T0, tier="medium", score=7, days=365, answers=None, notes="") -> RiskAssessment:
    answers = dict(LOW_ANSWERS if answers is None else answers)
    return RiskAssessment.objects.create(
        agent=agent,
        assessed_by=by,
        assessed_at=at,
        answers=answers,
        factor_scores={code: 1 for code in answers},
        score=score,
        tier=tier,
        notes=notes,
        valid_until=at + timedelta(days=days),
    )


def make_finding(
    agent: Agent,
    *,
    kind="unrotated_credential",
    severity="medium",
    status=Finding.Status.OPEN,
    first_seen_at=T0,
    title="Credential not rotated within its period",
    **extra,
) -> Finding:
    """A finding about ``agent`` itself (the subject), with the kind's NHI refs."""
    from governance.findings import KINDS

    return Finding.objects.create(
        kind=kind,
        severity=severity,
        status=status,
        subject_type=ContentType.objects.get_for_model(Agent),
        subject_id=agent.pk,
        subject_label=str(agent),
        agent_id=agent.pk,
        title=title,
        framework_refs=list(KINDS[kind].framework_refs),
        first_seen_at=first_seen_at,
        last_seen_at=first_seen_at,
        **extra,
    )


def streamed(response) -> str:
    """The whole body of a streamed (or plain) response, as text."""
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def csv_rows(response) -> list[dict]:
    """A CSV response parsed back (header row → dicts)."""
    return list(csv.DictReader(io.StringIO(streamed(response), newline="")))


def json_body(response) -> dict:
    return json.loads(streamed(response))
