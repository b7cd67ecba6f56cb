"""An admin adds a custom segment on the policy page in chromium, sees the simulation count its
reviews, saves, and finds it named in the version history."""

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from reviews.models import EscalationPolicy
from reviews.policy_settings import PolicySettings
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SEGMENTS = ("at_risk", "cant_lose", "loyal", "champions")


def _seed_reviews() -> None:
    change_policy(
        kind="churn",
        settings=PolicySettings(audit_sample_rate=0.0, human_risk_low=None, human_risk_high=None),
        actor=None,
        reason="Launch thresholds agreed with the loyalty team",
    )
    version = ModelVersionFactory()
    for n in range(40):
        PredictionFactory(
            model_version=version,
            confidence=0.6 + 0.4 * n / 40,
            rfm_segment=SEGMENTS[n % len(SEGMENTS)],
            spend=500 + (n % 10) * 100,
        )
    route_new_predictions(kind="churn")


def test_admin_adds_a_custom_segment_sees_its_simulation_and_saves(
    live_server, page, log_in, request, celery_worker
):
    create_demo_users()
    _seed_reviews()
    log_in(page, "admin", "admin-demo")

    page.goto(f"{live_server.url}/reviews/manage/policy/churn/")
    custom = page.get_by_test_id("policy-custom-segments")
    expect(custom).to_contain_text("saved with the version")
    new_row = custom.locator("[data-testid=custom-segment-row][data-new=true]")
    expect(new_row).to_have_count(1)

    page.fill("#id_custom_0_name", "High-value at risk")
    page.select_option("#id_custom_0_rfm_segments", ["at_risk", "cant_lose"])
    page.fill("#id_custom_0_min_value", "1000")
    page.fill("#id_custom_0_auto", "0.97")
    page.fill("#id_custom_0_expert", "0.85")

    simulated = page.locator(
        "[data-testid=simulated-custom-segments] tr[data-segment='rule:high_value_at_risk']"
    )
    expect(simulated).to_contain_text("High-value at risk")
    # At risk or can't lose with a spend of 1,000 or more: 10 of the 40 members.
    expect(simulated.locator("td").nth(1)).to_have_text("10")
    page.get_by_test_id("simulated-custom-segments").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir(request) / "custom-segment-simulated.png"), full_page=True)

    page.fill("#id_reason", "High-value members at risk need surer calls")
    page.get_by_role("button", name="Save as version 3").click()
    page.wait_for_load_state("networkidle")

    expect(page.locator(".messages li.success")).to_contain_text("Saved as version 3.")
    history = page.locator(".history tbody tr").first
    expect(history).to_contain_text("Custom High-value at risk: auto 0.97 / expert 0.85")
    expect(page.locator("#id_custom_0_name")).to_have_value("High-value at risk")
    assert EscalationPolicy.objects.get(kind="churn", version=3).segment_overrides == {
        "rule:high_value_at_risk": {
            "name": "High-value at risk",
            "rule": {
                "tiers": [],
                "rfm_segments": ["at_risk", "cant_lose"],
                "min_value": 1000.0,
                "max_value": None,
            },
            "auto_approve_confidence": 0.97,
            "expert_confidence": 0.85,
        }
    }
    page.get_by_test_id("policy-custom-segments").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir(request) / "custom-segment-saved.png"), full_page=True)
