"""The webhooks in the OpenAPI document (OpenAPI 3.1 `webhooks`): one per event type, each
body a versioned envelope (`<Type>WebhookV1`) whose `data` has the type's own schema."""

from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from integrations.api import serializers as shapes
from loyalty import outbox

DATA_SHAPES = {
    outbox.DECISION_CREATED: shapes.DecisionEventSerializer,
    outbox.DECISION_HELD_OUT: shapes.DecisionEventSerializer,
    outbox.REVIEW_ESCALATED: shapes.EscalationEventSerializer,
    outbox.MEMBER_ERASED: shapes.MemberErasedEventSerializer,
    outbox.MEMBER_CONSENT_WITHDRAWN: shapes.ConsentWithdrawnEventSerializer,
    outbox.MODEL_PROMOTED: shapes.ModelPromotedEventSerializer,
    outbox.AUTOMATION_PAUSED: shapes.AutomationEventSerializer,
    outbox.AUTOMATION_RESUMED: shapes.AutomationEventSerializer,
}
HEADERS = (
    "Headers (Standard Webhooks): `webhook-id` (the event's id, the same on every retry: "
    "deduplicate on it), `webhook-timestamp` (Unix seconds of this attempt) and "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256>` of `id.timestamp.body` with the endpoint's "
    "secret; two signatures, space-separated, while a rotated secret overlaps)."
)


def _envelope(event_type: str) -> type[serializers.Serializer]:
    name = "".join(part.title() for part in event_type.replace(".", "_").split("_"))
    return type(
        f"{name}WebhookV1",
        (shapes.WebhookEventSerializer,),
        {"data": DATA_SHAPES[event_type](), "__module__": __name__},
    )


def _webhook(event_type: str) -> OpenApiWebhook:
    return OpenApiWebhook(
        name=event_type,
        decorator=extend_schema(
            summary=outbox.EVENT_TYPES[event_type],
            description=HEADERS,
            request=_envelope(event_type),
            responses={
                200: OpenApiResponse(description="Any 2xx: received. Anything else is retried.")
            },
        ),
    )


# One name per webhook: SPECTACULAR_SETTINGS["WEBHOOKS"] lists them as import strings.
DECISION_CREATED = _webhook(outbox.DECISION_CREATED)
DECISION_HELD_OUT = _webhook(outbox.DECISION_HELD_OUT)
REVIEW_ESCALATED = _webhook(outbox.REVIEW_ESCALATED)
MEMBER_ERASED = _webhook(outbox.MEMBER_ERASED)
MEMBER_CONSENT_WITHDRAWN = _webhook(outbox.MEMBER_CONSENT_WITHDRAWN)
MODEL_PROMOTED = _webhook(outbox.MODEL_PROMOTED)
AUTOMATION_PAUSED = _webhook(outbox.AUTOMATION_PAUSED)
AUTOMATION_RESUMED = _webhook(outbox.AUTOMATION_RESUMED)
