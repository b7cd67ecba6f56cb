"""Custom segments in the escalation policy: a rule an admin writes over member data (tiers, RFM
segments, member value), stored in the version beside its thresholds. Who matches, how it
ranks beside tier and RFM overrides, routing, re-routing and the simulation alike, the policy
page and its history, the policy-test API and page."""

from dataclasses import replace

import numpy as np
import pytest
from django.urls import reverse

from loyalty.models import AuditRecord
from reviews.custom_segments import CustomSegment, custom_segment_key
from reviews.forms.experiments import checked_policy_settings
from reviews.models import EscalationPolicy, PolicyExperiment, Review
from reviews.policy_settings import PolicySettings, refused_override_keys
from reviews.selectors.policy import version_row
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from reviews.services.routing_rules import override_thresholds, threshold_columns
from reviews.services.simulation import simulate_policy
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.tokens import token_client

pytestmark = pytest.mark.django_db

BASE = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    # Every data set below has its highest member value twice: no one is above the quantile.
    expert_value_quantile=0.99,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    blind_share=0.0,
    segment_overrides={},
)
HIGH_VALUE_AT_RISK = {
    "name": "High-value at risk",
    "rule": {
        "tiers": [],
        "rfm_segments": ["at_risk", "cant_lose"],
        "min_value": 1000.0,
        "max_value": None,
    },
    "auto_approve_confidence": 0.97,
    "expert_confidence": 0.85,
}
CUSTOM = replace(BASE, segment_overrides={"rule:high_value_at_risk": HIGH_VALUE_AT_RISK})


# --- who matches -------------------------------------------------------------------------


def _segment(**rule) -> CustomSegment:
    return CustomSegment.of("rule:test", {"name": "Test", "rule": rule})


MEMBERS = [  # tier, RFM segment, member value
    ("gold", "at_risk", 1000.0),
    ("gold", "at_risk", 999.99),
    ("gold", "at_risk", 4999.99),
    ("gold", "at_risk", 5000.0),
    ("platinum", "cant_lose", 2000.0),
    ("silver", "at_risk", 2000.0),
    ("gold", "loyal", 2000.0),
    ("gold", "", 2000.0),
    ("", "lost", 0.0),
]


@pytest.mark.parametrize(
    ("rule", "matching"),
    [
        # Every condition given must hold; a list matches any of its entries; the value from
        # the lower bound (included) up to the upper one (left out).
        (
            {
                "tiers": ["gold", "platinum"],
                "rfm_segments": ["at_risk", "cant_lose"],
                "min_value": 1000.0,
                "max_value": 5000.0,
            },
            [True, False, True, False, True, False, False, False, False],
        ),
        ({"tiers": ["gold"]}, [True, True, True, True, False, False, True, True, False]),
        ({"rfm_segments": ["lost"]}, [False] * 8 + [True]),
        ({"min_value": 1000.0}, [True, False, True, True, True, True, True, True, False]),
        ({"max_value": 1000.0}, [False, True, False, False, False, False, False, False, True]),
        (
            {"tiers": ["silver"], "rfm_segments": [], "min_value": None, "max_value": None},
            [False] * 5 + [True] + [False] * 3,
        ),
    ],
)
def test_a_rule_matches_a_member_when_every_condition_it_gives_holds(rule, matching):
    segment = _segment(**rule)
    tiers = np.array([tier for tier, _, _ in MEMBERS], dtype=object)
    segments = np.array([rfm for _, rfm, _ in MEMBERS], dtype=object)
    values = np.array([value for _, _, value in MEMBERS])

    one_by_one = [
        segment.matches(tier=tier, rfm_segment=rfm, value=value) for tier, rfm, value in MEMBERS
    ]
    at_once = segment.mask(tiers=tiers, rfm_segments=segments, values=values).tolist()

    assert one_by_one == matching
    assert at_once == matching


def test_a_missing_value_is_within_no_bound():
    bounded = _segment(min_value=0.0)

    assert bounded.matches(tier="gold", rfm_segment="", value=None) is False
    assert bounded.mask(
        tiers=np.array(["gold"], dtype=object),
        rfm_segments=np.array([""], dtype=object),
        values=np.array([np.nan]),
    ).tolist() == [False]


