"""Ranking actions by propensity or by expected value (predictions.ml.action_value)."""

import numpy as np
import pytest

from predictions.ml.action_value import (
    EXPECTED_VALUE,
    NO_CHOICE,
    PROPENSITY,
    expected_value,
    expected_values,
    recommend,
)

# Columns: 0 no_action (the baseline), 1 discount (gain 0.2, cost 5), 2 email (gain 0.05, cost 1)
GAINS = np.array([0.0, 0.2, 0.05])
COSTS = np.array([0.0, 5.0, 1.0])
BASELINE = 0


def _values(churn, value):
    return expected_values(
        churn_probability=np.array(churn, dtype="float64"),
        value=np.array(value, dtype="float64"),
        gains=GAINS,
        costs=COSTS,
    )


def test_the_expected_value_is_risk_times_gain_times_value_less_cost():
    assert expected_value(churn_probability=0.5, gain=0.2, value=200.0, cost=5.0) == 15.0
    values = _values([0.5], [200.0])
    np.testing.assert_allclose(values, [[0.0, 15.0, 4.0]])


def test_by_expected_value_the_action_worth_most_wins_over_the_likeliest():
    propensities = np.array([[0.1, 0.2, 0.7]])  # the model likes the email best
    eligible = np.ones((1, 3), dtype=bool)
    values = _values([0.5], [200.0])

    by_value = recommend(
        ranking=EXPECTED_VALUE,
        propensities=propensities,
        eligible=eligible,
        values=values,
        baseline=BASELINE,
    )
    by_propensity = recommend(
        ranking=PROPENSITY,
        propensities=propensities,
        eligible=eligible,
        values=values,
        baseline=BASELINE,
    )

    assert by_value.choice.tolist() == [1]
    assert by_value.expected_value.tolist() == [15.0]
    assert by_propensity.choice.tolist() == [2]
    assert by_propensity.expected_value.tolist() == [4.0]


def test_no_action_wins_when_nothing_is_worth_more_than_it_costs():
    # A low-risk, low-value member: every action costs more than it is expected to keep.
    values = _values([0.05], [20.0])
    result = recommend(
        ranking=EXPECTED_VALUE,
        propensities=np.array([[0.1, 0.6, 0.3]]),
        eligible=np.ones((1, 3), dtype=bool),
        values=values,
        baseline=BASELINE,
    )

    assert result.choice.tolist() == [BASELINE]
    assert result.expected_value.tolist() == [0.0]


def test_without_a_baseline_in_the_catalog_nothing_is_recommended_when_nothing_pays():
    values = _values([0.05], [20.0])[:, 1:]
    result = recommend(
        ranking=EXPECTED_VALUE,
        propensities=np.array([[0.6, 0.3]]),
        eligible=np.ones((1, 2), dtype=bool),
        values=values,
        baseline=None,
    )

    assert result.choice.tolist() == [NO_CHOICE]
    assert np.isnan(result.expected_value).all()


def test_an_action_the_member_may_not_receive_is_never_recommended():
    values = _values([0.5, 0.5], [200.0, 200.0])
    eligible = np.array([[True, False, True], [False, False, False]])
    result = recommend(
        ranking=EXPECTED_VALUE,
        propensities=np.array([[0.1, 0.8, 0.1], [0.1, 0.8, 0.1]]),
        eligible=eligible,
        values=values,
        baseline=BASELINE,
    )

    assert result.choice.tolist() == [2, NO_CHOICE]


def test_a_member_without_a_churn_score_is_ranked_by_propensity():
    values = _values([np.nan, 0.5], [200.0, 200.0])
    result = recommend(
        ranking=EXPECTED_VALUE,
        propensities=np.array([[0.1, 0.2, 0.7], [0.1, 0.2, 0.7]]),
        eligible=np.ones((2, 3), dtype=bool),
        values=values,
        baseline=BASELINE,
    )

    assert result.choice.tolist() == [2, 1]
    assert np.isnan(result.expected_value[0])
    assert result.expected_value[1] == 15.0


def test_an_unknown_ranking_is_refused():
    with pytest.raises(ValueError, match="unknown ranking"):
        recommend(
            ranking="loudest",
            propensities=np.zeros((1, 3)),
            eligible=np.ones((1, 3), dtype=bool),
            values=np.zeros((1, 3)),
            baseline=None,
        )
