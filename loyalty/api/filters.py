"""Query-string filters of the API's list endpoints (django-filter)."""

import django_filters

from loyalty.models import Member


class MemberFilter(django_filters.FilterSet):
    tier = django_filters.CharFilter(help_text="Exact tier, e.g. gold.")
    consent_profiling = django_filters.BooleanFilter(
        help_text="true: members who consent to profiling; false: those who do not."
    )
    erased = django_filters.BooleanFilter(
        field_name="erased_at",
        lookup_expr="isnull",
        exclude=True,
        help_text="true: only erased members; false: only members not erased.",
    )

    class Meta:
        model = Member
        fields = ["tier", "consent_profiling", "erased"]