def test_a_key_is_rule_and_the_slug_of_the_name():
    assert custom_segment_key("High-value at risk") == "rule:high_value_at_risk"
    assert custom_segment_key("  Café VIPs (2026) ") == "rule:cafe_vips_2026"
    assert custom_segment_key("x" * 40) == "rule:" + "x" * 32
    assert custom_segment_key("!!!") == "rule:"


# --- precedence --------------------------------------------------------------------------

PRECEDENCE = replace(
    BASE,
    segment_overrides={
        "gold": {"auto_approve_confidence": 0.8, "expert_confidence": 0.6},
        "rfm:at_risk": {"auto_approve_confidence": 0.95},
        "rule:big_spenders": {
            "name": "Big spenders",
            "rule": {"min_value": 1000.0},
            "auto_approve_confidence": 0.93,
            "expert_confidence": 0.7,
        },
        "rule:small_bronze": {
            "name": "Small bronze",
            "rule": {"tiers": ["bronze"], "max_value": 1000.0},
            "auto_approve_confidence": 0.85,
        },
    },
)


@pytest.mark.parametrize(
    ("tier", "rfm_segment", "value", "thresholds"),
    [
        # Tier, RFM segment and custom segment all match: the most demanding of each.
        ("gold", "at_risk", 2000.0, (0.95, 0.7)),
        ("gold", "loyal", 2000.0, (0.93, 0.7)),
        ("gold", "loyal", 500.0, (0.8, 0.6)),
        ("bronze", "loyal", 2000.0, (0.93, 0.7)),
        # A custom segment alone sets its thresholds, even below the policy's.
        ("bronze", "loyal", 500.0, (0.85, 0.5)),
        ("silver", "loyal", 500.0, (0.9, 0.5)),
        ("silver", "at_risk", 999.0, (0.95, 0.5)),
    ],
)
def test_a_custom_segment_ranks_beside_tier_and_rfm_overrides_by_the_most_demanding(
    tier, rfm_segment, value, thresholds
):
    one = override_thresholds(PRECEDENCE, tier=tier, rfm_segment=rfm_segment, value=value)
    columns = threshold_columns(
        PRECEDENCE,
        tiers=np.array([tier, "silver"], dtype=object),
        rfm_segments=np.array([rfm_segment, "loyal"], dtype=object),
        values=np.array([value, 10.0]),
    )

    assert one == thresholds
    assert (columns.auto.tolist(), columns.expert.tolist()) == (
        [thresholds[0], 0.9],
        [thresholds[1], 0.5],
    )
    assert columns.auto_overridden.tolist() == [thresholds[0] != 0.9 or tier == "gold", False]


# --- routing, re-routing, the simulation -------------------------------------------------


def _predictions(*rows: tuple[str, float, str, float]) -> dict[str, Review]:
    """Churn predictions (name, confidence, RFM segment, member value), routed; {name: review}."""
    version = ModelVersionFactory()
    made = {
        name: PredictionFactory(
            model_version=version, confidence=confidence, rfm_segment=segment, spend=value
        )
        for name, confidence, segment, value in rows
    }
    route_new_predictions(kind="churn")
    return {name: Review.objects.get(prediction=p) for name, p in made.items()}


def _routes(reviews: dict[str, Review]) -> dict[str, tuple[str, str]]:
    for review in reviews.values():
        review.refresh_from_db()
    return {name: (review.route, review.route_reason) for name, review in reviews.items()}


def test_routing_routes_a_matching_member_by_the_custom_thresholds(reason_codes):
    change_policy(kind="churn", settings=CUSTOM, actor=None, reason="high-value at risk")

    reviews = _predictions(
        ("big_at_risk_sure", 0.95, "at_risk", 2000.0),
        ("big_cant_lose_unsure", 0.8, "cant_lose", 2000.0),
        ("small_at_risk_sure", 0.95, "at_risk", 999.0),
        ("big_loyal_sure", 0.95, "loyal", 2000.0),
    )

    assert _routes(reviews) == {
        "big_at_risk_sure": (
            "analyst",
            "confidence 0.95 between expert 0.85 and auto-approve 0.97",
        ),
        "big_cant_lose_unsure": ("expert", "confidence 0.80 < expert threshold 0.85"),
        "small_at_risk_sure": ("auto", "confidence 0.95 ≥ auto-approve threshold 0.90"),
        "big_loyal_sure": ("auto", "confidence 0.95 ≥ auto-approve threshold 0.90"),
    }


