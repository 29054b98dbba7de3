"""The strict FilterSet base shared by every list page and list endpoint.

An unknown query parameter or an unknown choice value is an error (400 in the API, a
message on the page), never silently ignored.
"""

import django_filters
from django import forms
from django.utils.dateparse import parse_datetime
from django_filters.fields import IsoDateTimeField, ModelChoiceField

# Query parameters that belong to pagination, ordering or htmx, not to filtering.
RESERVED_PARAMS = frozenset({"page", "page_size", "cursor", "ordering", "format"})


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet that rejects query parameters it does not define (and repeated singletons)."""

    extra_params: frozenset[str] = frozenset()

    def is_valid(self):
        valid = super().is_valid()
        unknown = sorted(set(self.data.keys()) - set(self.filters) - RESERVED_PARAMS - set(self.extra_params))
        if unknown:
            allowed = ", ".join(sorted(set(self.filters) | RESERVED_PARAMS | set(self.extra_params)))
            for name in unknown:
                self.form.add_error(
                    None, forms.ValidationError(f"Unknown filter {name!r}. Allowed: {allowed}.", code="unknown_filter")
                )
            return False
        return valid

    @property
    def errors(self):
        return self.form.errors


def ordering_filter(fields: dict[str, str]) -> django_filters.OrderingFilter:
    """An ``ordering`` filter over ``fields`` (param name → model field); ties always broken by id."""
    return TotalOrderingFilter(fields=tuple((v, k) for k, v in fields.items()))


class TotalOrderingFilter(django_filters.OrderingFilter):
    """OrderingFilter that appends ``id`` so that every order is total (stable pagination)."""

    def filter(self, qs, value):
        if not value:
            return qs
        ordering = [self.get_ordering_value(param) for param in value]
        last = ordering[-1].lstrip("-") if ordering else ""
        if last != "id":
            ordering.append("-id" if ordering and ordering[-1].startswith("-") else "id")
        return qs.order_by(*ordering)


class AwareIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 datetime that must carry its UTC offset (DESIGN.md invariant 3)."""

    default_error_messages = {"naive": "Include a UTC offset, e.g. 2026-11-30T10:00:00Z."}

    def to_python(self, value):
        if isinstance(value, str) and value.strip():
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and parsed.utcoffset() is None:
                raise forms.ValidationError(self.error_messages["naive"], code="naive")
        return super().to_python(value)


class AwareIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    """``IsoDateTimeFilter`` that refuses a datetime without a UTC offset instead of guessing one."""

    field_class = AwareIsoDateTimeField


class StrippedModelChoiceField(ModelChoiceField):
    """A model choice (by slug, username, …) read without surrounding whitespace: ``"olivia "`` is ``olivia``."""

    def to_python(self, value):
        return super().to_python(value.strip() if isinstance(value, str) else value)


class StrippedModelChoiceFilter(django_filters.ModelChoiceFilter):
    """``ModelChoiceFilter`` whose value is stripped of surrounding whitespace before lookup;
    a value that still names nothing is a 400 ("Select a valid choice")."""

    field_class = StrippedModelChoiceField
