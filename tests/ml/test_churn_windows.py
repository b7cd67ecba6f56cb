"""Training windows of the churn model: the season of the cutoff as a feature, how many
training cutoffs and rows, and what the report says about the served model."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml.churn.model import model_feature_codes
from predictions.ml.churn.rows import Rows, split_rows
from predictions.ml.contracts import ChurnConfig
from predictions.ml.features import SEASON_FEATURES, build_features

from .conftest import CUTOFF, HORIZON


def test_season_features_are_the_cutoffs_time_of_year_for_every_member(synthetic):
    cutoff = pd.Timestamp("2023-10-01", tz="UTC")  # day 274 of 365

    matrix = build_features(events=synthetic.events, members=synthetic.members, cutoff=cutoff)

    angle = 2 * np.pi * 273 / 365.25
    assert (matrix["season_sin"] == np.sin(angle)).all()
    assert (matrix["season_cos"] == np.cos(angle)).all()
    assert (matrix["days_to_year_end"] == 92.0).all()


def test_the_season_is_a_feature_only_when_the_training_cutoffs_span_a_year():
    config = ChurnConfig()
    start = pd.Timestamp("2022-01-01", tz="UTC")
    short = [start + pd.Timedelta(days=30 * i) for i in range(12)]  # 330 days
    long = [start + pd.Timedelta(days=30 * i) for i in range(14)]  # 390 days

    assert not set(SEASON_FEATURES) & set(model_feature_codes(config, short))
    assert set(SEASON_FEATURES) <= set(model_feature_codes(config, long))
    assert set(SEASON_FEATURES) <= set(model_feature_codes(config))


def test_training_rows_beyond_the_cap_are_thinned_by_whole_members():
    members = np.arange(1000, dtype="int64")
    panel = [
        Rows(
            x=np.zeros((1000, 1), dtype="float32"),
            y=np.arange(1000) % 2,
            member_id=members,
            cutoff=np.full(1000, f"2023-0{i + 1}-01", dtype=object),
            w=np.ones(1000),
        )
        for i in range(6)
    ]

    full = split_rows(panel, seed=0, held_out_share=0.2)
    capped = split_rows(panel, seed=0, held_out_share=0.2, max_training_rows=2000)

    assert len(full.train.y) == 4000
    assert len(capped.train.y) == pytest.approx(2000, rel=0.1)
    per_member = pd.Series(capped.train.member_id).value_counts()
    assert (per_member == 4).all()  # every kept member keeps its four training cutoffs
    np.testing.assert_array_equal(capped.validation.member_id, full.validation.member_id)
    np.testing.assert_array_equal(capped.calibration.member_id, full.calibration.member_id)


def test_the_report_says_which_model_is_served_and_why(churn_result):
    selection = churn_result.report["selection"]
    rolling = selection["rolling"]

    assert selection["served"] == churn_result.report["selected"] == rolling["winner"]
    assert selection["served_because"] == rolling["reason"]
    assert len(rolling["origins"]) == 3
    latest = CUTOFF - pd.Timedelta(days=HORIZON)
    assert all(pd.Timestamp(origin, tz="UTC") <= latest for origin in rolling["origins"])
    # Every candidate that may be served is compared; BG/NBD, a yardstick, is not.
    assert set(rolling["log_loss"]) == set(churn_result.bundle.candidates) - {"bgnbd"}
    assert "bgnbd" in churn_result.bundle.candidates
    assert selection["served"] != "bgnbd"
    shift = churn_result.report["calibration_shift"]
    assert shift["applied"] is False
    assert "is not observed" in shift["reason"]


def test_more_training_cutoffs_are_used_when_the_history_has_them(synthetic):
    from predictions.ml.churn.rows import training_cutoffs

    first = synthetic.events["occurred_at"].min()
    cutoffs = training_cutoffs(
        first_event=first, cutoff=CUTOFF, horizon_days=HORIZON, config=ChurnConfig()
    )
    capped = training_cutoffs(
        first_event=first,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=replace(ChurnConfig(), max_training_cutoffs=8),
    )

    # Step 20 days from CUTOFF - HORIZON (day 270) back to the first event + 28 days: 13 fit.
    assert len(cutoffs) == 13 > len(capped) == 8
    assert cutoffs[-8:] == capped
