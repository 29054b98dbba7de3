"""Serializer building blocks for the REST API, and the findings and audit-event serializers.

Write endpoints parse their body with a small ``StrictInputSerializer``: an unknown field,
or a read-only one (status, state, ids), is refused with 400 naming it, never ignored; a JSON
value of the wrong type (``123`` for a name, ``"30"`` for a number of days, ``"yes"`` for a
flag) is refused too, never coerced; every datetime must carry a UTC offset (DESIGN.md
invariant 3). Read endpoints render with
``OutputModelSerializer`` subclasses, whose datetimes are always ISO 8601 in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from django.db import models
from django.http import QueryDict
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


def json_type_name(value) -> str:
    """The JSON type of a decoded value, for messages: "a string", "a number", "true or false" …"""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null" if value is None else type(value).__name__


def json_type_error(field: serializers.Field, value) -> list[str] | dict[int, list[str]] | None:
    """Why the decoded JSON ``value`` has the wrong type for ``field``, or None when it does not.

    String fields (text, slugs, string choices, references by slug or username) take only a
    JSON string, integer fields only a JSON integer, boolean fields only ``true``/``false``;
    list fields check each item the same way (errors keyed by index, as DRF reports them).
    ``null`` and the types of other fields are left to the field's own validation.
    """
    if value is None:
        return None
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return None
        items = {i: json_type_error(field.child, item) for i, item in enumerate(value)}
        return {i: error for i, error in items.items() if error} or None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else [f"Must be true or false, not {json_type_name(value)}."]
    if isinstance(field, serializers.IntegerField):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else [f"Must be a JSON integer, not {json_type_name(value)}."]
    takes_string = isinstance(field, serializers.CharField | serializers.SlugRelatedField) or (
        isinstance(field, serializers.ChoiceField)
        and not isinstance(field, serializers.MultipleChoiceField)
        and all(isinstance(key, str) for key in field.choices)
    )
    if takes_string and not isinstance(value, str):
        return [f"Must be a JSON string, not {json_type_name(value)}."]
    return None


class StrictInputSerializer(serializers.Serializer):
    """Base of every write serializer: unknown and read-only fields, and JSON values of the wrong
    type, are errors, never ignored or coerced.

    ``read_only_names`` lists fields the resource has but a client may not set here (for
    example ``state`` or ``status``); sending one is refused with "This field is read-only."
    Any other undeclared field is refused with "Unknown field." and the list of allowed ones.
    In a JSON body a value of the wrong type is refused under its field (``json_type_error``);
    form and multipart bodies (``QueryDict``: every value a string) keep the fields' own parsing.
    """

    read_only_names: tuple[str, ...] = ()

    def to_internal_value(self, data):
        errors = {}
        if isinstance(data, Mapping):
            writable = [name for name, f in self.fields.items() if not f.read_only]
            check_types = not isinstance(data, QueryDict)
            for name in data.keys():
                if name in writable:
                    type_error = json_type_error(self.fields[name], data[name]) if check_types else None
                    if type_error:
                        errors[name] = type_error
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
