"""Blind review in chromium: an analyst finds a blind item in the queue without the model's
call or an approve button, opens it, sees only the member's data, commits their own answer,
then sees the model's call beside it and decides; the blind answer stays as given."""

from dataclasses import replace

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from reviews.models import BlindAnswer, Decision, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.browser.test_review_flow import EXPLANATION
from tests.conftest import output_dir
from tests.factories import EventFactory, MemberFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _blind_item() -> Review:
    """One analyst item that opens blind: its model says 'will churn' at 62 %."""
    seed_reason_codes()
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(settings, blind_share=1.0, audit_sample_rate=0.0, human_risk_low=None),
        actor=None,
        reason="every item for people opens blind",
    )
    member = MemberFactory(tier="gold", points_balance=2400)
    EventFactory.create_batch(6, member=member)
    PredictionFactory(
        member=member,
        score=0.62,
        interval_low=0.5,
        interval_high=0.72,
        confidence=0.7,
        explanation=EXPLANATION,
        spend=1840.0,
    )
    route_new_predictions(kind="churn")
    return Review.objects.get(member=member)


def test_an_analyst_answers_blind_then_sees_the_model_and_decides(
    live_server, page, log_in, request
):
    create_demo_users()
    review = _blind_item()
    assert review.is_blind and review.route == Review.Route.ANALYST
    log_in(page, "analyst", "analyst-demo")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/reviews/")
    row = page.locator(f"#review-row-{review.pk}")
    expect(row.get_by_test_id("blind-badge")).to_have_text("Blind review")
    expect(row).not_to_contain_text("62 %")
    expect(row.locator("[data-action=approve]")).to_have_count(0)
    expect(row.locator("input[type=checkbox]")).to_have_count(0)
    page.screenshot(path=str(output_dir(request) / "queue-with-blind-item.png"), full_page=True)
    # The keyboard's select and approve pass a blind row by.
    for key in ("j", "x", "a"):
        page.keyboard.press(key)
    expect(page.locator("[data-role=selected-count]")).to_have_text("")
    assert not Decision.objects.filter(review=review).exists()

    row.get_by_role("link", name="Answer").click()
    page.wait_for_url(f"{live_server.url}/reviews/{review.pk}/")
    expect(page.get_by_test_id("blind-panel")).to_be_visible()
    expect(page.get_by_test_id("timeline").locator("li")).to_have_count(6)
    body = page.locator("body")
    expect(body).not_to_contain_text("62 %")
    expect(body).not_to_contain_text("Why a person looks")
    expect(page.locator("#waterfall-chart")).to_have_count(0)
    page.screenshot(path=str(output_dir(request) / "blind-item.png"), full_page=True)

    page.get_by_label("Will stay").check()
    page.get_by_test_id("commit-blind").click()

    page.wait_for_url(f"{live_server.url}/reviews/{review.pk}/")
    answer = page.get_by_test_id("blind-answer")
    expect(answer).to_contain_text("will stay")
    expect(answer).to_contain_text("The model: will churn")
    expect(answer).to_contain_text("The blind answer disagreed with it on the churn call.")
    expect(page.get_by_test_id("model-call")).to_contain_text("62 %")
    page.locator("#waterfall-chart .js-plotly-plot .main-svg").first.wait_for()
    page.screenshot(path=str(output_dir(request) / "blind-item-revealed.png"), full_page=True)

    # Shown the model's reasons, the analyst comes round to its call and approves it.
    page.get_by_test_id("form-approve").get_by_role("button").click()

    page.wait_for_url(f"{live_server.url}/reviews/")
    decision = Decision.objects.get(review=review)
    blind = BlindAnswer.objects.get(review=review)
    assert (decision.verdict, blind.churn_label, blind.model_churn_call) == (
        "approve",
        False,
        True,
    )
    assert decision.seconds_on_item is not None  # from the blind page's opening
    assert errors == []
