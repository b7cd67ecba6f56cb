"""The audit log page: every audit record, newest first, filtered, in keyset pages."""

from datetime import datetime

import django_filters
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.shortcuts import render
from django.utils.dateparse import parse_datetime

from loyalty.models import AuditRecord

VIEW_AUDIT = "loyalty.view_auditrecord"
PAGE_SIZE = 100
CURSOR_SEPARATOR = "_"
DATE_INPUT = forms.DateInput(attrs={"type": "date"})


class AuditRecordFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=AuditRecord.Kind.choices, empty_label="any kind")
    actor = django_filters.CharFilter(
        field_name="actor_name", lookup_expr="icontains", label="Actor"
    )
    subject = django_filters.CharFilter(lookup_expr="icontains", label="Subject contains")
    date_from = django_filters.DateFilter(
        field_name="occurred_at", lookup_expr="date__gte", label="From", widget=DATE_INPUT
    )
    date_to = django_filters.DateFilter(
        field_name="occurred_at", lookup_expr="date__lte", label="To", widget=DATE_INPUT
    )

    class Meta:
        model = AuditRecord
        fields = ["kind", "actor", "subject", "date_from", "date_to"]


@login_required
def audit_log(request):
    """Newest first (occurred_at desc, id desc); `after` is the last row of the page before."""
    if not request.user.has_perm(VIEW_AUDIT):
        raise PermissionDenied("Only an admin may read the audit log.")
    filters = AuditRecordFilter(
        request.GET, queryset=AuditRecord.objects.order_by("-occurred_at", "-id")
    )
    records = filters.qs if filters.is_valid() else AuditRecord.objects.none()
    cursor_error = ""
    cursor = request.GET.get("after", "")
    if cursor:
        position = _parse_cursor(cursor)
        if position is None:
            cursor_error = "That page link is not valid; showing the newest records."
        else:
            occurred_at, record_id = position
            records = records.filter(
                Q(occurred_at__lt=occurred_at) | Q(occurred_at=occurred_at, id__lt=record_id)
            )
    page = list(records[: PAGE_SIZE + 1])
    has_next = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("after", None)
    next_query = ""
    if has_next:
        last = page[-1]
        query["after"] = f"{last.occurred_at.isoformat()}{CURSOR_SEPARATOR}{last.pk}"
        next_query = query.urlencode()
    query.pop("after", None)
    return render(
        request,
        "reviews/audit_log.html",
        {
            "filters": filters,
            "rows": [
                {"record": record, "details": detail_lines(record.details)} for record in page
            ],
            "next_query": next_query,
            "first_query": query.urlencode(),
            "is_first_page": not cursor or bool(cursor_error),
            "cursor_error": cursor_error,
            "page_size": PAGE_SIZE,
        },
    )


def _parse_cursor(cursor: str) -> tuple[datetime, int] | None:
    moment, _, record_id = cursor.rpartition(CURSOR_SEPARATOR)
    try:
        occurred_at = parse_datetime(moment)
        return (occurred_at, int(record_id)) if occurred_at is not None else None
    except ValueError:
        return None


def detail_lines(details: dict | None) -> list[tuple[str, str]]:
    """Audit details as (key, value) lines a person reads: a before/after pair becomes one
    'old → new' line per changed field; nested values are flattened with dotted keys."""
    details = dict(details or {})
    lines: list[tuple[str, str]] = []
    before, after = details.get("before"), details.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        del details["before"], details["after"]
        for key in list(dict.fromkeys([*before, *after])):
            if before.get(key) != after.get(key):
                lines.append((key, f"{_readable(before.get(key))} → {_readable(after.get(key))}"))
        if not lines:
            lines.append(("changes", "none"))
    for key, value in details.items():
        lines.extend(_flatten(key, value))
    return lines


def _flatten(key: str, value) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [line for name, inner in value.items() for line in _flatten(f"{key}.{name}", inner)]
    return [(key, _readable(value))]


def _readable(value) -> str:
    if value is None or value == {} or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{name}: {_readable(inner)}" for name, inner in value.items())
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value)
    return str(value)
