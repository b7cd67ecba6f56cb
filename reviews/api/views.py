"""Review API views: authenticate, check the role, validate with a serializer, call one service.

Visibility is the one rule of `reviews.permissions.visible_reviews_filter`, applied before
anything else on every route: analysts see the reviews routed to analysts, the auto-approved
ones (read-only) and what they escalated until an expert decides it; experts and admins see
every review; nobody sees an erased member's. A review the caller may not see answers 404,
exactly like an id that does not exist, so that no answer tells whether an id exists.
Deciding is the services' rule: analysts decide pending analyst items, experts any undecided
review, an auto-approval included (403 for a review the caller sees but may not decide).
"""

from django.db.models import Exists, OuterRef, QuerySet
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from loyalty.api.schema import ACCESS_ERRORS, UNAUTHENTICATED
from loyalty.api.serializers import ErrorOutputSerializer
from predictions.services.explanations import ensure_explanation
from reviews.api.filters import ReviewFilter
from reviews.api.pagination import ReviewKeysetPagination
from reviews.api.serializers import (
    ApproveInputSerializer,
    BlindAnswerInputSerializer,
    BlindAnswerOutputSerializer,
    DecisionOutputSerializer,
    EscalateInputSerializer,
    OverrideInputSerializer,
    ReviewDetailOutputSerializer,
    ReviewOutputSerializer,
    model_hidden,
)
from reviews.exceptions import ReviewNotFound
from reviews.models import BlindAnswer, Decision, Review
from reviews.permissions import DECIDE, visible_reviews
from reviews.services.blind import commit_blind_answer
from reviews.services.decisions import decide_review, escalate_review

REVIEW_ID_PARAMETER = OpenApiParameter(
    "review_id", int, OpenApiParameter.PATH, description="The review's id."
)
NOT_THEIRS = OpenApiResponse(
    ErrorOutputSerializer,
    description="The user's role may not do this: an analyst deciding an auto-approved "
    "review, which they may read.",
)
NOT_FOUND = OpenApiResponse(
    ErrorOutputSerializer,
    description="No review has this id that the caller may see (an expert's item asked for by "
    "an analyst answers exactly like an unknown id).",
)
INVALID = OpenApiResponse(
    description="Invalid input: an object of field name -> messages (or `detail`).",
)
CONFLICT = OpenApiResponse(
    ErrorOutputSerializer,
    description="The review was already decided differently; the message says how and by whom.",
)

_REVIEW_RELATIONS = (
    "member",
    "prediction",
    "prediction__recommended_action",
    "action_prediction",
    "action_prediction__recommended_action",
    "recommended_action",
    "escalated_by",
    "escalation_reason",
    "decision",
    "decision__reason",
    "decision__action",
    "decision__settled_action",
    "decision__decided_by",
)


class CanDecideReviews(BasePermission):
    """Deciding and escalating need reviews.decide_review (analysts and experts)."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(DECIDE))


def _reviews() -> QuerySet[Review]:
    answered = BlindAnswer.objects.filter(review=OuterRef("pk"))
    return Review.objects.select_related(*_REVIEW_RELATIONS).annotate(
        blind_answered=Exists(answered)
    )


def _visible_review(user, review_id: int, reviews: QuerySet[Review]) -> Review:
    """The review if the user may see it; ReviewNotFound (404) for an unknown id and for one
    they may not see alike."""
    try:
        return visible_reviews(user, reviews).get(pk=review_id)
    except Review.DoesNotExist as error:
        raise ReviewNotFound("No such review.") from error


def _visible_and_valid(request, review_id: int, serializer_class) -> tuple[Review, dict]:
    """The review and the validated input. Visibility first: nothing about a review the caller
    may not see, not even whether the input would have been valid for it."""
    review = _visible_review(request.user, review_id, Review.objects.all())
    serializer = serializer_class(data=request.data, context={"kind": review.decision_kind})
    serializer.is_valid(raise_exception=True)
    return review, serializer.validated_data


class ReviewListApi(GenericAPIView):
    """The reviews a user may see, highest priority first (GET, needs view_review)."""

    queryset = Review.objects.all()  # the role permission check reads the model from it
    serializer_class = ReviewOutputSerializer
    filterset_class = ReviewFilter
    pagination_class = ReviewKeysetPagination

    @extend_schema(
        operation_id="reviews_list",
        summary="List reviews",
        description="Highest priority first, then oldest; keyset-paginated on (priority, id), "
        "so a page boundary inside equal priorities neither skips nor repeats a review. "
        "Analysts see reviews routed to analysts and auto-approved ones (read-only); experts "
        "and admins see all.",
        responses={
            200: ReviewOutputSerializer(many=True),
            400: INVALID,
            **ACCESS_ERRORS,
        },
    )
    def get(self, request):
        reviews = self.filter_queryset(visible_reviews(request.user, _reviews()))
        page = self.paginate_queryset(reviews)
        return self.get_paginated_response(ReviewOutputSerializer(page, many=True).data)


class ReviewDetailApi(GenericAPIView):
    """One review with its prediction's explanation (GET, needs view_review; analysts their
    route's and auto-approved ones). An explanation not computed yet is computed and stored
    first, after the visibility check."""

    queryset = Review.objects.all()
    serializer_class = ReviewDetailOutputSerializer
    filter_backends: list = []

    @extend_schema(
        operation_id="reviews_retrieve",
        summary="Read a review",
        description="The review and its prediction with the prediction's SHAP explanation "
        "(the list leaves explanations out).",
        parameters=[REVIEW_ID_PARAMETER],
        responses={
            200: ReviewDetailOutputSerializer,
            **ACCESS_ERRORS,
            404: NOT_FOUND,
        },
    )
    def get(self, request, review_id: int):
        review = _visible_review(request.user, review_id, _reviews())
        if not model_hidden(review):  # a blind item explains nothing until answered
            ensure_explanation(prediction=review.prediction)
        return Response(ReviewDetailOutputSerializer(review).data)


class _DecideApi(GenericAPIView):
    """Approve or override: 201 with the new decision, 200 with the same decision when the
    identical request is repeated, 409 when a different decision exists."""

    queryset = Review.objects.all()
    permission_classes = [CanDecideReviews]
    filter_backends: list = []
    serializer_class = ApproveInputSerializer  # for OPTIONS and the browsable API's form
    verdict: str

    def post(self, request, review_id: int):
        review, data = _visible_and_valid(request, review_id, self.serializer_class)
        decision, created = decide_review(
            review_id=review.pk, actor=request.user, verdict=self.verdict, **data
        )
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(DecisionOutputSerializer(decision).data, status=answer)


def _decide_schema(*, verdict: str, request, description: str):
    return extend_schema_view(
        post=extend_schema(
            operation_id=f"reviews_{verdict}",
            summary=f"{verdict.title()} a review",
            description=description + " Analysts decide analyst items only (403 otherwise).",
            parameters=[REVIEW_ID_PARAMETER],
            request=request,
            responses={
                200: DecisionOutputSerializer,
                201: DecisionOutputSerializer,
                400: INVALID,
                401: UNAUTHENTICATED,
                403: NOT_THEIRS,
                404: NOT_FOUND,
                409: CONFLICT,
            },
        )
    )


@_decide_schema(
    verdict=Decision.Verdict.APPROVE,
    request=ApproveInputSerializer,
    description="Accepts the model's answer. **201**: decided now. **200**: the identical "
    "approval was made before; its decision is returned and nothing changes. **409**: the "
    "review was decided otherwise.",
)
class ReviewApproveApi(_DecideApi):
    """Accept what the model said (POST, needs decide_review)."""

    serializer_class = ApproveInputSerializer
    verdict = Decision.Verdict.APPROVE


@_decide_schema(
    verdict=Decision.Verdict.OVERRIDE,
    request=OverrideInputSerializer,
    description="Replaces the model's answer: `churn_label` for a churn review, "
    "`action_code` for a next-action review (the other one must be absent). **201**: "
    "decided now. **200**: the identical override was made before; its decision is "
    "returned. **409**: the review was decided otherwise.",
)
class ReviewOverrideApi(_DecideApi):
    """Replace the model's answer (POST, needs decide_review)."""

    serializer_class = OverrideInputSerializer
    verdict = Decision.Verdict.OVERRIDE


