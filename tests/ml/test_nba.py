"""Next best action: labels from rules and outcomes, eligibility, conformal sets, absent classes."""

import json

import numpy as np
import pandas as pd
import pytest

from predictions.ml.contracts import LABEL_COLUMNS, InsufficientHistoryError, NextActionConfig
from predictions.ml.features import FEATURE_CODES
from predictions.ml.nba import (
    DECISION,
    RULE,
    bootstrap_rule_labels,
    observed_outcome_labels,
    predict_next_action,
    train_next_action,
)
from tests.ml.conftest import (
    ACTIONS,
    FAST_BOOSTER,
    NEXT_ACTION_CUTOFFS,
    UNCHOSEN_ACTIONS,
    next_action_labels,
)

COVERAGE_SLACK = 0.04
T0 = pd.Timestamp("2024-05-01", tz="UTC")


@pytest.fixture(scope="module")
def latest(next_action_panel):
    return next_action_panel.loc[NEXT_ACTION_CUTOFFS[-1]]


def rule_features(rows: dict[int, dict[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(0.0, index=pd.Index(list(rows), name="member_id"), columns=FEATURE_CODES)
    for member, values in rows.items():
        for code, value in values.items():
            frame.loc[member, code] = value
    return frame


HAND_RULE_ROWS = {
    # lapsing (4x overdue) and the top spender
    1: {"purchase_overdue_ratio": 4.0, "spend_per_30d": 900.0, "baskets_per_30d": 1.0},
    # lapsing, modest spender
    2: {"purchase_overdue_ratio": 3.0, "spend_per_30d": 50.0, "baskets_per_30d": 1.0},
    # responds to coupons
    3: {"coupon_response_rate_365": 0.8, "spend_per_30d": 60.0, "baskets_per_30d": 2.0},
    # buys far more often than anyone
    4: {"spend_per_30d": 70.0, "baskets_per_30d": 40.0},
    # ordinary
    5: {"spend_per_30d": 55.0, "baskets_per_30d": 2.0, "purchase_overdue_ratio": 0.5},
    6: {"spend_per_30d": 40.0, "baskets_per_30d": 2.0, "purchase_overdue_ratio": 0.5},
    7: {"spend_per_30d": 45.0, "baskets_per_30d": 3.0, "purchase_overdue_ratio": 0.5},
    8: {"spend_per_30d": 65.0, "baskets_per_30d": 2.0, "purchase_overdue_ratio": 0.9},
}


def test_rule_labels_follow_the_documented_rules():
    labels = bootstrap_rule_labels(
        features=rule_features(HAND_RULE_ROWS), action_codes=ACTIONS, cutoff=T0
    )
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert dict(zip(labels["member_id"], labels["action_code"], strict=True)) == {
        1: "personal_outreach",
        2: "win_back_email",
        3: "personal_discount",
        4: "bonus_points",
        5: "no_action",
        6: "no_action",
        7: "no_action",
        8: "no_action",
    }
    assert set(labels["source"]) == {RULE} and set(labels["weight"]) == {0.5}
    assert (labels["cutoff"] == T0).all()


def test_rule_labels_only_use_actions_in_the_catalog():
    catalog = ("no_action", "win_back_email")
    labels = bootstrap_rule_labels(
        features=rule_features(HAND_RULE_ROWS), action_codes=catalog, cutoff=T0
    )
    by_member = dict(zip(labels["member_id"], labels["action_code"], strict=True))
    assert by_member[1] == "win_back_email"  # outreach is not offered: the rule's fallback
    assert 3 not in by_member and 4 not in by_member  # their rules have no action available
    assert set(by_member.values()) <= set(catalog)


def test_outcome_labels_need_a_coupon_after_a_campaign_inside_the_window():
    day = pd.Timedelta(days=1)
    events = pd.DataFrame(
        [
            (1, T0 + day, "campaign_received"),
            (1, T0 + 3 * day, "coupon_redeemed"),  # responded
            (2, T0 + 5 * day, "campaign_received"),
            (2, T0 + 2 * day, "coupon_redeemed"),  # coupon before the campaign
            (3, T0 + day, "campaign_received"),  # no coupon
            (4, T0 + day, "campaign_received"),
            (4, T0 + 31 * day, "coupon_redeemed"),  # after the window
            (5, T0 - day, "campaign_received"),
            (5, T0 + day, "coupon_redeemed"),  # campaign before the cutoff
        ],
        columns=["member_id", "occurred_at", "kind"],
    )
    labels = observed_outcome_labels(events=events, cutoff=T0, window_days=30)
    assert labels[["member_id", "action_code", "source", "weight"]].to_dict("records") == [
        {"member_id": 1, "action_code": "personal_discount", "source": "outcome", "weight": 2.0}
    ]
    remapped = observed_outcome_labels(
        events=events,
        cutoff=T0,
        window_days=30,
        outcome_actions={"coupon_after_campaign": "bonus_points"},
    )
    assert remapped["action_code"].tolist() == ["bonus_points"]
    assert observed_outcome_labels(
        events=events, cutoff=T0, window_days=30, outcome_actions={}
    ).empty


def test_report_has_metrics_overall_and_per_source(next_action_result):
    report = next_action_result.report
    json.dumps(report, allow_nan=False)
    for metrics in (report["metrics"], *report["by_source"].values()):
        assert {"top1", "top3", "log_loss", "coverage", "mean_set_size"} <= set(metrics)
        assert metrics["top1"] <= metrics["top3"]
    assert set(report["by_source"]) <= {"decision", "outcome", "rule"}
    assert DECISION in report["by_source"]
    assert sorted(report["absent_classes"]) == sorted(UNCHOSEN_ACTIONS)


def test_set_coverage_is_near_nominal_on_held_out_rows(next_action_result):
    metrics = next_action_result.report["metrics"]
    assert metrics["nominal_coverage"] == 0.9
    assert metrics["coverage"] == pytest.approx(0.9, abs=COVERAGE_SLACK)
    assert 1 <= metrics["mean_set_size"] < len(ACTIONS) - len(UNCHOSEN_ACTIONS)


def test_set_coverage_holds_on_a_fresh_population(next_action_result):
    from predictions.ml.features import build_feature_panel
    from tests.ml.conftest import make_loyalty_data

    fresh = make_loyalty_data(n_members=800, seed=11)
    panel = build_feature_panel(
        events=fresh.events, members=fresh.members, cutoffs=NEXT_ACTION_CUTOFFS[-1:]
    )
    labels = next_action_labels(fresh, panel, seed=3)
    matrix = panel.loc[NEXT_ACTION_CUTOFFS[-1]].loc[labels["member_id"]]
    prediction = predict_next_action(
        bundle=next_action_result.bundle, features=matrix, explain_top_k=0
    )
    truth = labels["action_code"].map({code: i for i, code in enumerate(ACTIONS)}).to_numpy()
    covered = prediction.action_sets[np.arange(len(truth)), truth]
    assert covered.mean() == pytest.approx(0.9, abs=0.05)


def test_absent_classes_get_zero_probability_and_are_never_recommended(next_action_result, latest):
    prediction = predict_next_action(bundle=next_action_result.bundle, features=latest)
    absent = [ACTIONS.index(code) for code in UNCHOSEN_ACTIONS]
    assert (prediction.probabilities[:, absent] == 0).all()
    assert not prediction.action_sets[:, absent].any()
    np.testing.assert_allclose(prediction.probabilities.sum(axis=1), 1.0)
    assert not set(prediction.recommended) & set(UNCHOSEN_ACTIONS)


def test_recommendation_is_the_most_probable_eligible_action(next_action_result, latest):
    rng = np.random.default_rng(0)
    allowed = rng.random((len(latest), len(ACTIONS))) < 0.5
    allowed[0] = False  # nothing allowed for the first member
    allowed[1] = False
    allowed[1, ACTIONS.index("tier_trial")] = True  # only an action the model never learned
    eligibility = pd.DataFrame(allowed, index=latest.index, columns=list(ACTIONS))
    prediction = predict_next_action(
        bundle=next_action_result.bundle, features=latest, eligibility=eligibility
    )
    assert prediction.recommended[0] == "" and prediction.confidence[0] == 0
    assert prediction.recommended[1] == "" and prediction.recommended_probability[1] == 0
    for i in range(2, len(latest)):
        possible = [j for j in np.flatnonzero(allowed[i]) if prediction.probabilities[i, j] > 0]
        if not possible:
            assert prediction.recommended[i] == ""
            continue
        best = max(possible, key=lambda j: (prediction.probabilities[i, j], -j))
        assert prediction.recommended[i] == ACTIONS[best]
    in_set = prediction.action_sets[
        np.arange(len(latest)),
        [ACTIONS.index(code) if code else 0 for code in prediction.recommended],
    ]
    assert (prediction.confidence[~in_set] == 0).all()
    assert ((prediction.confidence >= 0) & (prediction.confidence <= 1)).all()


def test_eligibility_as_an_array_and_missing_columns_mean_not_allowed(next_action_result, latest):
    only_email = pd.DataFrame(True, index=latest.index, columns=["win_back_email"])
    prediction = predict_next_action(
        bundle=next_action_result.bundle, features=latest, eligibility=only_email
    )
    assert set(prediction.recommended) == {"win_back_email"}
    with pytest.raises(ValueError, match="shape"):
        predict_next_action(
            bundle=next_action_result.bundle, features=latest, eligibility=np.ones((2, 2))
        )


def test_explanations_are_for_the_recommended_class(next_action_result, latest):
    prediction = predict_next_action(bundle=next_action_result.bundle, features=latest)
    explanation = prediction.explanation
    rebuilt = explanation.base_value + explanation.top_contribution.sum(1) + explanation.remainder
    np.testing.assert_allclose(rebuilt, explanation.margin, atol=1e-9)
    logits = next_action_result.bundle.booster.predict(
        __import__("xgboost").DMatrix(
            latest.loc[:, list(next_action_result.bundle.feature_codes)].to_numpy("float32")
        ),
        output_margin=True,
    )
    chosen = [ACTIONS.index(code) for code in prediction.recommended]
    np.testing.assert_allclose(
        explanation.margin, logits[np.arange(len(latest)), chosen], atol=1e-4
    )
    record = next(prediction.records())
    json.dumps(record, allow_nan=False)


def test_unknown_actions_and_rows_without_features_are_dropped_and_counted(
    synthetic, next_action_panel
):
    labels = next_action_labels(synthetic, next_action_panel)
    extra = pd.DataFrame(
        {
            "member_id": [10, 999_999],
            "cutoff": [NEXT_ACTION_CUTOFFS[0]] * 2,
            "action_code": ["retired_action", "no_action"],
            "source": ["decision"] * 2,
            "weight": [5.0] * 2,
        }
    )
    result = train_next_action(
        features=next_action_panel,
        labels=pd.concat([labels, extra], ignore_index=True),
        action_codes=ACTIONS,
        config=NextActionConfig(booster=FAST_BOOSTER),
    )
    assert result.report["rows"]["dropped"] == {"unknown_action": 1, "no_features": 1}


def test_too_few_labels_raise_a_clear_error(next_action_panel):
    labels = pd.DataFrame(
        {
            "member_id": [10],
            "cutoff": [NEXT_ACTION_CUTOFFS[0]],
            "action_code": ["no_action"],
            "source": ["rule"],
            "weight": [0.5],
        }
    )
    with pytest.raises(InsufficientHistoryError, match="usable label rows"):
        train_next_action(features=next_action_panel, labels=labels, action_codes=ACTIONS)
