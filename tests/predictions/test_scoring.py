"""Scoring: one prediction per member, version and cutoff; consent is read at scoring time."""

import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from loyalty.models import Action, Member
from loyalty.services.members import set_consent
from predictions.ml.churn.model import predict_churn
from predictions.ml.features import (
    FEATURE_NAMES,
    MAX_LOOKBACK_DAYS,
    build_features,
    prepare_events,
)
from predictions.ml.frames import EVENT_COLUMNS
from predictions.ml.nba import predict_next_action
from predictions.models import Prediction, ScoringRun
from predictions.selectors import (
    FEATURE_EVENT_COLUMNS,
    _events_by_copy,
    _events_by_cursor,
    events_frame,
    feature_events,
    first_event_times,
    members_frame,
)
from predictions.services.explanations import explain_predictions
from predictions.services.prediction_writer import write_predictions
from predictions.services.scoring.predict import action_eligibility, load_bundle, predict_rows
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)


def _score_inline(kind: str, **options) -> ScoringRun:
    run = start_scoring_run(kind=kind, cutoff=CUTOFF, enqueue=False, **options)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def test_scoring_stores_one_churn_prediction_per_scorable_member(active_churn_version):
    scorable = Member.objects.filter(consent_profiling=True).count()

    run = _score_inline("churn", chunk_size=150)

    assert run.status == "done"
    assert run.members_scored == scorable
    assert Prediction.objects.filter(model_version=active_churn_version).count() == scorable
    prediction = Prediction.objects.filter(kind="churn").first()
    assert prediction.interval_low <= prediction.score <= prediction.interval_high
    assert 0.0 <= prediction.confidence <= 1.0
    # No SHAP at scoring: routing needs none; it is computed when a person is to see it.
    assert not Prediction.objects.exclude(explanation={}).exists()
    assert (prediction.served_model, prediction.explanation) == ("trees", {})
    assert explain_predictions(prediction_ids=[prediction.pk]) == 1
    prediction.refresh_from_db()
    explanation = prediction.explanation
    total = (
        explanation["base_value"]
        + sum(item["contribution"] for item in explanation["top"])
        + explanation["remainder"]
    )
    assert total == pytest.approx(explanation["margin"], abs=1e-6)
    assert all(item["name"] for item in explanation["top"])


def test_a_prediction_keeps_the_feature_values_its_model_saw(active_churn_version):
    _score_inline("churn")
    prediction = Prediction.objects.select_related("model_version").filter(kind="churn").first()
    ids = [prediction.member_id]
    features = build_features(
        events=feature_events(cutoff=CUTOFF, member_ids=ids),
        members=members_frame(member_ids=ids),
        cutoff=CUTOFF,
    ).loc[prediction.member_id]

    seen = prediction.features_seen

    assert list(seen) == list(active_churn_version.feature_codes)
    assert len(prediction.feature_values) == len(seen)
    for code, value in seen.items():
        expected = features[code]
        assert value is None if np.isnan(expected) else value == pytest.approx(expected, abs=1e-6)
    assert prediction.member_value == pytest.approx(features["spend_365"])


def test_rescoring_the_same_cutoff_adds_no_second_prediction(active_churn_version):
    first = _score_inline("churn")
    count = Prediction.objects.count()

    # The same chunk again (a redelivered task) and a whole new run at the same cutoff.
    outcome = score_chunk(chunk_id=first.chunks.first().pk)
    _score_inline("churn")

    assert outcome.already_done is True
    assert Prediction.objects.count() == count
    assert (
        Prediction.objects.values("member", "model_version", "cutoff").distinct().count() == count
    )


def test_a_member_who_withdrew_consent_is_not_scored(active_churn_version, make_user):
    member = Member.objects.filter(consent_profiling=True).order_by("pk").first()
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False)
    set_consent(member=member, consent=False, actor=make_user("admin"))  # after the run started

    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)

    run.refresh_from_db()
    assert not Prediction.objects.filter(member=member).exists()
    assert run.members_skipped_no_consent == 1
    assert run.members_scored == run.members_total - 1


def test_next_action_recommends_only_eligible_actions(active_next_action_version):
    run = _score_inline("next_action")

    assert run.status == "done"
    predictions = Prediction.objects.filter(kind="next_action").select_related(
        "recommended_action", "member"
    )
    assert predictions.count() == run.members_scored > 0
    for prediction in predictions:
        action = prediction.recommended_action
        assert action is not None and action.is_eligible(prediction.member)
        assert sum(prediction.probabilities.values()) == pytest.approx(1.0)


