"""The Review quality figures as JSON (`GET /api/review-quality/`): what the page shows, in the
same scope (a reviewer their own figures, experts and admins everyone's). Thin: the figures
are `learning.review_quality` and `learning.blind_agreement`."""

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from learning.api.serializers import DifferenceOutputSerializer, EstimateOutputSerializer
from learning.blind_agreement import RUBBER_STAMP_MARGIN, blind_agreement
from learning.quality_stats import SMALL_SAMPLE
from learning.review_quality import GROUPINGS, quality_scope, review_quality
from loyalty.api.schema import ACCESS_ERRORS


class CallScoresOutputSerializer(serializers.Serializer):
    accuracy = EstimateOutputSerializer()
    balanced_accuracy = EstimateOutputSerializer()
    recall = EstimateOutputSerializer(help_text="Churners called churn / churners.")
    specificity = EstimateOutputSerializer()
    precision = EstimateOutputSerializer()


class GroupOutputSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    n = serializers.IntegerField(source="scores.n")
    small_sample = serializers.BooleanField(source="scores.is_small")
    person = CallScoresOutputSerializer(source="scores.person")
    model = CallScoresOutputSerializer(
        source="scores.model", help_text="The model's calls on the same items."
    )
    override_precision = EstimateOutputSerializer(
        source="scores.override_precision",
        help_text="Where the person's call differed from the model's: the share they were right.",
    )


class BlindOutputSerializer(serializers.Serializer):
    reviewer = serializers.CharField()
    shown_agreement = EstimateOutputSerializer(source="scores.shown_agreement")
    blind_agreement = EstimateOutputSerializer(source="scores.blind_agreement")
    gap = DifferenceOutputSerializer(source="scores.gap", help_text="shown − blind agreement.")
    blind_accuracy = EstimateOutputSerializer(source="scores.blind_accuracy")
    model_accuracy = EstimateOutputSerializer(
        source="scores.model_accuracy", help_text="The model on the blind answers' items."
    )
    shown_accuracy = EstimateOutputSerializer(source="scores.shown_accuracy")
    revisions = EstimateOutputSerializer(
        source="scores.revisions", help_text="Decisions that changed the person's blind call."
    )
    small_sample = serializers.BooleanField(source="scores.is_small")
    flagged_rubber_stamping = serializers.BooleanField(source="scores.flagged")


class ReviewQualityOutputSerializer(serializers.Serializer):
    scope = serializers.ChoiceField(choices=["everyone", "own"])
    small_sample_below = serializers.IntegerField()
    rubber_stamp_margin = serializers.FloatField(
        help_text="A reviewer is flagged when both agreements rest on at least "
        "small_sample_below items and the gap's lower bound is above this."
    )
    overall = GroupOutputSerializer()
    reviewer = GroupOutputSerializer(many=True)
    route = GroupOutputSerializer(many=True)
    reason = GroupOutputSerializer(many=True)
    model_version = GroupOutputSerializer(many=True)
    month = GroupOutputSerializer(many=True)
    blind = BlindOutputSerializer(many=True, help_text="Agreement with the model, shown vs blind.")
    disagreement_count = serializers.IntegerField()


class ReviewQualityApi(GenericAPIView):
    """People's churn calls against observed outcomes beside the model's (GET; reviewers
    their own, experts and admins everyone's)."""

    permission_classes = [IsAuthenticated]
    serializer_class = ReviewQualityOutputSerializer
    pagination_class = None

    @extend_schema(
        operation_id="review_quality",
        summary="Review quality",
        description="What the Review quality page shows: each reviewer's, route's, reason's, "
        "model version's and month's churn calls against the outcomes that followed, beside "
        "the model's on the same items, with Wilson intervals and n; and agreement with the "
        "model when shown vs blind, with the rubber-stamping flag. An analyst gets their own "
        "figures (`scope: own`).",
        responses={200: ReviewQualityOutputSerializer, **ACCESS_ERRORS},
    )
    def get(self, request):
        scope = quality_scope(request.user)
        if scope is None:
            raise PermissionDenied("Only reviewers, experts and admins may see review quality.")
        quality = review_quality(request.user, scope)
        data = {
            "scope": scope,
            "small_sample_below": SMALL_SAMPLE,
            "rubber_stamp_margin": RUBBER_STAMP_MARGIN,
            "overall": {"key": "all", "label": "All", "scores": quality.overall},
            **{name: quality.groups[name] for name in GROUPINGS},
            "month": quality.by_month,
            "blind": blind_agreement(request.user, scope),
            "disagreement_count": quality.disagreement_count,
        }
        return Response(ReviewQualityOutputSerializer(data).data)
