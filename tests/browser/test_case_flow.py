"""An analyst works cases in chromium: the churn call and what to do on one page, the action
changed and the churn call corrected in one decision, and the next case opens."""

from datetime import UTC, datetime

import pytest

from loyalty.models import Action
from loyalty.services.users import create_demo_users
from reviews.models import Decision, Review
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import MemberFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CYCLE = datetime(2026, 3, 1, tzinfo=UTC)


def analyst_cases(versions) -> list[Review]:
    """Two cases for analysts (their next action between the thresholds), the riskier member
    first in the queue."""
    churn_predictions = []
    for external_id, score in (("CASE-FIRST", 0.8), ("CASE-NEXT", 0.4)):
        member = MemberFactory(external_id=external_id)
        PredictionFactory(
            member=member,
            model_version=versions["next_action"],
            kind="next_action",
            cutoff=CYCLE,
            score=0.6,
            confidence=0.3,
            probabilities={"win_back_email": 0.6, "bonus_points": 0.3, "no_action": 0.1},
            recommended_action=Action.objects.get(code="win_back_email"),
        )
        churn_predictions.append(
            PredictionFactory(
                member=member,
                model_version=versions["churn"],
                cutoff=CYCLE,
                score=score,
                interval_low=score - 0.1,
                interval_high=score + 0.1,
                confidence=0.8,
            )
        )
    route_new_predictions(kind="churn")
    return [Review.objects.get(prediction=prediction) for prediction in churn_predictions]


def test_an_analyst_changes_the_action_and_corrects_the_churn_call(
    live_server, page, log_in, request, case_versions
):
    create_demo_users()
    first, following = analyst_cases(case_versions)
    assert [case.route for case in (first, following)] == ["analyst", "analyst"]
    assert first.priority > following.priority
    log_in(page, "analyst", "analyst-demo")

    page.goto(f"{live_server.url}/reviews/")
    row = page.locator("tbody tr").first
    assert "CASE-FIRST" in row.inner_text()
    assert "Win-back email" in row.get_by_test_id("case-action").inner_text()
    row.get_by_role("link", name="CASE-FIRST").click()

    page.wait_for_url(f"**/reviews/{first.pk}/")
    assert "80 %" in page.get_by_test_id("model-call").inner_text()
    assert "Win-back email" in page.get_by_test_id("case-action").inner_text()
    page.get_by_role("tab", name="Change").click()
    form = page.get_by_test_id("form-override")
    assert form.get_by_label("What to do").input_value() == "win_back_email"
    assert form.get_by_label("The churn call").input_value() == "churn"
    form.get_by_label("What to do").select_option("bonus_points")
    form.get_by_label("The churn call").select_option("stay")
    form.get_by_label("Reason").select_option("better-action")
    page.screenshot(path=str(output_dir(request) / "case-change.png"), full_page=True)
    form.get_by_role("button", name="Decide").click()

    page.wait_for_url(f"**/reviews/{following.pk}/")
    assert "CASE-NEXT" in page.locator("h1").inner_text()
    decision = Decision.objects.get(review=first)
    assert (decision.verdict, decision.settled_action.code, decision.churn_label) == (
        "override",
        "bonus_points",
        False,
    )
    assert decision.decided_by.username == "analyst"
