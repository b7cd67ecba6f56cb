"""Seeded synthetic loyalty data with a known churn signal, and shared trained models.

No database: these tests never request the `db` fixture.

The generator (plain numpy) draws each member's purchase rate; some members leave at a random
day. For the DECLINE_DAYS before leaving they buy half as often and contact support about
LEAVER_SUPPORT_CONTACTS times, while stayers contact support rarely. Recency alone sees a
departure only after it happened and cannot tell a slow buyer from a leaver; support contacts,
the member's usual gap and trends can. That is the signal the churn model must find.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml.contracts import BoosterParams, ChurnConfig

START = pd.Timestamp("2023-01-01", tz="UTC")
DAY = pd.Timedelta(days=1)
DECLINE_DAYS = 40
DECLINE_KEEP = 0.7
LEAVER_SUPPORT_CONTACTS = 2.5
BASE_SUPPORT_PER_DAY = 0.003
LEAVER_SHARE = 0.4
CATEGORIES = ("produce", "dairy", "bakery", "meat", "drinks", "household")
CHANNELS = ("web", "app", "store")
CAMPAIGN_DAYS = (60, 150, 240, 330)
# The cutoff and horizon the shared churn model is trained and evaluated at.
CUTOFF = START + 330 * DAY
HORIZON = 60
DAYS = 420


@dataclass(frozen=True)
class Synthetic:
    events: pd.DataFrame
    members: pd.DataFrame
    rate: np.ndarray
    leave_day: np.ndarray


def make_loyalty_data(
    *, n_members: int = 1200, days: int = DAYS, seed: int = 0, rich: bool = True
) -> Synthetic:
    """Events and members as the engine expects them (see the module docstring)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_members + 1, dtype="int64") * 10
    rate = np.clip(np.exp(rng.normal(np.log(1 / 6), 0.7, n_members)), 1 / 90, 1.0)
    leaves = rng.random(n_members) < LEAVER_SHARE
    leave_day = np.where(leaves, rng.uniform(30, days + 60, n_members), np.inf)
    end = np.minimum(leave_day, days)
    spend_scale = np.exp(rng.normal(3.0, 0.5, n_members))

    counts = rng.poisson(rate * end)
    owner = np.repeat(np.arange(n_members), counts)
    t = rng.uniform(0, 1, len(owner)) * end[owner]
    declining = t >= leave_day[owner] - DECLINE_DAYS
    keep = ~declining | (rng.random(len(t)) < DECLINE_KEEP)
    owner, t = owner[keep], t[keep]
    n_purchases = len(t)
    purchase = pd.DataFrame(
        {
            "member_id": ids[owner],
            "t": t,
            "kind": "purchase",
            "amount": np.round(spend_scale[owner] * rng.lognormal(0, 0.4, n_purchases), 2),
            "quantity": rng.integers(1, 6, n_purchases).astype("float64"),
            "category": np.asarray(CATEGORIES)[rng.integers(0, len(CATEGORIES), n_purchases)],
            "session_id": [f"s{i}" for i in range(n_purchases)],
        }
    )
    parts = [purchase]

    base = rng.poisson(BASE_SUPPORT_PER_DAY * days, n_members)
    s_owner = np.repeat(np.arange(n_members), base)
    s_t = rng.uniform(0, days, len(s_owner))
    extra = np.where(np.isfinite(leave_day), rng.poisson(LEAVER_SUPPORT_CONTACTS, n_members), 0)
    l_owner = np.repeat(np.arange(n_members), extra)
    l_t = leave_day[l_owner] - rng.uniform(0, DECLINE_DAYS, len(l_owner))
    support_owner = np.concatenate([s_owner, l_owner])
    support_t = np.concatenate([s_t, l_t])
    inside = (support_t >= 0) & (support_t < days)
    parts.append(
        pd.DataFrame(
            {
                "member_id": ids[support_owner[inside]],
                "t": support_t[inside],
                "kind": "support_contact",
            }
        )
    )

    if rich:
        views = purchase.loc[:, ["member_id", "t", "session_id"]].copy()
        views["t"] = views["t"] - rng.uniform(0.001, 0.01, len(views))
        views["kind"] = "view"
        views["dwell_seconds"] = rng.gamma(2.0, 30.0, len(views))
        views["channel"] = np.asarray(CHANNELS)[rng.integers(0, 3, len(views))]
        parts.append(views)
        for day in CAMPAIGN_DAYS:
            receivers = np.flatnonzero(rng.random(n_members) < 0.5)
            parts.append(
                pd.DataFrame(
                    {"member_id": ids[receivers], "t": float(day), "kind": "campaign_received"}
                )
            )
            active = receivers[
                (leave_day[receivers] > day + 14) & (rng.random(len(receivers)) < 0.3)
            ]
            parts.append(
                pd.DataFrame(
                    {
                        "member_id": ids[active],
                        "t": day + rng.uniform(0.5, 14, len(active)),
                        "kind": "coupon_redeemed",
                    }
                )
            )

    events = pd.concat(parts, ignore_index=True)
    events = events[(events["t"] >= 0) & (events["t"] < days)]
    events["occurred_at"] = START + pd.to_timedelta(events.pop("t"), unit="D")
    events = events.sort_values(["occurred_at", "member_id"], kind="stable").reset_index(drop=True)
    members = pd.DataFrame(
        {
            "member_id": ids,
            "joined_on": (START - pd.to_timedelta(rng.integers(0, 400, n_members), unit="D"))
            .tz_localize(None)
            .to_numpy(),
            "tier": np.asarray(["bronze", "silver", "gold"])[rng.integers(0, 3, n_members)],
            "points_balance": rng.integers(0, 5000, n_members).astype("float64"),
        }
    )
    members["tier_rank"] = members["tier"].map({"bronze": 0, "silver": 1, "gold": 2})
    return Synthetic(events=events, members=members, rate=rate, leave_day=leave_day)


