"""Serializer building blocks for the REST API, and the findings and audit-event serializers.

Write endpoints parse their body with a small ``StrictInputSerializer``: an unknown field,
or a read-only one (status, state, ids), is refused with 400 naming it, never ignored; every
datetime must carry a UTC offset (DESIGN.md invariant 3). Read endpoints render with
``OutputModelSerializer`` subclasses, whose datetimes are always ISO 8601 in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from django.db import models
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from governance.audit import AUDIT_EVENT_FIELDS
from governance.models import AuditEvent, Finding


class StrictDateTimeField(serializers.DateTimeField):
    """An ISO 8601 datetime that must carry its UTC offset (``Z`` or ``±HH:MM``); returned in UTC.

    ``"2026-11-30T10:00:00"`` is refused ("Include a UTC offset …") rather than read in some
    server timezone; ``"2026-11-30T10:00:00+02:00"`` becomes ``2026-11-30T08:00:00Z``.
    """

    default_error_messages = {
        "naive": "Include a UTC offset, e.g. 2026-11-30T10:00:00Z or 2026-11-30T10:00:00+01:00.",
    }

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        parsed = value
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
        if isinstance(parsed, datetime) and parsed.utcoffset() is None:
            self.fail("naive")
        return super().to_internal_value(value).astimezone(UTC)


class UTCDateTimeField(serializers.DateTimeField):
    """A read-only datetime rendered in UTC whatever the viewer's timezone."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default_timezone", UTC)
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)


class StrictInputSerializer(serializers.Serializer):
    """Base of every write serializer: unknown and read-only fields are errors, never ignored.

    ``read_only_names`` lists fields the resource has but a client may not set here (for
    example ``state`` or ``status``); sending one is refused with "This field is read-only."
    Any other undeclared field is refused with "Unknown field." and the list of allowed ones.
    """

    read_only_names: tuple[str, ...] = ()

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, Mapping):
            writable = [name for name, f in self.fields.items() if not f.read_only]
            for name in data.keys():
                if name in writable:
                    continue
                if name in self.read_only_names or name in self.fields:
                    errors[name] = ["This field is read-only."]
                else:
                    errors[name] = [f"Unknown field. Allowed: {', '.join(writable) or 'none'}."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not errors or not isinstance(exc.detail, Mapping):
                raise
            raise serializers.ValidationError({**exc.detail, **errors})
        if errors:
            raise serializers.ValidationError(errors)
        return value


class OutputModelSerializer(serializers.ModelSerializer):
    """Base of every read serializer: all fields read-only, datetimes in UTC."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.DateTimeField: UTCDateTimeField,
    }

    def get_fields(self):
        fields = super().get_fields()
        for f in fields.values():
            f.read_only = True
        return fields


class ReasonInputSerializer(StrictInputSerializer):
    """``{"reason": "…"}`` for actions whose service requires a reason (kept in the audit trail)."""

    reason = serializers.CharField(max_length=2000, allow_blank=True, trim_whitespace=True)


class OptionalReasonInputSerializer(StrictInputSerializer):
    """``{"reason": "…"}`` or ``{}`` for actions where a reason is optional."""

    reason = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


# --- findings ------------------------------------------------------------------------------


class FindingSerializer(OutputModelSerializer):
    """A finding with its subject, the agent it concerns (slug and name) and, when the subject
    is a credential, that credential's external id. ``framework_refs`` are OWASP NHI Top 10
    (2025) ids."""

    subject_type = serializers.SerializerMethodField()
    agent = serializers.CharField(source="agent_slug", read_only=True, allow_null=True)
    agent_name = serializers.CharField(read_only=True, allow_null=True)
    credential_external_id = serializers.CharField(read_only=True, allow_null=True)
    framework_refs = serializers.ListField(child=serializers.CharField(), read_only=True)
    evidence = serializers.DictField(read_only=True)

    class Meta:
        model = Finding
        fields = [
            "id",
            "kind",
            "severity",
            "status",
            "title",
            "detail",
            "framework_refs",
            "evidence",
            "subject_type",
            "subject_id",
            "subject_label",
            "agent",
            "agent_name",
            "credential_external_id",
            "first_seen_at",
            "last_seen_at",
            "acknowledged_at",
            "acknowledged_by",
            "risk_accepted_until",
            "risk_accepted_by",
            "resolved_at",
            "resolved_by",
            "resolution_note",
        ]

    def get_subject_type(self, obj: Finding) -> str:
        """``app_label.model`` of the subject, e.g. ``inventory.credential``."""
        return f"{obj.subject_type.app_label}.{obj.subject_type.model}"


class FindingNoteInputSerializer(StrictInputSerializer):
    """``{"note": "…"}`` (optional) to acknowledge a finding."""

    read_only_names = ("status", "id", "kind", "severity")
    note = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")


class FindingResolveInputSerializer(StrictInputSerializer):
    """``{"note": "what was done"}`` to resolve a finding."""

    read_only_names = ("status", "id", "kind", "severity")
    note = serializers.CharField(max_length=2000, allow_blank=True)


class FindingAcceptRiskInputSerializer(StrictInputSerializer):
    """``{"until": "<ISO 8601 with offset>", "note": "why"}`` to accept a finding's risk for a time."""

    read_only_names = ("status", "id", "kind", "severity", "risk_accepted_until")
    until = StrictDateTimeField()
    note = serializers.CharField(max_length=2000, allow_blank=True)


# --- audit events --------------------------------------------------------------------------


class AuditEventSerializer(OutputModelSerializer):
    """One audit event: who (actor type, id, label) did what (verb) to which object, when, with
    before/after values, the request id and the hash chain links."""

    before = serializers.JSONField(read_only=True, allow_null=True)
    after = serializers.JSONField(read_only=True, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = ["id", *AUDIT_EVENT_FIELDS]
