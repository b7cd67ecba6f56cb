"""Retraining with people's labels behind a gate: worse candidates wait, better ones replace."""

import os
import signal
from datetime import timedelta

import pytest
from django.urls import reverse

from learning.models import GatePolicy, LabeledExample, RetrainingRun
from learning.services.labels import label_decision
from learning.services.retraining import (
    held_out_mask,
    recover_stalled_runs,
    request_retraining,
    run_retraining,
    training_examples,
)
from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.models import ModelVersion, Prediction, ScoringRun
from predictions.services.scoring.runs import start_scoring_run
from reviews.models import Notification, Review
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory, people_decisions
from tests.predictions.conftest import (  # noqa: F401  (fixtures)
    CUTOFF,
    active_churn_version,
    active_tree_churn_version,
    generated_members,
)

pytestmark = pytest.mark.django_db(transaction=True)
KILL_QUEUE = "stalling-retraining-worker"


def _score_and_route(kind: str = "churn") -> None:
    run = start_scoring_run(kind=kind, cutoff=CUTOFF, enqueue=False)
    from predictions.services.scoring.runs import score_chunk

    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    route_new_predictions(kind=kind)


def _gate(kind="churn", **rules) -> GatePolicy:
    policy, _ = GatePolicy.objects.get_or_create(kind=kind)
    for name, value in rules.items():
        setattr(policy, name, value)
    policy.save()
    return policy


def test_one_open_run_per_kind_and_a_second_request_joins_it(active_churn_version):  # noqa: F811
    first = request_retraining(kind="churn", trigger="manual", enqueue=False)
    second = request_retraining(kind="churn", trigger="schedule", enqueue=False)
    other = request_retraining(kind="next_action", trigger="manual", enqueue=False)

    assert first.pk == second.pk
    assert other.pk != first.pk
    assert RetrainingRun.objects.count() == 2


def test_an_analyst_cannot_start_retraining(make_user):
    from loyalty.exceptions import PermissionDeniedError

    with pytest.raises(PermissionDeniedError):
        request_retraining(kind="churn", trigger="manual", actor=make_user("analyst"))
    assert not RetrainingRun.objects.exists()


def test_a_passing_candidate_is_promoted_and_everyone_rescored(
    active_churn_version,  # noqa: F811
    make_user,
):
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, auto_promote=True)
    make_user("admin")
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)

    run = run_retraining(run_id=run.pk)

    assert (run.status, run.verdict, run.error) == ("succeeded", "promoted", "")
    assert run.compared_with_id == active_churn_version.pk
    candidate = ModelVersion.objects.get(pk=run.candidate_id)
    assert candidate.status == "active"
    assert ModelVersion.objects.get(pk=active_churn_version.pk).status == "retired"
    assert run.gate["passed"] is True and run.gate["checks"]
    holdout = run.gate["figures"]["holdout"]
    assert set(holdout) == {str(candidate.pk), str(active_churn_version.pk)}
    assert holdout[str(candidate.pk)]["n"] == holdout[str(active_churn_version.pk)]["n"] > 0
    # Promotion re-scores everybody with the new version once it has committed.
    assert ScoringRun.objects.filter(model_version=candidate).count() == 1
    assert Notification.objects.filter(subject__contains="passed the gate").exists()


def test_a_candidate_that_fails_the_gate_stays_a_candidate_with_its_figures(
    active_churn_version,  # noqa: F811
):
    # An impossible rule: any calibration error at all fails.
    _gate(max_ece=0.0, max_auc_drop=1.0, coverage_tolerance=1.0, auto_promote=True)
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)

    run = run_retraining(run_id=run.pk)

    assert (run.status, run.verdict) == ("succeeded", "rejected")
    assert ModelVersion.objects.get(pk=run.candidate_id).status == "candidate"
    assert ModelVersion.objects.get(kind="churn", status="active").pk == active_churn_version.pk
    failing = [check for check in run.gate["checks"] if not check["passed"]]
    assert [check["rule"] for check in failing] == ["calibration error (ECE) at most 0.000"]
    assert not ScoringRun.objects.exists()


def test_in_approval_mode_a_passing_candidate_waits_for_an_admin(
    active_churn_version,  # noqa: F811
    client,
    make_user,
):
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, auto_promote=False)
    run = run_retraining(
        run_id=request_retraining(kind="churn", trigger="manual", enqueue=False).pk
    )
    assert run.verdict == "awaiting_approval"
    assert ModelVersion.objects.get(pk=run.candidate_id).status == "candidate"

    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    page = client.get(reverse("learning:loop"))
    response = client.post(reverse("learning:approve_run", args=[run.pk]))
    again = client.post(reverse("learning:approve_run", args=[run.pk]), follow=True)

    assert page.status_code == 200 and b'data-testid="approve-run"' in page.content
    assert response.status_code == 302
    assert ModelVersion.objects.get(pk=run.candidate_id).status == "active"
    assert RetrainingRun.objects.get(pk=run.pk).verdict == "approved"
    assert b"waits for approval can be approved" in again.content


