"""Training tells its progress: stages in order, fractions that only grow from 0 to 1.

No database. A listener changes nothing: the models trained with one are the ones trained
without.
"""

from dataclasses import replace
from itertools import groupby, pairwise

import pytest

from predictions.ml.churn import model as churn
from predictions.ml.churn import stages
from predictions.ml.contracts import NextActionConfig, SequenceModelConfig
from predictions.ml.nba import (
    CALIBRATION,
    EVALUATION,
    FITTING,
    JOINING,
    train_next_action,
)
from predictions.ml.progress import Progress, ProgressEvent, labelled
from tests.ml.conftest import (
    ACTIONS,
    CUTOFF,
    FAST_BOOSTER,
    FAST_CONFIG,
    HORIZON,
    next_action_labels,
)

# The trees of FAST_CONFIG with two replicas and a GRU small enough to train in a second.
SEQUENCE_EPOCHS = 3
SMALL_ENSEMBLE = replace(
    FAST_CONFIG,
    bootstrap_models=2,
    sequence=True,
    sequence_length=16,
    sequence_min_rows=100,
    sequence_model=SequenceModelConfig(
        hidden_size=8, batch_size=512, max_epochs=SEQUENCE_EPOCHS, patience=SEQUENCE_EPOCHS
    ),
)


def stages_in_order(events: list[ProgressEvent]) -> list[str]:
    return [stage for stage, _ in groupby(event.stage for event in events)]


def assert_monotonic_to_one(events: list[ProgressEvent]) -> None:
    fractions = [event.fraction for event in events]
    assert fractions[0] == 0.0
    assert fractions[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in fractions)
    assert all(later >= earlier for earlier, later in pairwise(fractions))


def steps_of(events: list[ProgressEvent], stage: str) -> list[int]:
    return [event.done for event in events if event.stage == stage and event.done]


# --- the bookkeeping -------------------------------------------------------------------------


def test_a_plan_spreads_the_fraction_by_share_and_steps():
    heard: list[ProgressEvent] = []
    progress = Progress(heard.append, {"a": 1.0, "b": 3.0})

    progress.stage("a")
    progress.stage("b", total=2, detail="two steps")
    progress.step(detail="one")
    progress.step(detail="two")
    progress.finish()

    assert [(e.stage, e.fraction, e.done, e.total, e.detail) for e in heard] == [
        ("a", 0.0, 0, None, ""),
        ("b", 0.25, 0, 2, "two steps"),
        ("b", 0.625, 1, 2, "one"),
        ("b", 1.0, 2, 2, "two"),
        ("b", 1.0, 2, 2, ""),
    ]


def test_stages_run_in_plan_order_even_without_a_listener():
    progress = Progress(None, {"a": 1.0, "b": 1.0})
    progress.stage("b")

    with pytest.raises(ValueError, match="after 'b'"):
        progress.stage("a")
    with pytest.raises(ValueError, match="not in the plan"):
        progress.stage("c")


def test_a_stage_that_does_not_run_is_jumped_over():
    heard: list[ProgressEvent] = []
    progress = Progress(heard.append, {"a": 1.0, "skipped": 2.0, "c": 1.0})

    progress.stage("a")
    progress.stage("c")
    progress.finish()

    assert [(e.stage, e.fraction) for e in heard] == [("a", 0.0), ("c", 0.75), ("c", 1.0)]


def test_a_part_reports_inside_its_stage_and_a_nested_computation_under_its_own_names():
    heard: list[ProgressEvent] = []
    outer = Progress(heard.append, {"load": 1.0, "inner": 2.0, "save": 1.0})
    outer.stage("load")
    inner = Progress(outer.nest("inner"), {"x": 1.0, "y": 1.0})
    inner.stage("x")
    epochs = inner.part("y")
    epochs(ProgressEvent(stage="epochs", fraction=0.5, done=1, total=2, detail="epoch 1"))
    inner.finish()
    outer.stage("save")
    outer.finish()

    assert [(e.stage, e.fraction, e.done, e.total, e.detail) for e in heard] == [
        ("load", 0.0, 0, None, ""),
        ("x", 0.25, 0, None, ""),
        ("y", 0.5, 0, None, ""),
        ("y", 0.625, 1, 2, "epoch 1"),
        ("y", 0.75, 2, 2, ""),
        ("save", 0.75, 0, None, ""),
        ("save", 1.0, 0, None, ""),
    ]


def test_labelled_names_the_computation_before_each_stage():
    heard: list[ProgressEvent] = []
    told = labelled(heard.append, "churn")

    told(ProgressEvent(stage="features", fraction=0.5))

    assert heard == [ProgressEvent(stage="churn: features", fraction=0.5)]
    assert labelled(None, "churn") is None


# --- the trainings ---------------------------------------------------------------------------


def test_churn_training_reports_every_stage_in_order_and_its_steps(synthetic):
    heard: list[ProgressEvent] = []

    result = churn.train_churn(
        events=synthetic.events,
        members=synthetic.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=SMALL_ENSEMBLE,
        progress=heard.append,
    )

    assert result.report["sequence_model"]["trained"] is True
    assert stages_in_order(heard) == [
        stages.PREPARING,
        stages.FEATURES,
        stages.FITTING,
        stages.REFITTING,
        stages.SEQUENCE_MODEL,
        stages.ENSEMBLE_CALIBRATION,
        stages.EVALUATION,
    ]
    assert_monotonic_to_one(heard)
    cutoffs = len(result.report["cutoffs"])
    assert steps_of(heard, stages.FEATURES) == list(range(1, cutoffs + 1))
    assert steps_of(heard, stages.FITTING) == [1, 2, 3]
    refits = len(result.bundle.candidates) * SMALL_ENSEMBLE.bootstrap_models
    assert steps_of(heard, stages.REFITTING) == list(range(1, refits + 1))
    epochs = result.report["sequence_model"]["epochs"]
    # One event per epoch, then the end of training (early stopping may end it sooner).
    assert steps_of(heard, stages.SEQUENCE_MODEL) == [*range(1, epochs + 1), SEQUENCE_EPOCHS]
    epoch_details = [e.detail for e in heard if e.stage == stages.SEQUENCE_MODEL and e.done]
    assert epoch_details[0].startswith("epoch 1: validation log loss ")


def test_without_a_sequence_model_its_stages_are_not_announced_and_nothing_else_changes(
    synthetic, churn_result
):
    heard: list[ProgressEvent] = []

    result = churn.train_churn(
        events=synthetic.events,
        members=synthetic.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=FAST_CONFIG,
        progress=heard.append,
    )

    assert stages_in_order(heard) == [
        stages.PREPARING,
        stages.FEATURES,
        stages.FITTING,
        stages.REFITTING,
        stages.EVALUATION,
    ]
    assert_monotonic_to_one(heard)
    assert result.report["selection"] == churn_result.report["selection"]
    assert result.report["model"] == churn_result.report["model"]


def test_next_action_training_reports_every_stage_in_order(
    synthetic, next_action_panel, next_action_result
):
    heard: list[ProgressEvent] = []

    result = train_next_action(
        features=next_action_panel,
        labels=next_action_labels(synthetic, next_action_panel),
        action_codes=ACTIONS,
        config=NextActionConfig(booster=FAST_BOOSTER),
        progress=heard.append,
    )

    assert stages_in_order(heard) == [JOINING, FITTING, CALIBRATION, EVALUATION]
    assert_monotonic_to_one(heard)
    assert steps_of(heard, FITTING) == [1, 2]
    assert result.report["metrics"] == next_action_result.report["metrics"]
