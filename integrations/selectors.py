"""Reads of the integrations pages: endpoints, and the delivery log a page at a time."""

from dataclasses import dataclass

from integrations.models import Delivery, DeliveryAttempt, WebhookEndpoint

LOG_PAGE = 50


@dataclass(frozen=True)
class DeliveryLogPage:
    rows: list[Delivery]
    next_before: int | None


def endpoints():
    return WebhookEndpoint.objects.order_by("pk")


def delivery_log(
    *, status: str = "", endpoint_id: int | None = None, before: int | None = None
) -> DeliveryLogPage:
    """Newest deliveries first, `LOG_PAGE` at a time (keyset on the id: `before`)."""
    deliveries = Delivery.objects.select_related("event", "endpoint")
    if status:
        deliveries = deliveries.filter(status=status)
    if endpoint_id:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    if before:
        deliveries = deliveries.filter(pk__lt=before)
    rows = list(deliveries.order_by("-pk")[: LOG_PAGE + 1])
    more = len(rows) > LOG_PAGE
    rows = rows[:LOG_PAGE]
    return DeliveryLogPage(rows=rows, next_before=rows[-1].pk if more else None)


def delivery_with_attempts(delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]] | None:
    delivery = Delivery.objects.select_related("event", "endpoint").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    return delivery, list(delivery.attempt_log.order_by("number"))
