"""Decisions and observed outcomes become labeled examples: one each, whatever runs twice."""

import time
from datetime import UTC, datetime, timedelta

import pytest

from learning.models import LabeledExample
from learning.services.labels import (
    DECISION_LABEL_WEIGHT,
    label_decision,
    record_outcomes,
    sweep_unlabeled_decisions,
    unlabeled_decisions,
)
from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.ml.nba import OUTCOME_WEIGHT, RULE_WEIGHT
from predictions.models import Prediction
from reviews.models import Decision
from reviews.services.decisions import approve_prediction, override_prediction
from reviews.services.routing import route_new_predictions
from tests.factories import EventFactory, ModelVersionFactory, PredictionFactory

CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


def _examples(**filters):
    return LabeledExample.objects.filter(**filters)


@pytest.mark.django_db
def test_an_approved_churn_call_labels_the_model_call(routed, make_user):
    review = routed["analyst"]  # score 0.3: the model says "stays"
    decision = approve_prediction(
        review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    example = label_decision(decision_id=decision.pk)

    assert (example.source, example.kind, example.prediction_id) == (
        "decision",
        "churn",
        review.prediction_id,
    )
    assert (example.churn_label, example.agrees_with_model, example.excluded) == (
        False,
        True,
        False,
    )
    assert (example.treatment, example.weight) == ("confirm", 1.0)
    assert example.model_version_id == review.prediction.model_version_id
    assert example.cutoff == review.prediction.cutoff
    assert example.feature_values == review.prediction.feature_values


@pytest.mark.django_db
def test_an_approved_next_action_is_the_heaviest_label_of_its_kind(next_action_review, make_user):
    from loyalty.models import Action

    prediction = next_action_review.prediction
    prediction.recommended_action = Action.objects.get(code="bonus_points")
    prediction.save(update_fields=["recommended_action"])
    decision = approve_prediction(
        review_id=next_action_review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    example = label_decision(decision_id=decision.pk)

    assert (example.kind, example.action_id, example.churn_label) == (
        "next_action",
        prediction.recommended_action_id,
        None,
    )
    assert example.action_id is not None
    assert example.weight == DECISION_LABEL_WEIGHT["next_action"] == 2.5


@pytest.mark.django_db
def test_an_override_labels_the_human_answer_weighted_as_an_approval(routed, make_user):
    decision = override_prediction(
        review_id=routed["analyst"].pk,
        actor=make_user("analyst"),
        reason_code="wrong-churn-call",
        churn_label=True,
    )

    example = label_decision(decision_id=decision.pk)

    assert (example.churn_label, example.agrees_with_model) == (True, False)
    # As an approval, and as one history row: a churn call is a guess about the horizon.
    assert (example.treatment, example.weight) == ("relabel", 1.0)
    # For next actions a person's choice outweighs an observed outcome, then a bootstrap rule.
    assert DECISION_LABEL_WEIGHT["next_action"] > OUTCOME_WEIGHT > RULE_WEIGHT


@pytest.mark.django_db
def test_a_next_action_override_labels_the_chosen_action(next_action_review, make_user):
    decision = override_prediction(
        review_id=next_action_review.pk,
        actor=make_user("expert"),
        reason_code="better-action",
        action_code="win_back_email",
    )

    example = label_decision(decision_id=decision.pk)

    assert example.action.code == "win_back_email"
    assert example.churn_label is None
    assert example.agrees_with_model is False


@pytest.mark.django_db
def test_an_exclude_reason_keeps_a_record_but_no_training_row(routed, make_user):
    decision = override_prediction(
        review_id=routed["analyst"].pk,
        actor=make_user("analyst"),
        reason_code="bad-data",
        churn_label=True,
    )

    example = label_decision(decision_id=decision.pk)

    assert (example.excluded, example.weight, example.treatment) == (True, 0.0, "exclude")
    assert not _examples(excluded=False).exists()
    assert not unlabeled_decisions().exists()  # handled: the sweep will not try it again


@pytest.mark.django_db
def test_labeling_twice_gives_the_same_single_example(routed, make_user):
    decision = approve_prediction(
        review_id=routed["analyst"].pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    first = label_decision(decision_id=decision.pk)
    second = label_decision(decision_id=decision.pk)

    assert first.pk == second.pk
    assert _examples(decision=decision, source="decision").count() == 1


@pytest.mark.django_db
def test_the_sweep_labels_a_decision_whose_task_never_ran(routed, make_user):
    # In a test transaction on_commit never fires: the task was never queued, as when the
    # broker was down at the moment of the decision.
    expert = make_user("expert")
    for name in ("analyst", "expert"):
        approve_prediction(review_id=routed[name].pk, actor=expert, reason_code="model-correct")
    assert _examples().count() == 0

    created = sweep_unlabeled_decisions()
    again = sweep_unlabeled_decisions()

    assert (created, again) == (2, 0)
    # People's decisions only: the auto-approval's policy decision is the model's own answer.
    assert set(_examples().values_list("decision_id", flat=True)) == set(
        Decision.objects.exclude(decided_as="policy").values_list("pk", flat=True)
    )
    assert Decision.objects.filter(decided_as="policy").count() == 1


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_committed_decision_is_labeled_once_by_the_worker_even_if_sent_twice(
    routed, make_user, celery_worker
):
    from learning.tasks import label_decision_task

    decision = approve_prediction(
        review_id=routed["analyst"].pk, actor=make_user("analyst"), reason_code="model-correct"
    )
    _wait_for(lambda: _examples(decision=decision).exists())
    label_decision_task.delay(decision.pk)  # a redelivery
    label_decision_task.delay(decision.pk)
    _wait_for(lambda: not _worker_busy())

    assert _examples(decision=decision, source="decision").count() == 1


def _wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _worker_busy() -> bool:
    from celery.worker import state

    time.sleep(1.0)  # leave time for the queued messages to be taken
    return bool(state.active_requests or state.reserved_requests)


# --- outcomes ---------------------------------------------------------------------------


@pytest.fixture
def churn_predictions(reason_codes):
    """Two churn predictions at CUTOFF by a 90-day model: one member buys 30 days later."""
    version = ModelVersionFactory(horizon_days=90)
    buyer = PredictionFactory(model_version=version, score=0.8, confidence=0.8, cutoff=CUTOFF)
    leaver = PredictionFactory(model_version=version, score=0.2, confidence=0.8, cutoff=CUTOFF)
    EventFactory(member=buyer.member, kind="purchase", occurred_at=CUTOFF + timedelta(days=30))
    EventFactory(member=leaver.member, kind="login", occurred_at=CUTOFF + timedelta(days=30))
    route_new_predictions(kind="churn")
    return buyer, leaver


@pytest.mark.django_db
def test_outcomes_wait_until_the_data_pass_the_horizon(churn_predictions):
    result = record_outcomes(clock=CUTOFF + timedelta(days=89))

    assert result.recorded == 0
    assert not _examples(source="outcome").exists()


@pytest.mark.django_db
def test_outcomes_record_who_churned_once_and_link_the_decision(churn_predictions, make_user):
    buyer, leaver = churn_predictions
    decision = override_prediction(
        review_id=buyer.review.pk,
        actor=make_user("expert"),
        reason_code="wrong-churn-call",
        churn_label=False,
    )
    clock = CUTOFF + timedelta(days=91)

    first = record_outcomes(clock=clock)
    second = record_outcomes(clock=clock)

    assert (first.recorded, second.recorded) == (2, 0)
    bought = _examples(source="outcome", prediction=buyer).get()
    left = _examples(source="outcome", prediction=leaver).get()
    # The buyer was called a churner (0.8) and bought: the model was wrong, the expert right.
    assert (bought.churn_label, bought.agrees_with_model, bought.decision_id) == (
        False,
        False,
        decision.pk,
    )
    # The other was called a stayer (0.2) and only logged in: churned, the model was wrong.
    assert (left.churn_label, left.agrees_with_model, left.decision_id) == (True, False, None)
    assert bought.weight > 0 and not bought.excluded


@pytest.mark.django_db
def test_outcomes_without_events_use_the_latest_event_as_the_clock(churn_predictions):
    # The latest event is 30 days after the cutoff: the 90-day horizon has not passed.
    assert record_outcomes().recorded == 0
    EventFactory(kind="purchase", occurred_at=CUTOFF + timedelta(days=120))

    assert record_outcomes().recorded == 2
    assert Prediction.objects.count() == 2


@pytest.mark.django_db
def test_no_outcome_is_recorded_for_a_member_who_withdrew_consent_or_was_erased(
    churn_predictions,
):
    buyer, leaver = churn_predictions
    version = buyer.model_version
    withdrawn = PredictionFactory(model_version=version, score=0.2, confidence=0.8, cutoff=CUTOFF)
    erased = PredictionFactory(model_version=version, score=0.2, confidence=0.8, cutoff=CUTOFF)
    for prediction in (withdrawn, erased):
        EventFactory(
            member=prediction.member, kind="purchase", occurred_at=CUTOFF + timedelta(days=30)
        )
    set_consent(member=withdrawn.member, consent=False, actor=None)
    # Erasure deletes the member's events: "no purchase in the horizon" must not read "churned".
    erase_member(member_id=erased.member_id, actor=None)

    result = record_outcomes(clock=CUTOFF + timedelta(days=91))

    assert (result.recorded, result.by_kind) == (2, {"churn": 2})
    assert set(_examples(source="outcome").values_list("member_id", flat=True)) == {
        buyer.member_id,
        leaver.member_id,
    }
