"""The training row budget: each cutoff keeps at most a stated number of members, a stable,
reproducible sample drawn from what is known at the cutoff, and the report says so."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml.churn.model import model_feature_codes, train_churn
from predictions.ml.churn.panel import build_panel, cutoff_budget
from predictions.ml.churn.rows import active_at, rows_at
from predictions.ml.features import prepare_events
from predictions.ml.frames import normalize_members
from predictions.ml.row_budget import member_keys, rows_per_cutoff, within_budget

from .conftest import CUTOFF, FAST_CONFIG, HORIZON, make_loyalty_data

BUDGET = 150
CUTOFFS = [CUTOFF - pd.Timedelta(days=d) for d in (180, 150, 120, 90)]
# Four cutoffs at BUDGET members each.
CAPPED_CONFIG = replace(FAST_CONFIG, max_training_rows=4 * BUDGET, bootstrap_models=2)


@pytest.fixture(scope="module")
def prepared(synthetic):
    return prepare_events(synthetic.events), normalize_members(synthetic.members)


def test_member_keys_are_fixed_numbers_not_a_salted_hash():
    keys = member_keys(np.array([1, 2, 10], dtype="int64"), seed=0)

    assert keys.dtype == np.uint64
    np.testing.assert_array_equal(keys, member_keys(np.array([1, 2, 10]), seed=0))
    assert len(set(keys.tolist())) == 3
    assert not np.array_equal(keys, member_keys(np.array([1, 2, 10]), seed=1))


def test_the_budget_keeps_exactly_that_many_members_and_the_same_ones_twice():
    ids = np.arange(1000, 6000, dtype="int64")

    first = within_budget(ids, budget=700, seed=3)
    second = within_budget(ids.copy(), budget=700, seed=3)

    assert first.sum() == 700
    np.testing.assert_array_equal(first, second)
    assert within_budget(ids, budget=5000, seed=3).all()
    assert within_budget(ids, budget=None, seed=3).all()
    # Not the lowest ids: spread over the whole range.
    assert ids[first].min() < 1500 and ids[first].max() > 5500


def test_the_sample_is_a_stable_subset_of_the_members():
    ids = np.arange(1, 4001, dtype="int64")
    kept = set(ids[within_budget(ids, budget=500, seed=0)])

    # A larger budget keeps a superset.
    assert kept <= set(ids[within_budget(ids, budget=900, seed=0)])
    # Among fewer members (another cutoff, where some are inactive) a kept member stays kept.
    fewer = ids[ids % 3 != 0]
    assert kept & set(fewer) <= set(fewer[within_budget(fewer, budget=500, seed=0)])


def test_the_per_cutoff_budget_spreads_the_row_cap_over_the_cutoffs():
    assert rows_per_cutoff(2_000_000, 24) == 83_333
    assert rows_per_cutoff(10, 24) == 1
    assert cutoff_budget(CAPPED_CONFIG, CUTOFFS) == BUDGET


def test_each_cutoff_holds_at_most_the_budget_with_the_kept_members_rows(prepared):
    events, roster = prepared
    codes = model_feature_codes(CAPPED_CONFIG)

    panel = build_panel(
        prepared=events,
        roster=roster,
        cutoffs=CUTOFFS,
        horizon_days=HORIZON,
        config=CAPPED_CONFIG,
        codes=codes,
    )

    assert panel.rows_per_cutoff == BUDGET
    for cutoff, rows in zip(CUTOFFS, panel.rows, strict=True):
        full = rows_at(events, roster, cutoff, HORIZON, CAPPED_CONFIG, codes)
        counts = panel.counts[cutoff.date().isoformat()]
        assert counts == {"active": len(full.y), "kept": BUDGET}
        assert len(rows.y) == BUDGET < len(full.y)
        # The kept members' rows are exactly their rows without a budget.
        position = np.searchsorted(full.member_id, rows.member_id)
        np.testing.assert_array_equal(full.member_id[position], rows.member_id)
        np.testing.assert_array_equal(full.x[position], rows.x)
        np.testing.assert_array_equal(full.y[position], rows.y)
    # Members kept at one cutoff are mostly kept at the next, where they are still active.
    first, second = (set(rows.member_id) for rows in panel.rows[:2])
    active_next = set(active_at(events, roster, CUTOFFS[1], CAPPED_CONFIG))
    assert len(first & second) / len(first & active_next) > 0.8


def test_building_the_panel_twice_gives_the_same_rows(prepared):
    events, roster = prepared
    codes = model_feature_codes(CAPPED_CONFIG)

    runs = [
        build_panel(
            prepared=events,
            roster=roster,
            cutoffs=CUTOFFS,
            horizon_days=HORIZON,
            config=CAPPED_CONFIG,
            codes=codes,
        )
        for _ in range(2)
    ]

    for a, b in zip(runs[0].rows, runs[1].rows, strict=True):
        np.testing.assert_array_equal(a.member_id, b.member_id)
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)


def test_the_sample_at_a_cutoff_reads_nothing_after_it(synthetic):
    """Events after the cutoff (in or beyond the label window) change neither who is kept nor
    their features: only the labels read the window, as without a budget."""
    cutoff = CUTOFFS[1]
    codes = model_feature_codes(CAPPED_CONFIG)
    roster = normalize_members(synthetic.members)
    events = synthetic.events
    before = events[events["occurred_at"] < cutoff]
    # Every member buys right after the cutoff: all labels flip to "stay".
    extra = pd.DataFrame(
        {
            "member_id": roster["member_id"],
            "occurred_at": cutoff + pd.Timedelta(hours=1),
            "kind": "purchase",
            "amount": 10.0,
        }
    )
    changed = pd.concat([before, extra], ignore_index=True)

    rows = {
        name: rows_at(prepare_events(frame), roster, cutoff, HORIZON, CAPPED_CONFIG, codes, BUDGET)
        for name, frame in (("real", events), ("cut", before), ("changed", changed))
    }

    for name in ("cut", "changed"):
        np.testing.assert_array_equal(rows[name].member_id, rows["real"].member_id)
        np.testing.assert_array_equal(rows[name].x, rows["real"].x)
    assert rows["changed"].y.sum() == 0 < rows["real"].y.sum()


def test_the_training_report_states_the_budget_and_its_rows_keep_to_it():
    data = make_loyalty_data(n_members=800, seed=11, rich=False)
    config = replace(CAPPED_CONFIG, max_training_cutoffs=6, max_training_rows=6 * 200)

    result = train_churn(
        events=data.events,
        members=data.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=config,
    )

    budget = result.report["row_budget"]
    assert budget["max_rows"] == 1200
    assert budget["rows_per_cutoff"] == 200
    assert budget["sampled"] is True
    assert "stable hash" in budget["rule"]
    assert list(budget["cutoffs"]) == [c[:10] for c in result.report["cutoffs"]]
    assert all(c["kept"] == min(c["active"], 200) for c in budget["cutoffs"].values())
    assert budget["evaluation"]["kept"] == 200 < budget["evaluation"]["active"]
    rows = result.report["rows"]
    assert rows["train"] == sum(c["kept"] for c in list(budget["cutoffs"].values())[:-2])
    assert rows["calibration"] == 200
    assert rows["evaluation"] == 200
    assert budget["training_rows"] <= 1200


def test_the_budget_does_not_bind_at_the_default_on_a_small_program(churn_result):
    budget = churn_result.report["row_budget"]

    assert budget["sampled"] is False
    assert budget["rows_per_cutoff"] == 2_000_000 // len(churn_result.report["cutoffs"])
    assert all(c["kept"] == c["active"] for c in budget["cutoffs"].values())


def test_next_action_keeps_each_snapshots_budget_and_every_decision(
    synthetic, next_action_panel, next_action_result
):
    from predictions.ml.contracts import NextActionConfig
    from predictions.ml.nba import DECISION, snapshot_members, train_next_action

    from .conftest import ACTIONS, FAST_BOOSTER, NEXT_ACTION_CUTOFFS, next_action_labels

    labels = next_action_labels(synthetic, next_action_panel)
    per_snapshot = 300
    max_rows = per_snapshot * len(NEXT_ACTION_CUTOFFS)

    result = train_next_action(
        features=next_action_panel,
        labels=labels,
        action_codes=ACTIONS,
        config=NextActionConfig(booster=FAST_BOOSTER),
        max_training_rows=max_rows,
    )

    budget = result.report["row_budget"]
    assert budget["rows_per_cutoff"] == per_snapshot
    assert budget["sampled"] is True
    assert "decisions always train" in budget["rule"]
    assert all(c["kept"] == per_snapshot < c["active"] for c in budget["cutoffs"].values())
    decisions = int((labels["source"] == DECISION).sum())
    history = result.report["rows"]["total"] - decisions
    assert history <= 2 * max_rows  # a member-cutoff carries a rule row and maybe an outcome
    assert result.report["rows"]["total"] < next_action_result.report["rows"]["total"]
    # Without the cap nothing is dropped on a small program.
    assert next_action_result.report["row_budget"]["sampled"] is False
    # The helper a caller uses to build only the features it needs keeps the same members.
    first = pd.to_datetime(labels["cutoff"], utc=True) == pd.Timestamp(NEXT_ACTION_CUTOFFS[0])
    members = np.unique(labels.loc[first & (labels["source"] != DECISION), "member_id"])
    kept = snapshot_members(members, snapshots=len(NEXT_ACTION_CUTOFFS), max_training_rows=max_rows)
    assert len(kept) == per_snapshot
    assert budget["cutoffs"][NEXT_ACTION_CUTOFFS[0].isoformat()]["active"] == len(members)


def test_features_built_for_the_kept_members_only_equal_the_whole_rosters(prepared):
    """Rows are built for the members a cutoff keeps, not for the roster then selected: the
    values must not change (what keeps the numbers of a program under the budget as before)."""
    from predictions.ml.features import features_at

    events, roster = prepared
    cutoff = CUTOFFS[2]
    some = roster[roster["member_id"] % 3 == 1]

    whole = features_at(events, roster, cutoff).loc[some["member_id"].to_numpy()]
    part = features_at(events, some, cutoff)

    pd.testing.assert_frame_equal(part, whole)
