"""The integrations pages through Django's test client: webhook endpoints (made through the
form, re-keyed, enabled, disabled, deleted) and the delivery log with its detail and redeliver."""

import uuid
from datetime import UTC, datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations import secrets, selectors
from integrations.models import Delivery, DeliveryAttempt, WebhookEndpoint
from integrations.services.endpoints import create_endpoint
from loyalty.models import AuditRecord, OutboxEvent

pytestmark = pytest.mark.django_db

WEBHOOKS = reverse("integrations:webhooks")
DELIVERIES = reverse("integrations:deliveries")
RECEIVER = "https://receiver.example.com/hooks"


def _action_url(endpoint_id: int, action: str) -> str:
    return reverse(
        "integrations:endpoint_action", kwargs={"endpoint_id": endpoint_id, "action": action}
    )


def _delivery_url(delivery_id: int) -> str:
    return reverse("integrations:delivery", kwargs={"delivery_id": delivery_id})


def _redeliver_url(delivery_id: int) -> str:
    return reverse("integrations:redeliver", kwargs={"delivery_id": delivery_id})


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.fixture
def endpoint():
    return create_endpoint(actor=None, url=RECEIVER, description="CRM").endpoint


def _event(type_: str = "decision.created", **data) -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type=type_,
        data={"member_external_id": "M-7", **data},
        created_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    )


def _delivery(endpoint, *, status, event=None, codes=(), error="") -> Delivery:
    """A delivery with one attempt per status code in `codes` (None: no answer)."""
    delivery = Delivery.objects.create(
        event=event or _event(),
        endpoint=endpoint,
        status=status,
        attempts=len(codes),
        next_attempt_at=datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
        if status == Delivery.Status.PENDING
        else None,
        last_status_code=codes[-1] if codes else None,
        last_latency_ms=42.0 if codes else None,
        last_error=error,
    )
    for number, code in enumerate(codes, start=1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            attempted_at=datetime(2026, 3, 1, 9, 30 + number, tzinfo=UTC),
            status_code=code,
            latency_ms=40.0 + number,
            error="" if code == 200 else (error or "HTTP 500"),
            succeeded=code == 200,
        )
    return delivery


# --- webhooks page -------------------------------------------------------------------------


def test_admin_sees_the_webhooks_page_with_its_endpoints(admin_client, endpoint):
    response = admin_client.get(WEBHOOKS)

    assert response.status_code == 200
    page = response.content.decode()
    assert RECEIVER in page
    assert "CRM" in page
    assert 'data-testid="endpoint-form"' in page
    assert 'data-testid="revealed-secret"' not in page
    assert secrets.decrypt(endpoint.secret_encrypted) not in page


@pytest.mark.parametrize("role", ["analyst", "expert", "integrator"])
def test_other_roles_may_not_open_the_webhooks_page(client, make_user, role):
    client.force_login(make_user(role))

    assert client.get(WEBHOOKS).status_code == 403
    assert client.post(WEBHOOKS, {"url": RECEIVER}).status_code == 403
    assert WebhookEndpoint.objects.count() == 0


