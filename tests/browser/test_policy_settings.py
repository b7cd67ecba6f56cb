"""An admin moves the auto-approve threshold in chromium, watches the simulation follow, saves."""

import time

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from reviews.models import EscalationPolicy, Review
from reviews.policy_settings import PolicySettings
from reviews.services.policy import change_policy
from reviews.services.rerouting import awaiting_rerouting
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

REROUTE_DEADLINE_S = 60


def _seed_reviews() -> None:
    change_policy(
        kind="churn",
        settings=PolicySettings(audit_sample_rate=0.0),
        actor=None,
        reason="Launch thresholds agreed with the loyalty team",
    )
    version = ModelVersionFactory()
    for n in range(80):
        PredictionFactory(
            model_version=version,
            confidence=0.4 + 0.6 * n / 80,
            score=(n * 37 % 100) / 100,
            spend=50 + n * 10,
        )
    route_new_predictions(kind="churn")


def test_admin_moves_the_threshold_sees_the_simulation_change_and_saves(
    live_server, page, log_in, request, celery_worker
):
    create_demo_users()
    _seed_reviews()
    log_in(page, "admin", "admin-demo")

    page.goto(f"{live_server.url}/reviews/manage/policy/churn/")
    expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible()
    auto_count = page.get_by_test_id("simulated-auto").locator(".value")
    before = auto_count.inner_text()
    page.screenshot(path=str(output_dir(request) / "policy-before.png"), full_page=True)

    page.fill("#id_auto_approve_confidence", "0.8")
    expect(auto_count).not_to_have_text(before)
    after = auto_count.inner_text()
    assert int(after) > int(before)
    expect(page.locator("#policy-simulation .js-plotly-plot .main-svg").first).to_be_visible()
    expect(page.get_by_test_id("simulated-auto").locator(".delta")).to_contain_text("vs now")
    page.screenshot(path=str(output_dir(request) / "policy-simulated.png"), full_page=True)

    page.fill("#id_reason", "Calibration review: 0.80 is as accurate as 0.90 was in Q3")
    page.get_by_role("button", name="Save as version 3").click()
    page.wait_for_load_state("networkidle")

    message = page.locator(".messages li.success")
    expect(message).to_contain_text("Saved as version 3.")
    expect(message).to_contain_text("re-routed in the background")
    assert EscalationPolicy.objects.get(kind="churn", version=3).auto_approve_confidence == 0.8
    expect(page.get_by_test_id("current-version")).to_contain_text("Version 3")
    page.screenshot(path=str(output_dir(request) / "policy-saved.png"), full_page=True)

    # The worker re-routes; once it is done the page no longer says it is under way.
    deadline = time.monotonic() + REROUTE_DEADLINE_S
    while awaiting_rerouting("churn") and time.monotonic() < deadline:
        time.sleep(0.2)
    page.reload()
    expect(page.get_by_test_id("current-version")).to_contain_text("Version 3")
    expect(page.get_by_test_id("rerouting")).to_have_count(0)
    assert Review.objects.filter(route="auto").count() == int(after)
