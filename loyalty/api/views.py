"""API views: authenticate, check the role, validate with a serializer, call one service."""

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from loyalty.api.filters import MemberFilter
from loyalty.api.pagination import KeysetPagination
from loyalty.api.permissions import CanEraseMembers
from loyalty.api.schema import ACCESS_ERRORS
from loyalty.api.serializers import (
    ErasureOutputSerializer,
    ErrorOutputSerializer,
    EventBatchInputSerializer,
    EventBatchOutputSerializer,
    EventBatchRequestSerializer,
    EventOutputSerializer,
    MemberCreateInputSerializer,
    MemberOutputSerializer,
    MemberUpdateInputSerializer,
)
from loyalty.models import Event, Member
from loyalty.selectors import member_events, member_list
from loyalty.services.erasure import erase_member_by_external_id
from loyalty.services.events import EVENT_BATCH_LIMIT, record_event_batch
from loyalty.services.export import export_member_by_external_id
from loyalty.services.members import create_member, update_member

EXTERNAL_ID_PARAMETER = OpenApiParameter(
    "external_id", str, OpenApiParameter.PATH, description="The member's external id."
)
NOT_FOUND = OpenApiResponse(ErrorOutputSerializer, description="No member has this external id.")
INVALID = OpenApiResponse(
    description="Invalid input: an object of field name -> messages.",
)
MEMBER_UPDATE_RESPONSES = {
    200: MemberOutputSerializer,
    400: INVALID,
    **ACCESS_ERRORS,
    404: NOT_FOUND,
    409: OpenApiResponse(ErrorOutputSerializer, description="The member was erased."),
}


class MemberKeysetPagination(KeysetPagination):
    """Oldest member first."""

    ordering = ("id",)


class EventKeysetPagination(KeysetPagination):
    """Oldest event first; events at the same moment in id order."""

    ordering = ("occurred_at", "id")


class MemberListApi(GenericAPIView):
    """Members: list (GET, needs view_member) and create (POST, needs add_member)."""

    queryset = Member.objects.all()  # the role permission check reads the model from it
    serializer_class = MemberCreateInputSerializer  # for OPTIONS and the browsable API's form
    filterset_class = MemberFilter
    pagination_class = MemberKeysetPagination

    @extend_schema(
        operation_id="members_list",
        summary="List members",
        description="Oldest first, cursor-paginated. `age_band`, `region` and `attributes` "
        "appear only for users who may change members (admin, integrator).",
        responses={
            200: MemberOutputSerializer(many=True),
            400: INVALID,
            **ACCESS_ERRORS,
        },
    )
    def get(self, request):
        members = self.filter_queryset(member_list())
        page = self.paginate_queryset(members)
        output = MemberOutputSerializer(page, many=True, context={"request": request})
        return self.get_paginated_response(output.data)

    @extend_schema(
        operation_id="members_create",
        summary="Create a member",
        description="A second create with the same external id answers 409; change an "
        "existing member with PATCH. Consent given here is audited like a later change. The "
        "external id of an erased member answers 409 too, until an admin lifts the erasure's "
        "tombstone.",
        request=MemberCreateInputSerializer,
        responses={
            201: MemberOutputSerializer,
            400: INVALID,
            **ACCESS_ERRORS,
            409: OpenApiResponse(
                ErrorOutputSerializer,
                description="A member with this external id exists, or was erased.",
            ),
        },
    )
    def post(self, request):
        serializer = MemberCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        member = create_member(actor=request.user, **serializer.validated_data)
        output = MemberOutputSerializer(member, context={"request": request})
        return Response(output.data, status=status.HTTP_201_CREATED)


class MemberDetailApi(GenericAPIView):
    """One member: read (GET), replace (PUT) or change some fields (PATCH).

    An erased member keeps its row under a placeholder id with nothing personal left, so that
    systems holding copies learn of the erasure (`?erased=true` lists them); writes to it
    answer 409: update_member refuses them (MemberErasedError), for every caller.
    """

    queryset = Member.objects.all()
    serializer_class = MemberUpdateInputSerializer  # for OPTIONS and the browsable API's form
    lookup_field = "external_id"

    @extend_schema(
        operation_id="members_retrieve",
        summary="Read a member",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={
            200: MemberOutputSerializer,
            **ACCESS_ERRORS,
            404: NOT_FOUND,
        },
    )
    def get(self, request, external_id: str):
        output = MemberOutputSerializer(self.get_object(), context={"request": request})
        return Response(output.data)

    @extend_schema(
        operation_id="members_update",
        summary="Replace a member's fields",
        parameters=[EXTERNAL_ID_PARAMETER],
        request=MemberUpdateInputSerializer,
        responses=MEMBER_UPDATE_RESPONSES,
    )
    def put(self, request, external_id: str):
        return self._update(request, partial=False)

    @extend_schema(
        operation_id="members_partial_update",
        summary="Change some of a member's fields",
        parameters=[EXTERNAL_ID_PARAMETER],
        request=MemberUpdateInputSerializer(partial=True),
        responses=MEMBER_UPDATE_RESPONSES,
    )
    def patch(self, request, external_id: str):
        return self._update(request, partial=True)

    def _update(self, request, *, partial: bool) -> Response:
        member = self.get_object()
        serializer = MemberUpdateInputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        member = update_member(member=member, actor=request.user, data=serializer.validated_data)
        return Response(MemberOutputSerializer(member, context={"request": request}).data)


