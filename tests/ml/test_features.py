"""Point-in-time features: no future leakage, hand-computed values, graceful degradation."""

import math

import numpy as np
import pandas as pd
import pytest

from predictions.ml.features import (
    FEATURE_CODES,
    FEATURES,
    build_feature_panel,
    build_features,
    prepare_events,
)
from tests.ml.conftest import CUTOFF

HAND_CUTOFF = pd.Timestamp("2024-03-01", tz="UTC")


def at(day: str) -> pd.Timestamp:
    """Noon UTC of a day, so that every age below is a whole number plus one half."""
    return pd.Timestamp(f"{day} 12:00", tz="UTC")


def hand_events() -> pd.DataFrame:
    rows = [
        # member 7: three baskets (one without a session), a support contact, a campaign, a coupon
        (7, at("2024-02-29"), "purchase", 4.0, "x", "a", "web", np.nan),
        (7, at("2024-02-29"), "purchase", 6.0, "y", "a", "web", np.nan),
        (7, at("2024-02-20"), "purchase", 30.0, "x", "b", "app", np.nan),
        (7, at("2024-02-01"), "purchase", 20.0, "x", "", "", np.nan),
        (7, at("2024-02-15"), "support_contact", np.nan, "", "", "", np.nan),
        (7, at("2024-02-05"), "campaign_received", np.nan, "", "", "", np.nan),
        (7, at("2024-02-10"), "coupon_redeemed", np.nan, "", "", "", np.nan),
        (7, at("2024-02-20"), "view", np.nan, "", "b", "app", 40.0),
        (7, at("2024-02-29"), "view", np.nan, "", "a", "web", 20.0),
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "member_id",
            "occurred_at",
            "kind",
            "amount",
            "category",
            "session_id",
            "channel",
            "dwell_seconds",
        ],
    )


def hand_members() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": [7, 8],
            "joined_on": pd.to_datetime(["2024-01-01", None]),
            "tier": ["gold", ""],
            "points_balance": [120.0, 0.0],
            "tier_rank": [2, -1],
        }
    )


def test_features_of_a_tiny_member_match_hand_computed_values():
    matrix = build_features(events=hand_events(), members=hand_members(), cutoff=HAND_CUTOFF)
    row = matrix.loc[7]
    # Purchase days Feb 1, 20, 29: gaps 19 and 9.
    mean_gap, std_gap = 14.0, math.sqrt(((19 - 14) ** 2 + (9 - 14) ** 2) / 1)
    expected = {
        "days_since_last_purchase": 0.5,
        "days_since_last_event": 0.5,
        "tenure_days": 60.0,  # 2024-01-01 to 2024-03-01 (leap year)
        "mean_gap_days": mean_gap,
        "gap_std_days": std_gap,
        "gap_cv": std_gap / mean_gap,
        "purchase_overdue_ratio": 0.5 / mean_gap,
        "days_until_expected_purchase": mean_gap - 0.5,
        "baskets_30": 3.0,  # Feb 1 noon is 29.5 days before the cutoff
        "baskets_90": 3.0,
        "baskets_per_30d": 3.0,  # 29.5 observed days count as the 30-day minimum
        "spend_30": 60.0,
        "spend_per_30d": 60.0,
        "mean_basket_value": 20.0,
        "mean_basket_items": 4 / 3,
        "returns_365": 0.0,
        "return_share_365": 0.0,
        "coupons_redeemed_90": 1.0,
        "campaigns_received_365": 1.0,
        "coupon_response_rate_365": 1.0,
        "distinct_categories_365": 2.0,
        "category_entropy_365": -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)),
        "top_category_share_365": 0.75,
        "sessions_30": 2.0,
        "mean_dwell_seconds_90": 30.0,
        "browse_events_30": 2.0,
        "distinct_channels_365": 2.0,
        "top_channel_share_365": 3 / 5,  # web: 2 purchase lines + 1 view; app: 1 + 1
        "support_contacts_90": 1.0,
        "days_since_support_contact": 14.5,
        "active_days_30": 5.0,  # Feb 1, 10, 15, 20, 29 (the campaign on Feb 5 is not theirs)
        "points_balance": 120.0,
        "tier_rank": 2.0,
    }
    for code, value in expected.items():
        assert row[code] == pytest.approx(value, rel=1e-12, abs=1e-12), code
    # The history starts 29.5 days before the cutoff: no earlier window to compare with.
    for code in ("basket_trend_30", "spend_trend_30", "session_trend_30", "basket_value_trend_90"):
        assert math.isnan(row[code]), code


