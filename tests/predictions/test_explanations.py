"""Explanations: none at scoring, computed when routing gives a prediction to a person or when
someone first opens it, the same either way and the same as the engine gives, stored once."""

import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from loyalty.models import Event, Member
from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.ml.churn.model import ENSEMBLE, predict_churn
from predictions.ml.churn.sequence import encode_members
from predictions.ml.features import FEATURE_NAMES, build_features
from predictions.ml.nba import predict_next_action
from predictions.models import ModelVersion, Prediction
from predictions.selectors import feature_event_frame, feature_events, members_frame
from predictions.services import explanations
from predictions.services.explanations import (
    SEQUENCE_ATTRIBUTION_RECENT_EVENTS,
    SEQUENCE_EVENTS_STORED,
    ensure_explanation,
    explain_predictions,
)
from predictions.services.scoring.predict import action_eligibility, load_bundle
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from predictions.services.scoring.settings import set_scoring_model
from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.routing import route_new_predictions
from tests.predictions.conftest import CUTOFF

pytestmark = pytest.mark.django_db(transaction=True)

MODEL_TYPES = ["churn", "next_action", "ensemble"]


def _score_and_route(kind: str) -> None:
    """Score every member, then route with thresholds that auto-approve about half of the
    predictions of these small test models (the defaults would send nearly all to people),
    an audit sample among them."""
    run = start_scoring_run(kind=kind, cutoff=CUTOFF, enqueue=False, chunk_size=150)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    assert not Prediction.objects.exclude(explanation={}).exists()  # scoring stores none
    confidence = np.array(Prediction.objects.values_list("confidence", flat=True))
    change_policy(
        kind=kind,
        settings=replace(
            PolicySettings.of(current_policy(kind)),
            auto_approve_confidence=float(np.quantile(confidence, 0.5)),
            expert_confidence=float(np.quantile(confidence, 0.1)),
            human_risk_low=None,
            human_risk_high=None,
            audit_sample_rate=0.1,
        ),
        actor=None,
        reason="about half auto-approved in tests",
    )
    route_new_predictions(kind=kind)


@pytest.fixture
def scored(request):
    """Scored and routed predictions of one model type: plain churn (trees), next action, or
    churn served by the tree + sequence ensemble."""
    model_type = request.param
    if model_type == "ensemble":
        version = request.getfixturevalue("ensemble_version")
        set_scoring_model(kind="churn", model="ensemble", actor=None)
    else:
        version = request.getfixturevalue(f"active_{model_type}_version")
    _score_and_route(version.kind)
    return model_type, version


def _engine_explanations(version: ModelVersion, *, ensemble: bool = False) -> dict[int, dict]:
    """What the engine explains for every member, as scoring explained before it stopped: all
    members at once, straight from predict_churn / predict_next_action."""
    ids = list(
        Member.objects.filter(consent_profiling=True).order_by("pk").values_list("pk", flat=True)
    )
    bundle = load_bundle(version.pk, tuple(sorted(version.artifact_checksums.items())))
    features = build_features(
        events=feature_events(cutoff=CUTOFF, member_ids=ids),
        members=members_frame(member_ids=ids),
        cutoff=CUTOFF,
    )
    if version.kind == "next_action":
        eligibility = action_eligibility(member_ids=list(features.index), codes=bundle.action_codes)
        result = predict_next_action(bundle=bundle, features=features, eligibility=eligibility)
    elif ensemble:
        # Each member's events in the order they were stored, as scoring reads them for the GRU.
        frame, _ = feature_event_frame(cutoff=CUTOFF, member_ids=ids, in_stored_order=True)
        sequences = encode_members(
            ensemble=bundle.ensemble, events=frame, member_ids=features.index, cutoff=CUTOFF
        )
        result = predict_churn(
            bundle=bundle,
            features=features,
            candidate=ENSEMBLE,
            sequences=sequences,
            sequence_events=SEQUENCE_EVENTS_STORED,
            attribution_recent_events=SEQUENCE_ATTRIBUTION_RECENT_EVENTS,
        )
    else:
        result = predict_churn(bundle=bundle, features=features)
    columns = result.columns(names=FEATURE_NAMES)
    if ensemble:
        for explanation in columns["explanation"]:
            explanation["model"] = ENSEMBLE
    return dict(zip(columns["member_id"], columns["explanation"], strict=True))


