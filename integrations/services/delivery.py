"""Delivering outbox events to webhook endpoints: at least once, signed, retried with backoff.

1. Fan-out: an event gets one delivery row per enabled endpoint that wants its type.
2. Claim: a due delivery is taken in a short transaction (row lock, skip-locked) that counts
   the attempt and pushes `next_attempt_at` past the attempt's timeout, a lease: a worker
   killed mid-request leaves it due again later, and the sweep sends it once more with the
   same `webhook-id`, which the receiver deduplicates on.
3. Send (no transaction open): Standard Webhooks headers, signed with `standardwebhooks`; no
   redirects followed, a timeout, at most WEBHOOK_MAX_RESPONSE_BYTES read back.
4. Record: the attempt's row, then delivered, retried later (WEBHOOK_RETRY_SCHEDULE_SECONDS) or
   given up. An endpoint failing for WEBHOOK_DISABLE_AFTER_HOURS is disabled, admins told.
"""

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from standardwebhooks import Webhook

from integrations.exceptions import DeliveryNotFound
from integrations.models import Delivery, DeliveryAttempt, WebhookEndpoint
from integrations.services.endpoints import MANAGE_PERMISSION, signing_secrets
from integrations.targets import TargetRefused, check_target
from loyalty import outbox
from loyalty.models import OutboxEvent
from loyalty.services.erasure import ERASED_EXTERNAL_ID_PREFIX
from reviews.services.notifications import notify, users_with_permission

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1
USER_AGENT = "LoyaltyReview-Webhooks/1"
BATCH = 200


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: float | None
    error: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def message_id(event: OutboxEvent) -> str:
    """The `webhook-id`: the event's, the same on every attempt and every endpoint."""
    return f"msg_{event.event_id.hex}"


def message_body(event: OutboxEvent) -> bytes:
    """The JSON body (schema `WebhookEvent`): the same bytes on every attempt."""
    envelope = {
        "id": message_id(event),
        "type": event.type,
        "schema_version": SCHEMA_VERSION,
        "timestamp": event.created_at.isoformat(),
        "data": event.data,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def signed_headers(endpoint: WebhookEndpoint, event: OutboxEvent, body: bytes, *, now) -> dict:
    msg_id = message_id(event)
    signatures = [
        Webhook(secret).sign(msg_id=msg_id, timestamp=now, data=body)
        for secret in signing_secrets(endpoint, now=now)
    ]
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": " ".join(signatures),
    }


def fan_out(event_ids: list[int] | None = None, *, limit: int = 1000) -> int:
    """Delivery rows for events that have none yet (those given, or any); the number of
    events fanned out."""
    with transaction.atomic():
        events = OutboxEvent.objects.select_for_update(skip_locked=True).filter(
            fanned_out_at__isnull=True
        )
        if event_ids is not None:
            events = events.filter(pk__in=event_ids)
        events = list(events.order_by("pk")[:limit])
        if not events:
            return 0
        endpoints = list(WebhookEndpoint.objects.filter(is_enabled=True))
        now = timezone.now()
        rows = [
            Delivery(event=event, endpoint=endpoint, next_attempt_at=now)
            for event in events
            for endpoint in endpoints
            if endpoint.wants(event.type)
        ]
        Delivery.objects.bulk_create(rows, ignore_conflicts=True)
        OutboxEvent.objects.filter(pk__in=[event.pk for event in events]).update(fanned_out_at=now)
    for event in events:
        if event.type == outbox.MEMBER_ERASED:
            _redact_erasure_when_done(event.pk)
    return len(events)


def deliver_due(
    *, now: datetime | None = None, event_ids: list[int] | None = None, limit: int = BATCH
) -> int:
    """Attempt up to `limit` deliveries due (of these events, or any): claimed in one
    transaction, sent one after another on one HTTP client, recorded in one transaction; the
    number attempted. `now` is the clock attempts are scheduled by (the wall clock unless a
    test moves it)."""
    claimed = _claim_due(now=now or timezone.now(), event_ids=event_ids, limit=limit)
    if not claimed:
        return 0
    with new_client() as client:
        results = [(delivery, _send(delivery, client=client)) for delivery in claimed]
    _record_all(results, now=now or timezone.now())
    return len(claimed)