# One thread: on a shared 2-core CI machine, OpenMP threads that wait for a descheduled peer
# made a 3 s fit take up to 20 s; single-threaded fits of this size are as fast and steady.
FAST_BOOSTER = BoosterParams(
    learning_rate=0.1, num_boost_round=300, early_stopping_rounds=30, n_jobs=1
)
# Trees and baselines only: the sequence model has tests of its own (test_churn_sequence.py).
FAST_CONFIG = replace(
    ChurnConfig(),
    max_training_cutoffs=6,
    bootstrap_models=6,
    booster=FAST_BOOSTER,
    sequence=False,
)


@pytest.fixture(scope="session")
def synthetic() -> Synthetic:
    return make_loyalty_data()


@pytest.fixture(scope="session")
def churn_result(synthetic):
    from predictions.ml.churn.model import train_churn

    return train_churn(
        events=synthetic.events,
        members=synthetic.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=FAST_CONFIG,
    )


ACTIONS = (
    "no_action",
    "bonus_points",
    "personal_discount",
    "free_delivery",
    "win_back_email",
    "personal_outreach",
    "tier_trial",
)
# Labels never give these two: the model must cope with catalog entries nobody chose yet.
UNCHOSEN_ACTIONS = ("free_delivery", "tier_trial")
NEXT_ACTION_CUTOFFS = tuple(CUTOFF - i * 30 * DAY for i in range(5, 0, -1))
DECISION_SHARE = 0.4
DECISION_NOISE = 0.25


def next_action_labels(data: Synthetic, panel: pd.DataFrame, *, seed: int = 0) -> pd.DataFrame:
    """Rule labels everywhere, outcome labels where seen, and noisy 'decisions' on a sample.

    Analysts here send personal outreach to anyone who contacted support in the last 90 days,
    otherwise agree with the rules, and a quarter of the time pick something at random.
    """
    from predictions.ml.nba import bootstrap_rule_labels, observed_outcome_labels

    rng = np.random.default_rng(seed)
    parts = []
    chosen = [code for code in ACTIONS if code not in UNCHOSEN_ACTIONS]
    for cutoff in panel.index.get_level_values("cutoff").unique():
        matrix = panel.loc[cutoff]
        rules = bootstrap_rule_labels(features=matrix, action_codes=chosen, cutoff=cutoff)
        parts.append(rules)
        parts.append(observed_outcome_labels(events=data.events, cutoff=cutoff, window_days=30))
        sample = rules.sample(frac=DECISION_SHARE, random_state=int(rng.integers(1 << 30)))
        support = matrix.loc[sample["member_id"], "support_contacts_90"].to_numpy() > 0
        decided = np.where(support, "personal_outreach", sample["action_code"].to_numpy())
        noisy = rng.random(len(decided)) < DECISION_NOISE
        decided[noisy] = rng.choice(chosen, noisy.sum())
        parts.append(sample.assign(action_code=decided, source="decision", weight=5.0))
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def next_action_panel(synthetic):
    from predictions.ml.features import build_feature_panel

    return build_feature_panel(
        events=synthetic.events, members=synthetic.members, cutoffs=NEXT_ACTION_CUTOFFS
    )


@pytest.fixture(scope="session")
def next_action_result(synthetic, next_action_panel):
    from predictions.ml.contracts import NextActionConfig
    from predictions.ml.nba import train_next_action

    return train_next_action(
        features=next_action_panel,
        labels=next_action_labels(synthetic, next_action_panel),
        action_codes=ACTIONS,
        config=NextActionConfig(booster=FAST_BOOSTER),
    )
