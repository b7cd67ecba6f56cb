"""Behavioral clusters (`predictions.ml.clusters`): k chosen by the silhouette, planted groups
found, numbered by size, described by what sets them apart; a stored fit assigns as the fit
did; no database."""

import numpy as np
import pandas as pd
import pytest

from predictions.ml.clusters import (
    K_RANGE,
    MIN_CLUSTER_MEMBERS,
    ClusterModel,
    cluster_numbers,
    fit_clusters,
)
from tests.clusters import PLANTED_GROUPS, planted_population


@pytest.fixture(scope="module")
def planted():
    features, groups = planted_population()
    return features, groups, fit_clusters(features)


def test_the_silhouette_picks_the_planted_number_of_groups(planted):
    _, _, model = planted

    assert model.k == len(PLANTED_GROUPS) == 3
    assert set(model.silhouettes) == set(K_RANGE)
    assert max(model.silhouettes, key=model.silhouettes.get) == 3
    assert model.members == sum(size for size, *_ in PLANTED_GROUPS.values())


def test_each_planted_group_is_one_cluster_numbered_by_size(planted):
    features, groups, model = planted

    found = pd.Series(model.assign(features), index=features.index)

    # Each group lies in exactly one cluster, and each cluster holds exactly one group.
    pairs = pd.crosstab(groups, found)
    assert ((pairs > 0).sum(axis=1) == 1).all() and ((pairs > 0).sum(axis=0) == 1).all()
    numbers = {group: int(found[groups == group].iloc[0]) for group in PLANTED_GROUPS}
    assert numbers == {"weekly shoppers": 1, "lapsing": 2, "coupon hunters": 3}
    assert [(c.number, c.members) for c in model.clusters] == [(1, 120), (2, 70), (3, 40)]
    assert [c.share for c in model.clusters] == [round(n / 230, 4) for n in (120, 70, 40)]


def test_a_cluster_is_described_by_the_features_that_set_it_apart(planted):
    _, _, model = planted
    hunters, lapsing = model.cluster(3), model.cluster(2)

    apart = {f.code: f for f in hunters.top_features}
    assert (apart["coupons_redeemed_365"].z > 0, apart["mean_basket_value"].z < 0) == (True, True)
    assert apart["coupons_redeemed_365"].cluster_median == pytest.approx(30.0, abs=3.0)
    assert apart["coupons_redeemed_365"].population_median == pytest.approx(1.0, abs=1.0)
    assert "high coupons redeemed" in hunters.description.lower()
    assert "low average basket value" in hunters.description.lower()
    assert hunters.label == f"Cluster 3: {hunters.description}"
    # The lapsing members stand out by their long absence and small baskets and spend.
    assert {f.code for f in lapsing.top_features} <= {
        "days_since_last_purchase",
        "baskets_per_30d",
        "spend_per_30d",
    }
    assert "high days since last purchase" in lapsing.description.lower()


def test_a_feature_that_does_not_vary_is_left_out(planted):
    _, _, model = planted

    # No sessions anywhere (a purchases-only retailer), and columns the frame lacks.
    assert "sessions_90" not in model.features
    assert "email_opens_90" not in model.features
    assert model.features[0] == "days_since_last_purchase"


def test_the_stored_fit_assigns_every_member_as_the_fit_did(planted):
    features, _, model = planted

    restored = ClusterModel.from_json(model.to_json())

    assert restored == model
    assert restored.assign(features) == model.assign(features)
    assert ClusterModel.from_json(None) is None


def test_fitting_again_gives_the_same_clusters(planted):
    features, _, model = planted

    again = fit_clusters(features.sample(frac=1.0, random_state=3).sort_index())

    assert again.to_json() == model.to_json()


def test_a_member_without_a_purchase_or_a_feature_is_still_assigned(planted):
    features, _, model = planted
    odd = pd.DataFrame(
        {
            "days_since_last_purchase": [np.nan, 150.0],
            "baskets_per_30d": [0.0, np.nan],
            "spend_per_30d": [0.0, 18.0],
        },
        index=pd.Index([9001, 9002], name="member_id"),
    )

    numbers = model.assign(odd)

    # No purchase in the lookback reads as the longest absence: the lapsing cluster.
    assert numbers[0] == 2
    assert numbers[1] in {1, 2, 3}
    assert model.assign(odd.iloc[:0]) == []


def test_too_few_members_or_nothing_varying_give_no_clusters():
    features, _ = planted_population()
    alike = pd.DataFrame(
        {"spend_per_30d": [12.5] * 80, "baskets_per_30d": [1.0] * 80},
        index=pd.Index(range(80), name="member_id"),
    )

    assert fit_clusters(features.iloc[: MIN_CLUSTER_MEMBERS - 1]) is None
    assert fit_clusters(alike) is None
    assert cluster_numbers(features.iloc[:3], None) == [None, None, None]