def test_labeled_examples_train_and_a_share_is_held_out_of_every_training(
    active_churn_version,  # noqa: F811
    make_user,
    without_blind_review,
):
    seed_reason_codes()
    _score_and_route()
    expert = make_user("expert")
    pending = Review.objects.filter(state="pending").order_by("pk")[:60]
    for review in pending:
        decision = override_prediction(
            review_id=review.pk,
            actor=expert,
            reason_code="wrong-churn-call",
            churn_label=review.prediction.score < 0.5,
        )
        label_decision(decision_id=decision.pk)
    examples = training_examples("churn")
    held = held_out_mask(examples)
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, min_human_examples=1)

    run = run_retraining(
        run_id=request_retraining(kind="churn", trigger="manual", enqueue=False).pk
    )

    assert len(examples) == 60 == LabeledExample.objects.count()
    assert 0 < held.sum() < 60
    assert list(held_out_mask(examples)) == list(held)  # stable
    assert (run.examples_used, run.examples_held_out) == (60 - held.sum(), held.sum())
    candidate = ModelVersion.objects.get(pk=run.candidate_id)
    assert candidate.metrics["rows"]["labeled"] == 60 - held.sum()
    human = run.gate["figures"]["human"][str(candidate.pk)]
    assert human["n"] == held.sum()
    assert any("held-out human labels" in check["rule"] for check in run.gate["checks"])


def test_training_examples_leave_out_members_who_withdrew_consent_or_were_erased(make_user):
    seed_reason_codes()
    version = ModelVersionFactory()
    kept, withdrawn, erased = (
        PredictionFactory(model_version=version, score=0.3, confidence=0.8) for _ in range(3)
    )
    route_new_predictions(kind="churn")
    expert = make_user("expert")
    for prediction in (kept, withdrawn, erased):
        decision = approve_prediction(
            review_id=prediction.review.pk, actor=expert, reason_code="model-correct"
        )
        label_decision(decision_id=decision.pk)
    assert set(training_examples("churn")["member_id"]) == {
        kept.member_id,
        withdrawn.member_id,
        erased.member_id,
    }

    set_consent(member=withdrawn.member, consent=False, actor=None)
    erase_member(member_id=erased.member_id, actor=None)
    examples = training_examples("churn")

    assert examples["member_id"].tolist() == [kept.member_id]
    assert examples["prediction_id"].tolist() == [kept.pk]


def test_a_run_whose_worker_vanished_is_sent_again_then_failed(
    active_churn_version,  # noqa: F811
):
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)
    # Two starts that never finished (the worker was killed both times).
    RetrainingRun.objects.filter(pk=run.pk).update(status="running", attempts=2)
    RetrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=run.created_at - timedelta(hours=3))

    assert recover_stalled_runs() == 1
    run = run_retraining(run_id=run.pk)

    assert run.status == "failed" and "gave up after 2 attempts" in run.error
    assert run.candidate_id is None
    assert ModelVersion.objects.filter(kind="churn").count() == 1


def test_a_rescore_replaces_the_undecided_reviews_of_older_predictions(
    active_churn_version,  # noqa: F811
    make_user,
):
    seed_reason_codes()
    _score_and_route()
    before = dict(Review.objects.filter(state="pending").values_list("member_id", "pk"))
    assert before

    later = start_scoring_run(kind="churn", cutoff=CUTOFF + timedelta(days=1), enqueue=False)
    from predictions.services.scoring.runs import score_chunk

    for chunk_id in later.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    route_new_predictions(kind="churn")

    superseded = Review.objects.filter(pk__in=before.values(), state="superseded").count()
    assert superseded == len(before)
    members = Prediction.objects.values("member").distinct().count()
    pending_now = Review.objects.filter(state="pending")
    assert pending_now.values("member").distinct().count() == pending_now.count() <= members


@pytest.mark.worker
def test_a_worker_killed_mid_retraining_leaves_no_half_version_and_loses_no_decision(
    active_churn_version,  # noqa: F811
    make_user,
    tmp_path,
    celery_worker,
):
    from learning.tasks import retrain_task
    from tests.workers import start_worker_process, wait_until

    seed_reason_codes()
    _score_and_route()
    expert = make_user("expert")
    for review in Review.objects.filter(state="pending").order_by("pk")[:10]:
        override_prediction(
            review_id=review.pk, actor=expert, reason_code="wrong-churn-call", churn_label=True
        )
    wait_until(lambda: LabeledExample.objects.count() == 10, what="the decisions' labels")
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, auto_promote=False)
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)
    marker = tmp_path / "stalled"
    log_path = tmp_path / "worker.log"
    worker = start_worker_process(
        "tests.reviews.stalling_retraining_worker",
        queue=KILL_QUEUE,
        log=log_path.open("w"),
        env={"STALL_MARKER": str(marker)},
    )
    try:
        retrain_task.apply_async(args=[run.pk], queue=KILL_QUEUE)
        try:
            wait_until(marker.exists, timeout=120, what="the worker to reach registration")
        except AssertionError as error:
            raise AssertionError(f"{error}; worker log:\n{log_path.read_text()}") from error
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    run.refresh_from_db()
    assert (run.status, run.attempts, run.candidate_id) == ("running", 1, None)
    assert ModelVersion.objects.filter(kind="churn").count() == 1  # no half version
    assert people_decisions().count() == LabeledExample.objects.count() == 10

    # The sweep sends it again; the test's own worker (a healthy one) finishes it.
    assert recover_stalled_runs(older_than=timedelta(0)) == 1
    wait_until(
        lambda: RetrainingRun.objects.get(pk=run.pk).status in ("succeeded", "failed"),
        timeout=120,
        what="the run to finish",
    )
    run.refresh_from_db()
    assert (run.status, run.attempts, run.verdict) == ("succeeded", 2, "awaiting_approval")
    candidate = ModelVersion.objects.get(pk=run.candidate_id)
    assert candidate.status == "candidate" and candidate.artifact_checksums
    assert ModelVersion.objects.filter(kind="churn").count() == 2
    assert people_decisions().count() == LabeledExample.objects.count() == 10