def test_anonymous_is_sent_to_log_in(client):
    response = client.get(WEBHOOKS)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_creating_through_the_form_shows_the_secret_once(admin_client):
    response = admin_client.post(
        WEBHOOKS,
        {
            "url": RECEIVER,
            "description": "CRM",
            "event_types": ["review.escalated", "decision.created"],
        },
        follow=True,
    )

    # Post/redirect/get: reloading the page that shows the secret makes no second endpoint.
    assert response.redirect_chain == [(WEBHOOKS, 302)]
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.description, endpoint.event_types) == (
        RECEIVER,
        "CRM",
        ["decision.created", "review.escalated"],
    )
    secret = secrets.decrypt(endpoint.secret_encrypted)
    assert secret.startswith("whsec_")
    page = response.content.decode()
    assert f'<p class="secret" data-testid="secret">{secret}</p>' in page
    assert page.count(secret) == 1
    assert "shown this once only" in page

    again = admin_client.get(WEBHOOKS)

    assert again.status_code == 200
    assert secret not in again.content.decode()
    assert 'data-testid="revealed-secret"' not in again.content.decode()
    assert RECEIVER in again.content.decode()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example.com/in", "The URL must start with http:// or https://."),
        ("not a url", "The URL must start with http:// or https://."),
        ("https://user:pw@receiver.example.com/", "may not carry a user name or password"),
        ("", "This field is required."),
    ],
    ids=["ftp", "not-a-url", "credentials", "empty"],
)
def test_an_invalid_url_shows_the_error_and_creates_nothing(admin_client, url, message):
    response = admin_client.post(WEBHOOKS, {"url": url, "description": "typed"})

    assert response.status_code == 400
    page = response.content.decode()
    assert message in page
    assert 'value="typed"' in page  # what was typed is kept
    assert 'data-testid="revealed-secret"' not in page
    assert WebhookEndpoint.objects.count() == 0
    assert not AuditRecord.objects.filter(kind=AuditRecord.Kind.CONFIG_CHANGE).exists()


def test_an_unknown_event_type_is_refused_by_the_form(admin_client):
    response = admin_client.post(WEBHOOKS, {"url": RECEIVER, "event_types": ["decision.maybe"]})

    assert response.status_code == 400
    assert "Select a valid choice." in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0


def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_signing(admin_client, endpoint):
    old = secrets.decrypt(endpoint.secret_encrypted)

    response = admin_client.post(_action_url(endpoint.pk, "rotate"), follow=True)

    assert response.redirect_chain == [(WEBHOOKS, 302)]
    endpoint.refresh_from_db()
    new = secrets.decrypt(endpoint.secret_encrypted)
    assert new != old
    assert secrets.decrypt(endpoint.previous_secret_encrypted) == old
    page = response.content.decode()
    assert new in page
    assert old not in page
    assert "The previous secret keeps signing beside it until" in page
    assert new not in admin_client.get(WEBHOOKS).content.decode()


def test_disabling_and_enabling_an_endpoint(admin_client, endpoint):
    disabled = admin_client.post(_action_url(endpoint.pk, "disable"), follow=True)

    endpoint.refresh_from_db()
    assert disabled.redirect_chain == [(WEBHOOKS, 302)]
    assert (endpoint.is_enabled, endpoint.disabled_reason) == (False, "Disabled by an admin.")
    assert "The endpoint is disabled." in disabled.content.decode()
    assert "Disabled by an admin." in disabled.content.decode()

    enabled = admin_client.post(_action_url(endpoint.pk, "enable"), follow=True)

    endpoint.refresh_from_db()
    assert enabled.redirect_chain == [(WEBHOOKS, 302)]
    assert (endpoint.is_enabled, endpoint.disabled_reason) == (True, "")
    assert "The endpoint is enabled." in enabled.content.decode()


def test_deleting_an_endpoint_deletes_its_delivery_log_not_the_events(admin_client, endpoint):
    delivery = _delivery(endpoint, status=Delivery.Status.DELIVERED, codes=(200,))

    response = admin_client.post(_action_url(endpoint.pk, "delete"), follow=True)

    assert response.redirect_chain == [(WEBHOOKS, 302)]
    assert "The endpoint and its delivery log were deleted." in response.content.decode()
    assert WebhookEndpoint.objects.count() == 0
    assert Delivery.objects.count() == 0
    assert DeliveryAttempt.objects.count() == 0
    assert OutboxEvent.objects.filter(pk=delivery.event_id).exists()


def test_an_unknown_action_or_endpoint_is_404(admin_client, endpoint):
    assert admin_client.post(_action_url(endpoint.pk, "explode")).status_code == 404
    assert admin_client.post(_action_url(endpoint.pk + 1000, "disable")).status_code == 404
    endpoint.refresh_from_db()
    assert endpoint.is_enabled is True