class MemberEventListApi(GenericAPIView):
    """A member's events, oldest first (GET, needs view_event)."""

    queryset = Event.objects.all()
    serializer_class = EventOutputSerializer
    pagination_class = EventKeysetPagination
    filter_backends: list = []

    @extend_schema(
        operation_id="members_events_list",
        summary="List a member's events",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={
            200: EventOutputSerializer(many=True),
            400: INVALID,
            **ACCESS_ERRORS,
            404: NOT_FOUND,
        },
    )
    def get(self, request, external_id: str):
        member = get_object_or_404(Member, external_id=external_id)
        page = self.paginate_queryset(member_events(member=member))
        return self.get_paginated_response(EventOutputSerializer(page, many=True).data)


class MemberEraseApi(APIView):
    """Erase a member's personal data and events (POST, needs erase_member)."""

    permission_classes = [CanEraseMembers]

    @extend_schema(
        operation_id="members_erase",
        summary="Erase a member",
        description="Deletes the member's events and everything derived from it (labeled "
        "examples), blanks its personal fields and what was derived from them (the features "
        "and explanations of its predictions, its reviews' notes), replaces its external id "
        "with a placeholder and writes a tombstone (a keyed digest of the former id) that "
        "refuses the id in creates, imports and events until an admin lifts it. Repeating the "
        "request with the same id answers 200 again with `already_erased: true` and changes "
        "nothing.",
        parameters=[EXTERNAL_ID_PARAMETER],
        request=None,
        responses={
            200: ErasureOutputSerializer,
            **ACCESS_ERRORS,
            404: NOT_FOUND,
        },
    )
    def post(self, request, external_id: str):
        result = erase_member_by_external_id(external_id=external_id, actor=request.user)
        return Response(ErasureOutputSerializer(result).data)


class MemberExportApi(APIView):
    """Everything held about one member, as JSON (GET, needs erase_member)."""

    permission_classes = [CanEraseMembers]

    @extend_schema(
        operation_id="members_export",
        summary="Export everything held about a member",
        description="One JSON object: `format` (1), `exported_at`, `member` (its fields), "
        "`events`, `audit_records` (about the member), `synthetic_truth`, "
        "`erasure_tombstone`, `predictions`, `reviews`, `decisions`, `labeled_examples` and "
        "`review_audit_records` (about its reviews); lists oldest first, times in ISO 8601, "
        "amounts as strings. Staff identities are left out. An erased member is found by "
        "its former external id too (through its tombstone) and its export holds what "
        "erasure kept. Each export is audited.",
        parameters=[EXTERNAL_ID_PARAMETER],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="The member's data."),
            **ACCESS_ERRORS,
            404: NOT_FOUND,
        },
    )
    def get(self, request, external_id: str):
        return Response(export_member_by_external_id(external_id=external_id, actor=request.user))


class EventBatchCreateApi(APIView):
    """Push up to EVENT_BATCH_LIMIT events in one request (POST, needs add_event)."""

    queryset = Event.objects.all()
    parser_classes = [JSONParser]
    # Up to EVENT_BATCH_LIMIT writes per request: a rate of its own besides the user's.
    throttle_scope = "events_batch"

    @extend_schema(
        operation_id="events_batch_create",
        summary="Push a batch of events",
        description=(
            f'Up to {EVENT_BATCH_LIMIT} events, as `{{"events": [...]}}` or as a bare JSON '
            "list. Every item is checked on its own: valid items are stored, invalid ones are "
            "listed in `errors` with their index and field errors. An event whose natural key "
            "(member, occurred_at, kind, session_id, product_id) is already stored, or repeated "
            "in the batch, counts as a duplicate and is stored once, so a retried batch is "
            "harmless. `occurred_at` must carry a zone offset; a naive time is rejected. "
            "Events of an erased member (its placeholder id or its former id) are rejected "
            "item by item.\n\n"
            "**200**: every item was valid (stored or duplicate). **207**: some items were "
            "rejected; the valid ones were stored. Both carry the same body. **400**: the batch "
            f"itself is unusable (not a list, empty, more than {EVENT_BATCH_LIMIT} items); "
            "nothing was stored."
        ),
        request=EventBatchRequestSerializer,
        responses={
            200: EventBatchOutputSerializer,
            207: EventBatchOutputSerializer,
            400: INVALID,
            **ACCESS_ERRORS,
        },
    )
    def post(self, request):
        batch = EventBatchInputSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        result = record_event_batch(actor=request.user, **batch.validated_data)
        answer = status.HTTP_207_MULTI_STATUS if result.rejected else status.HTTP_200_OK
        return Response(EventBatchOutputSerializer(result).data, status=answer)
