"""Webhook delivery against a real HTTP receiver on this machine: Standard Webhooks signatures,
retries with the same id, giving up, disabling a failing endpoint, refused targets, redirects,
secret rotation and subscriptions."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from integrations.models import Delivery, DeliveryAttempt, WebhookEndpoint
from integrations.services import endpoints
from integrations.services.delivery import deliver_due, fan_out, message_id
from integrations.targets import TargetRefused, check_target
from loyalty import outbox
from reviews.models import Notification
from tests.integrations.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver():
    made = Receiver()
    yield made
    made.close()


@pytest.fixture
def local_targets(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True


def _endpoint(url: str, event_types=()) -> tuple[WebhookEndpoint, str]:
    made = endpoints.create_endpoint(actor=None, url=url, event_types=event_types)
    return made.endpoint, made.secret


def _event(event_type: str = outbox.DECISION_CREATED, data=None):
    with transaction.atomic():
        return outbox.emit(event_type, data or {"decision_id": 7, "member_external_id": "M-7"})


def _delivery(event, endpoint) -> Delivery:
    return Delivery.objects.get(event=event, endpoint=endpoint)


def test_a_delivery_is_signed_per_standard_webhooks(receiver, local_targets):
    endpoint, secret = _endpoint(receiver.url)
    event = _event()

    assert fan_out() == 1
    assert deliver_due() == 1

    [request] = receiver.requests
    body = Webhook(secret).verify(request.body, request.headers)
    assert body == {
        "id": message_id(event),
        "type": "decision.created",
        "schema_version": 1,
        "timestamp": event.created_at.isoformat(),
        "data": {"decision_id": 7, "member_external_id": "M-7"},
    }
    assert request.headers["webhook-id"] == message_id(event)
    assert request.headers["content-type"] == "application/json"
    delivery = _delivery(event, endpoint)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.succeeded and attempt.latency_ms is not None


def test_a_signature_made_with_another_secret_does_not_verify(receiver, local_targets):
    _endpoint(receiver.url)
    _event()
    fan_out()
    deliver_due()

    [request] = receiver.requests
    other = endpoints.create_endpoint(actor=None, url="https://example.com/x").secret
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.body, request.headers)


def test_a_receiver_answering_500_twice_then_200_gets_the_same_event_id_each_time(
    receiver, local_targets
):
    receiver.statuses = [500, 500, 200]
    endpoint, secret = _endpoint(receiver.url)
    event = _event()
    fan_out()
    start = timezone.now()

    assert deliver_due(now=start) == 1
    delivery = _delivery(event, endpoint)
    assert delivery.status == "pending"
    assert delivery.next_attempt_at == start + timedelta(seconds=5)
    assert deliver_due(now=start + timedelta(seconds=4)) == 0  # not due yet
    assert deliver_due(now=start + timedelta(seconds=5)) == 1
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == start + timedelta(seconds=5 + 300)
    assert deliver_due(now=start + timedelta(seconds=305)) == 1

    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [message_id(event)] * 3
    assert len({r.body for r in receiver.requests}) == 1  # the same bytes every time
    for request in receiver.requests:
        Webhook(secret).verify(request.body, request.headers)
    codes = list(delivery.attempt_log.order_by("number").values_list("status_code", flat=True))
    assert codes == [500, 500, 200]


def test_the_default_retry_schedule_lasts_more_than_a_day(settings):
    assert sum(settings.WEBHOOK_RETRY_SCHEDULE_SECONDS) >= 24 * 60 * 60


def test_a_delivery_is_given_up_after_the_last_retry(receiver, local_targets, settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [10, 20]
    receiver.statuses = [503]
    endpoint, _ = _endpoint(receiver.url)
    event = _event()
    fan_out()
    start = timezone.now()

    for seconds in (0, 10, 30):
        assert deliver_due(now=start + timedelta(seconds=seconds)) == 1

    delivery = _delivery(event, endpoint)
    assert (delivery.status, delivery.attempts, delivery.next_attempt_at) == ("failed", 3, None)
    assert deliver_due(now=start + timedelta(days=3)) == 0
    assert len(receiver.requests) == 3


def test_an_endpoint_failing_too_long_is_disabled_and_admins_are_told(
    receiver, local_targets, settings, make_user
):
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 1
    admin = make_user("admin")
    receiver.statuses = [500, 500, 200]
    endpoint, _ = _endpoint(receiver.url)
    event = _event()
    fan_out()
    start = timezone.now()

    deliver_due(now=start)
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.failing_since) == (True, start)
    Delivery.objects.filter(pk=_delivery(event, endpoint).pk).update(next_attempt_at=start)
    deliver_due(now=start + timedelta(hours=2))

    endpoint.refresh_from_db()
    assert not endpoint.is_enabled
    assert "every delivery failed for 1 hours" in endpoint.disabled_reason
    assert Notification.objects.filter(recipient=admin, subject__contains="disabled").count() == 1
    # Its deliveries wait: nothing is attempted while it is disabled.
    second = _event()
    fan_out()
    assert not Delivery.objects.filter(event=second).exists()
    assert deliver_due(now=start + timedelta(days=2)) == 0
    assert len(receiver.requests) == 2

    endpoints.update_endpoint(actor=None, endpoint_id=endpoint.pk, is_enabled=True)
    assert deliver_due(now=start + timedelta(days=2)) == 1
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.failing_since) == (True, None)
    assert _delivery(event, endpoint).status == "delivered"


def test_a_private_address_is_refused_unless_allowed(receiver, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    endpoint, _ = _endpoint(receiver.url)
    event = _event()
    fan_out()

    assert deliver_due() == 1

    assert receiver.requests == []
    delivery = _delivery(event, endpoint)
    assert delivery.status == "pending"
    assert "loopback, private or link-local" in delivery.last_error
    assert delivery.last_status_code is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/x",
        "http://10.1.2.3/x",
        "http://192.168.0.10/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[fe80::1]/x",
        "http://0.0.0.0/x",
    ],
)
def test_check_target_refuses_addresses_that_are_not_public(url, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with pytest.raises(TargetRefused):
        check_target(url)


def test_check_target_accepts_a_public_address_and_refuses_other_schemes(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    check_target("https://93.184.216.34/hooks")  # a literal address: no DNS needed
    for url in ("ftp://93.184.216.34/x", "https://user:pw@93.184.216.34/x", "https:///x"):
        with pytest.raises(TargetRefused):
            check_target(url)


def test_redirects_are_not_followed(local_targets):
    elsewhere = Receiver()
    redirecting = Receiver(statuses=[302], redirect_to=elsewhere.url)
    try:
        endpoint, _ = _endpoint(redirecting.url)
        event = _event()
        fan_out()
        deliver_due()
    finally:
        redirecting.close()
        elsewhere.close()

    assert len(redirecting.requests) == 1
    assert elsewhere.requests == []
    delivery = _delivery(event, endpoint)
    assert delivery.status == "pending"
    assert delivery.last_error == "HTTP 302: redirects are not followed"


def test_a_huge_answer_is_not_read_whole(receiver, local_targets, settings):
    settings.WEBHOOK_MAX_RESPONSE_BYTES = 1024
    receiver.response_body = b"x" * (4 * 1024 * 1024)
    endpoint, _ = _endpoint(receiver.url)
    event = _event()
    fan_out()

    assert deliver_due() == 1

    assert _delivery(event, endpoint).status == "delivered"


def test_after_a_rotation_both_secrets_sign_until_the_overlap_ends(receiver, local_targets):
    endpoint, old = _endpoint(receiver.url)
    new = endpoints.rotate_secret(
        actor=None, endpoint_id=endpoint.pk, overlap=timedelta(hours=1)
    ).secret
    _event()
    fan_out()
    deliver_due()

    [request] = receiver.requests
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(request.body, request.headers)
    Webhook(new).verify(request.body, request.headers)

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    _event()
    fan_out()
    deliver_due()
    later = receiver.requests[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(later.body, later.headers)


def test_an_event_goes_to_the_enabled_endpoints_that_want_its_type():
    wants_decisions, _ = _endpoint("https://a.example.com/", [outbox.DECISION_CREATED])
    wants_erasures, _ = _endpoint("https://b.example.com/", [outbox.MEMBER_ERASED])
    wants_all, _ = _endpoint("https://c.example.com/")
    disabled, _ = _endpoint("https://d.example.com/")
    endpoints.update_endpoint(actor=None, endpoint_id=disabled.pk, is_enabled=False)
    event = _event(outbox.DECISION_CREATED)

    assert fan_out() == 1
    assert fan_out() == 0  # once only

    targets = set(Delivery.objects.filter(event=event).values_list("endpoint__url", flat=True))
    assert targets == {wants_decisions.url, wants_all.url}
    event.refresh_from_db()
    assert event.fanned_out_at is not None


def test_the_body_is_what_the_schema_describes(receiver, local_targets):
    _endpoint(receiver.url)
    _event(outbox.MODEL_PROMOTED, {"model_version_id": 3, "kind": "churn"})
    fan_out()
    deliver_due()

    body = json.loads(receiver.requests[0].body)
    assert set(body) == {"id", "type", "schema_version", "timestamp", "data"}
    assert body["type"] == "model.promoted"