def test_actions_are_post_only(admin_client, endpoint):
    response = admin_client.get(_action_url(endpoint.pk, "delete"))

    assert response.status_code == 405
    assert WebhookEndpoint.objects.count() == 1


@pytest.mark.parametrize("action", ["rotate", "disable", "delete"])
def test_an_analyst_may_not_act_on_an_endpoint(client, make_user, endpoint, action):
    client.force_login(make_user("analyst"))
    secret_before = endpoint.secret_encrypted

    response = client.post(_action_url(endpoint.pk, action))

    assert response.status_code == 403
    endpoint.refresh_from_db()
    assert (endpoint.is_enabled, endpoint.secret_encrypted) == (True, secret_before)


# --- delivery log ----------------------------------------------------------------------------


@pytest.fixture
def log(endpoint):
    """Three deliveries to `endpoint` (made in this order) and one to another endpoint."""
    other = create_endpoint(actor=None, url="https://erp.example.com/in").endpoint
    return {
        "delivered": _delivery(endpoint, status=Delivery.Status.DELIVERED, codes=(500, 200)),
        "failed": _delivery(
            endpoint,
            status=Delivery.Status.FAILED,
            event=_event("member.erased"),
            codes=(None, 503),
            error="connection refused",
        ),
        "pending": _delivery(endpoint, status=Delivery.Status.PENDING),
        "other": _delivery(other, status=Delivery.Status.DELIVERED, codes=(200,)),
    }


def _shown(response, log) -> list[str]:
    """The names of the deliveries the log page links to, in page order."""
    page = response.content.decode()
    found = [
        (page.index(f'href="{_delivery_url(delivery.pk)}"'), name)
        for name, delivery in log.items()
        if f'href="{_delivery_url(delivery.pk)}"' in page
    ]
    return [name for _, name in sorted(found)]


def test_the_log_shows_deliveries_newest_first(admin_client, log):
    response = admin_client.get(DELIVERIES)

    assert response.status_code == 200
    assert _shown(response, log) == ["other", "pending", "failed", "delivered"]
    page = response.content.decode()
    assert "member.erased" in page
    assert "Failed (gave up)" in page
    assert "connection refused" in page
    assert "2026-03-01 10:00:00" in page  # the pending one's next attempt


@pytest.mark.parametrize(
    ("status", "shown"),
    [
        ("failed", ["failed"]),
        ("pending", ["pending"]),
        ("delivered", ["other", "delivered"]),
        ("", ["other", "pending", "failed", "delivered"]),
    ],
)
def test_the_log_filters_by_status(admin_client, log, status, shown):
    response = admin_client.get(DELIVERIES, {"status": status})

    assert response.status_code == 200
    assert _shown(response, log) == shown


def test_the_log_filters_by_endpoint(admin_client, log, endpoint):
    response = admin_client.get(DELIVERIES, {"endpoint": endpoint.pk})

    assert _shown(response, log) == ["pending", "failed", "delivered"]


def test_a_filter_that_matches_nothing_says_so(admin_client, endpoint):
    _delivery(endpoint, status=Delivery.Status.DELIVERED, codes=(200,))

    response = admin_client.get(DELIVERIES, {"status": "failed"})

    assert "No deliveries match these filters." in response.content.decode()


def test_the_log_pages_older_deliveries(admin_client, log, monkeypatch):
    monkeypatch.setattr(selectors, "LOG_PAGE", 3)

    first = admin_client.get(DELIVERIES)
    older = admin_client.get(DELIVERIES, {"before": log["failed"].pk})

    assert _shown(first, log) == ["other", "pending", "failed"]
    assert f'before={log["failed"].pk}" rel="next"' in first.content.decode()
    assert _shown(older, log) == ["delivered"]
    assert 'rel="next"' not in older.content.decode()


@pytest.mark.parametrize("role", ["analyst", "expert", "integrator"])
def test_other_roles_may_not_read_the_delivery_log(client, make_user, log, role):
    client.force_login(make_user(role))

    assert client.get(DELIVERIES).status_code == 403
    assert client.get(_delivery_url(log["failed"].pk)).status_code == 403


