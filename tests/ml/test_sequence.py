"""The sequence model: point-in-time encoding, a deterministic GRU that finds an order-dependent
signal, exact occlusion attribution, the validation-fitted stacker, and artifacts.

No database. The planted data: members browse in sessions (a view with dwell seconds, sometimes
a purchase). Churners contact support and then spend less and less time per session. Decoys
carry the same ingredients in another arrangement: a support contact with steady dwell, fading
dwell without a contact, or fading dwell that began a month BEFORE the contact. Counts of
contacts and dwell trends hardly separate the last decoy from churners; the order does. The
label is planted (churner or not, 5 % flipped), not observed after the cutoff.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest
import torch
import xgboost as xgb
from sklearn.metrics import roc_auc_score

from predictions.ml import artifacts
from predictions.ml.contracts import CorruptArtifactError, SingleClassError
from predictions.ml.ensemble import (
    ensemble_contributions,
    fit_stacker,
    sequence_share,
    stacked_margin,
)
from predictions.ml.explain import tree_contributions
from predictions.ml.features import build_features
from predictions.ml.frames import empty_events
from predictions.ml.sequences.attribution import occlusion_attribution
from predictions.ml.sequences.encoding import (
    AGE,
    AMOUNT,
    DWELL,
    GAP,
    NO_VALUE_CODE,
    PADDING_CODE,
    UNKNOWN_CODE,
    EncodedSequences,
    SequenceVocabulary,
    concat_sequences,
    encode_sequences,
    learn_vocabulary,
    prepare_sequence_events,
)
from predictions.ml.sequences.model import (
    WEIGHTS_FILE,
    SequenceChurnModel,
    SequenceModelConfig,
    load_sequence_model,
    save_sequence_model,
    train_sequence_churn,
)
from tests.ml.conftest import CUTOFF

START = pd.Timestamp("2024-01-01", tz="UTC")
WINDOW_DAYS = 120
PLANTED_CUTOFF = START + pd.Timedelta(days=WINDOW_DAYS)
CHURN, CONTACT_ONLY, FADE_ONLY, FADE_THEN_CONTACT, PLAIN = range(5)
GROUP_SHARES = (0.3, 0.2, 0.15, 0.15, 0.2)
# Dwell per session after the turn shrinks by this factor each session.
DWELL_DECAY = 0.7
FADE_LEAD_DAYS = 30
LABEL_NOISE = 0.05
PLANTED_MEMBERS = 2000
# Faster than the defaults on this small, clean problem (the defaults suit noisier data).
FAST_SEQUENCE_CONFIG = SequenceModelConfig(
    hidden_size=32, learning_rate=0.01, batch_size=128, max_epochs=30, patience=3
)
MIN_HELD_OUT_AUC = 0.75
TOP_K = 3
MIN_SHARE_WITH_CONTACT_IN_TOP_K = 0.8


@dataclass(frozen=True)
class Planted:
    events: pd.DataFrame
    member_ids: np.ndarray
    labels: np.ndarray
    group: np.ndarray


def make_planted_data(*, n_members: int, seed: int) -> Planted:
    """Sessions over WINDOW_DAYS before PLANTED_CUTOFF with the pattern of the module docstring."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n_members + 1, dtype="int64")
    group = rng.choice(len(GROUP_SHARES), n_members, p=GROUP_SHARES)
    owner = np.repeat(np.arange(n_members), np.maximum(rng.poisson(22, n_members), 8))
    t = rng.uniform(0, WINDOW_DAYS, len(owner))
    order = np.lexsort((t, owner))
    owner, t = owner[order], t[order]
    turn = rng.uniform(50, 95, n_members)
    fade_start = np.where(group == FADE_THEN_CONTACT, turn - FADE_LEAD_DAYS, turn)
    fading = np.isin(group, (CHURN, FADE_ONLY, FADE_THEN_CONTACT))[owner] & (t > fade_start[owner])
    sessions_into_fade = np.zeros(len(t))
    sessions_into_fade[fading] = pd.Series(owner[fading]).groupby(owner[fading]).cumcount() + 1
    session = np.arange(len(t)).astype(str)
    views = pd.DataFrame(
        {
            "member_id": ids[owner],
            "t": t,
            "kind": "view",
            "dwell_seconds": rng.gamma(4.0, 20.0, len(t)) * DWELL_DECAY**sessions_into_fade,
            "channel": rng.choice(["web", "app"], len(t)),
            "session_id": session,
        }
    )
    buys = rng.random(len(t)) < 0.3
    purchases = pd.DataFrame(
        {
            "member_id": ids[owner[buys]],
            "t": t[buys] + 0.001,
            "kind": "purchase",
            "amount": np.round(rng.lognormal(3, 0.5, buys.sum()), 2),
            "category": rng.choice(["dairy", "bakery", "produce"], buys.sum()),
            "session_id": session[buys],
        }
    )
    contacted = np.isin(group, (CHURN, CONTACT_ONLY, FADE_THEN_CONTACT))
    contacts = pd.DataFrame(
        {
            "member_id": ids[contacted],
            "t": turn[contacted],
            "kind": "support_contact",
            "channel": "phone",
        }
    )
    events = pd.concat([views, purchases, contacts], ignore_index=True)
    events["occurred_at"] = START + pd.to_timedelta(events.pop("t"), unit="D")
    events = events.sort_values(["occurred_at", "member_id"], kind="stable").reset_index(drop=True)
    labels = (group == CHURN).astype("int64")
    flipped = rng.random(n_members) < LABEL_NOISE
    labels[flipped] = 1 - labels[flipped]
    return Planted(events=events, member_ids=ids, labels=labels, group=group)


