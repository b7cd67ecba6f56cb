"""Query-string filters of the API's list endpoints (django-filter)."""

import django_filters

from loyalty.models import Member


def moment_is_set_filter(field_name: str, *, help_text: str) -> django_filters.BooleanFilter:
    """`true`: rows whose moment `field_name` is set (it happened); `false`: rows where it is
    empty. Spelled as an excluded `isnull`, so that `true` means set, not empty."""
    return django_filters.BooleanFilter(
        field_name=field_name, lookup_expr="isnull", exclude=True, help_text=help_text
    )


class MemberFilter(django_filters.FilterSet):
    tier = django_filters.CharFilter(help_text="Exact tier, e.g. gold.")
    consent_profiling = django_filters.BooleanFilter(
        help_text="true: members who consent to profiling; false: those who do not."
    )
    consent_marketing = django_filters.BooleanFilter(
        help_text="true: members who consent to marketing; false: those who do not."
    )
    erased = moment_is_set_filter(
        "erased_at", help_text="true: only erased members; false: only members not erased."
    )

    class Meta:
        model = Member
        fields = ["tier", "consent_profiling", "consent_marketing", "erased"]
