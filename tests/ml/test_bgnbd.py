"""BG/NBD: the fit recovers the parameters data were simulated with, its predictions match what
the simulation does next, the scorer explains exactly, and its inputs never see the future."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import hyp2f1

from predictions.ml.bgnbd import (
    BgNbdParams,
    expected_purchases,
    fit_bgnbd,
    log_likelihood,
    probability_alive,
    probability_no_purchase,
)
from predictions.ml.features import build_features
from predictions.ml.scorers import fit_bgnbd_scorer

from .conftest import CUTOFF, make_loyalty_data

TRUE = BgNbdParams(r=0.8, alpha=20.0, a=0.9, b=3.0)
MEMBERS = 5000
HORIZON = 90.0
# With 5,000 simulated members the maximum-likelihood estimates have standard errors of about
# 5-10 % (r, alpha) and 10-15 % (a, b, which only dropouts inform); these tolerances are about
# two of them.
RELATIVE_TOLERANCE = {"r": 0.15, "alpha": 0.2, "a": 0.3, "b": 0.35}
# Predicted and simulated means over 5,000 members: binomial / Poisson noise is ~0.01 and ~0.03.
NO_PURCHASE_TOLERANCE = 0.02
EXPECTED_PURCHASES_TOLERANCE = 0.08


def simulate(params: BgNbdParams, observed: np.ndarray, horizon: float, seed: int):
    """BG/NBD members whose first purchase was `observed` days before the cutoff: their summary
    at the cutoff and how many purchases they make in the `horizon` days after it."""
    rng = np.random.default_rng(seed)
    n = len(observed)
    rate = rng.gamma(params.r, 1.0 / params.alpha, n)
    dropout = rng.beta(params.a, params.b, n)
    repeats, last, future = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / rate[i])
            if t > observed[i] + horizon:
                break
            if t <= observed[i]:
                repeats[i] += 1
                last[i] = t
            else:
                future[i] += 1
            if rng.random() < dropout[i]:
                break
    return repeats, last, future


@pytest.fixture(scope="module")
def simulated():
    observed = np.random.default_rng(1).uniform(100.0, 400.0, MEMBERS)
    repeats, last, future = simulate(TRUE, observed, HORIZON, seed=2)
    return {"x": repeats, "t_x": last, "t": observed, "future": future}


def summary(data):
    return {
        "repeat_purchases": data["x"],
        "last_purchase_time": data["t_x"],
        "observed_time": data["t"],
    }


def test_the_fit_recovers_the_parameters_the_data_were_simulated_with(simulated):
    fitted = fit_bgnbd(**summary(simulated))

    assert fitted.members == MEMBERS
    for name, tolerance in RELATIVE_TOLERANCE.items():
        truth = getattr(TRUE, name)
        assert abs(getattr(fitted, name) - truth) / truth < tolerance, name
    assert log_likelihood(fitted, **summary(simulated)).sum() >= (
        log_likelihood(TRUE, **summary(simulated)).sum()
    )


def test_predictions_match_what_the_simulated_members_do_next(simulated):
    future = simulated["future"]

    silent = probability_no_purchase(TRUE, **summary(simulated), horizon_days=HORIZON)
    expected = expected_purchases(TRUE, **summary(simulated), horizon_days=HORIZON)

    assert abs(silent.mean() - (future == 0).mean()) < NO_PURCHASE_TOLERANCE
    assert abs(expected.mean() - future.mean()) < EXPECTED_PURCHASES_TOLERANCE
    frequent = simulated["x"] >= 10
    assert abs(silent[frequent].mean() - (future[frequent] == 0).mean()) < 0.05


def test_a_long_silence_after_regular_buying_lowers_p_alive_and_one_purchase_keeps_it_at_one():
    alive = probability_alive(
        TRUE,
        repeat_purchases=np.array([0.0, 10.0, 10.0]),
        last_purchase_time=np.array([0.0, 190.0, 100.0]),
        observed_time=np.array([200.0, 200.0, 200.0]),
    )

    # 1 / (1 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))
    assert alive[0] == 1.0
    assert alive[1] == pytest.approx(1 / (1 + 0.9 / 12 * (220 / 210) ** 10.8), rel=1e-12)
    assert alive[2] == pytest.approx(1 / (1 + 0.9 / 12 * (220 / 120) ** 10.8), rel=1e-12)
    assert alive[1] > 0.88 > 0.02 > alive[2]


def test_the_expectation_equals_the_paper_formula_where_that_is_stable():
    x = np.array([0.0, 1.0, 3.0, 8.0])
    t_x = np.array([0.0, 40.0, 150.0, 300.0])
    t = np.array([100.0, 200.0, 250.0, 320.0])
    r, alpha, a, b = TRUE.r, TRUE.alpha, TRUE.a, TRUE.b
    z = HORIZON / (alpha + t + HORIZON)
    odds = np.where(
        x > 0, a / np.maximum(b + x - 1, 1e-9) * ((alpha + t) / (alpha + t_x)) ** (r + x), 0
    )
    direct = (
        (a + b + x - 1)
        / (a - 1)
        * (
            1
            - ((alpha + t) / (alpha + t + HORIZON)) ** (r + x)
            * hyp2f1(r + x, b + x, a + b + x - 1, z)
        )
        / (1 + odds)
    )

    ours = expected_purchases(
        TRUE, repeat_purchases=x, last_purchase_time=t_x, observed_time=t, horizon_days=HORIZON
    )

    np.testing.assert_allclose(ours, direct, rtol=1e-9)


def test_scorer_contributions_add_up_to_its_margin(simulated):
    # Columns: an unrelated feature, x, T, T - t_x.
    x = np.column_stack(
        [
            np.ones(MEMBERS),
            simulated["x"],
            simulated["t"],
            simulated["t"] - simulated["t_x"],
        ]
    )
    x[:5, 2:] = np.nan  # no purchase in the lookback
    scorer = fit_bgnbd_scorer(x=x, columns=(1, 2, 3), horizon_days=HORIZON, fill_days=730.0)

    contributions = scorer.contributions(x[:200])

    np.testing.assert_allclose(contributions.sum(axis=1), scorer.margin(x[:200]), atol=1e-9)
    assert np.all(contributions[:, 0] == 0.0)
    assert np.isfinite(scorer.margin(x[:5])).all()


def test_purchase_summaries_at_a_cutoff_ignore_events_after_it():
    data = make_loyalty_data(n_members=150, seed=5)
    events = data.events
    before = events[events["occurred_at"] < CUTOFF]
    later = events[events["occurred_at"] >= CUTOFF].copy()
    later["occurred_at"] = later["occurred_at"] + pd.Timedelta(days=3)
    extra = before.sample(200, random_state=0).assign(occurred_at=CUTOFF + pd.Timedelta(days=1))

    reference = build_features(events=events, members=data.members, cutoff=CUTOFF)
    for variant in (before, pd.concat([before, later, extra])):
        matrix = build_features(events=variant, members=data.members, cutoff=CUTOFF)
        pd.testing.assert_frame_equal(matrix, reference)


def test_purchase_summary_counts_distinct_days_after_the_first():
    cutoff = pd.Timestamp("2024-03-01", tz="UTC")
    days_before = [10.5, 10.25, 5.0, 1.0, 0.0]  # the last one is at the cutoff: not seen
    events = pd.DataFrame(
        {
            "member_id": [1] * len(days_before) + [2],
            "occurred_at": [cutoff - pd.Timedelta(days=d) for d in [*days_before, 3.0]],
            "kind": ["purchase"] * len(days_before) + ["login"],
        }
    )
    members = pd.DataFrame({"member_id": [1, 2, 3]})

    matrix = build_features(events=events, members=members, cutoff=cutoff)

    assert matrix["repeat_purchase_days"].tolist() == [2.0, 0.0, 0.0]
    assert matrix.loc[1, "days_since_first_purchase"] == 10.5
    assert matrix.loc[1, "days_since_last_purchase"] == 1.0
    assert matrix.loc[[2, 3], "days_since_first_purchase"].isna().all()
