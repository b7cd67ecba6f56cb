"""Serving the churn candidate that wins out of time at rolling origins (`churn.selection`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from predictions.ml.churn.rows import Rows
from predictions.ml.churn.selection import (
    ROLLING_ORIGINS,
    origin_splits,
    paired_difference,
    rolling_selection,
)

HORIZON = 90
STEP = 30
MEMBERS = 1500


@dataclass(frozen=True)
class ColumnScorer:
    """A scorer whose margin is one column; refitting it changes nothing."""

    column: int

    def margin(self, x: np.ndarray) -> np.ndarray:
        return x[:, self.column].astype("float64")


def panel_of(cutoffs: int, seed: int = 0) -> tuple[list[Rows], list[pd.Timestamp]]:
    """Rows at `cutoffs` cutoffs STEP days apart; churn depends on column 0, column 1 is a
    noisy copy of it and column 2 an exact one."""
    rng = np.random.default_rng(seed)
    stamps = [
        pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=STEP * i) for i in range(cutoffs)
    ]
    panel = []
    for stamp in stamps:
        signal = rng.normal(size=MEMBERS)
        x = np.column_stack([signal, signal + rng.normal(0, 1.5, MEMBERS), signal])
        y = (rng.random(MEMBERS) < 1 / (1 + np.exp(-(2 * signal - 1)))).astype("int64")
        panel.append(
            Rows(
                x=x.astype("float32"),
                y=y,
                member_id=np.arange(MEMBERS, dtype="int64"),
                cutoff=np.full(MEMBERS, stamp.date().isoformat(), dtype=object),
                w=np.ones(MEMBERS),
            )
        )
    return panel, stamps


def select(panel, stamps, scorers):
    return rolling_selection(
        panel=panel,
        cutoffs=stamps,
        horizon_days=HORIZON,
        scorers=scorers,
        methods={name: "sigmoid" for name in scorers},
        order=tuple(scorers),
        refit=lambda scorer, rows: scorer,
        seed=0,
    )


def test_each_origin_trains_only_on_label_windows_that_end_by_it():
    panel, stamps = panel_of(8)

    origins = origin_splits(panel, stamps, HORIZON)

    assert [origin for origin, _, _ in origins] == stamps[-1 : -ROLLING_ORIGINS - 1 : -1]
    for origin, train, test in origins:
        trained = {pd.Timestamp(c, tz="UTC") for c in train.cutoff}
        assert max(trained) + pd.Timedelta(days=HORIZON) <= origin
        assert set(test.cutoff) == {origin.date().isoformat()}
        assert len(train.y) == MEMBERS * len(trained)
    assert origin_splits(panel[:3], stamps[:3], HORIZON) == []


def test_a_better_complex_candidate_wins_and_the_report_says_why():
    panel, stamps = panel_of(8)

    chosen = select(panel, stamps, {"simple": ColumnScorer(1), "complex": ColumnScorer(0)})

    assert chosen.winner == chosen.lowest_loss == "complex"
    report = chosen.report
    assert report["origins"] == [s.date().isoformat() for s in stamps[-1:-4:-1]]
    assert report["rows"] == 3 * MEMBERS
    assert report["members"] == MEMBERS
    assert report["paired_against_lowest"]["simple"]["z"] < -10
    assert report["reason"].startswith("complex has the lowest rolling log loss")


def test_a_simpler_candidate_that_is_not_significantly_worse_wins():
    panel, stamps = panel_of(8)

    # Columns 0 and 2 are the same numbers: a tie that noise may break either way.
    chosen = select(panel, stamps, {"simple": ColumnScorer(2), "complex": ColumnScorer(0)})

    assert chosen.winner == "simple"
    assert chosen.report["log_loss"]["simple"] == pytest.approx(
        chosen.report["log_loss"]["complex"]
    )


def test_without_an_origin_there_is_no_rolling_selection():
    panel, stamps = panel_of(3)

    assert select(panel, stamps, {"simple": ColumnScorer(1)}) is None


def test_paired_differences_average_each_member_first():
    first = np.array([1.0, 3.0, 0.0, 0.0])
    second = np.zeros(4)
    members = np.array([7, 7, 8, 9])

    test = paired_difference(first, second, members)

    # per member: 2, 0, 0 -> mean 2/3, sample std 1.1547, error 1.1547 / sqrt(3)
    assert test["mean_difference"] == pytest.approx(2 / 3)
    assert test["standard_error"] == pytest.approx(np.sqrt(4 / 3) / np.sqrt(3))
    assert test["z"] == pytest.approx((2 / 3) / (np.sqrt(4 / 3) / np.sqrt(3)))


def test_a_name_outside_the_order_is_never_chosen_even_when_it_is_best():
    """BG/NBD is reported, not served: its lower loss neither wins nor raises the bar."""
    from predictions.ml.churn.selection import simplest_within

    losses = {"recency": 0.52, "rfm_logistic": 0.4995, "bgnbd": 0.40, "xgboost": 0.499}
    order = ("recency", "rfm_logistic", "xgboost", "ensemble")

    assert simplest_within(log_losses=losses, tolerance=0.002, order=order) == "rfm_logistic"
    assert simplest_within(log_losses=losses, tolerance=0.0, order=order) == "xgboost"


def test_served_candidates_cut_the_selection_order():
    from predictions.ml.churn.model import _served_order
    from predictions.ml.contracts import ChurnConfig

    assert _served_order(ChurnConfig()) == ("recency", "rfm_logistic", "xgboost", "ensemble")
    trees = ChurnConfig(served_candidates=("xgboost", "ensemble"))
    assert _served_order(trees) == ("xgboost", "ensemble")
