"""An admin adds a webhook endpoint in chromium and copies its secret (shown once), then reads
the delivery log and one delivery's attempts and body, and asks for one more attempt."""

import re
import uuid
from datetime import UTC, datetime

import pytest
from playwright.sync_api import expect

from integrations import secrets
from integrations.models import Delivery, DeliveryAttempt, WebhookEndpoint
from loyalty.models import OutboxEvent
from loyalty.services.users import create_demo_users
from tests.conftest import output_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECEIVER = "https://crm.example.com/loyalty/webhooks"


def _failed_then_delivered(endpoint: WebhookEndpoint) -> Delivery:
    """A decision event that the receiver refused once (HTTP 500) and took the second time."""
    event = OutboxEvent.objects.create(
        event_id=uuid.uuid4(),
        type="decision.created",
        data={
            "decision_id": 17,
            "member_external_id": "M000321",
            "kind": "churn",
            "verdict": "approve",
            "churn_call": True,
            "reason_code": "model-correct",
        },
        created_at=datetime(2026, 3, 1, 9, 30, tzinfo=UTC),
    )
    delivery = Delivery.objects.create(
        event=event,
        endpoint=endpoint,
        status=Delivery.Status.DELIVERED,
        attempts=2,
        last_attempt_at=datetime(2026, 3, 1, 9, 31, 5, tzinfo=UTC),
        last_status_code=200,
        last_latency_ms=38.0,
        delivered_at=datetime(2026, 3, 1, 9, 31, 5, tzinfo=UTC),
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=1,
        attempted_at=datetime(2026, 3, 1, 9, 30, 1, tzinfo=UTC),
        status_code=500,
        latency_ms=112.0,
        error="HTTP 500: upstream timeout",
    )
    DeliveryAttempt.objects.create(
        delivery=delivery,
        number=2,
        attempted_at=datetime(2026, 3, 1, 9, 31, 5, tzinfo=UTC),
        status_code=200,
        latency_ms=38.0,
        succeeded=True,
    )
    return delivery


def test_admin_adds_an_endpoint_sees_the_secret_once_and_reads_the_delivery_log(
    live_server, page, log_in, request
):
    create_demo_users()
    log_in(page, "admin", "admin-demo")
    folder = output_dir(request)

    # The page is in the admin's menu.
    page.get_by_role("navigation").get_by_role("link", name="Webhooks").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
    expect(page.get_by_test_id("endpoint-row")).to_have_count(0)

    # A URL the product will not send to is refused beside the field, what was typed kept.
    page.fill("#id_url", "ftp://crm.example.com/drop")
    page.fill("#id_description", "CRM: sends the retention offers")
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("endpoint-form")).to_contain_text(
        "The URL must start with http:// or https://."
    )
    expect(page.locator("#id_url")).to_have_value("ftp://crm.example.com/drop")
    expect(page.get_by_test_id("endpoint-row")).to_have_count(0)
    assert WebhookEndpoint.objects.count() == 0
    page.screenshot(path=str(folder / "webhooks-refused-url.png"), full_page=True)

    page.fill("#id_url", RECEIVER)
    page.get_by_label("decision.created", exact=True).check()
    page.get_by_label("decision.held_out", exact=True).check()
    page.get_by_role("button", name="Add endpoint").click()
    page.wait_for_load_state("networkidle")

    secret_box = page.get_by_test_id("secret")
    expect(secret_box).to_have_text(re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$"))
    endpoint = WebhookEndpoint.objects.get()
    assert secret_box.inner_text() == secrets.decrypt(endpoint.secret_encrypted)
    assert endpoint.event_types == ["decision.created", "decision.held_out"]
    row = page.get_by_test_id("endpoint-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(RECEIVER)
    expect(row).to_contain_text("decision.created, decision.held_out")
    expect(row).to_contain_text("Enabled")
    page.screenshot(path=str(folder / "webhooks-secret-shown.png"), full_page=True)

    # Opened again, the page no longer shows it.
    page.goto(f"{live_server.url}/integrations/webhooks/")
    expect(page.get_by_test_id("endpoint-row")).to_have_count(1)
    expect(page.get_by_test_id("revealed-secret")).to_have_count(0)
    assert secret_box_text_absent(page, endpoint)
    page.screenshot(path=str(folder / "webhooks-list.png"), full_page=True)

    delivery = _failed_then_delivered(endpoint)
    page.get_by_role("link", name="Delivery log").click()
    page.wait_for_load_state("networkidle")
    log_row = page.get_by_test_id("delivery-row")
    expect(log_row).to_have_count(1)
    expect(log_row).to_contain_text("decision.created")
    expect(log_row).to_contain_text("Delivered")
    expect(log_row).to_contain_text("38 ms")
    page.screenshot(path=str(folder / "delivery-log.png"), full_page=True)

    log_row.get_by_role("link", name="Details").click()
    page.wait_for_load_state("networkidle")
    attempts = page.get_by_test_id("attempts").locator("tbody tr")
    expect(attempts).to_have_count(2)
    expect(attempts.nth(0)).to_contain_text("500")
    expect(attempts.nth(0)).to_contain_text("HTTP 500: upstream timeout")
    expect(attempts.nth(1)).to_contain_text("200 ✓")
    expect(page.get_by_test_id("body")).to_contain_text('"member_external_id": "M000321"')
    expect(page.get_by_test_id("body")).to_contain_text(f"msg_{delivery.event.event_id.hex}")
    page.screenshot(path=str(folder / "delivery-detail.png"), full_page=True)

    page.get_by_test_id("redeliver").click()
    page.wait_for_load_state("networkidle")
    expect(page.locator(".messages li.success")).to_contain_text(
        "Queued for one more attempt, with the same event id."
    )
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.PENDING
    page.screenshot(path=str(folder / "delivery-redelivered.png"), full_page=True)

    # The decisions export form, from the webhooks page, refuses a range that ends before it
    # starts and says so.
    page.goto(f"{live_server.url}/integrations/webhooks/")
    page.get_by_role("link", name="Export decisions").click()
    page.wait_for_load_state("networkidle")
    page.fill("#id_start", "2026-03-02")
    page.fill("#id_end", "2026-03-01")
    page.get_by_role("button", name="Download CSV").click()
    page.wait_for_load_state("networkidle")
    expect(page.get_by_test_id("export-form")).to_contain_text(
        "The end date must come after the start date."
    )
    page.screenshot(path=str(folder / "export-refused-range.png"), full_page=True)


def secret_box_text_absent(page, endpoint: WebhookEndpoint) -> bool:
    return secrets.decrypt(endpoint.secret_encrypted) not in page.content()