# --- the bulk paths: event loading, row building, prediction writing --------------------------

WRITE_CUTOFF = datetime(2026, 1, 1, tzinfo=UTC)


def _row(member, version, **values):
    return {
        "member_id": member.pk,
        "model_version_id": version.pk,
        "kind": "churn",
        "cutoff": WRITE_CUTOFF,
        "score": 0.1,
        "interval_low": 0.05,
        "interval_high": 0.2,
        "label_set": ["stay"],
        "confidence": 0.85,
        "explanation": {"base_value": -1.5, "top": [{"feature": "spend_30", "value": None}]},
        "feature_values": [12.345678, None, 'a "quoted" \\ \t'],
        "member_value": 12.345678,
        **values,
    }


def test_write_predictions_skips_a_stored_key_and_writes_the_others():
    version = ModelVersionFactory()
    stored, new_one, new_two = MemberFactory.create_batch(3)
    PredictionFactory(member=stored, model_version=version, cutoff=WRITE_CUTOFF, score=0.9)
    rows = [
        _row(stored, version, score=0.2),
        _row(new_one, version),
        # A Prediction instance is written the same way as a mapping.
        Prediction(
            member=new_two,
            model_version=version,
            kind="churn",
            cutoff=WRITE_CUTOFF,
            score=1 / 3,
            confidence=0.5,
            label_set=["stay", "churn"],
        ),
    ]

    inserted = write_predictions(rows=rows)
    again = write_predictions(rows=rows)

    assert (inserted, again) == (2, 0)
    assert Prediction.objects.count() == 3
    assert Prediction.objects.get(member=stored).score == 0.9  # the stored row is untouched
    first = Prediction.objects.get(member=new_one)
    assert (first.kind, first.cutoff, first.model_version_id) == ("churn", WRITE_CUTOFF, version.pk)
    assert (first.score, first.interval_low, first.interval_high) == (0.1, 0.05, 0.2)
    assert (first.label_set, first.confidence, first.probabilities) == (["stay"], 0.85, None)
    assert first.recommended_action_id is None
    assert first.explanation == _row(new_one, version)["explanation"]
    assert first.feature_values == _row(new_one, version)["feature_values"]
    assert first.member_value == 12.345678
    second = Prediction.objects.get(member=new_two)
    assert (second.score, second.label_set, second.interval_low) == (1 / 3, ["stay", "churn"], None)
    assert (second.explanation, second.feature_values, second.member_value) == ({}, [], None)
    assert first.scored_at is not None and second.scored_at is not None


def test_write_predictions_with_nothing_to_write_writes_nothing():
    assert write_predictions(rows=[]) == 0
    assert Prediction.objects.count() == 0


