"""Fixtures for the prediction engine's Django side: generated members and trained versions."""

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from loyalty.services.catalog import seed_action_catalog
from loyalty.services.synthetic.generation import generate_members
from predictions.ml.contracts import BoosterParams, ChurnConfig, SequenceModelConfig
from predictions.services.registry import promote_model_version
from predictions.services.training import train_churn_version, train_next_action_version

START = date(2025, 1, 1)
DAYS = 365
HORIZON = 90
CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)  # START + DAYS: the generator's own cutoff
# Small and fast: a test trains in about a second. Trees only (FAST_ENSEMBLE adds a GRU).
FAST_CHURN = ChurnConfig(
    seed=0,
    bootstrap_models=3,
    max_training_cutoffs=4,
    booster=BoosterParams(num_boost_round=60, early_stopping_rounds=10, n_jobs=1),
    sequence=False,
)


@pytest.fixture
def generated_members(transactional_db):
    """400 synthetic members with a year of events up to CUTOFF (and the horizon after)."""
    seed_action_catalog()
    return generate_members(members=400, seed=7, start=START, days=DAYS, horizon_days=HORIZON)


@pytest.fixture
def active_churn_version(generated_members):
    outcome = train_churn_version(cutoff=CUTOFF, horizon_days=HORIZON, config=FAST_CHURN)
    return promote_model_version(version_id=outcome.version.pk, actor=None)


@pytest.fixture
def active_tree_churn_version(generated_members):
    """An active churn version whose served model is the trees: one that learns from people's
    labels and reads every feature (on these 400 members the rolling selection, rightly,
    cannot tell the trees from the recency baseline and serves the simpler one)."""
    config = replace(FAST_CHURN, served_candidates=("xgboost",))
    outcome = train_churn_version(cutoff=CUTOFF, horizon_days=HORIZON, config=config)
    return promote_model_version(version_id=outcome.version.pk, actor=None)


@pytest.fixture
def active_next_action_version(generated_members):
    outcome = train_next_action_version(cutoff=CUTOFF)
    return promote_model_version(version_id=outcome.version.pk, actor=None)


# The trees of FAST_CHURN and a small GRU: a version trains in a couple of seconds. On this
# data (members seed 7, training seed 4, the consenting members only) the stacker gives the
# sequence a positive weight and the ensemble wins; the fixture asserts it.
FAST_ENSEMBLE = replace(
    FAST_CHURN,
    seed=4,
    sequence=True,
    sequence_length=32,
    sequence_min_rows=200,
    validation_member_share=0.3,
    sequence_model=SequenceModelConfig(
        hidden_size=24, learning_rate=0.01, batch_size=128, max_epochs=6, patience=2
    ),
)


@pytest.fixture
def ensemble_version(generated_members):
    outcome = train_churn_version(cutoff=CUTOFF, horizon_days=HORIZON, config=FAST_ENSEMBLE)
    assert outcome.report["sequence_model"]["trained"] is True
    assert outcome.report["sequence_model"]["stacker"]["sequence_weight"] > 0
    return promote_model_version(version_id=outcome.version.pk, actor=None)