def test_rerouting_under_a_custom_segment_agrees_with_routing_afresh(reason_codes):
    change_policy(kind="churn", settings=BASE, actor=None, reason="no overrides")
    rows = (
        ("big_at_risk", 0.8, "at_risk", 2000.0),
        ("small_at_risk", 0.8, "at_risk", 500.0),
        ("big_loyal", 0.8, "loyal", 2000.0),
    )
    before = _predictions(*rows)
    assert {name: route for name, (route, _) in _routes(before).items()} == {
        "big_at_risk": "analyst",
        "small_at_risk": "analyst",
        "big_loyal": "analyst",
    }

    change_policy(kind="churn", settings=CUSTOM, actor=None, reason="high-value at risk")
    reroute_undecided(kind="churn")
    afresh = _predictions(*rows)

    rerouted = _routes(before)
    assert rerouted == _routes(afresh)
    assert rerouted == {
        "big_at_risk": ("expert", "confidence 0.80 < expert threshold 0.85"),
        "small_at_risk": ("analyst", "confidence 0.80 between expert 0.50 and auto-approve 0.90"),
        "big_loyal": ("analyst", "confidence 0.80 between expert 0.50 and auto-approve 0.90"),
    }


def test_the_simulation_counts_each_custom_segments_routes_as_routing_them_would(reason_codes):
    change_policy(kind="churn", settings=BASE, actor=None, reason="no overrides")
    rows = (
        ("a", 0.95, "at_risk", 2000.0),
        ("b", 0.8, "cant_lose", 3000.0),
        ("c", 0.95, "at_risk", 500.0),
        ("d", 0.4, "loyal", 3000.0),
        ("e", 0.99, "cant_lose", 3000.0),
    )
    _predictions(*rows)

    simulation = simulate_policy(kind="churn", settings=CUSTOM)

    assert [
        (s.segment, s.name, s.total, s.current_counts, s.counts) for s in simulation.custom_segments
    ] == [
        (
            "rule:high_value_at_risk",
            "High-value at risk",
            3,
            {"auto": 2, "analyst": 1, "expert": 0},
            {"auto": 1, "analyst": 1, "expert": 1},
        )
    ]
    assert simulation.counts == {"auto": 2, "analyst": 1, "expert": 2}
    # Routing the same items for real under the thresholds tried gives what it counted.
    change_policy(kind="churn", settings=CUSTOM, actor=None, reason="high-value at risk")
    afresh = _routes(_predictions(*rows))
    in_segment = [afresh[name][0] for name in ("a", "b", "e")]
    assert {route: in_segment.count(route) for route in ("auto", "analyst", "expert")} == (
        simulation.custom_segments[0].counts
    )
    every = [route for route, _ in afresh.values()]
    assert {route: every.count(route) for route in ("auto", "analyst", "expert")} == (
        simulation.counts
    )


# --- the policy page ---------------------------------------------------------------------


def _page_form(**changes) -> dict:
    data = {
        "auto_approve_confidence": "0.9",
        "expert_confidence": "0.5",
        "expert_value_quantile": "0.99",
        "human_risk_low": "",
        "human_risk_high": "",
        "audit_sample_rate": "0",
        "blind_share": "0",
        "sla_hours": "48",
        "reason": "High-value members at risk need surer calls",
        "custom_0_name": "High-value at risk",
        "custom_0_rfm_segments": ["at_risk", "cant_lose"],
        "custom_0_min_value": "1000",
        "custom_0_max_value": "",
        "custom_0_auto": "0.97",
        "custom_0_expert": "0.85",
    }
    return {**data, **changes}


@pytest.fixture
def admin_client(client, make_user):
    change_policy(kind="churn", settings=BASE, actor=None, reason="plain")
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    return client


def _counts() -> tuple[int, int, int]:
    return (
        EscalationPolicy.objects.count(),
        AuditRecord.objects.count(),
        PolicyExperiment.objects.count(),
    )