def _assert_same_as_engine(stored: dict, engine: dict, *, ensemble: bool) -> None:
    """Trees and next action: exactly. The ensemble: the same items, events and shape, the
    numbers to float32 rounding (the engine ran the GRU on every member at once, and its
    float32 arithmetic varies with the batch by about 1e-8)."""
    if not ensemble:
        assert stored == engine
        return
    assert stored.keys() == engine.keys()
    assert stored["model"] == ENSEMBLE
    assert [item["feature"] for item in stored["top"]] == [
        item["feature"] for item in engine["top"]
    ]
    assert [item["value"] for item in stored["top"]] == [item["value"] for item in engine["top"]]
    for key in ("base_value", "margin", "remainder"):
        assert stored[key] == pytest.approx(engine[key], abs=1e-6)
    for mine, theirs in zip(stored["top"], engine["top"], strict=True):
        assert mine["contribution"] == pytest.approx(theirs["contribution"], abs=1e-6)
    assert len(stored["sequence_events"]) == len(engine["sequence_events"])
    for mine, theirs in zip(stored["sequence_events"], engine["sequence_events"], strict=True):
        assert {k: v for k, v in mine.items() if k != "attribution"} == {
            k: v for k, v in theirs.items() if k != "attribution"
        }
        assert mine["attribution"] == pytest.approx(theirs["attribution"], abs=1e-6)


@pytest.mark.parametrize("scored", MODEL_TYPES, indirect=True)
def test_routing_explains_what_people_will_see_and_nothing_else(scored):
    model_type, version = scored
    reviews = list(Review.objects.select_related("prediction").order_by("pk"))
    for_people = [review for review in reviews if review.route != Review.Route.AUTO]
    auto = [review for review in reviews if review.route == Review.Route.AUTO]
    assert for_people and auto

    # Every item of the analyst and expert queues (the audit sample included) is explained,
    # as the engine explains it; no auto-approval is until someone opens it.
    engine = _engine_explanations(version, ensemble=model_type == "ensemble")
    for review in for_people:
        _assert_same_as_engine(
            review.prediction.explanation,
            engine[review.member_id],
            ensemble=model_type == "ensemble",
        )
    assert [review.prediction.explanation for review in auto] == [{}] * len(auto)
    expected_model = "ensemble" if model_type == "ensemble" else "trees"
    assert {review.prediction.served_model for review in reviews} == {expected_model}


@pytest.mark.parametrize("scored", MODEL_TYPES, indirect=True)
def test_an_explanation_computed_on_opening_equals_the_one_computed_at_routing(scored):
    model_type, version = scored
    explained = list(
        Prediction.objects.exclude(explanation={})
        .order_by("pk")[:6]
        .values_list("pk", "explanation")
    )
    assert len(explained) == 6
    # Forget them, then open each one alone: one member at a time instead of a routing batch.
    Prediction.objects.filter(pk__in=[pk for pk, _ in explained]).update(explanation={})

    for pk, at_routing in explained:
        prediction = Prediction.objects.get(pk=pk)
        assert ensure_explanation(prediction=prediction) == at_routing  # exactly
        assert Prediction.objects.get(pk=pk).explanation == at_routing

    # And an auto-approval opened for the first time gets what the engine says.
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    engine = _engine_explanations(version, ensemble=model_type == "ensemble")
    _assert_same_as_engine(
        ensure_explanation(prediction=auto),
        engine[auto.member_id],
        ensemble=model_type == "ensemble",
    )


def test_an_explanation_is_stored_once_and_read_back_without_computing(
    active_churn_version, django_assert_num_queries, monkeypatch
):
    _score_and_route("churn")
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    computed = []
    real = explanations._explanations
    monkeypatch.setattr(
        explanations, "_explanations", lambda **kw: computed.append(kw) or real(**kw)
    )
    stale = Prediction.objects.get(pk=auto.pk)  # read before anyone opened it

    first = ensure_explanation(prediction=auto)
    with django_assert_num_queries(0):
        again = ensure_explanation(prediction=auto)
    # A second first-open that read the row before the first one stored: nothing to compute.
    late = ensure_explanation(prediction=stale)

    assert first and again == first and late == first
    assert len(computed) == 1
    assert explain_predictions(prediction_ids=[auto.pk]) == 0


