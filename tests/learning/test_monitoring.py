"""The calibration and drift monitor: a breach pauses auto-approval until an admin or a new
model version lifts it; routing sends everything to people meanwhile."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from learning.models import GatePolicy, LabeledExample, MonitorReport
from learning.services.monitoring import run_monitor
from loyalty.services.catalog import seed_action_catalog
from loyalty.services.synthetic.generation import generate_members
from predictions.services.registry import promote_model_version
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from predictions.services.training import train_churn_version
from reviews.models import AutomationPause, Review
from reviews.policy_settings import DEFAULT_SETTINGS
from reviews.selectors.pauses import open_pause
from reviews.services.automation import resume_auto_approval
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.predictions.conftest import CUTOFF as SCORING_CUTOFF
from tests.predictions.conftest import DAYS, FAST_CHURN, HORIZON, START

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def overconfident(reason_codes):
    """An active churn version that said 0.9 for 40 members who all stayed, under a policy
    without an audit sample (the 2 % default samples a would-be auto-approval by its database
    id, which took the pause's place in one run)."""
    change_policy(
        kind="churn",
        settings=replace(DEFAULT_SETTINGS["churn"], audit_sample_rate=0.0),
        actor=None,
        reason="no audit sample in tests",
    )
    version = ModelVersionFactory(status="active", horizon_days=90)
    GatePolicy.objects.update_or_create(
        kind="churn", defaults={"monitor_min_outcomes": 30, "monitor_max_ece": 0.1}
    )
    for _ in range(40):
        prediction = PredictionFactory(model_version=version, score=0.9, confidence=0.95)
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
            observed_at=CUTOFF + timedelta(days=90),
        )
    return version


def _would_be_auto():
    return PredictionFactory(
        model_version=ModelVersionFactory(), score=0.05, confidence=0.99, spend=1.0
    )


@pytest.mark.django_db
def test_a_miscalibrated_version_pauses_auto_approval(overconfident, make_user):
    make_user("admin")

    report = run_monitor(kind="churn")

    assert report.outcomes == 40 and report.ece == pytest.approx(0.9)
    assert report.breaches == ["calibration error 0.900 > 0.100 on 40 outcomes"]
    pause = open_pause("churn")
    assert pause is not None and pause.monitor_report_id == report.pk
    assert "calibration error 0.900" in pause.reason
    # A second breach keeps the one pause.
    run_monitor(kind="churn")
    assert AutomationPause.objects.filter(kind="churn").count() == 1
    assert open_pause("next_action") is None


@pytest.mark.django_db
def test_too_few_outcomes_are_not_judged(overconfident):
    GatePolicy.objects.filter(kind="churn").update(monitor_min_outcomes=100)

    report = run_monitor(kind="churn")

    assert report.breaches == [] and report.ece == pytest.approx(0.9)
    assert open_pause("churn") is None


@pytest.mark.django_db
def test_while_paused_routing_sends_would_be_auto_approvals_to_analysts(overconfident):
    run_monitor(kind="churn")
    paused = _would_be_auto()
    route_new_predictions(kind="churn")
    resume_auto_approval(kind="churn", actor=None, reason="checked by hand")
    resumed = _would_be_auto()
    route_new_predictions(kind="churn")

    during = Review.objects.get(prediction=paused)
    after = Review.objects.get(prediction=resumed)
    assert (during.route, during.state) == ("analyst", "pending")
    assert during.route_reason.startswith("auto-approval paused: calibration error 0.900")
    assert (after.route, after.state) == ("auto", "auto_approved")


@pytest.mark.django_db
def test_promoting_a_new_version_lifts_the_pause(overconfident):
    run_monitor(kind="churn")
    newer = ModelVersionFactory()

    promote_model_version(version_id=newer.pk, actor=None)

    pause = AutomationPause.objects.get(kind="churn")
    assert pause.resumed_at is not None
    assert pause.resume_reason == f"model version {newer.pk} became active"


@pytest.mark.django_db
def test_an_analyst_cannot_resume_but_an_admin_can_from_the_loop_page(
    overconfident, client, make_user
):
    from loyalty.exceptions import PermissionDeniedError

    run_monitor(kind="churn")
    with pytest.raises(PermissionDeniedError):
        resume_auto_approval(kind="churn", actor=make_user("analyst"), reason="no")

    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    page = client.get(reverse("learning:loop"))
    response = client.post(
        reverse("learning:resume_automation", args=["churn"]), {"reason": "new data checked"}
    )

    assert b'data-testid="pause-churn"' in page.content
    assert response.status_code == 302
    pause = AutomationPause.objects.get(kind="churn")
    assert pause.resume_reason == "new data checked" and pause.resumed_by is not None


@pytest.mark.django_db(transaction=True)
def test_drift_is_measured_per_feature_against_the_training_data(make_user):
    seed_action_catalog()
    generate_members(members=300, seed=11, start=START, days=DAYS, horizon_days=HORIZON)
    version = train_churn_version(
        cutoff=SCORING_CUTOFF, horizon_days=HORIZON, config=FAST_CHURN
    ).version
    promote_model_version(version_id=version.pk, actor=None)
    run = start_scoring_run(kind="churn", cutoff=SCORING_CUTOFF, enqueue=False)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)

    report = run_monitor(kind="churn")

    assert set(report.drift) == set(version.feature_codes)
    values = [psi for psi in report.drift.values() if psi is not None]
    assert values and all(psi >= 0 for psi in values)
    assert report.max_psi == max(values)
    assert MonitorReport.objects.count() == 1
