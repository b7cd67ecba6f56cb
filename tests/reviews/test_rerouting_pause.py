"""Re-routing after a policy change honours an open automation pause, as routing does."""

from dataclasses import replace

import pytest

from reviews.models import Review
from reviews.services.automation import pause_auto_approval, resume_auto_approval
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from reviews.services.simulation import simulate_policy
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.reviews.test_policy import EXACT

pytestmark = pytest.mark.django_db

PAUSE_REASON = "calibration error 0.12 above 0.05"
# 0.97 and 0.92 are auto-approved under EXACT (0.9); under STRICT (0.95) only 0.97 is.
STRICT = replace(EXACT, auto_approve_confidence=0.95)


@pytest.fixture
def two_reviews(reason_codes):
    """Churn reviews at confidence 0.97 (auto-approved) and 0.92 (analyst) under STRICT."""
    change_policy(kind="churn", settings=STRICT, actor=None, reason="strict")
    version = ModelVersionFactory()
    predictions = {
        confidence: PredictionFactory(model_version=version, confidence=confidence, score=0.1)
        for confidence in (0.97, 0.92)
    }
    route_new_predictions(kind="churn")
    reviews = {c: Review.objects.get(prediction=p) for c, p in predictions.items()}
    assert {c: (r.route, r.state) for c, r in reviews.items()} == {
        0.97: ("auto", "auto_approved"),
        0.92: ("analyst", "pending"),
    }
    return reviews


def _routing(review: Review) -> tuple[str, str, str]:
    review.refresh_from_db()
    return review.route, review.state, review.route_reason


def test_a_policy_change_under_a_pause_sends_would_be_auto_approvals_to_analysts(two_reviews):
    pause_auto_approval(kind="churn", reason=PAUSE_REASON)
    change_policy(kind="churn", settings=EXACT, actor=None, reason="lower the threshold")

    result = reroute_undecided(kind="churn")

    paused = ("analyst", "pending", f"auto-approval paused: {PAUSE_REASON}")
    assert _routing(two_reviews[0.92]) == paused
    # An earlier auto-approval is the policy's announced decision: the pause does not reopen it.
    assert _routing(two_reviews[0.97])[:2] == ("auto", "auto_approved")
    assert result.moves == {}
    assert result.by_route == {"analyst": 1}


def test_the_simulation_shows_what_the_thresholds_do_once_the_pause_ends(two_reviews, make_user):
    """Deliberately without the pause (the banner of every page shows it): an admin tunes the
    thresholds while auto-approval is paused, for when it resumes."""
    pause_auto_approval(kind="churn", reason=PAUSE_REASON)

    simulation = simulate_policy(kind="churn", settings=EXACT)
    resume_auto_approval(kind="churn", actor=make_user("admin"), reason="calibrated again")
    change_policy(kind="churn", settings=EXACT, actor=None, reason="lower the threshold")
    result = reroute_undecided(kind="churn")

    assert simulation.counts == {"auto": 2, "analyst": 0, "expert": 0}
    # Saving re-routes the pending one to auto; the other was auto-approved already.
    assert result.by_route == {"auto": 1}
    assert Review.objects.filter(route="auto").count() == simulation.counts["auto"]


def test_once_the_pause_is_resumed_rerouting_auto_approves_again(two_reviews, make_user):
    pause_auto_approval(kind="churn", reason=PAUSE_REASON)
    resume_auto_approval(kind="churn", actor=make_user("admin"), reason="calibrated again")
    change_policy(kind="churn", settings=EXACT, actor=None, reason="lower the threshold")

    reroute_undecided(kind="churn")

    assert _routing(two_reviews[0.92]) == (
        "auto",
        "auto_approved",
        "confidence 0.92 ≥ auto-approve threshold 0.90",
    )