def deliver_all_due(*, event_ids: list[int] | None = None, max_batches: int = 50) -> int:
    """`deliver_due` until nothing is due (or `max_batches` batches: the next run goes on)."""
    attempted = 0
    for _ in range(max_batches):
        batch = deliver_due(event_ids=event_ids)
        attempted += batch
        if batch < BATCH:
            break
    return attempted


def new_client() -> httpx.Client:
    """No redirects followed, a timeout, no proxy or credentials from the environment."""
    return httpx.Client(
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
    )


def redeliver(delivery_id: int) -> Delivery:
    """Make a delivery due now again (from the delivery log), whatever its state: one more
    attempt, with the same event id."""
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            raise DeliveryNotFound("No such delivery.", delivery_id=delivery_id)
        delivery.status = Delivery.Status.PENDING
        delivery.next_attempt_at = timezone.now()
        delivery.save(update_fields=["status", "next_attempt_at"])
    return delivery


def queue_delivery(event_ids: list[int]) -> None:
    """Queue the events' delivery now (call after the commit); a broker that is down leaves
    it to the sweep."""
    from integrations.tasks import deliver_events_task

    try:
        deliver_events_task.delay(event_ids)
    except Exception:  # noqa: BLE001 - the broker is down: the sweep delivers later
        logger.warning("Could not queue delivery of events %s; the sweep will", event_ids)


def _claim_due(*, now: datetime, event_ids: list[int] | None, limit: int) -> list[Delivery]:
    """Take due deliveries (rows another worker holds are skipped), count the attempt and
    lease them past the attempt's timeout."""
    with transaction.atomic():
        due = (
            Delivery.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("event", "endpoint")
            .filter(
                status=Delivery.Status.PENDING,
                next_attempt_at__lte=now,
                endpoint__is_enabled=True,
            )
        )
        if event_ids is not None:
            due = due.filter(event_id__in=event_ids)
        claimed = list(due.order_by("next_attempt_at", "pk")[:limit])
        for delivery in claimed:
            delivery.attempts += 1
            delivery.last_attempt_at = now
            delivery.next_attempt_at = now + _lease()
        Delivery.objects.bulk_update(claimed, ["attempts", "last_attempt_at", "next_attempt_at"])
    return claimed


def _send(delivery: Delivery, *, client: httpx.Client) -> AttemptResult:
    endpoint, event = delivery.endpoint, delivery.event
    try:
        check_target(endpoint.url)
    except TargetRefused as error:
        return AttemptResult(status_code=None, latency_ms=None, error=str(error)[:300])
    body = message_body(event)
    headers = signed_headers(endpoint, event, body, now=timezone.now())
    started = time.perf_counter()
    try:
        with client.stream("POST", endpoint.url, content=body, headers=headers) as response:
            _read_capped(response)
            latency = (time.perf_counter() - started) * 1000
            error = "" if response.is_success else _failure_text(response)
            return AttemptResult(status_code=response.status_code, latency_ms=latency, error=error)
    except httpx.HTTPError as error:
        latency = (time.perf_counter() - started) * 1000
        return AttemptResult(
            status_code=None, latency_ms=latency, error=f"{type(error).__name__}: {error}"[:300]
        )


def _read_capped(response: httpx.Response) -> None:
    """Read at most WEBHOOK_MAX_RESPONSE_BYTES of the body: a receiver cannot make a worker
    hold a huge answer."""
    read = 0
    for chunk in response.iter_bytes():
        read += len(chunk)
        if read >= settings.WEBHOOK_MAX_RESPONSE_BYTES:
            break


def _failure_text(response: httpx.Response) -> str:
    if response.is_redirect:
        return f"HTTP {response.status_code}: redirects are not followed"
    return f"HTTP {response.status_code}"


