"""RFM segments in reviewing: the queue and API filter by them, a policy override keyed by
one routes its members (routing, re-routing and the simulation alike), the policy form and
the version history."""

from dataclasses import replace

import pytest
from rest_framework.test import APIClient

from reviews.forms.policy import PolicyForm
from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.member_page import review_page
from reviews.selectors.policy import version_row
from reviews.selectors.queue import QueueFilters, pending_reviews_for
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from reviews.services.routing_rules import override_thresholds
from reviews.services.simulation import simulate_policy
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.tokens import token_header

pytestmark = pytest.mark.django_db

BASE = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.95,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    blind_share=0.0,
    segment_overrides={},
)
# At-risk members need confidence 0.97 to be auto-approved and go to an expert below 0.85.
AT_RISK_STRICT = replace(
    BASE,
    segment_overrides={"rfm:at_risk": {"auto_approve_confidence": 0.97, "expert_confidence": 0.85}},
)


def _predictions(*rows: tuple[str, float, str]) -> dict[str, Review]:
    """Churn predictions (name, confidence, RFM segment), routed; {name: review}."""
    version = ModelVersionFactory()
    made = {
        name: PredictionFactory(model_version=version, confidence=confidence, rfm_segment=segment)
        for name, confidence, segment in rows
    }
    route_new_predictions(kind="churn")
    return {name: Review.objects.get(prediction=p) for name, p in made.items()}


def _route(review: Review) -> tuple[str, str]:
    review.refresh_from_db()
    return review.route, review.route_reason


def test_an_rfm_override_routes_its_segments_members_by_its_thresholds(reason_codes):
    change_policy(kind="churn", settings=AT_RISK_STRICT, actor=None, reason="at risk: stricter")

    reviews = _predictions(
        ("risky_sure", 0.95, "at_risk"),
        ("risky_unsure", 0.8, "at_risk"),
        ("loyal_sure", 0.95, "loyal"),
        ("loyal_unsure", 0.8, "loyal"),
    )

    assert {name: _route(review) for name, review in reviews.items()} == {
        "risky_sure": ("analyst", "confidence 0.95 between expert 0.85 and auto-approve 0.97"),
        "risky_unsure": ("expert", "confidence 0.80 < expert threshold 0.85"),
        "loyal_sure": ("auto", "confidence 0.95 ≥ auto-approve threshold 0.90"),
        "loyal_unsure": ("analyst", "confidence 0.80 between expert 0.50 and auto-approve 0.90"),
    }
    assert {name: review.rfm_segment for name, review in reviews.items()} == {
        "risky_sure": "at_risk",
        "risky_unsure": "at_risk",
        "loyal_sure": "loyal",
        "loyal_unsure": "loyal",
    }


def test_rerouting_under_an_rfm_override_agrees_with_routing_afresh(reason_codes):
    change_policy(kind="churn", settings=BASE, actor=None, reason="no overrides")
    before = _predictions(("risky", 0.8, "at_risk"), ("loyal", 0.8, "loyal"))
    assert {name: _route(r)[0] for name, r in before.items()} == {
        "risky": "analyst",
        "loyal": "analyst",
    }

    change_policy(kind="churn", settings=AT_RISK_STRICT, actor=None, reason="at risk: stricter")
    reroute_undecided(kind="churn")
    afresh = _predictions(("risky", 0.8, "at_risk"), ("loyal", 0.8, "loyal"))

    rerouted = {name: _route(review) for name, review in before.items()}
    assert rerouted == {name: _route(review) for name, review in afresh.items()}
    assert rerouted == {
        "risky": ("expert", "confidence 0.80 < expert threshold 0.85"),
        "loyal": ("analyst", "confidence 0.80 between expert 0.50 and auto-approve 0.90"),
    }


def test_a_tier_and_an_rfm_override_that_both_match_take_the_more_demanding_threshold():
    settings = replace(
        BASE,
        segment_overrides={
            "gold": {"auto_approve_confidence": 0.8, "expert_confidence": 0.6},
            "rfm:at_risk": {"auto_approve_confidence": 0.95},
            "tier:silver": {"expert_confidence": 0.7},
        },
    )

    assert override_thresholds(settings, tier="gold", rfm_segment="at_risk") == (0.95, 0.6)
    assert override_thresholds(settings, tier="gold", rfm_segment="loyal") == (0.8, 0.6)
    assert override_thresholds(settings, tier="bronze", rfm_segment="at_risk") == (0.95, 0.5)
    # A "tier:" key means the tier as a plain key does.
    assert override_thresholds(settings, tier="silver", rfm_segment="") == (0.9, 0.7)
    assert override_thresholds(settings, tier="", rfm_segment="") == (0.9, 0.5)


