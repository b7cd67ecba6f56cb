"""The arithmetic of review quality on hand-built sets: exact counts give exact figures. No
database. The Wilson bounds below were computed independently, as the roots of
(p̂ − p)² n = z² p (1 − p)."""

import pytest

from learning.quality_stats import (
    SMALL_SAMPLE,
    Confusion,
    ScoredCall,
    score_calls,
    score_group,
    wilson,
)

TOLERANCE = 1e-6


def test_wilson_interval_of_eight_in_ten():
    estimate = wilson(8, 10)

    assert estimate.value == 0.8
    assert estimate.low == pytest.approx(0.490162472, abs=TOLERANCE)
    assert estimate.high == pytest.approx(0.943317849, abs=TOLERANCE)
    assert (estimate.n, estimate.hits) == (10, 8)


def test_wilson_interval_at_the_edges_stays_within_zero_and_one():
    none, all_ = wilson(0, 5), wilson(1, 1)

    assert (none.value, none.low) == (0.0, 0.0)
    assert none.high == pytest.approx(0.434482465, abs=TOLERANCE)
    assert (all_.value, all_.high) == (1.0, 1.0)
    assert all_.low == pytest.approx(0.206549314, abs=TOLERANCE)


def test_wilson_of_nothing_says_nothing():
    estimate = wilson(0, 0)

    assert (estimate.value, estimate.low, estimate.high, estimate.n) == (None, None, None, 0)
    assert estimate.shown == "–"


def test_scores_of_a_known_confusion():
    # Given 3 churners called churn, 1 missed, 14 stayers called stay, 2 called churn.
    confusion = Confusion(true_positive=3, false_negative=1, true_negative=14, false_positive=2)

    scores = score_calls(confusion)

    assert scores.n == 20
    assert scores.accuracy.value == pytest.approx(17 / 20)
    assert scores.accuracy.low == pytest.approx(0.639581135, abs=TOLERANCE)
    assert scores.accuracy.high == pytest.approx(0.947631254, abs=TOLERANCE)
    assert (scores.recall.value, scores.recall.n) == (0.75, 4)
    assert scores.recall.low == pytest.approx(0.300641843, abs=TOLERANCE)
    assert scores.recall.high == pytest.approx(0.954412739, abs=TOLERANCE)
    assert (scores.specificity.value, scores.specificity.n) == (0.875, 16)
    assert (scores.precision.value, scores.precision.n) == (0.6, 5)
    assert scores.precision.low == pytest.approx(0.230724281, abs=TOLERANCE)
    assert scores.precision.high == pytest.approx(0.882379226, abs=TOLERANCE)
    # Balanced accuracy: the mean of recall and specificity, and of their Wilson bounds.
    assert scores.balanced_accuracy.value == pytest.approx((0.75 + 0.875) / 2)
    assert scores.balanced_accuracy.low == pytest.approx(
        (0.300641843 + 0.639771727) / 2, abs=TOLERANCE
    )
    assert scores.balanced_accuracy.high == pytest.approx(
        (0.954412739 + 0.965022512) / 2, abs=TOLERANCE
    )
    assert scores.balanced_accuracy.n == 20


def test_confusion_counts_call_and_outcome_pairs():
    pairs = [(True, True), (True, False), (False, False), (False, False), (False, True)]

    assert Confusion.of(pairs) == Confusion(
        true_positive=1, false_positive=1, true_negative=2, false_negative=1
    )


def test_calling_everyone_a_stayer_looks_accurate_but_is_not_balanced():
    # 6 churners in 100 (the demo's rate), every call "stays".
    calls = [(False, index < 6) for index in range(100)]

    scores = score_calls(Confusion.of(calls))

    assert scores.accuracy.value == 0.94
    assert scores.recall.value == 0.0
    assert scores.balanced_accuracy.value == 0.5
    assert scores.precision.value is None  # nobody called churn: no precision to speak of


def test_balanced_accuracy_needs_churners_and_stayers():
    scores = score_calls(Confusion(true_positive=2, false_negative=1))

    assert scores.balanced_accuracy.value is None
    assert scores.balanced_accuracy.n == 3


def test_group_scores_person_model_and_override_precision():
    calls = [
        ScoredCall(person=True, model=False, outcome=True),  # override, person right
        ScoredCall(person=False, model=True, outcome=True),  # override, person wrong
        ScoredCall(person=True, model=False, outcome=True),  # override, person right
        ScoredCall(person=False, model=False, outcome=False),  # agreement, both right
        ScoredCall(person=True, model=True, outcome=False),  # agreement, both wrong
    ]

    group = score_group(calls)

    assert group.n == 5
    assert group.person.accuracy.hits == 3
    assert group.model.accuracy.hits == 2
    assert (group.override_precision.hits, group.override_precision.n) == (2, 3)
    assert group.override_precision.value == pytest.approx(2 / 3)
    assert group.is_small is (5 < SMALL_SAMPLE)


def test_a_group_without_overrides_has_no_override_precision():
    group = score_group([ScoredCall(person=False, model=False, outcome=False)])

    assert group.override_precision.value is None
    assert group.override_precision.n == 0


def test_shown_gives_value_and_interval_in_percent():
    assert wilson(8, 10).shown == "80.0 % (49.0–94.3)"


def test_a_difference_of_shares_has_newcombe_s_interval():
    """Newcombe (1998), Statistics in Medicine 17:873-890, Table II, example (a): 56/70 − 48/80
    = 0.2000 with the hybrid score interval (method 10) 0.0524 to 0.3339."""
    from learning.quality_stats import share_difference, wilson

    difference = share_difference(wilson(56, 70), wilson(48, 80))

    assert difference.value == pytest.approx(0.2)
    assert (round(difference.low, 4), round(difference.high, 4)) == (0.0524, 0.3339)
    assert difference.shown == "+20.0 points (+5.2 to +33.4)"


def test_an_action_effect_compares_churn_held_out_and_treated():
    from learning.quality_stats import action_effect

    # (held out, churned): 10 treated, 2 churned; 5 held out, 3 churned.
    pairs = [(False, True)] * 2 + [(False, False)] * 8 + [(True, True)] * 3 + [(True, False)] * 2

    effect = action_effect(pairs)

    assert (effect.treated.hits, effect.treated.n, effect.held_out.hits, effect.held_out.n) == (
        2,
        10,
        3,
        5,
    )
    assert effect.prevented.value == pytest.approx(0.6 - 0.2)
    assert effect.is_small
    assert action_effect([]).prevented.shown == "–"