def test_saving_a_custom_segment_makes_a_version_whose_history_names_it(admin_client):
    policies, audits, _ = _counts()

    response = admin_client.post(reverse("reviews:policy", args=["churn"]), _page_form())

    assert response.status_code == 302
    policy = EscalationPolicy.objects.get(kind="churn", version=3)
    assert PolicySettings.of(policy) == CUSTOM
    assert version_row(policy).tier_overrides == (
        "Custom High-value at risk: auto 0.97 / expert 0.85"
    )
    assert _counts()[:2] == (policies + 1, audits + 1)
    page = admin_client.get(reverse("reviews:policy", args=["churn"]))
    html = page.content.decode()
    assert "Custom High-value at risk: auto 0.97 / expert 0.85" in html
    assert "saved with the version, so it means the same for every item" in html
    rows = page.context["form"].custom_rows()
    assert [(row.name.value(), row.is_new) for row in rows] == [
        ("High-value at risk", False),
        (None, True),
    ]
    # The page's own form, submitted as shown, holds the version's settings exactly.
    assert checked_policy_settings(CUSTOM, kind="churn") == (CUSTOM, {})


def test_removing_a_custom_segment_saves_a_version_without_it(admin_client):
    change_policy(kind="churn", settings=CUSTOM, actor=None, reason="high-value at risk")

    response = admin_client.post(
        reverse("reviews:policy", args=["churn"]), _page_form(custom_0_remove="on")
    )

    assert response.status_code == 302
    assert EscalationPolicy.objects.get(kind="churn", version=4).segment_overrides == {}


def test_a_stored_rule_whose_tier_is_gone_is_shown_and_refused_not_dropped(admin_client):
    # A version saved while "diamond" was a tier; the ladder no longer has it.
    stale = {**HIGH_VALUE_AT_RISK, "rule": {**HIGH_VALUE_AT_RISK["rule"], "tiers": ["diamond"]}}
    change_policy(
        kind="churn",
        settings=replace(BASE, segment_overrides={"rule:high_value_at_risk": stale}),
        actor=None,
        reason="diamond members at risk",
    )
    before = _counts()

    shown = admin_client.get(reverse("reviews:policy", args=["churn"]))
    posted = admin_client.post(
        reverse("reviews:policy", args=["churn"]),
        _page_form(custom_0_tiers=["diamond"], auto_approve_confidence="0.91"),
    )

    assert shown.context["form"].custom_rows()[0].tiers.value() == ["diamond"]
    assert 'value="diamond" id="id_custom_0_tiers_4" checked' in shown.content.decode()
    assert posted.status_code == 400
    assert posted.context["form"].errors == {"custom_0_tiers": ["Not a tier: diamond. Untick it."]}
    assert _counts() == before


TWENTY_ONE = {
    f"custom_{n}_{field}": value
    for n in range(21)
    for field, value in (("name", f"Tier gold {n}"), ("tiers", ["gold"]), ("auto", "0.95"))
}


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"custom_0_name": ""}, "custom_0_name", "Give the segment a name."),
        ({"custom_0_name": "!!!"}, "custom_0_name", "at least one letter or digit"),
        (
            {"custom_0_rfm_segments": [], "custom_0_min_value": ""},
            "custom_0_tiers",
            "Give the rule at least one condition",
        ),
        ({"custom_0_tiers": ["diamond"]}, "custom_0_tiers", "Select a valid choice. diamond"),
        (
            {"custom_0_rfm_segments": ["cluster_3"]},
            "custom_0_rfm_segments",
            "Select a valid choice. cluster_3",
        ),
        (
            {"custom_0_max_value": "1000"},
            "custom_0_max_value",
            "Must be above the lower bound (1,000.00).",
        ),
        ({"custom_0_min_value": "-5"}, "custom_0_min_value", "greater than or equal to 0"),
        (
            {"custom_0_auto": "0.8"},
            "custom_0_expert",
            "Custom High-value at risk: expert threshold 0.85 exceeds its auto-approve "
            "threshold 0.80.",
        ),
        ({"custom_0_auto": "1.5"}, "custom_0_auto", "less than or equal to 1"),
        (
            {"custom_0_auto": "", "custom_0_expert": ""},
            "custom_0_auto",
            "Give at least one threshold",
        ),
        (
            {
                "custom_1_name": "High value, at risk",
                "custom_1_tiers": ["gold"],
                "custom_1_auto": "0.95",
            },
            "custom_1_name",
            "same key (rule:high_value_at_risk)",
        ),
        (TWENTY_ONE, "custom_20_name", "At most 20 custom segments per version."),
    ],
)
def test_an_invalid_custom_segment_shows_its_error_and_saves_nothing(
    admin_client, change, field, error
):
    before = _counts()

    response = admin_client.post(reverse("reviews:policy", args=["churn"]), _page_form(**change))

    assert response.status_code == 400
    assert any(error in message for message in response.context["form"].errors[field])
    assert list(response.context["form"].errors) == [field]
    assert 'data-testid="policy-custom-segments"' in response.content.decode()
    assert _counts() == before


