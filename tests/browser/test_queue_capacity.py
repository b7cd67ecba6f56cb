"""An analyst works a queue at its capacity in chromium: the page says how much waits in the
backlog, and approving an item lets the worker bring the next waiting one in."""

import time

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.services.policy import change_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DRAIN_DEADLINE_S = 60


def _queued_scores() -> set[float]:
    return set(Review.objects.queued("analyst").values_list("prediction__score", flat=True))


def test_approving_an_item_brings_the_highest_waiting_one_into_the_queue(
    live_server, page, log_in, request, celery_worker
):
    create_demo_users()
    seed_reason_codes()
    change_policy(
        kind="churn",
        settings=PolicySettings(
            audit_sample_rate=0.0,
            human_risk_low=None,
            human_risk_high=None,
            analyst_daily_capacity=2,
        ),
        actor=None,
        reason="two analysts on duty",
    )
    for score in (0.9, 0.7, 0.5, 0.3):  # one confidence and value: priority follows the score
        PredictionFactory(confidence=0.8, score=score)
    route_new_predictions(kind="churn")
    top = Review.objects.get(prediction__score=0.9)
    log_in(page, "analyst", "analyst-demo")

    page.goto(f"{live_server.url}/reviews/")

    expect(page.locator("tr.queue-row")).to_have_count(2)
    expect(page.get_by_test_id("queue-backlog")).to_contain_text(
        "2 more items wait in the backlog (capacity 2 a day"
    )
    page.screenshot(path=str(output_dir(request) / "queue-at-capacity.png"), full_page=True)

    page.locator(f"#review-row-{top.pk} [data-action=approve]").click()
    expect(page.locator(f"#review-row-{top.pk}")).to_have_count(0)
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    while _queued_scores() != {0.7, 0.5} and time.monotonic() < deadline:
        time.sleep(0.2)
    page.reload()

    expect(page.locator("tr.queue-row")).to_have_count(2)
    expect(page.get_by_test_id("queue-backlog")).to_contain_text("1 more item waits in the backlog")
    admitted = Review.objects.get(prediction__score=0.5)
    expect(page.locator(f"#review-row-{admitted.pk}")).to_have_count(1)
