"""An analyst decides a next action in chromium: the actions ranked by what they are worth, a
contact rule the recommendation breaks, refused until overridden with a reason."""

from dataclasses import replace

import pytest

from loyalty.models import Action
from loyalty.services.catalog import seed_action_catalog
from loyalty.services.users import create_demo_users
from reviews.models import Decision, Review
from reviews.policy_settings import DEFAULT_SETTINGS
from reviews.services.policy import change_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def flagged_review() -> Review:
    """A member at risk who never consented to marketing: the personal discount is worth most,
    and contacting them breaks a rule."""
    seed_reason_codes()
    seed_action_catalog()
    settings = replace(DEFAULT_SETTINGS["next_action"], ranking="expected_value")
    change_policy(kind="next_action", settings=settings, actor=None, reason="by value")
    member = MemberFactory(external_id="NO-MARKETING", consent_marketing=False)
    PredictionFactory(member=member, kind="churn", score=0.5, spend=1000.0)
    prediction = PredictionFactory(
        member=member,
        model_version=ModelVersionFactory(kind="next_action"),
        kind="next_action",
        score=0.6,
        confidence=0.95,
        probabilities={"win_back_email": 0.6, "bonus_points": 0.25, "personal_discount": 0.15},
        recommended_action=Action.objects.get(code="win_back_email"),
        spend=1000.0,
    )
    route_new_predictions(kind="next_action")
    return Review.objects.get(prediction=prediction)


def test_an_analyst_sends_a_flagged_action_only_with_a_reason(live_server, page, log_in, request):
    create_demo_users()
    review = flagged_review()
    assert (review.route, review.contact_flags) == ("analyst", ["no_marketing_consent"])
    log_in(page, "analyst", "analyst-demo")

    page.goto(f"{live_server.url}/reviews/{review.pk}/")
    worth = page.get_by_test_id("action-worth")
    first_row = worth.locator("tbody tr").first
    assert "Personal discount" in first_row.inner_text()
    assert "50 % × 8 % × 1,000 − 5.00" in first_row.inner_text()
    assert "not consented to marketing" in page.get_by_test_id("contact-rules").inner_text()
    page.screenshot(path=str(output_dir(request) / "flagged-next-action.png"), full_page=True)

    form = page.get_by_test_id("form-approve")
    form.get_by_role("button", name="Approve the recommendation").click()
    assert "breaks the contact rules" in page.get_by_test_id("decision-error").inner_text()
    assert not Decision.objects.filter(review=review).exists()

    form = page.get_by_test_id("form-approve")
    form.get_by_label("Send it anyway").check()
    form.locator("textarea[name=comment]").fill("They asked for the offer at the desk.")
    form.get_by_role("button", name="Approve the recommendation").click()

    page.wait_for_load_state()
    decision = Decision.objects.get(review=review)
    assert (decision.settled_action.code, decision.contact_flags) == (
        "personal_discount",
        ["no_marketing_consent"],
    )
    assert decision.comment == "They asked for the offer at the desk."
