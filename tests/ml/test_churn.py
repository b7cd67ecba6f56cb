"""Churn training: time discipline, honest comparison with baselines, scoring with confidence."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml.calibration import SIGMOID, fit_calibrator
from predictions.ml.churn.model import (
    CANDIDATES,
    RECENCY,
    XGBOOST,
    LabeledRows,
    predict_churn,
    select_candidate,
    train_churn,
)
from predictions.ml.confidence import probability_interval
from predictions.ml.contracts import (
    CHURN_LABELS,
    ChurnConfig,
    InsufficientHistoryError,
    SingleClassError,
)
from predictions.ml.features import SNAPSHOT_FEATURES, build_features
from predictions.ml.metrics import interval_coverage
from predictions.ml.scorers import fit_linear
from tests.ml.conftest import CUTOFF, DAYS, FAST_CONFIG, HORIZON, START, make_loyalty_data

# The synthetic churn signal (support contacts before leaving, slowing purchases) is invisible
# to recency alone; the trees must see it.
MIN_AUC_GAIN_OVER_RECENCY = 0.01
MAX_LOG_LOSS_SHARE_OF_RECENCY = 0.75
COVERAGE_SLACK = 0.05
TINY_CONFIG = replace(FAST_CONFIG, bootstrap_models=2, max_training_cutoffs=4)


@pytest.fixture(scope="module")
def scores(churn_result, synthetic):
    features = build_features(events=synthetic.events, members=synthetic.members, cutoff=CUTOFF)
    return features, predict_churn(bundle=churn_result.bundle, features=features)


def test_report_is_json_with_every_section(churn_result):
    report = churn_result.report
    json.dumps(report, allow_nan=False)
    assert set(report["baselines"]) == {"recency", "rfm_logistic", "bgnbd"}
    assert report["selected"] in CANDIDATES
    assert report["evaluation"]["available"] is True
    for metrics in (report["model"], *report["baselines"].values()):
        assert {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "base_rate", "n"} <= set(metrics)
        assert {"coverage", "nominal_coverage"} <= set(metrics)
        assert metrics["n"] == report["rows"]["evaluation"]
    assert report["horizon_days"] == HORIZON
    assert list(report["feature_importance"]) == sorted(
        report["feature_importance"], key=lambda code: -report["feature_importance"][code]
    )


def test_no_training_label_window_reaches_past_the_cutoff(churn_result):
    cutoffs = [pd.Timestamp(c) for c in churn_result.report["cutoffs"]]
    assert len(cutoffs) == FAST_CONFIG.max_training_cutoffs
    assert max(cutoffs) + pd.Timedelta(days=HORIZON) <= CUTOFF
    assert cutoffs == sorted(cutoffs)
    splits = churn_result.report["split_cutoffs"]
    assert max(splits["train"]) < splits["validation"][0] < splits["calibration"][0]


def test_trees_beat_recency_on_a_signal_recency_cannot_see(churn_result):
    model = churn_result.report["model"]
    recency = churn_result.report["baselines"]["recency"]
    assert model["roc_auc"] - recency["roc_auc"] > MIN_AUC_GAIN_OVER_RECENCY
    assert model["log_loss"] < MAX_LOG_LOSS_SHARE_OF_RECENCY * recency["log_loss"]
    assert churn_result.report["selected"] == XGBOOST
    top = list(churn_result.report["feature_importance"])[:8]
    assert any(code.startswith(("support_contacts", "days_since_support")) for code in top)


def test_label_sets_cover_near_the_nominal_level_out_of_time(churn_result):
    for metrics in (churn_result.report["model"], *churn_result.report["baselines"].values()):
        assert metrics["nominal_coverage"] == FAST_CONFIG.label_set_coverage
        assert metrics["coverage"] == pytest.approx(
            FAST_CONFIG.label_set_coverage, abs=COVERAGE_SLACK
        )


def test_snapshot_attributes_are_left_out_by_default(churn_result):
    assert not set(SNAPSHOT_FEATURES) & set(churn_result.bundle.feature_codes)
    assert not set(SNAPSHOT_FEATURES) & set(churn_result.report["feature_importance"])


def test_predictions_are_consistent(churn_result, scores):
    features, prediction = scores
    assert prediction.model == churn_result.bundle.selected
    np.testing.assert_array_equal(prediction.member_ids, features.index.to_numpy())
    assert ((0 < prediction.probability) & (prediction.probability < 1)).all()
    assert (prediction.low <= prediction.probability + 1e-12).all()
    assert (prediction.probability <= prediction.high + 1e-12).all()
    assert ((0 <= prediction.confidence) & (prediction.confidence <= 1)).all()
    assert prediction.label_sets.shape == (len(features), len(CHURN_LABELS))
    explanation = prediction.explanation
    rebuilt = explanation.base_value + explanation.top_contribution.sum(1) + explanation.remainder
    np.testing.assert_allclose(rebuilt, explanation.margin, atol=1e-9)
    margin = churn_result.bundle.candidates[prediction.model].scorer.margin(
        features.loc[:, list(churn_result.bundle.feature_codes)].to_numpy("float32")
    )
    np.testing.assert_allclose(explanation.margin, margin, atol=1e-4)
    record = next(prediction.records())
    json.dumps(record, allow_nan=False)
    assert set(record) >= {"member_id", "probability", "low", "high", "label_set", "confidence"}


def test_intervals_are_ordered_and_informative(churn_result, scores):
    _, prediction = scores
    width = prediction.high - prediction.low
    assert 0 < width.mean() < 0.3
    assert churn_result.report["model"]["interval_mean_width"] > 0


def bootstrap_interval_coverage(seed: int, replicas: int = 8) -> float:
    """Coverage of the true probability by the bootstrap interval, on a logistic world.

    Mirrors what train_churn does for each candidate: refits of the scorer and of its
    calibrator on random halves of their rows, then `probability_interval`.
    """
    rng = np.random.default_rng(seed)

    def draw(n):
        x = rng.normal(size=(n, 2))
        p = 1 / (1 + np.exp(-(x @ [1.0, -0.7] - 2.0)))
        return x, (rng.random(n) < p).astype(int), p

    (xt, yt, _), (xc, yc, _), (xs, _, truth) = draw(3000), draw(1500), draw(1000)
    layout = dict(columns=(0, 1), signed_log=(False, False), fill=(0.0, 0.0), regularization_c=1.0)
    main = fit_linear(x=xt, y=yt, **layout)
    calibrator = fit_calibrator(margin=main.margin(xc), labels=yc, method=SIGMOID)
    draws = []
    for _ in range(replicas):
        rows = rng.permutation(len(yt))[: len(yt) // 2]
        calib_rows = rng.permutation(len(yc))[: len(yc) // 2]
        scorer = fit_linear(x=xt[rows], y=yt[rows], **layout)
        replica = fit_calibrator(
            margin=scorer.margin(xc[calib_rows]), labels=yc[calib_rows], method=SIGMOID
        )
        draws.append(replica.probability(scorer.margin(xs)))
    low, high = probability_interval(
        probability=calibrator.probability(main.margin(xs)), replicas=np.array(draws), coverage=0.9
    )
    return interval_coverage(low=low, high=high, truth=truth)


def test_bootstrap_interval_covers_the_true_probability_near_nominal():
    """Averaged over training draws (one draw's errors are shared by all its rows)."""
    coverage = np.mean([bootstrap_interval_coverage(seed) for seed in range(10)])
    assert 0.75 < coverage < 0.99


def test_any_candidate_can_be_offered(churn_result, scores):
    features, _ = scores
    bundle = replace(churn_result.bundle, selected=RECENCY)
    prediction = predict_churn(bundle=bundle, features=features, explain_top_k=2)
    assert prediction.model == RECENCY
    assert prediction.explanation.top_index.shape == (len(features), 2)
    # Only the recency column carries weight in the recency baseline.
    recency_column = bundle.feature_codes.index("days_since_last_purchase")
    assert (prediction.explanation.top_index[:, 0] == recency_column).all()


def test_selection_prefers_the_simplest_candidate_within_the_tolerance():
    losses = {"recency": 0.2000, "rfm_logistic": 0.1801, "xgboost": 0.1800}
    assert select_candidate(log_losses=losses, tolerance=0.002) == "rfm_logistic"
    assert select_candidate(log_losses=losses, tolerance=0.0) == "xgboost"
    assert select_candidate(log_losses=losses, tolerance=0.2) == "recency"


def test_training_is_deterministic_and_says_when_evaluation_is_impossible():
    data = make_loyalty_data(n_members=500, seed=5, rich=False)
    end = START + pd.Timedelta(days=DAYS)  # the data's last day: nothing after it
    runs = [
        train_churn(
            events=data.events,
            members=data.members,
            cutoff=end,
            horizon_days=HORIZON,
            config=TINY_CONFIG,
        )
        for _ in range(2)
    ]
    first, second = runs
    assert first.report["evaluation"]["available"] is False
    assert "before the label window" in first.report["evaluation"]["reason"]
    assert first.report["model"] == {} and first.report["baselines"]["recency"] == {}
    features = build_features(events=data.events, members=data.members, cutoff=end)
    a = predict_churn(bundle=first.bundle, features=features)
    b = predict_churn(bundle=second.bundle, features=features)
    np.testing.assert_array_equal(a.probability, b.probability)
    np.testing.assert_array_equal(a.low, b.low)
    np.testing.assert_array_equal(a.explanation.top_contribution, b.explanation.top_contribution)
    assert first.report["selection"] == second.report["selection"]


def regular_shoppers(days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Twenty members who buy every day: nobody ever churns."""
    ids = np.repeat(np.arange(1, 21), days)
    day = np.tile(np.arange(days), 20)
    events = pd.DataFrame(
        {
            "member_id": ids,
            "occurred_at": START + pd.to_timedelta(day, unit="D") + pd.Timedelta(hours=10),
            "kind": "purchase",
            "amount": 10.0,
        }
    )
    return events, pd.DataFrame({"member_id": np.arange(1, 21)})


def test_a_split_with_one_class_raises_a_clear_error():
    events, members = regular_shoppers(200)
    with pytest.raises(SingleClassError) as caught:
        train_churn(
            events=events,
            members=members,
            cutoff=START + pd.Timedelta(days=180),
            horizon_days=30,
            config=TINY_CONFIG,
        )
    assert caught.value.split == "train" and caught.value.label == "stay"
    assert "single class" in str(caught.value)


def test_too_little_history_raises_a_clear_error():
    events, members = regular_shoppers(40)
    with pytest.raises(InsufficientHistoryError, match="at least 2"):
        train_churn(
            events=events,
            members=members,
            cutoff=START + pd.Timedelta(days=40),
            horizon_days=30,
            config=ChurnConfig(),
        )


def test_early_stopping_validates_on_members_the_fit_never_saw(synthetic):
    from predictions.ml.churn.model import model_feature_codes
    from predictions.ml.churn.rows import rows_at, split_rows
    from predictions.ml.features import prepare_events
    from predictions.ml.frames import normalize_members

    prepared = prepare_events(synthetic.events)
    roster = normalize_members(synthetic.members)
    cutoffs = [CUTOFF - pd.Timedelta(days=d) for d in (180, 150, 120, 90)]
    codes = model_feature_codes(FAST_CONFIG)
    panel = [rows_at(prepared, roster, c, HORIZON, FAST_CONFIG, codes) for c in cutoffs]
    splits = split_rows(panel, seed=0, held_out_share=0.2)
    assert not set(splits.early_stopping.member_id) & set(splits.validation.member_id)
    assert set(splits.validation.cutoff) == {cutoffs[2].date().isoformat()}
    assert set(splits.calibration.cutoff) == {cutoffs[3].date().isoformat()}
    assert len(splits.train.y) == len(panel[0].y) + len(panel[1].y)
    share = len(np.unique(splits.validation.member_id)) / len(np.unique(panel[2].member_id))
    assert share == pytest.approx(0.2, abs=0.04)


def test_labeled_examples_train_with_their_weight_and_stay_out_of_calibration():
    """People say that members who buy often but hold many points churn anyway: with enough
    weight, the trees learn it; validation and calibration rows are unchanged."""
    data = make_loyalty_data(n_members=500, seed=7, rich=False)
    features = build_features(events=data.events, members=data.members, cutoff=CUTOFF)
    plain = train_churn(
        events=data.events,
        members=data.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=TINY_CONFIG,
    )
    low_recency = features[features["days_since_last_purchase"] <= 7]
    labeled = LabeledRows(
        features=low_recency,
        churned=np.ones(len(low_recency), dtype=bool),
        weight=np.full(len(low_recency), 5.0),
        member_id=low_recency.index.to_numpy(),
        cutoff=np.full(len(low_recency), CUTOFF.isoformat(), dtype=object),
    )
    taught = train_churn(
        events=data.events,
        members=data.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=TINY_CONFIG,
        labeled=labeled,
    )

    rows, plain_rows = taught.report["rows"], plain.report["rows"]
    assert (rows["labeled"], rows["labeled_weight"]) == (len(low_recency), 5.0 * len(low_recency))
    assert rows["train"] == plain_rows["train"] + len(low_recency)
    for split in ("validation", "calibration", "evaluation"):
        assert rows[split] == plain_rows[split]
    # The raw tree margin of the examples' members rises (calibration may still rescale it).
    x = low_recency.loc[:, list(taught.bundle.feature_codes)].to_numpy(dtype="float32")
    taught_margin = taught.bundle.candidates[XGBOOST].scorer.margin(x).mean()
    plain_margin = plain.bundle.candidates[XGBOOST].scorer.margin(x).mean()
    assert taught_margin > plain_margin + 1.0