class ReviewBlindAnswerApi(GenericAPIView):
    """Commit your own answer to a blind item (POST, needs decide_review)."""

    queryset = Review.objects.all()
    permission_classes = [CanDecideReviews]
    filter_backends: list = []
    serializer_class = BlindAnswerInputSerializer

    @extend_schema(
        operation_id="reviews_blind_answer",
        summary="Answer a blind review",
        description="A blind item (`is_blind`) withholds the model's answer until someone "
        "commits their own: the churn call and, for a case or a next-action item, an action. "
        "Answers with the stored answer beside the model's call; the review then reads in "
        "full and can be approved or overridden. The answer is never changed. **201**: "
        "stored now. **200**: the identical answer was stored before. **409**: the item is "
        "not blind, not awaiting a decision, or answered otherwise.",
        parameters=[REVIEW_ID_PARAMETER],
        request=BlindAnswerInputSerializer,
        responses={
            200: BlindAnswerOutputSerializer,
            201: BlindAnswerOutputSerializer,
            400: INVALID,
            401: UNAUTHENTICATED,
            403: NOT_THEIRS,
            404: NOT_FOUND,
            409: OpenApiResponse(
                ErrorOutputSerializer,
                description="Not blind, not awaiting a decision, or answered otherwise.",
            ),
        },
    )
    def post(self, request, review_id: int):
        review, data = _visible_and_valid(request, review_id, BlindAnswerInputSerializer)
        existed = BlindAnswer.objects.filter(review=review).exists()
        answer = commit_blind_answer(review_id=review.pk, user=request.user, **data)
        answer_status = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return Response(BlindAnswerOutputSerializer(answer).data, status=answer_status)


class ReviewEscalateApi(GenericAPIView):
    """Send an analyst's item to the experts (POST, needs decide_review)."""

    queryset = Review.objects.all()
    permission_classes = [CanDecideReviews]
    filter_backends: list = []
    serializer_class = EscalateInputSerializer

    @extend_schema(
        operation_id="reviews_escalate",
        summary="Escalate a review to the experts",
        description="Routes a pending analyst item to the experts with the reason, a comment "
        "and what the analyst would have done; answers with the review, now routed to "
        "experts. Repeating the request with the same reason answers 200 again and changes "
        "nothing. **409**: the review is not a pending analyst item.",
        parameters=[REVIEW_ID_PARAMETER],
        request=EscalateInputSerializer,
        responses={
            200: ReviewOutputSerializer,
            400: INVALID,
            **ACCESS_ERRORS,
            404: NOT_FOUND,
            409: OpenApiResponse(
                ErrorOutputSerializer, description="The review is not a pending analyst item."
            ),
        },
    )
    def post(self, request, review_id: int):
        review, data = _visible_and_valid(request, review_id, EscalateInputSerializer)
        escalate_review(review_id=review.pk, actor=request.user, **data)
        return Response(ReviewOutputSerializer(_reviews().get(pk=review.pk)).data)