def test_events_frame_keeps_the_contract_and_equals_the_cursor_path():
    member = MemberFactory()
    other = MemberFactory()
    at = datetime(2025, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
    EventFactory(member=member, occurred_at=at, amount=Decimal("0.10"), dwell_seconds=12.5)
    EventFactory(
        member=member,
        occurred_at=at + timedelta(days=1),
        kind="view",
        amount=None,
        quantity=None,
        category="",
        channel="NA",  # pandas reads "NA" as missing unless told not to
        session_id='s,"1"',
        product_id="é",
    )
    EventFactory(member=other, occurred_at=at, amount=Decimal("99999999.99"))

    frame = events_frame(before=at + timedelta(days=2), member_ids=[member.pk])

    assert list(frame.columns) == list(EVENT_COLUMNS)
    assert {column: str(dtype) for column, dtype in frame.dtypes.items()} == {
        "member_id": "int64",
        "occurred_at": "datetime64[ns, UTC]",
        "kind": "object",
        "amount": "float64",
        "quantity": "float64",
        "category": "object",
        "channel": "object",
        "session_id": "object",
        "dwell_seconds": "float64",
        "product_id": "object",
    }
    frame = frame.sort_values("occurred_at", ignore_index=True)
    assert frame["member_id"].tolist() == [member.pk, member.pk]
    assert frame["occurred_at"].tolist() == [pd.Timestamp(at), pd.Timestamp(at + timedelta(days=1))]
    assert frame["kind"].tolist() == ["purchase", "view"]
    assert frame["amount"].tolist()[0] == 0.1 and np.isnan(frame["amount"].tolist()[1])
    assert frame["category"].tolist() == ["GROCERY", ""]
    assert frame["channel"].tolist() == ["store", "NA"]
    assert frame["session_id"].tolist()[1] == 's,"1"'
    assert frame["product_id"].tolist() == ["", "é"]
    assert frame["dwell_seconds"].tolist()[0] == 12.5 and np.isnan(frame["dwell_seconds"][1])
    # Scoring reads only the feature columns, with the same types; no rows keeps the types.
    narrow = events_frame(member_ids=[member.pk], columns=FEATURE_EVENT_COLUMNS)
    assert list(narrow.columns) == FEATURE_EVENT_COLUMNS
    assert narrow.dtypes.to_dict() == frame.dtypes[FEATURE_EVENT_COLUMNS].to_dict()
    nothing = events_frame(before=at - timedelta(days=1))
    assert len(nothing) == 0
    assert nothing.dtypes.to_dict() == frame.dtypes.to_dict()
    if connection.vendor == "postgresql":  # COPY and the plain cursor give the same frame
        where = ["occurred_at < %s"]
        params = [at + timedelta(days=2)]
        by_copy = _events_by_copy(columns=EVENT_COLUMNS, where=where, params=params)
        by_cursor = _events_by_cursor(columns=EVENT_COLUMNS, where=where, params=params)
        assert len(by_copy) == 3
        pd.testing.assert_frame_equal(by_copy, by_cursor, check_exact=True)


def test_features_from_the_lookback_window_equal_features_from_all_events():
    cutoff = datetime(2026, 1, 1, tzinfo=UTC)
    old = cutoff - timedelta(days=MAX_LOOKBACK_DAYS + 100)
    recent = cutoff - timedelta(days=40)
    unknown_join = MemberFactory(joined_on=None)  # tenure comes from the first event
    only_old = MemberFactory(joined_on=None)  # every event outside the window
    regular = MemberFactory()
    for day in range(0, 1000, 45):
        EventFactory(member=unknown_join, occurred_at=old + timedelta(days=day, hours=3))
        EventFactory(member=regular, occurred_at=old + timedelta(days=day + 7), kind="login")
    EventFactory(member=only_old, occurred_at=old)
    EventFactory(member=unknown_join, occurred_at=recent, kind="return", amount=Decimal("3.30"))
    EventFactory(member=regular, occurred_at=cutoff, kind="purchase")  # at the cutoff: unseen
    # One basket of three lines at one instant: its amount is a sum whose rounding depends on
    # the order of the lines, so equal features also mean the order was kept.
    for line, amount in enumerate(["0.10", "0.20", "0.70"]):
        EventFactory(
            member=regular,
            occurred_at=recent,
            session_id="basket",
            category=f"C{line}",
            product_id=f"P{line}",
            amount=Decimal(amount),
        )
    ids = [unknown_join.pk, only_old.pk, regular.pk]
    members = members_frame(member_ids=ids)
    every_row = events_frame(before=cutoff, member_ids=ids)

    windowed = feature_events(cutoff=cutoff, member_ids=ids)

    every_event = prepare_events(every_row)
    assert len(windowed.t_ns) < len(every_event.t_ns)  # the window did leave events out
    pd.testing.assert_series_equal(windowed.first_ns, every_event.first_ns, check_exact=True)
    from_window = build_features(events=windowed, members=members, cutoff=cutoff)
    from_all = build_features(events=every_event, members=members, cutoff=cutoff)
    pd.testing.assert_frame_equal(from_window, from_all, check_exact=True)
    assert from_window.loc[only_old.pk, "tenure_days"] == MAX_LOOKBACK_DAYS + 100
    # The same rows in the same order, cut to the window here rather than in SQL.
    window_start = pd.Timestamp(cutoff - timedelta(days=MAX_LOOKBACK_DAYS))
    cut_here = dataclasses.replace(
        prepare_events(every_row[every_row["occurred_at"] >= window_start]),
        first_ns=first_event_times(before=cutoff, member_ids=ids),
    )
    pd.testing.assert_frame_equal(
        build_features(events=cut_here, members=members, cutoff=cutoff), from_all, check_exact=True
    )


def _rows_from_records(version, bundle, features, cutoff):
    """The rows as scoring built them before the column-wise path: from `records()`."""
    if version.kind == "churn":
        result = predict_churn(bundle=bundle, features=features)
    else:
        eligibility = action_eligibility(member_ids=list(features.index), codes=bundle.action_codes)
        result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
    action_ids = dict(Action.objects.values_list("code", "pk"))
    values = features.loc[:, list(bundle.feature_codes)].to_numpy(dtype="float64")
    rows = []
    for record, seen in zip(result.records(names=FEATURE_NAMES), np.round(values, 6), strict=True):
        rows.append(
            {
                "member_id": record["member_id"],
                "score": record["probability"],
                "interval_low": record.get("low"),
                "interval_high": record.get("high"),
                "probabilities": record.get("probabilities"),
                "label_set": record.get("label_set", record.get("action_set")),
                "recommended_action_id": action_ids.get(record.get("recommended")),
                "confidence": record["confidence"],
                "explanation": record["explanation"],
                "feature_values": [None if np.isnan(v) else float(v) for v in seen],
                "member_value": float(features.loc[record["member_id"], "spend_365"]),
            }
        )
    return rows


@pytest.mark.parametrize("kind", ["churn", "next_action"])
def test_prediction_rows_hold_exactly_what_the_ml_records_hold(kind, request):
    version = request.getfixturevalue(f"active_{kind}_version")
    ids = list(
        Member.objects.filter(consent_profiling=True).order_by("pk").values_list("pk", flat=True)
    )
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    members = members_frame(member_ids=ids)
    features = build_features(
        events=feature_events(cutoff=CUTOFF, member_ids=ids), members=members, cutoff=CUTOFF
    )

    rows = predict_rows(version=version, member_ids=ids, cutoff=CUTOFF)

    expected = _rows_from_records(version, bundle, features, CUTOFF)
    explained = {want["member_id"]: want.pop("explanation") for want in expected}
    assert len(rows) == len(expected) == len(ids)
    for row, want in zip(rows, expected, strict=True):
        assert {key: row[key] for key in want} == want
        assert (row["model_version_id"], row["kind"], row["cutoff"]) == (version.pk, kind, CUTOFF)
        assert (row["served_model"], row["explanation"]) == ("trees", {})
    # The explanations, computed afterwards for the stored rows, are what the records held.
    write_predictions(rows=rows)
    assert explain_predictions(prediction_ids=Prediction.objects.values_list("pk", flat=True)) == (
        len(ids)
    )
    stored = dict(Prediction.objects.values_list("member_id", "explanation"))
    assert stored == explained


def test_members_spread_over_the_ids_are_read_by_their_ids_with_the_same_features(
    generated_members, monkeypatch
):
    """A refresh's chunk holds a few members spread over every id: reading them by id list
    instead of a range scan reads only their events and builds the features the range
    scan gives them."""
    from predictions.selectors import feature_event_frame, is_scattered

    ids = sorted(Member.objects.values_list("pk", flat=True))
    spread = ids[::25]  # one member in 25: their ids span 25 times their number
    contiguous = ids[100:140]
    assert is_scattered(spread) and not is_scattered(contiguous)

    from predictions import selectors

    by_ids = []
    read_by_ids = selectors._scattered_events
    monkeypatch.setattr(
        selectors,
        "_scattered_events",
        lambda **kwargs: by_ids.append(kwargs["member_ids"]) or read_by_ids(**kwargs),
    )

    scattered_frame, _ = feature_event_frame(cutoff=CUTOFF, member_ids=spread)
    range_frame, _ = feature_event_frame(cutoff=CUTOFF, member_ids=ids)

    assert by_ids == [spread]  # the spread members by their ids; everyone by the range
    expected = range_frame[range_frame["member_id"].isin(spread)]

    assert set(scattered_frame["member_id"]) == set(expected["member_id"])
    assert len(scattered_frame) == len(expected)
    members = members_frame(member_ids=spread)
    pd.testing.assert_frame_equal(
        build_features(
            events=feature_events(cutoff=CUTOFF, member_ids=spread), members=members, cutoff=CUTOFF
        ),
        build_features(events=prepare_events(expected), members=members, cutoff=CUTOFF),
        check_exact=False,
        rtol=1e-9,
    )
