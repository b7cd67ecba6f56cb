"""Routing runs in a real worker once a scoring run commits (no eager mode)."""

import time

import pytest

from loyalty.models import Member
from predictions.services.scoring.runs import start_scoring_run
from reviews.models import Review
from tests.predictions.conftest import (  # noqa: F401  (fixtures)
    CUTOFF,
    active_churn_version,
    generated_members,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_finished_scoring_run_gets_its_reviews_from_the_worker(
    active_churn_version,  # noqa: F811  (the imported fixture)
    celery_worker,
):
    scorable = Member.objects.filter(consent_profiling=True).count()

    start_scoring_run(kind="churn", cutoff=CUTOFF, chunk_size=150)

    deadline = time.monotonic() + 90
    while Review.objects.count() < scorable and time.monotonic() < deadline:
        time.sleep(0.2)
    assert Review.objects.count() == scorable
    assert Review.objects.filter(prediction__model_version=active_churn_version).count() == scorable
    routes = set(Review.objects.values_list("route", flat=True))
    assert routes <= {"auto", "analyst", "expert"} and routes
    assert not Review.objects.filter(route_reason="").exists()


# --- re-routing after a policy change --------------------------------------------------------

REROUTE_DEADLINE_S = 60


def _wait_until_rerouted(kind: str) -> None:
    from reviews.services.rerouting import awaiting_rerouting

    deadline = time.monotonic() + REROUTE_DEADLINE_S
    while awaiting_rerouting(kind) and time.monotonic() < deadline:
        time.sleep(0.2)


@pytest.fixture
def four_churn_reviews(make_user):
    """Four churn reviews under an exact policy (no audit sample, no risk band), by confidence."""
    from reviews.services.policy import change_policy
    from reviews.services.reason_codes import seed_reason_codes
    from reviews.services.routing import route_new_predictions
    from tests.factories import ModelVersionFactory, PredictionFactory
    from tests.reviews.test_policy import EXACT

    seed_reason_codes()
    change_policy(kind="churn", settings=EXACT, actor=None, reason="exact test policy")
    version = ModelVersionFactory()
    predictions = {
        confidence: PredictionFactory(model_version=version, confidence=confidence, score=0.1)
        for confidence in (0.97, 0.92, 0.85, 0.7)
    }
    route_new_predictions(kind="churn")
    return {c: Review.objects.get(prediction=p).pk for c, p in predictions.items()}


def _routes(reviews: dict) -> dict:
    return {c: Review.objects.get(pk=pk).route for c, pk in reviews.items()}


def test_saving_a_policy_reroutes_in_the_worker_and_the_page_follows(
    four_churn_reviews, celery_worker, client, make_user
):
    from dataclasses import replace

    from django.urls import reverse

    from loyalty.models import AuditRecord
    from tests.conftest import TEST_PASSWORD
    from tests.reviews.test_policy import EXACT, _form

    assert _routes(four_churn_reviews) == {
        0.97: "auto",
        0.92: "auto",
        0.85: "analyst",
        0.7: "analyst",
    }
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    url = reverse("reviews:policy", args=["churn"])

    response = client.post(url, _form(replace(EXACT, expert_confidence=0.8)))
    _wait_until_rerouted("churn")

    assert response.status_code == 302
    # The auto-approvals are the policy's decisions and stay; the pending items follow.
    assert _routes(four_churn_reviews) == {
        0.97: "auto",
        0.92: "auto",
        0.85: "analyst",
        0.7: "expert",
    }
    record = AuditRecord.objects.get(subject="policy:churn:v3:reroute")
    assert (record.actor_name, record.details["moved"]) == ("admin-user", 1)
    assert 'data-testid="rerouting"' not in client.get(url).content.decode()


def test_the_sweep_finishes_a_rerouting_whose_message_was_lost(four_churn_reviews, celery_worker):
    from dataclasses import replace
    from datetime import timedelta

    from django.utils import timezone

    from reviews.models import EscalationPolicy
    from reviews.services.policy import change_policy
    from reviews.services.rerouting import STALE_REROUTING_AFTER, awaiting_rerouting
    from reviews.tasks import reroute_stale_task
    from tests.reviews.test_policy import EXACT

    # Saved long ago, and its re-routing never ran (no task was queued for it).
    v3 = change_policy(
        kind="churn", settings=replace(EXACT, auto_approve_confidence=0.8), actor=None, reason="x"
    )
    EscalationPolicy.objects.filter(pk=v3.pk).update(
        created_at=timezone.now() - STALE_REROUTING_AFTER - timedelta(minutes=1)
    )
    assert awaiting_rerouting("churn") == 2  # the pending ones: auto-approvals are decided

    reroute_stale_task.delay()
    _wait_until_rerouted("churn")

    assert _routes(four_churn_reviews) == {0.97: "auto", 0.92: "auto", 0.85: "auto", 0.7: "analyst"}
