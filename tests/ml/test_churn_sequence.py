"""The sequence model and the tree + sequence ensemble inside churn training and scoring.

No database. The planted data: members buy on three channels at random; a member who is
about to leave buys on a fourth ("kiosk") for the HORIZON days before leaving, and decoys
have the same kiosk spell at some random earlier time and stay. The tree features count
channels over a year (distinct channels, top channel share), so a kiosk spell now and one
months ago look alike to them; the order and age of the events tell them apart, which is
what the GRU reads. Churn labels are observed (no purchase in the horizon), not planted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from predictions.ml import artifacts
from predictions.ml.churn.model import ENSEMBLE, XGBOOST, predict_churn, train_churn
from predictions.ml.churn.sequence import encode_members
from predictions.ml.contracts import (
    SEQUENCE_ITEM,
    BoosterParams,
    ChurnConfig,
    CorruptArtifactError,
    SequenceModelConfig,
)
from predictions.ml.ensemble import sequence_share, stacked_margin
from predictions.ml.features import build_features
from predictions.ml.sequences.attribution import (
    occlusion_attribution,
    occlusion_attribution_by_masking,
)
from predictions.ml.sequences.encoding import FIRST_LEARNED_CODE, encode_sequences
from predictions.ml.sequences.model import WEIGHTS_FILE

START = pd.Timestamp("2024-01-01", tz="UTC")
DAYS = 330
HORIZON = 30
CUTOFF = START + pd.Timedelta(days=DAYS - HORIZON)
CHANNELS = ("web", "app", "store")
SIGNAL_CHANNEL = "kiosk"
MEMBERS = 800
LEAVER_SHARE = 0.3
DECOY_SHARE = 0.3
# Small and fast: the whole module trains twice in a few seconds.
CONFIG = replace(
    ChurnConfig(),
    seed=0,
    bootstrap_models=3,
    max_training_cutoffs=4,
    booster=BoosterParams(
        learning_rate=0.1, num_boost_round=200, early_stopping_rounds=20, n_jobs=1
    ),
    sequence_length=32,
    sequence_min_rows=500,
    sequence_model=SequenceModelConfig(
        hidden_size=16, learning_rate=0.01, batch_size=128, max_epochs=8, patience=3
    ),
)
MIN_LOG_LOSS_GAIN = 0.2
MIN_SHARE_WITH_SIGNAL_ON_TOP = 0.7
MIN_GAIN_OVER_CHANCE = 0.2


@dataclass(frozen=True)
class Planted:
    events: pd.DataFrame
    members: pd.DataFrame


def make_planted(*, n_members: int = MEMBERS, seed: int = 3) -> Planted:
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_members + 1, dtype="int64") * 7
    leaves = rng.random(n_members) < LEAVER_SHARE
    leave = np.where(leaves, rng.uniform(60, DAYS + 60, n_members), np.inf)
    decoy = ~leaves & (rng.random(n_members) < DECOY_SHARE / (1 - LEAVER_SHARE))
    spell = np.where(
        leaves, leave - HORIZON, np.where(decoy, rng.uniform(0, DAYS - HORIZON, n_members), np.inf)
    )
    rate = np.exp(rng.normal(np.log(0.2), 0.3, n_members))
    end = np.minimum(leave, DAYS)
    owner = np.repeat(np.arange(n_members), rng.poisson(rate * end))
    t = rng.uniform(0, 1, len(owner)) * end[owner]
    in_spell = (t >= spell[owner]) & (t < spell[owner] + HORIZON)
    channel = np.where(
        in_spell, SIGNAL_CHANNEL, np.asarray(CHANNELS)[rng.integers(0, 3, len(owner))]
    )
    events = pd.DataFrame(
        {
            "member_id": ids[owner],
            "occurred_at": START + pd.to_timedelta(t, unit="D"),
            "kind": "purchase",
            "amount": np.round(rng.lognormal(3, 0.4, len(owner)), 2),
            "channel": channel,
            "session_id": np.arange(len(owner)).astype(str),
        }
    )
    events = events.sort_values(["occurred_at", "member_id"], kind="stable")
    return Planted(events.reset_index(drop=True), pd.DataFrame({"member_id": ids}))


def train(data: Planted, config: ChurnConfig = CONFIG):
    return train_churn(
        events=data.events,
        members=data.members,
        cutoff=CUTOFF,
        horizon_days=HORIZON,
        config=config,
    )


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_planted()


@pytest.fixture(scope="module")
def trained(planted):
    return train(planted)


@pytest.fixture(scope="module")
def scored(trained, planted):
    """Every member at CUTOFF, scored by the ensemble, with the 3 events that moved it most."""
    features = build_features(events=planted.events, members=planted.members, cutoff=CUTOFF)
    sequences = encode_members(
        ensemble=trained.bundle.ensemble,
        events=planted.events,
        member_ids=features.index,
        cutoff=CUTOFF,
    )
    prediction = predict_churn(
        bundle=trained.bundle,
        features=features,
        candidate=ENSEMBLE,
        sequences=sequences,
        sequence_events=3,
    )
    return features, sequences, prediction


def test_the_ensemble_beats_the_trees_out_of_time_on_an_order_pattern(trained):
    report = trained.report
    trees, ensemble = report["model"], report["ensemble"]
    assert report["evaluation"]["available"] is True
    assert ensemble["n"] == trees["n"] == report["rows"]["evaluation"]
    assert ensemble["log_loss"] < (1 - MIN_LOG_LOSS_GAIN) * trees["log_loss"]
    assert ensemble["roc_auc"] > trees["roc_auc"]
    assert report["sequence"]["log_loss"] < trees["log_loss"]
    # It beats the rolling-origin winner on the calibration split; that winner stays the
    # no-sequence choice.
    assert report["selected"] == ENSEMBLE
    assert report["selection"]["log_loss"][ENSEMBLE] < report["selection"]["log_loss"][XGBOOST]
    winner = report["selection"]["rolling"]["winner"]
    assert report["selected_without_sequence"] == trained.bundle.selected == winner
    assert trained.bundle.ensemble.selected is True


def test_the_report_has_sequence_and_ensemble_entries_like_the_model(trained):
    report = trained.report
    json.dumps(report, allow_nan=False)
    metrics = {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "n", "base_rate"}
    assert metrics | {"coverage", "nominal_coverage"} <= set(report["sequence"])
    assert metrics | {"coverage", "nominal_coverage", "interval_mean_width"} <= set(
        report["ensemble"]
    )
    assert report["ensemble"]["nominal_coverage"] == CONFIG.label_set_coverage
    sequence = report["sequence_model"]
    assert sequence["trained"] is True and sequence["reason"] is None
    assert sequence["length"] == CONFIG.sequence_length
    # The stacker saw the validation rows and nothing else.
    assert sequence["stacker"]["rows"] == report["rows"]["validation"]
    assert sequence["rows"]["validation"] == report["rows"]["validation"]
    assert sequence["rows"]["train"] == report["rows"]["early_stopping_train"]
    assert 1 <= sequence["best_epoch"] <= sequence["epochs"] <= CONFIG.sequence_model.max_epochs
    assert "sequence share held fixed" in report["confidence"]["ensemble_interval"]


def test_changing_the_test_period_changes_nothing_that_was_learned(trained, planted):
    """The stacker (and everything else) is fitted before the cutoff: rewriting what members
    did after it moves only the out-of-time figures. Same seed, same models, bit for bit."""
    events = planted.events.copy()
    after = np.flatnonzero(events["occurred_at"] >= CUTOFF)
    rng = np.random.default_rng(11)
    events.loc[after, "channel"] = rng.choice([*CHANNELS, SIGNAL_CHANNEL], len(after))
    events.loc[after, "amount"] = events.loc[after, "amount"] * 3
    keep = np.ones(len(events), dtype=bool)
    keep[after[:-1]] = rng.random(len(after) - 1) < 0.6  # the last event stays: same data end
    rewritten = train(Planted(events[keep].reset_index(drop=True), planted.members))

    first, second = trained.bundle.ensemble, rewritten.bundle.ensemble
    assert second.stacker == first.stacker
    assert second.calibrator == first.calibrator
    assert second.conformal == first.conformal
    assert second.bootstrap_calibrators == first.bootstrap_calibrators
    state, other = (e.sequence_model.network.state_dict() for e in (first, second))
    assert all(np.array_equal(state[name].numpy(), other[name].numpy()) for name in state)
    assert rewritten.report["selection"] == trained.report["selection"]
    assert rewritten.report["ensemble"] != trained.report["ensemble"]


def test_the_explanation_adds_up_to_the_ensemble_margin(trained, scored):
    features, sequences, prediction = scored
    ensemble = trained.bundle.ensemble
    explanation = prediction.explanation
    assert prediction.model == ENSEMBLE
    rebuilt = (
        explanation.base_value + explanation.top_contribution.sum(axis=1) + explanation.remainder
    )
    np.testing.assert_allclose(rebuilt, explanation.margin, rtol=0, atol=1e-9)
    sequence_margin = ensemble.sequence_model.predict_margin(sequences)
    tree_margin = trained.bundle.candidates[XGBOOST].scorer.margin(
        features.loc[:, list(trained.bundle.feature_codes)].to_numpy(dtype="float32")
    )
    margin = stacked_margin(
        stacker=ensemble.stacker, tree_margin=tree_margin, sequence_margin=sequence_margin
    )
    np.testing.assert_allclose(explanation.margin, margin, atol=1e-4)  # float32 TreeSHAP
    np.testing.assert_allclose(prediction.probability, ensemble.calibrator.probability(margin))
    share = sequence_share(stacker=ensemble.stacker, sequence_margin=sequence_margin)
    records = list(prediction.records(names={}))
    for i, record in enumerate(records[:50]):
        items = record["explanation"]["top"]
        sequence_items = [item for item in items if item["feature"] == SEQUENCE_ITEM]
        assert len(sequence_items) == 1 and len(items) == 6
        assert sequence_items[0]["value"] is None
        assert sequence_items[0]["name"] == "Behavior sequence"
        assert sequence_items[0]["contribution"] == pytest.approx(share[i], abs=1e-12)
        total = (
            record["explanation"]["base_value"]
            + sum(item["contribution"] for item in items)
            + record["explanation"]["remainder"]
        )
        assert total == pytest.approx(record["explanation"]["margin"], abs=1e-9)
        assert len(record["explanation"]["sequence_events"]) == 3
    assert (prediction.low <= prediction.probability + 1e-12).all()
    assert (prediction.probability <= prediction.high + 1e-12).all()


def test_the_events_named_are_the_planted_ones(trained, scored, planted):
    """Members in a kiosk spell now (most about to leave): a kiosk purchase is among the
    three events that moved the ensemble most. Not always the first: a spell has several
    kiosk purchases, and occlusion takes out one at a time (the others stand in for it)."""
    _, sequences, prediction = scored
    recent = planted.events[
        (planted.events["occurred_at"] < CUTOFF)
        & (planted.events["occurred_at"] >= CUTOFF - pd.Timedelta(days=HORIZON))
    ]
    leaving = set(recent.loc[recent["channel"] == SIGNAL_CHANNEL, "member_id"])
    rows = [i for i, member in enumerate(sequences.member_ids) if member in leaving]
    assert len(rows) > 20
    on_top = [
        any(event["channel"] == SIGNAL_CHANNEL for event in prediction.sequence_events[i])
        for i in rows
    ]
    # Three events drawn at random would hold a kiosk one this often:
    signal = _code(sequences, SIGNAL_CHANNEL)
    chance = np.mean(
        [
            1 - math.comb(n - k, 3) / math.comb(n, 3)
            for n, k in (
                (int(sequences.mask[i].sum()), int((sequences.channel[i] == signal).sum()))
                for i in rows
            )
        ]
    )
    assert np.mean(on_top) >= MIN_SHARE_WITH_SIGNAL_ON_TOP
    assert np.mean(on_top) >= chance + MIN_GAIN_OVER_CHANCE
    for i in rows[:20]:
        events = prediction.sequence_events[i]
        sizes = [abs(event["attribution"]) for event in events]
        assert sizes == sorted(sizes, reverse=True)
        member = planted.events[planted.events["member_id"] == sequences.member_ids[i]]
        stamps = set(member["occurred_at"].dt.floor("us").map(pd.Timestamp.isoformat))
        assert {event["occurred_at"] for event in events} <= stamps
        assert all(event["kind"] == "purchase" for event in events)


def _code(sequences, channel: str) -> int:
    return FIRST_LEARNED_CODE + sequences.vocabulary.channels.index(channel)


def test_fast_occlusion_equals_the_masking_reference(trained, planted):
    """Prefix reuse is exact: the same numbers as re-running every occluded copy, for rows
    with many events, one event, two, and none."""
    model = trained.bundle.ensemble.sequence_model
    few = planted.events.groupby("member_id").head(2)
    one = planted.events.groupby("member_id").head(1)
    ids = planted.members["member_id"].to_numpy()[:40]
    for frame in (planted.events, few, one):
        encoded = encode_sequences(
            events=frame,
            member_ids=np.r_[ids, 999_999],
            cutoff=CUTOFF,
            length=model.length,
            vocabulary=model.vocabulary,
        )
        fast = occlusion_attribution(model=model, encoded=encoded)
        plain = occlusion_attribution_by_masking(model=model, encoded=encoded)
        np.testing.assert_allclose(fast.attribution, plain.attribution, atol=1e-5)
        np.testing.assert_array_equal(fast.margin, plain.margin)
    latest = occlusion_attribution(model=model, encoded=encoded, recent_events=1)
    assert np.count_nonzero(latest.attribution) <= len(encoded)


def test_a_lookback_encodes_what_a_frame_cut_at_the_window_start_encodes(planted):
    window = pd.Timedelta(days=40)
    ids = planted.members["member_id"].to_numpy()
    cut = planted.events[planted.events["occurred_at"] >= CUTOFF - window]
    whole = encode_sequences(
        events=planted.events, member_ids=ids, cutoff=CUTOFF, length=32, lookback_days=40
    )
    loaded = encode_sequences(
        events=cut, member_ids=ids, cutoff=CUTOFF, length=32, vocabulary=whole.vocabulary
    )
    for name in ("kind", "category", "channel", "numeric", "mask", "occurred_at"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(loaded, name), name)


def test_the_ensemble_saves_under_sequence_and_fails_loudly_when_corrupted(
    trained, scored, tmp_path
):
    features, sequences, prediction = scored
    checksums = artifacts.save_churn_bundle(bundle=trained.bundle, directory=tmp_path)
    assert {f"sequence/{artifacts.MANIFEST}", f"sequence/{WEIGHTS_FILE}"} <= set(checksums)
    on_disk = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert on_disk == sorted(checksums)
    loaded = artifacts.load_churn_bundle(directory=tmp_path, checksums=checksums)
    again = predict_churn(bundle=loaded, features=features, candidate=ENSEMBLE, sequences=sequences)
    np.testing.assert_array_equal(again.probability, prediction.probability)
    assert (
        loaded.ensemble.selected is True
        and loaded.ensemble.stacker == trained.bundle.ensemble.stacker
    )

    without_sequence = {k: v for k, v in checksums.items() if not k.startswith("sequence/")}
    with pytest.raises(CorruptArtifactError, match="names a sequence model"):
        artifacts.load_churn_bundle(directory=tmp_path, checksums=without_sequence)
    weights = tmp_path / "sequence" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 3] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match=f"{WEIGHTS_FILE} has sha256"):
        artifacts.load_churn_bundle(directory=tmp_path, checksums=checksums)


def test_too_few_rows_train_no_sequence_model_and_say_why(planted):
    small = Planted(
        planted.events[planted.events["member_id"] <= 7 * 300], planted.members.iloc[:300]
    )
    result = train(small, replace(CONFIG, sequence_min_rows=10_000))

    assert result.bundle.ensemble is None
    assert result.report["sequence"] == {} and result.report["ensemble"] == {}
    assert result.report["sequence_model"]["trained"] is False
    assert "fewer than sequence_min_rows (10000)" in result.report["sequence_model"]["reason"]
    assert ENSEMBLE not in result.report["selection"]["log_loss"]
    assert result.report["selected"] == result.bundle.selected