def test_the_simulation_fragment_shows_the_custom_segment_being_tried(admin_client):
    _predictions(("a", 0.95, "at_risk", 2000.0), ("b", 0.95, "loyal", 2000.0))

    response = admin_client.post(reverse("reviews:policy_simulate", args=["churn"]), _page_form())

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="simulated-custom-segments"' in html
    assert '<tr data-segment="rule:high_value_at_risk"><td>High-value at risk</td>' in html
    assert [
        (s.total, s.current_counts, s.counts)
        for s in response.context["simulation"].custom_segments
    ] == [(1, {"auto": 1, "analyst": 0, "expert": 0}, {"auto": 0, "analyst": 1, "expert": 0})]


# --- the policy test: API and page -------------------------------------------------------

START = {
    "kind": "churn",
    "challenger": {"segment_overrides": {"rule:high_value_at_risk": HIGH_VALUE_AT_RISK}},
    "challenger_share": 0.3,
    "max_decisions": 500,
    "hypothesis": "Surer calls for high-value members at risk lose fewer of them.",
}


@pytest.fixture
def admin_api(make_user):
    change_policy(kind="churn", settings=BASE, actor=None, reason="plain")
    return token_client(make_user("admin", "boss"))


def test_the_policy_test_api_takes_a_custom_segment_in_the_challenger(admin_api):
    response = admin_api.post(reverse("learning-api:policy-test-list"), START, format="json")

    assert response.status_code == 201, response.content
    test = PolicyExperiment.objects.get()
    assert PolicySettings.of(test.challenger) == CUSTOM


def _with_segment(**changes) -> dict:
    segment = {**HIGH_VALUE_AT_RISK, **changes}
    return {"challenger": {"segment_overrides": {"rule:high_value_at_risk": segment}}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            _with_segment(rule={"tiers": ["diamond"]}),
            "Not a tier: diamond. Untick it.",
        ),
        (_with_segment(rule={}), "Give the rule at least one condition"),
        (
            _with_segment(rule={"min_value": 1000.0, "churn_score_min": 0.5}),
            "a rule reads member data only (tiers, rfm_segments, min_value, max_value), "
            "not churn_score_min",
        ),
        (
            _with_segment(name="Whales"),
            "rule:high_value_at_risk: a custom segment's key is rule: and the slug of its "
            "name (rule:whales)",
        ),
        (_with_segment(expert_confidence=0.99), "expert threshold 0.99 exceeds"),
        (
            {"challenger": {"segment_overrides": {"cluster:2": {"auto_approve_confidence": 0.95}}}},
            "Only tiers and RFM segments can key an override, not cluster:2",
        ),
    ],
)
def test_the_policy_test_api_refuses_a_bad_custom_segment_with_400(admin_api, change, message):
    before = _counts()

    response = admin_api.post(
        reverse("learning-api:policy-test-list"), {**START, **change}, format="json"
    )

    assert response.status_code == 400
    assert message in str(response.json()["challenger"])
    assert _counts() == before


def test_the_policy_test_page_takes_a_custom_segment_in_the_challenger(admin_client):
    form = _page_form(challenger_share="0.5", days="14", hypothesis="Surer calls help.")
    del form["reason"]

    page = admin_client.get(reverse("learning:policy_test", args=["churn"]))
    started = admin_client.post(reverse("learning:policy_test_start", args=["churn"]), form)

    assert 'data-testid="policy-custom-segments"' in page.content.decode()
    assert started.status_code == 302
    assert PolicySettings.of(PolicyExperiment.objects.get().challenger) == CUSTOM


def test_a_cluster_key_is_still_refused_and_a_rule_key_taken():
    assert refused_override_keys(
        {"cluster:2": {}, "rule:whales": {}, "rfm:lost": {}, "gold": {}, "model:churn": {}}
    ) == ["cluster:2", "model:churn"]

    settings, errors = checked_policy_settings(
        replace(CUSTOM, segment_overrides={"cluster:2": {"auto_approve_confidence": 0.95}}),
        kind="churn",
    )

    assert settings is None
    assert "not cluster:2" in errors["segment_overrides"][0]
