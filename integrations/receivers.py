"""A committed outbox event is queued for delivery at once; if the broker is down, the
message is lost but the event is not: the sweep (beat, every minute) delivers it."""

from django.dispatch import receiver

from loyalty.outbox import outbox_committed


@receiver(outbox_committed)
def queue_delivery(sender, event_ids, **kwargs) -> None:
    from integrations.services.delivery import queue_delivery

    queue_delivery(event_ids)