def _record_all(results: list[tuple[Delivery, AttemptResult]], *, now: datetime) -> None:
    """Each attempt's row and its delivery's new state, in one transaction. A delivery is
    updated only while it is still at this attempt: a later attempt (after this one's lease
    ran out) is not overwritten by a late report of this one."""
    attempts = []
    with transaction.atomic():
        for delivery, result in results:
            status, next_attempt_at = _outcome(delivery.attempts, result, now=now)
            delivery.status = status
            attempts.append(_attempt_row(delivery, result, now=now))
            Delivery.objects.filter(pk=delivery.pk, attempts=delivery.attempts).update(
                status=status,
                next_attempt_at=next_attempt_at,
                last_status_code=result.status_code,
                last_latency_ms=result.latency_ms,
                last_error=result.error,
                delivered_at=now if result.succeeded else None,
            )
        DeliveryAttempt.objects.bulk_create(attempts, ignore_conflicts=True)
        _note_endpoint_health(results, now=now)
    for delivery, _ in results:
        finished = delivery.status != Delivery.Status.PENDING
        if finished and delivery.event.type == outbox.MEMBER_ERASED:
            _redact_erasure_when_done(delivery.event_id)


def _attempt_row(delivery: Delivery, result: AttemptResult, *, now: datetime) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery.pk,
        number=delivery.attempts,
        attempted_at=delivery.last_attempt_at or now,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error=result.error,
        succeeded=result.succeeded,
    )


def _note_endpoint_health(results: list[tuple[Delivery, AttemptResult]], *, now) -> None:
    """An endpoint that took any delivery is healthy again; one that took none is failing."""
    endpoints = {delivery.endpoint_id: delivery.endpoint for delivery, _ in results}
    healthy = {delivery.endpoint_id for delivery, result in results if result.succeeded}
    for endpoint_id, endpoint in endpoints.items():
        if endpoint_id not in healthy:
            _note_failure(endpoint_id, now=now)
        elif endpoint.failing_since is not None:
            WebhookEndpoint.objects.filter(pk=endpoint_id).update(failing_since=None)


def _outcome(number: int, result: AttemptResult, *, now: datetime) -> tuple[str, datetime | None]:
    """(status, next attempt) after attempt `number`: delivered, given up after the last retry
    of WEBHOOK_RETRY_SCHEDULE_SECONDS, or pending until the next one."""
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    if result.succeeded:
        return Delivery.Status.DELIVERED, None
    if number > len(schedule):
        return Delivery.Status.FAILED, None
    return Delivery.Status.PENDING, now + timedelta(seconds=schedule[number - 1])


def _note_failure(endpoint_id: int, *, now: datetime) -> None:
    """Remember when the endpoint started failing; disable it once that is too long ago."""
    endpoints = WebhookEndpoint.objects.filter(pk=endpoint_id)
    endpoints.filter(failing_since__isnull=True).update(failing_since=now)
    limit = now - timedelta(hours=settings.WEBHOOK_DISABLE_AFTER_HOURS)
    disabled = endpoints.filter(is_enabled=True, failing_since__lte=limit).update(
        is_enabled=False,
        disabled_reason=(
            f"Disabled automatically: every delivery failed for "
            f"{settings.WEBHOOK_DISABLE_AFTER_HOURS:g} hours."
        ),
    )
    if disabled:
        endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
        notify(
            recipients=users_with_permission(MANAGE_PERMISSION),
            subject="A webhook endpoint was disabled",
            body=f"{endpoint.url}: {endpoint.disabled_reason} Its deliveries wait until an "
            "admin enables it again.",
            link="/integrations/webhooks/",
        )


def _redact_erasure_when_done(event_id: int) -> None:
    """A `member.erased` event names the erased member until no delivery of it is pending;
    then its id is replaced like every other event's."""
    with transaction.atomic():
        event = (
            OutboxEvent.objects.select_for_update()
            .filter(
                pk=event_id,
                type=outbox.MEMBER_ERASED,
                fanned_out_at__isnull=False,
                redacted_at__isnull=True,
            )
            .exclude(
                Q(deliveries__status=Delivery.Status.PENDING),
            )
            .first()
        )
        if event is None or event.member_id is None:
            return
        event.data[outbox.MEMBER_KEY] = f"{ERASED_EXTERNAL_ID_PREFIX}{event.member_id}"
        event.redacted_at = timezone.now()
        event.save(update_fields=["data", "redacted_at"])


def _lease() -> timedelta:
    return timedelta(seconds=settings.WEBHOOK_TIMEOUT_SECONDS + 60)
