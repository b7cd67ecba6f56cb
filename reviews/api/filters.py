"""Query-string filters of the review API's list endpoints (django-filter)."""

import django_filters
from rest_framework.exceptions import ValidationError

from loyalty.api.filters import moment_is_set_filter
from predictions.behavior_clusters import ClusterRef
from predictions.ml.segments import RFM_SEGMENTS
from predictions.models import PredictionKind
from reviews.models import Review


class ReviewFilter(django_filters.FilterSet):
    route = django_filters.ChoiceFilter(choices=Review.Route.choices, help_text="Exact route.")
    state = django_filters.ChoiceFilter(choices=Review.State.choices, help_text="Exact state.")
    kind = django_filters.ChoiceFilter(choices=PredictionKind.choices, help_text="Exact kind.")
    tier = django_filters.CharFilter(help_text="The member's tier when routed, e.g. gold.")
    segment = django_filters.ChoiceFilter(
        field_name="rfm_segment",
        choices=[(info.code, info.name) for info in RFM_SEGMENTS],
        help_text="The member's RFM segment when scored, e.g. at_risk (predictions.ml.segments).",
    )
    cluster = django_filters.CharFilter(
        method="filter_cluster",
        help_text='A behavioral cluster as "<model version>-<number>" (a review\'s '
        "behavior_cluster.token): cluster numbers mean nothing across versions.",
    )
    min_confidence = django_filters.NumberFilter(
        field_name="confidence", lookup_expr="gte", help_text="Confidence at least this (0–1)."
    )
    max_confidence = django_filters.NumberFilter(
        field_name="confidence", lookup_expr="lte", help_text="Confidence at most this (0–1)."
    )
    in_backlog = django_filters.BooleanFilter(
        help_text="true: only pending reviews waiting in a queue's backlog (the queue is at its "
        "daily capacity); false: the others."
    )
    escalated = moment_is_set_filter(
        "escalated_at", help_text="true: only reviews an analyst escalated; false: only the others."
    )

    def filter_cluster(self, queryset, name, value):
        cluster = ClusterRef.parse(value)
        if cluster is None:
            raise ValidationError({"cluster": ['Give "<model version>-<number>", e.g. 12-3.']})
        return queryset.filter(
            prediction__model_version_id=cluster.version_id,
            prediction__behavior_cluster=cluster.number,
        )

    def filter_queryset(self, queryset):
        # A confidence filter would tell a blind item's confidence: it never lists them.
        data = self.form.cleaned_data
        if data.get("min_confidence") is not None or data.get("max_confidence") is not None:
            queryset = queryset.filter(is_blind=False)
        return super().filter_queryset(queryset)

    class Meta:
        model = Review
        fields = [
            "route",
            "state",
            "in_backlog",
            "kind",
            "tier",
            "segment",
            "cluster",
            "min_confidence",
            "max_confidence",
            "escalated",
        ]
