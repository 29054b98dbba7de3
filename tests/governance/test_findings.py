"""The findings kernel: findings_sync opens, refreshes, resolves and reopens, set-based and idempotent."""

from datetime import timedelta

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import Q

from governance.audit import Actor, audit_verify
from governance.findings import KINDS, Condition, finding_raise, findings_resolve_for, findings_sync
from governance.models import AuditEvent, Finding
from governance.services import finding_accept_risk, finding_acknowledge
from inventory.models import Credential
from tests.factories import T0, CredentialFactory

pytestmark = pytest.mark.django_db

JOB = Actor.system("test job")
KIND = "unrotated_credential"


def _sync(subjects, now=T0, kind=KIND, scope=None):
    return findings_sync(
        actor=JOB,
        kind=kind,
        subject_model=Credential,
        now=now,
        scope=scope,
        conditions=[Condition(s, s.agent_id, detail=f"{s} is old", evidence={"n": 1}) for s in subjects],
    )


def _unresolved(kind=KIND):
    return Finding.objects.filter(kind=kind).exclude(status=Finding.Status.RESOLVED)


def _verbs():
    return list(AuditEvent.objects.order_by("id").values_list("verb", flat=True))


def test_opens_one_finding_per_subject_with_the_kinds_catalogue_entry():
    a, b = CredentialFactory(), CredentialFactory()
    counts = _sync([a, b])
    assert counts == {"opened": 2, "refreshed": 0, "resolved": 0, "reopened": 0}
    f = Finding.objects.get(subject_id=a.pk)
    spec = KINDS[KIND]
    assert (f.kind, f.severity, f.status, f.title) == (KIND, spec.severity, "open", spec.title)
    assert f.framework_refs == ["NHI7"]
    assert f.subject == a and f.agent_id == a.agent_id and f.subject_label == str(a)
    assert (f.first_seen_at, f.last_seen_at) == (T0, T0)
    assert f.detail == f"{a} is old" and f.evidence == {"n": 1}
    assert _verbs() == ["finding.open", "finding.open"]
    assert audit_verify() is None


def test_a_rerun_for_the_same_state_only_refreshes_last_seen():
    a, b = CredentialFactory(), CredentialFactory()
    _sync([a, b])
    before = {f.pk: f.first_seen_at for f in Finding.objects.all()}
    events = AuditEvent.objects.count()
    later = T0 + timedelta(hours=1)
    assert _sync([a, b], now=later) == {"opened": 0, "refreshed": 2, "resolved": 0, "reopened": 0}
    assert _sync([a, b], now=later) == {"opened": 0, "refreshed": 2, "resolved": 0, "reopened": 0}
    assert {f.pk: f.first_seen_at for f in Finding.objects.all()} == before
    assert set(Finding.objects.values_list("last_seen_at", flat=True)) == {later}
    assert AuditEvent.objects.count() == events


def test_a_finding_resolves_itself_when_its_condition_clears():
    a, b = CredentialFactory(), CredentialFactory()
    _sync([a, b])
    later = T0 + timedelta(days=1)
    assert _sync([a], now=later) == {"opened": 0, "refreshed": 1, "resolved": 1, "reopened": 0}
    gone = Finding.objects.get(subject_id=b.pk)
    assert (gone.status, gone.resolved_at, gone.resolved_by) == ("resolved", later, "test job")
    assert gone.resolution_note == "Condition cleared."
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.verb, event.object_id, event.before, event.after["status"]) == (
        "finding.resolve",
        str(gone.pk),
        {"status": "open"},
        "resolved",
    )
    # A second run with the condition still cleared resolves nothing more.
    assert _sync([a], now=later)["resolved"] == 0


def test_a_condition_that_returns_opens_a_new_finding_and_keeps_the_resolved_one():
    a = CredentialFactory()
    _sync([a])
    _sync([])
    counts = _sync([a], now=T0 + timedelta(days=2))
    assert counts["opened"] == 1
    assert list(Finding.objects.filter(subject_id=a.pk).order_by("id").values_list("status", flat=True)) == [
        "resolved",
        "open",
    ]


