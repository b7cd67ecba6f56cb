"""Integrations API: the decision feed (what integrators pull), a decision's lineage (people
who may read the decision), the auditors' lineage export (admins) and webhook endpoints
(admins). Thin: check the role, validate, call one service."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from integrations import exports
from integrations.api.serializers import (
    DecisionFeedOutputSerializer,
    DecisionFeedQuerySerializer,
    DecisionLineageOutputSerializer,
    LineageExportQuerySerializer,
    WebhookEndpointInputSerializer,
    WebhookEndpointOutputSerializer,
    WebhookEndpointUpdateInputSerializer,
    WebhookEndpointWithSecretOutputSerializer,
)
from integrations.lineage import decision_lineage, may_read_lineage
from integrations.models import WebhookEndpoint
from integrations.services import endpoints
from integrations.services.feed import decision_feed
from integrations.services.lineage_export import EXPORT_PERMISSION, export_lineages
from loyalty.api.schema import ACCESS_ERRORS
from loyalty.api.serializers import ErrorOutputSerializer
from reviews.permissions import VIEW_DECISION

ENDPOINT_ID = OpenApiParameter("endpoint_id", int, OpenApiParameter.PATH)
INVALID = OpenApiResponse(description="Invalid input: field name -> messages (or `detail`).")
NOT_FOUND = OpenApiResponse(ErrorOutputSerializer, description="No such webhook endpoint.")
DECISION_ID = OpenApiParameter("decision_id", int, OpenApiParameter.PATH)
NO_DECISION = OpenApiResponse(
    ErrorOutputSerializer, description="No such decision, or one you may not see: alike."
)


class CanReadDecisions(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and request.user.has_perm(VIEW_DECISION)


class CanReadLineage(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and may_read_lineage(request.user)


class CanExportLineage(BasePermission):
    def has_permission(self, request, view) -> bool:
        return request.user.is_authenticated and request.user.has_perm(EXPORT_PERMISSION)


class FirstRenderer(BaseContentNegotiation):
    """JSON for errors whatever the client accepts: the file itself is streamed as it is."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class CanManageEndpoints(BasePermission):
    def has_permission(self, request, view) -> bool:
        user = request.user
        return user.is_authenticated and user.has_perm(endpoints.MANAGE_PERMISSION)


class DecisionFeedApi(GenericAPIView):
    """Every decision, human and automatic, held out or not, oldest first (GET)."""

    permission_classes = [CanReadDecisions]
    pagination_class = None

    @extend_schema(
        operation_id="decisions_feed",
        summary="Pull decisions",
        description="Decisions in feed order. Keep `next_since` and ask again with "
        "`since=<next_since>`: a decision that commits late still comes after the ones you "
        "have, so none is missed or repeated. Analysts see decisions on the reviews they can "
        "read; integrators every decision.",
        parameters=[DecisionFeedQuerySerializer],
        responses={200: DecisionFeedOutputSerializer, 400: INVALID, **ACCESS_ERRORS},
    )
    def get(self, request):
        query = DecisionFeedQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = decision_feed(request.user, **query.validated_data)
        return Response(DecisionFeedOutputSerializer(page).data)


class DecisionLineageApi(GenericAPIView):
    """One decision's whole story (GET), for whoever may read the decision on the pages."""

    permission_classes = [CanReadLineage]
    pagination_class = None
    serializer_class = DecisionLineageOutputSerializer

    @extend_schema(
        operation_id="decisions_lineage",
        summary="A decision's lineage",
        description="The member (pseudonymous id), the events window the features read, each "
        "prediction with its model version (data fingerprint, metrics, artifact checksums), "
        "features and explanation, the policy version and rule that routed it, every person "
        "who touched it, the decision, its outbound events and deliveries, its labeled "
        "examples and the observed outcome. Analysts read the decisions of reviews they may "
        "see, experts and admins every one; an erased member's are no one's.",
        parameters=[DECISION_ID],
        responses={200: DecisionLineageOutputSerializer, 404: NO_DECISION, **ACCESS_ERRORS},
    )
    def get(self, request, decision_id: int):
        document = decision_lineage(request.user, decision_id=decision_id)
        if document is None:
            return Response({"detail": "No such decision."}, status=404)
        return Response(document)