def test_a_candidate_trained_on_poisoned_labels_is_worse_and_is_not_promoted(
    active_tree_churn_version,  # noqa: F811
):
    """Labels that contradict what members did, with a heavy weight: the default gate sees
    the out-of-time AUC fall and keeps the active version. The served model is the trees (a
    one-feature baseline recalibrated on the latest window cannot be poisoned this way)."""
    _score_and_route()
    GatePolicy.objects.get_or_create(kind="churn")  # the default rules
    for prediction in Prediction.objects.filter(model_version=active_tree_churn_version):
        LabeledExample.objects.create(
            source="outcome",
            kind="churn",
            prediction=prediction,
            member_id=prediction.member_id,
            model_version=active_tree_churn_version,
            cutoff=prediction.cutoff,
            churn_label=prediction.score < 0.5,  # the opposite of the model's call
            agrees_with_model=False,
            weight=50.0,
            feature_values=prediction.feature_values,
            observed_at=prediction.cutoff,
        )

    run = run_retraining(
        run_id=request_retraining(kind="churn", trigger="manual", enqueue=False).pk
    )

    assert (run.status, run.verdict) == ("succeeded", "rejected")
    holdout = run.gate["figures"]["holdout"]
    candidate, active = holdout[str(run.candidate_id)], holdout[str(active_tree_churn_version.pk)]
    assert candidate["n"] == active["n"] > 0  # the same rows for both
    assert candidate["log_loss"] > active["log_loss"]
    assert candidate["ece"] > active["ece"]
    failing = {check["rule"] for check in run.gate["checks"] if not check["passed"]}
    assert "calibration error (ECE) at most 0.050" in failing
    still_active = ModelVersion.objects.get(kind="churn", status="active")
    assert still_active.pk == active_tree_churn_version.pk
    assert not ScoringRun.objects.filter(model_version_id=run.candidate_id).exists()


@pytest.mark.worker
def test_after_an_auto_promotion_the_worker_rescores_and_routes_everybody(
    active_churn_version,  # noqa: F811
    celery_worker,
):
    from loyalty.models import Member
    from tests.workers import wait_until

    seed_reason_codes()
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, auto_promote=True)
    scorable = Member.objects.filter(consent_profiling=True).count()

    run = run_retraining(
        run_id=request_retraining(kind="churn", trigger="manual", enqueue=False).pk
    )

    assert run.verdict == "promoted"
    wait_until(
        lambda: (
            Review.objects.filter(prediction__model_version_id=run.candidate_id).count() == scorable
        ),
        timeout=120,
        what="the new version's predictions to be routed",
    )
    assert Prediction.objects.filter(model_version_id=run.candidate_id).count() == scorable


def test_retraining_trains_for_the_admins_horizon_else_the_active_versions(make_user):
    from learning.services.retraining import DEFAULT_HORIZON_DAYS, retraining_horizon

    assert retraining_horizon("churn", None) == (
        DEFAULT_HORIZON_DAYS,
        "the default: no active version",
    )
    active = ModelVersionFactory(horizon_days=120, status="active")
    assert retraining_horizon("churn", active) == (120, f"the active version's (v{active.pk})")
    _gate(retraining_horizon_days=60)
    assert retraining_horizon("churn", active) == (60, "the admin's setting")
    assert retraining_horizon("next_action", active) == (None, "")


def test_a_run_trains_its_candidate_for_the_horizon_it_shows(
    active_churn_version,  # noqa: F811
    make_user,
    client,
):
    _gate(max_auc_drop=1.0, max_ece=1.0, coverage_tolerance=1.0, retraining_horizon_days=60)
    run = request_retraining(kind="churn", trigger="manual", enqueue=False)

    run = run_retraining(run_id=run.pk)

    assert (run.horizon_days, run.horizon_source) == (60, "the admin's setting")
    assert ModelVersion.objects.get(pk=run.candidate_id).horizon_days == 60
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    page = client.get(reverse("learning:loop")).content.decode()
    assert "horizon 60 days: the admin&#x27;s setting" in page