def test_the_detail_page_shows_the_attempts_and_the_body(admin_client, log):
    delivery = log["failed"]

    response = admin_client.get(_delivery_url(delivery.pk))

    assert response.status_code == 200
    page = response.content.decode()
    assert f"msg_{delivery.event.event_id.hex}" in page
    assert "Failed (gave up) after 2 attempts" in page
    attempts = page[page.index('data-testid="attempts"') : page.index('data-testid="body"')]
    assert attempts.count("<tr><td>") == 2
    assert "<td>1</td><td>2026-03-01 09:31:00</td><td>—</td>" in attempts
    assert "<td>2</td><td>2026-03-01 09:32:00</td><td>503</td>" in attempts
    assert "connection refused" in attempts
    body = page[page.index('data-testid="body"') :]
    assert "&quot;type&quot;: &quot;member.erased&quot;" in body
    assert "&quot;member_external_id&quot;: &quot;M-7&quot;" in body
    assert f"&quot;id&quot;: &quot;msg_{delivery.event.event_id.hex}&quot;" in body
    assert 'data-testid="redeliver"' in page


def test_the_detail_page_of_a_delivered_delivery_marks_the_success(admin_client, log):
    response = admin_client.get(_delivery_url(log["delivered"].pk))

    page = response.content.decode()
    assert "<td>500</td>" in page
    assert "<td>200 ✓</td>" in page


def test_a_delivery_not_attempted_yet_says_so(admin_client, log):
    response = admin_client.get(_delivery_url(log["pending"].pk))

    assert "Not attempted yet." in response.content.decode()


def test_an_unknown_delivery_is_404(admin_client, log):
    unknown = max(delivery.pk for delivery in log.values()) + 1000

    assert admin_client.get(_delivery_url(unknown)).status_code == 404
    assert admin_client.post(_redeliver_url(unknown)).status_code == 404


def test_redeliver_makes_the_delivery_pending_and_due_now(
    admin_client, log, django_capture_on_commit_callbacks
):
    delivery = log["failed"]
    before = timezone.now()

    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(_redeliver_url(delivery.pk), follow=True)

    after = timezone.now()
    assert response.redirect_chain == [(_delivery_url(delivery.pk), 302)]
    assert "Queued for one more attempt, with the same event id." in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    assert before <= delivery.next_attempt_at <= after
    assert delivery.attempts == 2  # nothing was attempted yet: the worker does that
    assert delivery.attempt_log.count() == 2
    assert len(queued) == 1  # the delivery task, queued once the change commits


@pytest.mark.parametrize("role", ["analyst", "expert", "integrator"])
def test_only_admins_may_redeliver(client, make_user, log, role):
    client.force_login(make_user(role))
    delivery = log["failed"]

    response = client.post(_redeliver_url(delivery.pk))

    assert response.status_code == 403
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == (Delivery.Status.FAILED, None)


def test_redeliver_is_post_only(admin_client, log):
    response = admin_client.get(_redeliver_url(log["failed"].pk))

    assert response.status_code == 405
    log["failed"].refresh_from_db()
    assert log["failed"].status == Delivery.Status.FAILED


def test_reloading_after_creating_makes_no_second_endpoint(admin_client):
    created = admin_client.post(WEBHOOKS, {"url": RECEIVER})
    assert created.status_code == 302

    shown = admin_client.get(created["Location"])
    reloaded = admin_client.get(created["Location"])  # what a browser's reload sends

    assert WebhookEndpoint.objects.count() == 1
    secret = secrets.decrypt(WebhookEndpoint.objects.get().secret_encrypted)
    assert secret in shown.content.decode()
    assert secret not in reloaded.content.decode()


def test_redelivering_an_unknown_delivery_is_404(admin_client):
    response = admin_client.post(reverse("integrations:redeliver", args=[987654]))

    assert response.status_code == 404