def test_the_simulation_counts_each_segments_routes_before_and_after(reason_codes):
    change_policy(kind="churn", settings=BASE, actor=None, reason="no overrides")
    _predictions(
        ("a", 0.95, "at_risk"),
        ("b", 0.8, "at_risk"),
        ("c", 0.95, "loyal"),
        ("d", 0.4, "loyal"),
        ("e", 0.95, ""),
    )

    simulation = simulate_policy(kind="churn", settings=AT_RISK_STRICT)

    assert [
        (s.segment, s.name, s.total, s.current_counts, s.counts) for s in simulation.segments
    ] == [
        (
            "loyal",
            "Loyal",
            2,
            {"auto": 1, "analyst": 0, "expert": 1},
            {"auto": 1, "analyst": 0, "expert": 1},
        ),
        (
            "at_risk",
            "At risk",
            2,
            {"auto": 1, "analyst": 1, "expert": 0},
            {"auto": 0, "analyst": 1, "expert": 1},
        ),
        (
            "",
            "No RFM segment",
            1,
            {"auto": 1, "analyst": 0, "expert": 0},
            {"auto": 1, "analyst": 0, "expert": 0},
        ),
    ]
    assert simulation.counts == {"auto": 2, "analyst": 1, "expert": 2}


def test_the_queue_and_the_api_filter_by_segment_and_show_it(reason_codes, make_user):
    change_policy(kind="churn", settings=BASE, actor=None, reason="no overrides")
    reviews = _predictions(("risky", 0.8, "at_risk"), ("loyal", 0.7, "loyal"), ("none", 0.6, ""))
    Review.objects.filter(pk=reviews["risky"].pk).update(is_blind=True)

    page = pending_reviews_for(
        route="analyst", filters=QueueFilters.from_params({"segment": "at_risk"})
    )
    everything = pending_reviews_for(route="analyst")
    unknown = QueueFilters.from_params({"segment": "cluster_3"})

    # A blind item shows its member's segment: data about the member, not the model's answer.
    assert [(row.review_id, row.segment, row.is_blind) for row in page.rows] == [
        (reviews["risky"].pk, "At risk", True)
    ]
    assert {row.review_id: row.segment for row in everything.rows} == {
        reviews["risky"].pk: "At risk",
        reviews["loyal"].pk: "Loyal",
        reviews["none"].pk: "",
    }
    assert (unknown.segment, unknown.is_active) == ("", False)
    assert page.filters.as_params() == {"segment": "at_risk"}

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=token_header(make_user("expert")))
    response = client.get("/api/reviews/", {"segment": "loyal"})
    assert response.status_code == 200
    assert [(item["id"], item["segment"]) for item in response.json()["results"]] == [
        (reviews["loyal"].pk, "loyal")
    ]
    assert client.get("/api/reviews/", {"segment": "cluster_3"}).status_code == 400

    facts = review_page(review_id=reviews["loyal"].pk, viewer=make_user("analyst")).member_facts
    assert {fact.label: fact.value for fact in facts}["RFM segment"] == "Loyal"


def test_the_policy_form_takes_rfm_overrides_checks_them_and_the_history_names_them(
    reason_codes,
):
    def form_data(**overrides) -> dict:
        data = {
            "auto_approve_confidence": 0.9,
            "expert_confidence": 0.5,
            "expert_value_quantile": 0.95,
            "audit_sample_rate": 0.0,
            "blind_share": 0.0,
            "sla_hours": 24,
            "reason": "at risk",
        }
        return {**data, **overrides}

    form = PolicyForm(
        form_data(rfm_at_risk_auto=0.97, rfm_at_risk_expert=0.85, tier_gold_auto=0.95),
        initial={},
        kind="churn",
    )
    assert form.is_valid(), form.errors
    assert form.policy_settings().segment_overrides == {
        "gold": {"auto_approve_confidence": 0.95},
        "rfm:at_risk": {"auto_approve_confidence": 0.97, "expert_confidence": 0.85},
    }

    refused = PolicyForm(form_data(rfm_lost_expert=0.95), initial={}, kind="churn")
    assert not refused.is_valid()
    assert refused.errors["rfm_lost_expert"] == [
        "RFM Lost: expert threshold 0.95 exceeds its auto-approve threshold 0.90."
    ]

    policy = change_policy(
        kind="churn", settings=form.policy_settings(), actor=None, reason="at risk"
    )
    assert version_row(policy).tier_overrides == (
        "gold: auto 0.95, RFM At risk: auto 0.97 / expert 0.85"
    )
    shown = PolicyForm.for_policy(PolicySettings.of(policy), kind="churn")
    assert [(label, auto.value(), expert.value()) for label, auto, expert in shown.rfm_rows()][
        7
    ] == ("At risk", 0.97, 0.85)
