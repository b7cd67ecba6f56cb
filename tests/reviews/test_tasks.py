"""Routing runs in a real worker once a scoring run commits (no eager mode)."""

import time

import pytest

from loyalty.models import Member
from predictions.services.scoring import start_scoring_run
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
