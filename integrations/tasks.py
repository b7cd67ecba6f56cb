"""Delivery tasks: right after an event commits, and a sweep every minute for what is due
(retries, events whose message was lost with a broker or a worker)."""

from celery import shared_task

from integrations.services.delivery import deliver_all_due, fan_out


@shared_task(name="integrations.deliver_events_task")
def deliver_events_task(event_ids: list[int]) -> int:
    fan_out(event_ids)
    return deliver_all_due(event_ids=event_ids)


@shared_task(name="integrations.sweep_deliveries_task")
def sweep_deliveries_task() -> int:
    while fan_out():
        pass
    return deliver_all_due()
