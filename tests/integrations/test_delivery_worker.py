"""Delivery through real workers: a committed decision reaches the receiver by itself; a
broker that is down when the decision commits loses nothing (the sweep delivers); a worker
killed in the middle of a request leaves the delivery to the sweep, which sends the same
event id again, so the receiver can deduplicate."""

import logging
import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from integrations.models import Delivery
from integrations.services import endpoints
from integrations.services.delivery import deliver_due, message_id
from integrations.tasks import deliver_events_task, sweep_deliveries_task
from loyalty import outbox
from loyalty.models import OutboxEvent
from reviews.services.decisions import approve_prediction
from tests.integrations.receiver import Receiver
from tests.workers import start_worker_process, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
KILL_QUEUE = "killed-delivery-worker"


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


def _before_the_receiver_existed() -> None:
    """The fixture's own events (its auto-approval, announced as it was routed) went out
    before the receiver of the test was added: they are not the test's."""
    OutboxEvent.objects.update(fanned_out_at=timezone.now())


def test_a_committed_decision_reaches_the_receiver_through_the_worker(
    routed, make_user, receiver, settings, celery_worker
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    _before_the_receiver_existed()
    endpoints.create_endpoint(actor=None, url=receiver.url, event_types=[outbox.DECISION_CREATED])

    decision = approve_prediction(
        review_id=routed["analyst"].pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    wait_until(lambda: receiver.requests, what="the webhook")
    event = OutboxEvent.objects.get(
        type=outbox.DECISION_CREATED, member_id=routed["analyst"].member_id
    )
    assert receiver.requests[0].headers["webhook-id"] == message_id(event)
    assert event.data["decision_id"] == decision.pk
    wait_until(
        lambda: Delivery.objects.filter(event=event, status="delivered").exists(),
        what="the delivery to be recorded",
    )


@pytest.fixture
def broker_down():
    """The project's Celery app pointed at a port where nothing listens, publishing without
    retries; the real broker again afterwards."""
    from loyalty.celery import app

    saved = {
        key: app.conf[key] for key in ("broker_url", "broker_write_url", "broker_transport_options")
    }
    saved["task_publish_retry"] = app.conf.task_publish_retry
    nowhere = "redis://127.0.0.1:9/0"
    app.conf.update(
        broker_url=nowhere,
        broker_write_url=nowhere,
        broker_transport_options={},
        task_publish_retry=False,
    )
    _forget_pools(app)
    yield
    app.conf.update(saved)
    _forget_pools(app)


def _forget_pools(app) -> None:
    """The next publish opens a connection to the configured broker (as after a fork)."""
    app._pool = None
    app.amqp._producer_pool = None


def test_a_decision_made_while_the_broker_is_down_is_delivered_by_the_sweep(
    routed, make_user, receiver, settings, broker_down, caplog
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    _before_the_receiver_existed()
    endpoints.create_endpoint(actor=None, url=receiver.url)

    with caplog.at_level(logging.WARNING, logger="integrations.services.delivery"):
        decision = approve_prediction(
            review_id=routed["analyst"].pk, actor=make_user("analyst"), reason_code="model-correct"
        )

    assert decision.pk is not None  # the decision stands
    assert "the sweep will" in caplog.text
    assert receiver.requests == []
    event = OutboxEvent.objects.get(
        type=outbox.DECISION_CREATED, member_id=routed["analyst"].member_id
    )
    assert event.fanned_out_at is None

    sweep_deliveries_task()

    [request] = receiver.requests
    assert request.headers["webhook-id"] == message_id(event)
    assert Delivery.objects.get(event=event).status == "delivered"


def test_a_worker_killed_mid_delivery_is_made_good_by_the_sweep_with_the_same_id(
    routed, make_user, receiver, settings, tmp_path
):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver.hold_first = True
    _before_the_receiver_existed()
    endpoint = endpoints.create_endpoint(actor=None, url=receiver.url).endpoint
    from loyalty.celery import app

    app.control.purge()
    approve_prediction(
        review_id=routed["analyst"].pk, actor=make_user("analyst"), reason_code="model-correct"
    )
    event = OutboxEvent.objects.get(
        type=outbox.DECISION_CREATED, member_id=routed["analyst"].member_id
    )
    log = (tmp_path / "worker.log").open("w")
    worker = start_worker_process(
        "loyalty", queue=KILL_QUEUE, log=log, env={"WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}
    )
    try:
        deliver_events_task.apply_async(args=[[event.pk]], queue=KILL_QUEUE)
        try:
            wait_until(receiver.first_arrived.is_set, timeout=90, what="the first request")
        except AssertionError as error:
            log_text = (tmp_path / "worker.log").read_text()
            raise AssertionError(f"{error}; log:\n{log_text}") from error
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        receiver.release.set()

    delivery = Delivery.objects.get(event=event, endpoint=endpoint)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.next_attempt_at > timezone.now()  # leased: not sent twice at once
    assert deliver_due() == 0

    assert deliver_due(now=delivery.next_attempt_at + timedelta(seconds=1)) == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    ids = [request.headers["webhook-id"] for request in receiver.requests]
    assert ids == [message_id(event)] * 2  # a receiver deduplicating on it acts once
