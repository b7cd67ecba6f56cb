"""Learning API. Policy tests (admins): list and start tests, read a test with its readout,
end it by adopting one version. Fairness per protected group (admins, experts). Thin: check
the role, validate, call one service or selector."""

from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from learning.api.serializers import (
    ActionFairnessOutputSerializer,
    FairnessOutputSerializer,
    FairnessQuerySerializer,
    PolicyTestEndInputSerializer,
    PolicyTestOutputSerializer,
    PolicyTestReadoutOutputSerializer,
    PolicyTestStartInputSerializer,
)
from learning.fairness import FAIRNESS_PERMISSION, kind_fairness
from learning.policy_test_readout import policy_test_readout
from loyalty.api.schema import ACCESS_ERRORS
from loyalty.api.serializers import ErrorOutputSerializer
from predictions.models import PredictionKind
from reviews.exceptions import PolicyTestNotFound
from reviews.models import PolicyExperiment
from reviews.permissions import MANAGE_POLICY
from reviews.selectors.experiments import policy_tests
from reviews.services.experiments import end_policy_test, start_policy_test

TEST_ID = OpenApiParameter("test_id", int, OpenApiParameter.PATH)
INVALID = OpenApiResponse(description="Invalid input: field name -> messages (or `detail`).")
NOT_FOUND = OpenApiResponse(ErrorOutputSerializer, description="No such policy test.")
RUNNING = OpenApiResponse(
    ErrorOutputSerializer, description="A policy test of the kind is running already."
)
ENDED = OpenApiResponse(
    ErrorOutputSerializer, description="The test ended already, adopting the other arm."
)


class CanManagePolicy(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and request.user.has_perm(MANAGE_POLICY)


def _test(test_id: int) -> PolicyExperiment:
    test = policy_tests().filter(pk=test_id).first()
    if test is None:
        raise PolicyTestNotFound(f"No policy test {test_id}.")
    return test


class PolicyTestListApi(GenericAPIView):
    permission_classes = [CanManagePolicy]
    pagination_class = None
    queryset = PolicyExperiment.objects.all()  # what the schema's list response is made of
    serializer_class = PolicyTestOutputSerializer

    @extend_schema(
        operation_id="policy_tests_list",
        summary="List policy tests",
        description="Every A/B test of two escalation-policy versions, newest first.",
        responses={200: PolicyTestOutputSerializer(many=True), **ACCESS_ERRORS},
    )
    def get(self, request):
        return Response(PolicyTestOutputSerializer(policy_tests(), many=True).data)

    @extend_schema(
        operation_id="policy_tests_start",
        summary="Start a policy test",
        description="The version in force becomes the champion; `challenger` (the changes to "
        "it) becomes a new version that routes `challenger_share` of the members, by a stable "
        "hash of their id, until `ends_at` or `max_decisions` person decisions. One running "
        "test per kind; the kind's thresholds cannot change while it runs.",
        request=PolicyTestStartInputSerializer,
        responses={201: PolicyTestOutputSerializer, 400: INVALID, 409: RUNNING, **ACCESS_ERRORS},
    )
    def post(self, request):
        serializer = PolicyTestStartInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        test = start_policy_test(
            kind=data["kind"],
            challenger_settings=data["challenger_settings"],
            share=data["challenger_share"],
            hypothesis=data["hypothesis"],
            actor=request.user,
            ends_at=data.get("ends_at"),
            max_decisions=data.get("max_decisions"),
        )
        body = PolicyTestOutputSerializer(_test(test.pk)).data
        return Response(body, status=status.HTTP_201_CREATED)


class PolicyTestDetailApi(GenericAPIView):
    permission_classes = [CanManagePolicy]
    serializer_class = PolicyTestReadoutOutputSerializer

    @extend_schema(
        operation_id="policy_tests_retrieve",
        summary="A policy test with its readout",
        description="Per arm: items to people, person-minutes, error among auto-approvals and "
        "the outcome rate, each with its 95 % interval and n; the challenger − champion "
        "difference of the outcome rate, and the outcomes still needed to detect a 2-point "
        "difference.",
        parameters=[TEST_ID],
        responses={200: PolicyTestReadoutOutputSerializer, 404: NOT_FOUND, **ACCESS_ERRORS},
    )
    def get(self, request, test_id: int):
        readout = policy_test_readout(_test(test_id))
        return Response(PolicyTestReadoutOutputSerializer(readout).data)


class PolicyTestEndApi(GenericAPIView):
    permission_classes = [CanManagePolicy]
    serializer_class = PolicyTestEndInputSerializer

    @extend_schema(
        operation_id="policy_tests_end",
        summary="End a policy test by adopting one version",
        description="The adopted arm's settings become the next version (audited) and the "
        "undecided reviews are re-routed under it. The same request again answers the ended "
        "test; adopting the other arm after the end answers 409.",
        parameters=[TEST_ID],
        request=PolicyTestEndInputSerializer,
        responses={
            200: PolicyTestOutputSerializer,
            400: INVALID,
            404: NOT_FOUND,
            409: ENDED,
            **ACCESS_ERRORS,
        },
    )
    def post(self, request, test_id: int):
        serializer = PolicyTestEndInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ended = end_policy_test(test_id=test_id, actor=request.user, **serializer.validated_data)
        return Response(PolicyTestOutputSerializer(_test(ended.pk)).data)


class CanSeeFairness(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and request.user.has_perm(FAIRNESS_PERMISSION)


OUTPUT_OF_KIND = {
    PredictionKind.CHURN.value: FairnessOutputSerializer,
    PredictionKind.NEXT_ACTION.value: ActionFairnessOutputSerializer,
}
FAIRNESS_OUTPUT = PolymorphicProxySerializer(
    component_name="FairnessOfKind",
    serializers=OUTPUT_OF_KIND,
    resource_type_field_name="kind",
)


class FairnessApi(GenericAPIView):
    permission_classes = [CanSeeFairness]
    pagination_class = None
    serializer_class = FairnessOutputSerializer

    @extend_schema(
        operation_id="fairness_retrieve",
        summary="Fairness per protected group",
        description="The figures of the Fairness page: for the decisions of the limits' "
        "window, per group of age band, region (protected) and tier. Churn: the share called "
        "churn, true and false positive rates against outcomes for the model and the final "
        "decisions, the model's calibration, and people's overrides (all, toward churn, toward "
        "stay); next_action: the share offered each action for the model and the final "
        "decisions, and how often people changed the action. Each rate with its 95 % interval "
        "and n (a rate on fewer items than the minimum group size is `too_small`, its value "
        "null); the comparisons between groups (demographic parity, per action for next "
        "actions; equalized odds and calibration for churn; overrides: difference and ratio "
        "with intervals) and the limits they breach. Admins and experts only.",
        parameters=[FairnessQuerySerializer],
        responses={200: FAIRNESS_OUTPUT, 400: INVALID, **ACCESS_ERRORS},
    )
    def get(self, request):
        query = FairnessQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        kind = query.validated_data["kind"]
        fairness = kind_fairness(kind)
        return Response(OUTPUT_OF_KIND[kind](fairness).data)