def test_member_without_events_gets_zeros_and_gaps():
    matrix = build_features(events=hand_events(), members=hand_members(), cutoff=HAND_CUTOFF)
    row = matrix.loc[8]
    assert row["baskets_365"] == 0.0
    assert row["spend_365"] == 0.0
    assert row["support_contacts_365"] == 0.0
    assert math.isnan(row["days_since_last_purchase"])
    assert math.isnan(row["tenure_days"])
    assert math.isnan(row["mean_gap_days"])
    assert list(matrix.index) == [7, 8]


def test_planting_future_events_changes_nothing(synthetic):
    before = build_features(events=synthetic.events, members=synthetic.members, cutoff=CUTOFF)
    member = int(synthetic.members["member_id"].iloc[3])
    future = pd.DataFrame(
        {
            "member_id": [member] * 5 + [999_999],
            "occurred_at": [
                CUTOFF,  # exactly at the cutoff: not before it
                CUTOFF + pd.Timedelta(seconds=1),
                CUTOFF + pd.Timedelta(days=3),
                CUTOFF + pd.Timedelta(days=3),
                CUTOFF + pd.Timedelta(days=40),
                CUTOFF - pd.Timedelta(days=2),  # a member not on the roster: ignored
            ],
            "kind": ["purchase", "support_contact", "purchase", "return", "login", "purchase"],
            "amount": [500.0, np.nan, 80.0, 20.0, np.nan, 10.0],
            "category": ["new", "", "x", "x", "", "y"],
            "session_id": ["f1", "", "f2", "f2", "", "z"],
        }
    )
    planted = pd.concat([synthetic.events, future], ignore_index=True)
    after = build_features(events=planted, members=synthetic.members, cutoff=CUTOFF)
    pd.testing.assert_frame_equal(before, after)


def test_columns_follow_the_feature_list_with_readable_names(synthetic):
    matrix = build_features(events=synthetic.events, members=synthetic.members, cutoff=CUTOFF)
    assert tuple(matrix.columns) == FEATURE_CODES
    assert len(set(FEATURE_CODES)) == len(FEATURE_CODES)
    assert all(info.name and info.name != info.code and info.description for info in FEATURES)
    assert matrix.index.name == "member_id"
    assert (matrix.dtypes == "float64").all()
    assert len(matrix) == len(synthetic.members)


def test_purchase_only_data_degrades_to_nan_and_zero_columns():
    events = pd.DataFrame(
        {
            "member_id": [1, 1, 2],
            "occurred_at": pd.to_datetime(["2024-01-03", "2024-02-01", "2024-02-10"], utc=True),
            "kind": ["purchase"] * 3,
        }
    )
    members = pd.DataFrame({"member_id": [1, 2]})
    matrix = build_features(events=events, members=members, cutoff="2024-03-01")
    assert matrix.loc[1, "baskets_90"] == 2.0
    assert matrix.loc[1, "spend_90"] == 0.0
    assert matrix["mean_dwell_seconds_90"].isna().all()
    assert matrix["top_channel_share_365"].isna().all()
    assert (matrix["sessions_90"] == 0).all()
    assert matrix.loc[2, "tenure_days"] == pytest.approx(20.0)


def test_panel_stacks_single_cutoff_matrices(synthetic):
    cutoffs = [CUTOFF - pd.Timedelta(days=60), CUTOFF]
    prepared = prepare_events(synthetic.events)
    panel = build_feature_panel(events=prepared, members=synthetic.members, cutoffs=cutoffs)
    assert panel.index.names == ["cutoff", "member_id"]
    for cutoff in cutoffs:
        single = build_features(events=synthetic.events, members=synthetic.members, cutoff=cutoff)
        pd.testing.assert_frame_equal(panel.loc[cutoff], single)