def at(day: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=day)


# --- encoding -------------------------------------------------------------------------------


def test_events_at_or_after_the_cutoff_change_nothing(synthetic):
    ids = synthetic.members["member_id"].to_numpy()
    before = encode_sequences(events=synthetic.events, member_ids=ids, cutoff=CUTOFF, length=16)
    planted = pd.DataFrame(
        {
            "member_id": np.repeat(ids[:50], 2),
            "occurred_at": np.tile([CUTOFF, CUTOFF + pd.Timedelta(days=3)], 50),
            "kind": "support_contact",
            "amount": 999.0,
            "category": "launched_after_the_cutoff",
            "channel": "new_channel",
        }
    )
    # Appended, so that every earlier row keeps its row number.
    events = pd.concat([synthetic.events, planted], ignore_index=True)
    after = encode_sequences(events=events, member_ids=ids, cutoff=CUTOFF, length=16)
    assert after.vocabulary == before.vocabulary
    assert "launched_after_the_cutoff" not in after.vocabulary.categories
    for name in ("kind", "category", "channel", "numeric", "mask", "event_row", "occurred_at"):
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name), name)
    assert (after.occurred_at[after.mask] < CUTOFF.tz_localize(None).to_datetime64()).all()


def test_left_padding_mask_and_numeric_channels_of_a_tiny_frame():
    events = pd.DataFrame(
        {
            "member_id": [1, 2, 2, 2, 2, 2, 1, 2],
            "occurred_at": [at(1), at(0), at(2), at(3), at(3), at(5), at(4), at(9)],
            "kind": ["purchase", "view", "view", "return", "purchase", "login", "view", "view"],
            "amount": [np.nan, np.nan, np.nan, 20.0, 50.0, np.nan, np.nan, np.nan],
            "dwell_seconds": [np.nan, 10.0, 30.0, np.nan, np.nan, np.nan, 7.0, 1.0],
        }
    )
    encoded = encode_sequences(
        events=events, member_ids=[2, 1, 3], cutoff=at(6), length=4, vocabulary=None
    )
    np.testing.assert_array_equal(
        encoded.mask,
        [[True, True, True, True], [False, False, True, True], [False, False, False, False]],
    )
    # Member 2: the last four events before day 6 (day 9 is after; day 0 falls out of the
    # window), ties in time in input row order.
    np.testing.assert_array_equal(encoded.event_row[0], [2, 3, 4, 5])
    np.testing.assert_array_equal(encoded.event_row[1], [-1, -1, 0, 6])
    np.testing.assert_array_equal(encoded.event_row[2], [-1, -1, -1, -1])
    assert list(encoded.events_of(0)["kind"]) == ["view", "return", "purchase", "login"]
    assert np.isnat(encoded.occurred_at[1, :2]).all()
    assert encoded.occurred_at[1, 3] == at(4).tz_localize(None).to_datetime64()
    for codes in (encoded.kind, encoded.category, encoded.channel):
        assert (codes[~encoded.mask] == PADDING_CODE).all()
        assert (codes[encoded.mask] != PADDING_CODE).all()
    assert (encoded.numeric[~encoded.mask] == 0).all()

    numeric = encoded.numeric[0].astype("float64")
    # The gap of the window's first event is measured to the event that fell out of it.
    np.testing.assert_allclose(numeric[:, GAP], np.log1p([2.0, 1.0, 0.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(numeric[:, AGE], np.log1p([4.0, 3.0, 3.0, 1.0]), rtol=1e-6)
    np.testing.assert_allclose(
        numeric[:, AMOUNT], [0.0, -np.log1p(20.0), np.log1p(50.0), 0.0], rtol=1e-6
    )
    np.testing.assert_allclose(numeric[:, DWELL], [np.log1p(30.0), 0.0, 0.0, 0.0], rtol=1e-6)
    assert encoded.numeric[1, 2, GAP] == 0.0  # member 1's first event ever


def test_values_not_seen_before_the_training_cutoff_are_unknown():
    events = pd.DataFrame(
        {
            "member_id": [1, 1, 1, 2, 2],
            "occurred_at": [at(1), at(2), at(3), at(12), at(13)],
            "kind": ["purchase", "purchase", "view", "purchase", "view"],
            "category": ["dairy", "dairy", "", "toys", "dairy"],
            "channel": ["web", "app", "app", "kiosk", ""],
        }
    )
    vocabulary = learn_vocabulary(events=events, cutoff=at(10))
    assert vocabulary.categories == ("dairy",)
    assert vocabulary.channels == ("app", "web")  # most frequent first
    later = encode_sequences(
        events=events, member_ids=[2, 1], cutoff=at(20), length=3, vocabulary=vocabulary
    )
    np.testing.assert_array_equal(later.category[0], [PADDING_CODE, UNKNOWN_CODE, 3])
    np.testing.assert_array_equal(later.channel[0], [PADDING_CODE, UNKNOWN_CODE, NO_VALUE_CODE])
    np.testing.assert_array_equal(later.category[1], [3, 3, NO_VALUE_CODE])
    np.testing.assert_array_equal(later.channel[1], [4, 3, 3])
    assert list(later.events_of(0)["category"]) == ["(unknown)", "dairy"]
    assert SequenceVocabulary.from_json(vocabulary.to_json()) == vocabulary


def test_stacked_cutoffs_concatenate_and_split_by_rows():
    planted = make_planted_data(n_members=30, seed=3)
    prepared = prepare_sequence_events(planted.events)
    first = encode_sequences(events=prepared, member_ids=planted.member_ids, cutoff=at(60))
    second = encode_sequences(
        events=prepared,
        member_ids=planted.member_ids[:10],
        cutoff=at(90),
        vocabulary=first.vocabulary,
    )
    both = concat_sequences([first, second])
    assert len(both) == 40
    np.testing.assert_array_equal(both.take(np.arange(30, 40)).kind, second.kind)
    assert set(both.cutoff_ns.tolist()) == {at(60).value, at(90).value}
    other = encode_sequences(events=prepared, member_ids=planted.member_ids, cutoff=at(30))
    with pytest.raises(ValueError, match="vocabularies"):
        concat_sequences([first, replace(other, vocabulary=replace(other.vocabulary, channels=()))])


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fitted:
    planted: Planted
    encoded: EncodedSequences
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    model: SequenceChurnModel


@pytest.fixture(scope="module")
def fitted() -> Fitted:
    planted = make_planted_data(n_members=PLANTED_MEMBERS, seed=1)
    encoded = encode_sequences(
        events=planted.events, member_ids=planted.member_ids, cutoff=PLANTED_CUTOFF
    )
    draw = np.random.default_rng(0).random(len(planted.member_ids))
    train, validation, test = draw < 0.6, (draw >= 0.6) & (draw < 0.8), draw >= 0.8
    model = train_sequence_churn(
        train=encoded.take(train),
        train_labels=planted.labels[train],
        validation=encoded.take(validation),
        validation_labels=planted.labels[validation],
        config=FAST_SEQUENCE_CONFIG,
    )
    return Fitted(planted, encoded, train, validation, test, model)


def test_members_without_events_get_all_padding_and_a_finite_margin(fitted):
    encoded = encode_sequences(
        events=empty_events(),
        member_ids=[1, 2],
        cutoff=PLANTED_CUTOFF,
        vocabulary=fitted.model.vocabulary,
    )
    assert not encoded.mask.any()
    assert (encoded.event_row == -1).all() and np.isnat(encoded.occurred_at).all()
    margin = fitted.model.predict_margin(encoded)
    assert np.isfinite(margin).all() and margin[0] == margin[1]


def test_a_split_with_one_class_is_refused(fitted):
    rows = fitted.encoded.take(np.arange(40))
    with pytest.raises(SingleClassError, match="validation split has a single class"):
        train_sequence_churn(
            train=rows,
            train_labels=np.arange(40) % 2,
            validation=rows,
            validation_labels=np.zeros(40),
        )


def test_the_gru_learns_the_order_dependent_pattern(fitted):
    held_out = fitted.encoded.take(fitted.test)
    auc = roc_auc_score(fitted.planted.labels[fitted.test], fitted.model.predict_margin(held_out))
    assert auc > MIN_HELD_OUT_AUC
    assert (
        fitted.model.best_epoch
        == min(fitted.model.history, key=lambda record: record.validation_log_loss).epoch
    )


def test_occlusion_ranks_the_support_contact_among_the_top_events_of_churners(fitted):
    churners = np.flatnonzero(fitted.test & (fitted.planted.group == CHURN))
    attribution = occlusion_attribution(model=fitted.model, encoded=fitted.encoded.take(churners))
    found = [
        "support_contact" in set(attribution.top_events(row, k=TOP_K)["kind"])
        for row in range(len(churners))
    ]
    assert np.mean(found) >= MIN_SHARE_WITH_CONTACT_IN_TOP_K
    frame = attribution.to_frame()
    assert len(frame) == int(attribution.encoded.mask.sum())
    assert set(frame["member_id"]) == set(fitted.planted.member_ids[churners])


def test_an_occlusion_equals_re_encoding_without_that_event(fitted):
    """Exact: masking an event out gives the margin of the sequence that never had it."""
    member = int(np.flatnonzero(fitted.test & (fitted.planted.group == CHURN))[1])
    one = fitted.encoded.take([member])
    attribution = occlusion_attribution(model=fitted.model, encoded=one)
    contact = attribution.top_events(0, k=64).query("kind == 'support_contact'").iloc[0]
    events = fitted.planted.events.drop(index=int(contact["event_row"]))
    without = encode_sequences(
        events=events,
        member_ids=one.member_ids,
        cutoff=PLANTED_CUTOFF,
        vocabulary=one.vocabulary,
    )
    expected = fitted.model.predict_margin(one) - fitted.model.predict_margin(without)
    np.testing.assert_allclose(contact["attribution"], expected[0], atol=1e-5)
    # Batched with other members or alone, the same numbers.
    batch = occlusion_attribution(
        model=fitted.model, encoded=fitted.encoded.take([member - 1, member, member + 1])
    )
    np.testing.assert_allclose(batch.attribution[1], attribution.attribution[0], atol=1e-5)
    assert (attribution.attribution[~one.mask] == 0).all()


def test_training_is_deterministic_for_a_seed_and_restores_torch_settings():
    planted = make_planted_data(n_members=300, seed=5)
    encoded = encode_sequences(
        events=planted.events, member_ids=planted.member_ids, cutoff=PLANTED_CUTOFF, length=32
    )
    half = np.arange(len(planted.member_ids)) < 200
    config = replace(FAST_SEQUENCE_CONFIG, max_epochs=3, hidden_size=16)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng_state = torch.random.get_rng_state()

    def train(seed: int):
        return train_sequence_churn(
            train=encoded.take(half),
            train_labels=planted.labels[half],
            validation=encoded.take(~half),
            validation_labels=planted.labels[~half],
            config=replace(config, seed=seed),
        )

    first, second, other = train(0), train(0), train(1)
    np.testing.assert_array_equal(first.predict_margin(encoded), second.predict_margin(encoded))
    assert [r.validation_log_loss for r in first.history] == [
        r.validation_log_loss for r in second.history
    ]
    assert not np.array_equal(first.predict_margin(encoded), other.predict_margin(encoded))
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.equal(torch.random.get_rng_state(), rng_state)
    probability = first.predict_proba(encoded)
    np.testing.assert_allclose(probability, 1 / (1 + np.exp(-first.predict_margin(encoded))))


def test_sequences_of_another_vocabulary_are_refused(fitted):
    foreign = replace(fitted.encoded.vocabulary, categories=("toys",))
    with pytest.raises(ValueError, match="another vocabulary"):
        fitted.model.predict_margin(replace(fitted.encoded, vocabulary=foreign))


# --- the ensemble ---------------------------------------------------------------------------


def test_the_stacker_is_fit_on_validation_and_its_parts_add_up_to_the_margin(fitted):
    planted = fitted.planted
    features = build_features(
        events=planted.events,
        members=pd.DataFrame({"member_id": planted.member_ids}),
        cutoff=PLANTED_CUTOFF,
    )
    x = features.to_numpy(dtype="float32")
    booster = xgb.train(
        {"max_depth": 3, "eta": 0.2, "nthread": 1, "objective": "binary:logistic"},
        xgb.DMatrix(x[fitted.train], planted.labels[fitted.train]),
        num_boost_round=40,
    )
    tree_margin = booster.predict(xgb.DMatrix(x), output_margin=True).astype("float64")
    sequence_margin = fitted.model.predict_margin(fitted.encoded)
    valid = fitted.validation

    stacker = fit_stacker(
        tree_margin=tree_margin[valid],
        sequence_margin=sequence_margin[valid],
        y=planted.labels[valid],
    )
    assert stacker.rows == int(valid.sum())
    assert stacker.tree_weight >= 0 and stacker.sequence_weight > 0
    share = sequence_share(stacker=stacker, sequence_margin=sequence_margin)
    np.testing.assert_allclose(share[valid].mean(), 0.0, atol=1e-12)

    shap = tree_contributions(booster, x)
    waterfall = ensemble_contributions(
        stacker=stacker, tree_contributions=shap, sequence_margin=sequence_margin
    )
    assert waterfall.shape == (len(x), x.shape[1] + 2)
    np.testing.assert_array_equal(waterfall[:, -2], share)
    ensemble = stacked_margin(
        stacker=stacker, tree_margin=shap.sum(axis=1), sequence_margin=sequence_margin
    )
    np.testing.assert_allclose(waterfall.sum(axis=1), ensemble, rtol=0, atol=1e-12)
    # And to the trees' own margin, up to XGBoost's float32 SHAP.
    direct = stacked_margin(
        stacker=stacker, tree_margin=tree_margin, sequence_margin=sequence_margin
    )
    np.testing.assert_allclose(waterfall.sum(axis=1), direct, atol=1e-4)
    test_labels = planted.labels[fitted.test]
    assert roc_auc_score(test_labels, ensemble[fitted.test]) >= roc_auc_score(
        test_labels, tree_margin[fitted.test]
    )


def test_a_margin_pointing_the_wrong_way_gets_weight_zero():
    """A negative weight would make 'the sequence pushed the risk up' mean its opposite."""
    rng = np.random.default_rng(0)
    tree, reversed_signal = rng.normal(0, 1.5, 2000), rng.normal(0, 1.0, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(tree - reversed_signal)))).astype(int)
    stacker = fit_stacker(tree_margin=tree, sequence_margin=reversed_signal, y=y)
    assert stacker.sequence_weight == 0.0
    assert stacker.tree_weight > 0.5
    np.testing.assert_array_equal(
        sequence_share(stacker=stacker, sequence_margin=reversed_signal), np.zeros(2000)
    )


# --- artifacts ------------------------------------------------------------------------------


def test_save_and_load_round_trip_exactly(fitted, tmp_path):
    stacker = fit_stacker(
        tree_margin=np.linspace(-2, 2, 200),
        sequence_margin=np.tile([0.5, -0.5], 100),
        y=np.tile([1, 0, 0, 1], 50),
    )
    checksums = save_sequence_model(model=fitted.model, directory=tmp_path, stacker=stacker)
    assert sorted(checksums) == [artifacts.MANIFEST, WEIGHTS_FILE]
    assert (
        save_sequence_model(model=fitted.model, directory=tmp_path / "again", stacker=stacker)
        == checksums
    )  # byte-identical files: no timestamps inside
    loaded = load_sequence_model(directory=tmp_path, checksums=checksums)
    np.testing.assert_array_equal(
        loaded.model.predict_margin(fitted.encoded), fitted.model.predict_margin(fitted.encoded)
    )
    assert loaded.stacker == stacker
    assert loaded.model.vocabulary == fitted.model.vocabulary
    assert loaded.model.config == fitted.model.config
    assert loaded.model.history == fitted.model.history


def test_a_corrupted_weights_file_raises(fitted, tmp_path):
    checksums = save_sequence_model(model=fitted.model, directory=tmp_path)
    data = bytearray((tmp_path / WEIGHTS_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / WEIGHTS_FILE).write_bytes(bytes(data))
    with pytest.raises(CorruptArtifactError, match=f"{WEIGHTS_FILE} has sha256"):
        load_sequence_model(directory=tmp_path, checksums=checksums)


def test_a_checksummed_but_inconsistent_manifest_raises(fitted, tmp_path):
    checksums = save_sequence_model(model=fitted.model, directory=tmp_path)
    manifest = tmp_path / artifacts.MANIFEST
    manifest.write_text(manifest.read_text().replace('"hidden_size": 32', '"hidden_size": 33'))
    resigned = {**checksums, artifacts.MANIFEST: artifacts.sha256_of(manifest.read_bytes())}
    with pytest.raises(CorruptArtifactError, match="unusable"):
        load_sequence_model(directory=tmp_path, checksums=resigned)
