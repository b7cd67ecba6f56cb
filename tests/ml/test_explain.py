"""Exact TreeSHAP: equal to the shap package, additive to the margin, top-k bookkeeping."""

import numpy as np
import pytest
import shap
import xgboost as xgb

from predictions.ml.explain import global_importance, top_contributions, tree_contributions
from predictions.ml.scorers import fit_linear

SHAP_TOLERANCE = 1e-4
N_FEATURES = 6
CODES = tuple(f"f{i}" for i in range(N_FEATURES))


def toy(seed: int = 0, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values take the default branch
    score = np.nan_to_num(x[:, 0]) - 2 * np.nan_to_num(x[:, 1]) * (np.nan_to_num(x[:, 2]) > 0)
    return x, score


def booster(x: np.ndarray, y: np.ndarray, **objective) -> xgb.Booster:
    params = {"max_depth": 4, "eta": 0.3, "seed": 0, "nthread": 2, **objective}
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=25)


def test_binary_contributions_equal_shap_and_sum_to_the_margin():
    x, score = toy()
    model = booster(x, (score > 0).astype(int), objective="binary:logistic")
    contributions = tree_contributions(model, x)
    explainer = shap.TreeExplainer(model)
    np.testing.assert_allclose(contributions[:, :-1], explainer.shap_values(x), atol=SHAP_TOLERANCE)
    np.testing.assert_allclose(contributions[:, -1], explainer.expected_value, atol=SHAP_TOLERANCE)
    margin = model.predict(xgb.DMatrix(x), output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=1), margin, atol=SHAP_TOLERANCE)


def test_multiclass_contributions_equal_shap_per_class_and_sum_to_each_logit():
    x, score = toy(seed=1)
    y = np.digitize(score, [-1.0, 0.5])  # three classes
    model = booster(x, y, objective="multi:softprob", num_class=3)
    contributions = tree_contributions(model, x)
    assert contributions.shape == (len(x), 3, N_FEATURES + 1)
    values = np.asarray(shap.TreeExplainer(model).shap_values(x))
    if values.shape == (3, len(x), N_FEATURES):  # older shap: one array per class
        values = values.transpose(1, 2, 0)
    np.testing.assert_allclose(
        contributions[:, :, :-1], values.transpose(0, 2, 1), atol=SHAP_TOLERANCE
    )
    margin = model.predict(xgb.DMatrix(x), output_margin=True)
    np.testing.assert_allclose(contributions.sum(axis=2), margin, atol=SHAP_TOLERANCE)


def test_top_k_plus_remainder_rebuilds_the_margin_and_matches_a_plain_loop():
    x, score = toy(seed=2)
    model = booster(x, (score > 0).astype(int), objective="binary:logistic")
    contributions = tree_contributions(model, x)
    k = 3
    explanation = top_contributions(contributions=contributions, values=x, feature_codes=CODES, k=k)
    rebuilt = (
        explanation.base_value + explanation.top_contribution.sum(axis=1) + explanation.remainder
    )
    np.testing.assert_allclose(rebuilt, explanation.margin, rtol=0, atol=1e-12)
    np.testing.assert_allclose(explanation.margin, contributions.sum(axis=1), atol=1e-12)
    for i in range(0, len(x), 37):
        order = sorted(range(N_FEATURES), key=lambda j: -abs(contributions[i, j]))[:k]
        np.testing.assert_allclose(
            np.abs(explanation.top_contribution[i]), np.abs(contributions[i, order]), atol=0
        )
        np.testing.assert_array_equal(
            explanation.top_value[i], x[i, explanation.top_index[i]].astype("float64")
        )
    sizes = np.abs(explanation.top_contribution)
    assert (sizes[:, :-1] >= sizes[:, 1:]).all()
    record = explanation.row(0, names={"f0": "Feature zero"})
    assert len(record["top"]) == k and set(record) == {"base_value", "margin", "top", "remainder"}


def test_top_k_larger_than_the_feature_count_shows_every_feature():
    contributions = np.array([[0.5, -2.0, 1.0, 0.25]])
    explanation = top_contributions(
        contributions=contributions,
        values=np.array([[1.0, 2.0, 3.0]]),
        feature_codes=CODES[:3],
        k=10,
    )
    assert explanation.top_index.tolist() == [[1, 2, 0]]
    assert explanation.remainder[0] == 0.0
    assert explanation.margin[0] == pytest.approx(-0.25)


def test_global_importance_is_mean_absolute_shap():
    contributions = np.array([[1.0, -3.0, 0.5], [-1.0, 1.0, 0.5]])
    importance = global_importance(contributions=contributions, feature_codes=("a", "b"))
    assert importance.to_dict() == {"b": 2.0, "a": 1.0}
    assert list(importance.index) == ["b", "a"]


def test_linear_contributions_sum_to_the_linear_margin():
    rng = np.random.default_rng(3)
    x = rng.gamma(2.0, 10.0, size=(400, 4))
    x[::7, 0] = np.nan
    y = (rng.random(400) < 1 / (1 + np.exp(-(np.nan_to_num(x[:, 0]) - 20) / 10))).astype(int)
    scorer = fit_linear(
        x=x,
        y=y,
        columns=(0, 2),
        signed_log=(True, False),
        fill=(100.0, 0.0),
        regularization_c=1.0,
    )
    contributions = scorer.contributions(x)
    np.testing.assert_allclose(contributions.sum(axis=1), scorer.margin(x), atol=1e-12)
    assert (contributions[:, [1, 3]] == 0).all()
    assert (contributions[:, -1] == scorer.intercept).all()