def test_at_most_one_unresolved_finding_per_kind_and_subject_is_a_database_constraint():
    a = CredentialFactory()
    _sync([a])
    existing = Finding.objects.get()
    duplicate = Finding(
        kind=KIND,
        severity="low",
        status="acknowledged",
        subject_type=existing.subject_type,
        subject_id=a.pk,
        subject_label="x",
        title="x",
        first_seen_at=T0,
        last_seen_at=T0,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()
    # Another kind on the same subject, or a resolved duplicate, is allowed.
    duplicate.status = "resolved"
    duplicate.save()
    other_kind = Finding.objects.get(pk=duplicate.pk)
    other_kind.pk, other_kind.kind, other_kind.status = None, "unused_credential", "open"
    other_kind.save()
    assert _unresolved().count() == 1


def test_risk_acceptance_holds_until_its_date_then_the_finding_reopens(frozen_now, admin_actor):
    a = CredentialFactory()
    _sync([a])
    finding = Finding.objects.get()
    until = T0 + timedelta(days=10)
    finding_accept_risk(actor=admin_actor, finding=finding, until=until, note="Legacy integration, retiring.")

    assert _sync([a], now=T0 + timedelta(days=5)) == {"opened": 0, "refreshed": 1, "resolved": 0, "reopened": 0}
    assert Finding.objects.get().status == "risk_accepted"

    assert _sync([a], now=until) == {"opened": 0, "refreshed": 1, "resolved": 0, "reopened": 1}
    finding.refresh_from_db()
    assert (finding.status, finding.risk_accepted_until) == ("open", None)
    event = AuditEvent.objects.order_by("-id").first()
    assert (event.verb, event.before, event.after["status"]) == ("finding.reopen", {"status": "risk_accepted"}, "open")
    assert _sync([a], now=until)["reopened"] == 0


def test_an_accepted_risk_whose_condition_clears_resolves(frozen_now, admin_actor):
    a = CredentialFactory()
    _sync([a])
    finding_accept_risk(actor=admin_actor, finding=Finding.objects.get(), until=T0 + timedelta(days=10), note="ok")
    assert _sync([], now=T0 + timedelta(days=1))["resolved"] == 1
    assert Finding.objects.get().status == "resolved"


def test_an_acknowledged_finding_stays_acknowledged_while_its_condition_holds(frozen_now, admin_actor):
    a = CredentialFactory()
    _sync([a])
    finding_acknowledge(actor=admin_actor, finding=Finding.objects.get())
    assert _sync([a])["refreshed"] == 1
    assert Finding.objects.get().status == "acknowledged"


def test_scope_limits_which_findings_a_run_judges():
    a, b = CredentialFactory(), CredentialFactory()
    _sync([a, b])
    only_a = Q(subject_id=a.pk)
    assert _sync([], scope=only_a) == {"opened": 0, "refreshed": 0, "resolved": 1, "reopened": 0}
    assert list(_unresolved().values_list("subject_id", flat=True)) == [b.pk]


def test_other_kinds_are_left_alone():
    a = CredentialFactory()
    _sync([a], kind="unused_credential")
    assert _sync([], kind=KIND)["resolved"] == 0
    assert _unresolved("unused_credential").count() == 1


def test_a_condition_may_raise_the_severity():
    a = CredentialFactory()
    findings_sync(
        actor=JOB,
        kind=KIND,
        subject_model=Credential,
        now=T0,
        conditions=[Condition(a, a.agent_id, severity=Finding.Severity.CRITICAL)],
    )
    assert Finding.objects.get().severity == "critical"


def test_an_unknown_kind_is_refused():
    with pytest.raises(KeyError):
        _sync([CredentialFactory()], kind="no_such_kind")
    assert not Finding.objects.exists()


def test_finding_raise_opens_once_then_refreshes():
    a = CredentialFactory()
    with transaction.atomic():
        first, created = finding_raise(actor=JOB, kind=KIND, condition=Condition(a, a.agent_id), now=T0)
    assert created
    with transaction.atomic():
        again, created = finding_raise(
            actor=JOB, kind=KIND, condition=Condition(a, a.agent_id), now=T0 + timedelta(hours=1)
        )
    assert not created and again.pk == first.pk
    assert Finding.objects.get().last_seen_at == T0 + timedelta(hours=1)
    assert _verbs() == ["finding.open"]


def test_findings_resolve_for_resolves_the_unresolved_finding_of_a_subject():
    a, b = CredentialFactory(), CredentialFactory()
    _sync([a, b])
    with transaction.atomic():
        assert findings_resolve_for(actor=JOB, kind=KIND, subject=a, now=T0, note="Rotated.") == 1
        assert findings_resolve_for(actor=JOB, kind=KIND, subject=a, now=T0, note="Rotated.") == 0
    resolved = Finding.objects.get(subject_id=a.pk)
    assert (resolved.status, resolved.resolution_note) == ("resolved", "Rotated.")
    assert Finding.objects.get(subject_id=b.pk).status == "open"


def test_subjects_are_named_generically_by_content_type():
    a = CredentialFactory()
    _sync([a])
    assert Finding.objects.get().subject_type == ContentType.objects.get_for_model(Credential)
