"""Churn labels and the active population, on a hand-built case."""

import pandas as pd

from predictions.ml.features import prepare_events
from predictions.ml.labels import active_member_ids, churn_labels

CUTOFF = pd.Timestamp("2024-06-01", tz="UTC")
HORIZON = 30
END = CUTOFF + pd.Timedelta(days=HORIZON)


def events() -> pd.DataFrame:
    rows = [
        (1, CUTOFF + pd.Timedelta(days=10), "purchase"),  # buys inside the window: stays
        (2, CUTOFF + pd.Timedelta(days=5), "view"),  # only browses: churns
        (3, END, "purchase"),  # first instant after the window: churns
        (4, CUTOFF, "purchase"),  # first instant of the window: stays
        (4, CUTOFF - pd.Timedelta(days=400), "purchase"),
        (5, CUTOFF - pd.Timedelta(seconds=1), "purchase"),  # bought just before, not after
        (1, CUTOFF - pd.Timedelta(days=30), "purchase"),
        (2, CUTOFF - pd.Timedelta(days=364), "purchase"),
        (3, CUTOFF - pd.Timedelta(days=366), "purchase"),  # outside a 365-day lookback
        (6, CUTOFF - pd.Timedelta(days=3), "login"),  # active, but not by a qualifying kind
    ]
    return pd.DataFrame(rows, columns=["member_id", "occurred_at", "kind"])


def test_labels_mark_members_without_a_qualifying_event_in_the_window():
    labels = churn_labels(
        events=events(), member_ids=[1, 2, 3, 4, 5, 6, 7], cutoff=CUTOFF, horizon_days=HORIZON
    )
    assert labels.to_dict() == {1: 0, 2: 1, 3: 1, 4: 0, 5: 1, 6: 1, 7: 1}
    assert labels.name == "churn"


def test_other_qualifying_kinds_count_as_activity():
    labels = churn_labels(
        events=events(),
        member_ids=[1, 2, 3],
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        qualifying_kinds=("purchase", "view"),
    )
    assert labels.to_dict() == {1: 0, 2: 0, 3: 1}


def test_active_members_had_a_qualifying_event_within_the_lookback():
    assert active_member_ids(events=events(), cutoff=CUTOFF, lookback_days=365).tolist() == [
        1,
        2,
        5,
    ]
    assert active_member_ids(events=events(), cutoff=CUTOFF, lookback_days=401).tolist() == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_prepared_events_give_the_same_labels():
    frame = events()
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    prepared = prepare_events(frame)
    ids = [1, 2, 3, 4, 5, 6, 7]
    pd.testing.assert_series_equal(
        churn_labels(events=prepared, member_ids=ids, cutoff=CUTOFF, horizon_days=HORIZON),
        churn_labels(events=frame, member_ids=ids, cutoff=CUTOFF, horizon_days=HORIZON),
    )
    assert (
        active_member_ids(events=prepared, cutoff=CUTOFF).tolist()
        == active_member_ids(events=frame, cutoff=CUTOFF).tolist()
    )
