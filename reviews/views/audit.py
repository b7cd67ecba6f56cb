"""The audit log page: every audit record, newest first, filtered, in keyset pages."""

import django_filters
from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from loyalty.models import AuditRecord
from reviews.permissions import VIEW_AUDIT
from reviews.selectors.audit import AUDIT_PAGE_SIZE, audit_records_page

DATE_INPUT = forms.DateInput(attrs={"type": "date"})
INVALID_CURSOR = "That page link is not valid; showing the newest records."


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
    after = request.GET.get("after", "")
    page = audit_records_page(records, after=after)
    query = request.GET.copy()
    query.pop("after", None)
    first_query = query.urlencode()
    if page.next_cursor:
        query["after"] = page.next_cursor
    context = {
        "filters": filters,
        "rows": page.rows,
        "next_query": query.urlencode() if page.next_cursor else "",
        "first_query": first_query,
        "is_first_page": not after or not page.cursor_is_valid,
        "cursor_error": "" if page.cursor_is_valid else INVALID_CURSOR,
        "page_size": AUDIT_PAGE_SIZE,
    }
    return render(request, "reviews/audit_log.html", context)
