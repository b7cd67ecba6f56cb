"""The learning loop in chromium: a calibration pause shows on the queue, an admin lifts it."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from learning.models import GatePolicy, LabeledExample
from learning.services.monitoring import run_monitor
from loyalty.services.users import create_demo_users
from reviews.models import AutomationPause, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def paused_churn():
    """An overconfident active churn version whose outcomes make the monitor pause. No audit
    sample: with the default 2 % one, whether a would-be auto-approval is sampled (its route
    reason then says so, not the pause) depends on its database id."""
    seed_reason_codes()
    create_demo_users()
    change_policy(
        kind="churn",
        settings=replace(PolicySettings.of(current_policy("churn")), audit_sample_rate=0.0),
        actor=None,
        reason="no audit sample in tests",
    )
    version = ModelVersionFactory(status="active", horizon_days=90)
    GatePolicy.objects.update_or_create(
        kind="churn", defaults={"monitor_min_outcomes": 20, "monitor_max_ece": 0.1}
    )
    for _ in range(25):
        prediction = PredictionFactory(model_version=version, score=0.9, confidence=0.97)
        LabeledExample.objects.create(
            source="outcome",
            kind="churn",
            prediction=prediction,
            member=prediction.member,
            model_version=version,
            cutoff=prediction.cutoff,
            churn_label=False,
            agrees_with_model=False,
            weight=2.0,
            observed_at=datetime(2026, 4, 1, tzinfo=UTC) + timedelta(days=1),
        )
    run_monitor(kind="churn")
    # New, confident, low-risk predictions: auto-approved in normal times.
    for _ in range(5):
        PredictionFactory(model_version=version, score=0.05, confidence=0.99, spend=1.0)
    route_new_predictions(kind="churn")
    return version


def test_the_pause_shows_on_the_queue_and_an_admin_resumes_it(
    page, log_in, live_server, paused_churn, request
):
    # Everything that would have been auto-approved went to the analysts instead.
    assert not Review.objects.filter(route="auto").exists()
    log_in(page, "analyst", "analyst-demo")
    page.goto(f"{live_server.url}/reviews/")
    banner = page.get_by_test_id("automation-paused")
    banner.wait_for()
    assert "Auto-approval of churn risk is paused" in banner.inner_text()
    assert "calibration error 0.900" in banner.inner_text()
    reasons = page.locator("td.reason").all_inner_texts()
    assert sum("auto-approval paused: calibration error" in text for text in reasons) == 5
    page.screenshot(path=str(output_dir(request) / "queue-paused.png"), full_page=True)

    page.get_by_role("button", name="Log out").click()
    log_in(page, "admin", "admin-demo")
    page.goto(f"{live_server.url}/reviews/manage/loop/")
    page.get_by_test_id("pause-churn").wait_for()
    page.get_by_test_id("notifications-link").wait_for()
    assert page.get_by_test_id("unread-count").inner_text() == "1"  # the pause notice
    # The charts are drawn (Plotly's svg), not just their containers.
    for chart in ("labels", "calibration"):
        page.locator(f"#churn-{chart}-fig .main-svg").first.wait_for()
    points = page.locator("#churn-calibration-fig .scatterlayer .point").count()
    assert points == 10  # ten equal-mass reliability bins
    page.screenshot(path=str(output_dir(request) / "loop-paused.png"), full_page=True)
    page.fill("input[name=reason]", "outcomes checked by hand")
    page.get_by_test_id("resume-churn").click()
    page.wait_for_load_state("networkidle")

    assert page.get_by_test_id("automation-paused").count() == 0
    assert "resumed" in page.locator(".messages").inner_text()
    pause = AutomationPause.objects.get(kind="churn")
    assert pause.resumed_at is not None and pause.resume_reason == "outcomes checked by hand"