def test_two_first_opens_at_once_store_one_explanation(active_churn_version):
    """Both compute (each from a read that saw none), one write wins, both show it."""
    _score_and_route("churn")
    pk = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first().pk
    member_id = Prediction.objects.get(pk=pk).member_id
    computed = explanations._explanations(
        version=active_churn_version,
        cutoff=CUTOFF,
        served="trees",
        pending=[
            explanations._Pending(pk, member_id, None, Prediction.objects.get(pk=pk).model_input)
        ],
    )[0]
    other = {**computed, "base_value": computed["base_value"] + 1.0}  # tell the writes apart
    barrier = threading.Barrier(2)
    written = []

    def store(value):
        try:
            barrier.wait()
            written.append(explanations._store(explanations={pk: value}, members={pk: member_id}))
        finally:
            connection.close()

    threads = [threading.Thread(target=store, args=(value,)) for value in (computed, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(written) == [0, 1]
    stored = Prediction.objects.get(pk=pk).explanation
    assert stored in (computed, other)
    assert ensure_explanation(prediction=Prediction.objects.get(pk=pk)) == stored


def test_a_version_no_longer_active_explains_its_own_predictions(active_churn_version, make_user):
    _score_and_route("churn")
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    engine = _engine_explanations(active_churn_version)
    ModelVersion.objects.filter(pk=active_churn_version.pk).update(status="retired")

    assert ensure_explanation(prediction=auto) == engine[auto.member_id]
    assert auto.model_version_id == active_churn_version.pk


def test_nothing_is_computed_for_an_erased_member(active_churn_version, make_user):
    _score_and_route("churn")
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    erase_member(member_id=auto.member_id, actor=make_user("admin"))
    prediction = Prediction.objects.get(pk=auto.pk)  # erasure keeps a routed prediction

    assert prediction.model_input is None  # erasure blanks the row the model scored too
    assert ensure_explanation(prediction=prediction) == {}
    assert explain_predictions(prediction_ids=[auto.pk]) == 0
    assert Prediction.objects.get(pk=auto.pk).explanation == {}


def test_nothing_is_computed_once_consent_is_withdrawn(active_churn_version, make_user):
    _score_and_route("churn")
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    set_consent(member=auto.member, consent=False, actor=make_user("admin"))
    others = Prediction.objects.filter(explanation={}).exclude(member=auto.member).count()

    assert ensure_explanation(prediction=Prediction.objects.get(pk=auto.pk)) == {}
    # Everybody else's are computed; not theirs.
    assert explain_predictions(prediction_ids=Prediction.objects.values_list("pk", flat=True)) == (
        others
    )
    assert list(Prediction.objects.filter(explanation={}).values_list("pk", flat=True)) == [auto.pk]


def test_a_member_whose_data_changed_since_scoring_is_explained_as_the_model_saw_them(
    active_churn_version,
):
    _score_and_route("churn")
    auto = Prediction.objects.filter(review__route=Review.Route.AUTO).order_by("pk").first()
    engine = _engine_explanations(active_churn_version)
    # A purchase the day before the cutoff, imported after scoring, and a new tier: the
    # member's features are not what the model saw any more.
    Event.objects.create(
        member_id=auto.member_id,
        occurred_at=CUTOFF - timedelta(days=1),
        kind="purchase",
        amount=Decimal("12.50"),
        session_id="late-import",
    )
    Member.objects.filter(pk=auto.member_id).update(tier="platinum", points_balance=99_999)
    assert _engine_explanations(active_churn_version)[auto.member_id] != engine[auto.member_id]

    explanation = ensure_explanation(prediction=auto)

    # The explanation of the row the model scored, exactly as scoring would have stored it.
    assert explanation == engine[auto.member_id]
    seen = auto.features_seen
    for item in explanation["top"]:
        # The scored row is float32 and the stored values are rounded to 6 decimals: above
        # about 8 the float32 step alone exceeds 1e-6, so the bound is relative there.
        expected = seen[item["feature"]]
        relative = None if expected is None else 1e-6  # a missing value is None in both
        assert item["value"] == pytest.approx(expected, rel=relative, abs=1e-6)