class DecisionLineageExportApi(GenericAPIView):
    """The lineages of the decisions made in a date range, streamed (GET; admins, audited)."""

    permission_classes = [CanExportLineage]
    pagination_class = None
    content_negotiation_class = FirstRenderer

    @extend_schema(
        operation_id="decisions_lineage_export",
        summary="Export decision lineages",
        description="Every decision made from `start` to `end` (exclusive), oldest first: "
        "JSON Lines (one lineage per line, as `GET /api/decisions/{id}/lineage/` gives it) or "
        "CSV (the flat part; a cell starting with =, +, -, @, a tab or a carriage return is "
        "prefixed with '). Streamed. Each export is written to the audit trail.",
        parameters=[LineageExportQuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="JSONL"),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV"),
            400: INVALID,
            **ACCESS_ERRORS,
        },
    )
    def get(self, request):
        query = LineageExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        made = export_lineages(actor=request.user, **query.validated_data)
        return exports.streamed_file(
            made.lines, content_type=made.content_type, filename=made.filename
        )


class WebhookEndpointListApi(GenericAPIView):
    permission_classes = [CanManageEndpoints]
    pagination_class = None
    queryset = WebhookEndpoint.objects.all()  # what the schema's list response is made of
    serializer_class = WebhookEndpointOutputSerializer

    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="List webhook endpoints",
        responses={200: WebhookEndpointOutputSerializer(many=True), **ACCESS_ERRORS},
    )
    def get(self, request):
        rows = WebhookEndpoint.objects.order_by("pk")
        return Response(WebhookEndpointOutputSerializer(rows, many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Add a webhook endpoint",
        description="Answers with the signing secret, shown this once only.",
        request=WebhookEndpointInputSerializer,
        responses={201: WebhookEndpointWithSecretOutputSerializer, 400: INVALID, **ACCESS_ERRORS},
    )
    def post(self, request):
        data = _valid(request, WebhookEndpointInputSerializer)
        made = endpoints.create_endpoint(actor=request.user, **data)
        return Response(_with_secret(made), status=status.HTTP_201_CREATED)


class WebhookEndpointDetailApi(GenericAPIView):
    permission_classes = [CanManageEndpoints]
    serializer_class = WebhookEndpointOutputSerializer

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        parameters=[ENDPOINT_ID],
        responses={200: WebhookEndpointOutputSerializer, 404: NOT_FOUND, **ACCESS_ERRORS},
    )
    def get(self, request, endpoint_id: int):
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first()
        if endpoint is None:
            return Response({"detail": "No such webhook endpoint."}, status=404)
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        parameters=[ENDPOINT_ID],
        request=WebhookEndpointUpdateInputSerializer,
        responses={
            200: WebhookEndpointOutputSerializer,
            400: INVALID,
            404: NOT_FOUND,
            **ACCESS_ERRORS,
        },
    )
    def patch(self, request, endpoint_id: int):
        data = _valid(request, WebhookEndpointUpdateInputSerializer, partial=True)
        endpoint = endpoints.update_endpoint(actor=request.user, endpoint_id=endpoint_id, **data)
        return Response(WebhookEndpointOutputSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        parameters=[ENDPOINT_ID],
        responses={204: None, 404: NOT_FOUND, **ACCESS_ERRORS},
    )
    def delete(self, request, endpoint_id: int):
        endpoints.delete_endpoint(actor=request.user, endpoint_id=endpoint_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookEndpointRotateApi(GenericAPIView):
    permission_classes = [CanManageEndpoints]
    serializer_class = WebhookEndpointWithSecretOutputSerializer

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        summary="Rotate an endpoint's signing secret",
        description="A new secret, shown this once; the previous one keeps signing beside it "
        "for the overlap (24 hours by default), so the receiver can switch without a gap.",
        parameters=[ENDPOINT_ID],
        request=None,
        responses={200: WebhookEndpointWithSecretOutputSerializer, 404: NOT_FOUND, **ACCESS_ERRORS},
    )
    def post(self, request, endpoint_id: int):
        made = endpoints.rotate_secret(actor=request.user, endpoint_id=endpoint_id)
        return Response(_with_secret(made))


def _valid(request, serializer_class, *, partial: bool = False) -> dict:
    serializer = serializer_class(data=request.data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _with_secret(made: endpoints.EndpointWithSecret) -> dict:
    return {**WebhookEndpointOutputSerializer(made.endpoint).data, "secret": made.secret}
