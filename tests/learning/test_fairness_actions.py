"""Fairness of the next-action kind: the share offered each action per group against
fairlearn's own on a planted population (one region offered the discount far more often by
construction), too-small groups, people's changes of the action per group; then from real
decisions (next-action reviews and the action side of cases): the frame, the daily check's
breach, notification and pause, the API and the page, and who may see them."""

from datetime import timedelta

import pandas as pd
import pytest
from django.urls import reverse
from django.utils import timezone
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    selection_rate,
)

from learning.fairness import action_frame, kind_fairness
from learning.fairness_actions import (
    action_fairness_report,
)
from learning.fairness_stats import (
    Limits,
)
from learning.models import FairnessCheck, FairnessLimits
from learning.quality_stats import share_difference, wilson
from learning.services.fairness import check_fairness
from learning.tasks import check_fairness_task
from loyalty.models import Action
from reviews.models import AutomationPause, Decision, Notification, Review
from tests.tokens import token_client

AGE_BANDS = ("18-34", "35-54", "55+")
TIERS = ("gold", "silver")
ACTIONS = ("discount", "email", "no_action")
# Per region, a block of 40 decisions: how many the model recommends each action. The south
# is offered the discount six times as often as the north.
REGION_PLAN = {
    "north": {"discount": 4, "email": 16, "no_action": 20},
    "south": {"discount": 24, "email": 8, "no_action": 8},
}
OVERRIDING_BAND = "55+"


def _block(*, age_band, region, tier, plan):
    """The block's decisions in the plan's order; people decide every other one (the even
    positions). In the overriding age band, people turn every email they decide into no
    action; elsewhere they change nothing. The policy approves the rest as recommended."""
    rows = []
    for position, action in enumerate(a for a, count in plan.items() for _ in range(count)):
        by_person = position % 2 == 0
        changed = by_person and age_band == OVERRIDING_BAND and action == "email"
        rows.append(
            {
                "age_band": age_band,
                "region": region,
                "tier": tier,
                "model": action,
                "final": "no_action" if changed else action,
                "by_person": by_person,
                "held_out": False,
            }
        )
    return rows


def planted_population() -> pd.DataFrame:
    """Every (age band, tier) cell holds one block of each region, so the age bands and tiers
    see the same mix of north and south: only the region is biased in what the model offers.
    The east has 6 decisions (2 per age band), fewer than the minimum group size; one of them
    held out for a control group."""
    rows = []
    for age_band in AGE_BANDS:
        for tier in TIERS:
            for region, plan in REGION_PLAN.items():
                rows += _block(age_band=age_band, region=region, tier=tier, plan=plan)
        rows += _block(
            age_band=age_band, region="east", tier="gold", plan={"discount": 1, "email": 1}
        )
    frame = pd.DataFrame(rows)
    frame.loc[frame.index[-1], "held_out"] = True
    return frame


def _fairlearn_shares(frame, attribute, decider, action) -> dict:
    offered = (frame[decider] == action).astype(int)
    return (
        MetricFrame(
            metrics=selection_rate,
            y_true=offered,
            y_pred=offered,
            sensitive_features=frame[attribute],
        )
        .by_group.astype(float)
        .to_dict()
    )


LIMITS = Limits(min_group_size=30)


# --- the arithmetic, against fairlearn -------------------------------------------------------


@pytest.mark.parametrize("attribute", ["age_band", "region", "tier"])
@pytest.mark.parametrize("decider", ["model", "final"])
def test_shares_offered_each_action_are_fairlearn_s(attribute, decider):
    frame = planted_population()

    report = action_fairness_report(frame, LIMITS)

    assert report.actions == list(ACTIONS)
    rows = {row.group: row for row in report.attribute(attribute).groups}
    for action in ACTIONS:
        expected = _fairlearn_shares(frame, attribute, decider, action)
        assert set(expected) == set(rows)
        for group, value in expected.items():
            share = rows[group].share(decider, action)
            if share.too_small:
                assert share.value is None
            else:
                assert share.value == pytest.approx(value, abs=1e-12)


def test_the_planted_region_is_offered_the_discount_by_exactly_its_construction():
    report = action_fairness_report(planted_population(), LIMITS)

    region = report.attribute("region")
    rows = {row.group: row for row in region.groups}
    # 6 blocks of 40 per region: 24 and 4 discounts per block.
    south, north = (
        rows["south"].share("model", "discount"),
        rows["north"].share("model", "discount"),
    )
    assert (south.hits, south.n) == (144, 240)
    assert (north.hits, north.n) == (24, 240)
    parity = region.disparity("model", "demographic_parity", "discount")
    assert (parity.highest, parity.lowest, parity.groups_compared) == ("south", "north", 2)
    assert parity.difference.value == pytest.approx(0.6 - 0.1)
    assert parity.ratio.value == pytest.approx(0.1 / 0.6)
    newcombe = share_difference(wilson(144, 240), wilson(24, 240))
    assert (parity.difference.low, parity.difference.high) == pytest.approx(
        (newcombe.low, newcombe.high)
    )
    assert parity.ratio.low < parity.ratio.value < parity.ratio.high
    # The shares of a group add up to 1 over the actions.
    for row in region.groups:
        for decider in ("model", "final"):
            assert sum(row.share(decider, a).estimate.value for a in ACTIONS) == pytest.approx(1)
    # Age bands hold the same mix of regions: the model offers them alike (the tiers almost:
    # the east's six are all gold).
    for action in ACTIONS:
        same = report.attribute("age_band").disparity("model", "demographic_parity", action)
        assert same.difference.value == pytest.approx(0.0)
        tiers = report.attribute("tier").disparity("model", "demographic_parity", action)
        assert tiers.difference.value < 0.01


@pytest.mark.parametrize("attribute", ["age_band", "region", "tier"])
def test_parity_per_action_is_fairlearn_s_over_the_groups_large_enough(attribute):
    frame = planted_population()
    report = action_fairness_report(frame, LIMITS)
    compared = frame[frame[attribute] != "east"]  # 6 decisions: too small

    for decider in ("model", "final"):
        for action in ACTIONS:
            offered = (compared[decider] == action).astype(int)
            groups = compared[attribute]
            parity = report.attribute(attribute).disparity(decider, "demographic_parity", action)
            assert parity.difference.value == pytest.approx(
                demographic_parity_difference(offered, offered, sensitive_features=groups)
            )
            assert parity.ratio.value == pytest.approx(
                demographic_parity_ratio(offered, offered, sensitive_features=groups)
            )


def test_small_groups_are_reported_as_too_small_not_as_zero():
    report = action_fairness_report(planted_population(), LIMITS)

    east = next(row for row in report.attribute("region").groups if row.group == "east")
    assert (east.n, east.too_small) == (6, True)
    for shares in east.actions:
        for rate in (shares.model, shares.final):
            assert rate.too_small
            assert (rate.value, rate.low, rate.high, rate.hits) == (None, None, None, None)
    assert east.share("model", "no_action").n == 6  # never offered, still too small, not 0
    assert east.override_rate.too_small and east.override_rate.n == 3
    assert east.share("model", "discount").shown == "too small (n=6)"
    for disparity in report.attribute("region").disparities:
        assert "east" not in (disparity.highest, disparity.lowest)


def test_override_rates_per_group_and_their_difference():
    frame = planted_population()

    report = action_fairness_report(frame, LIMITS)

    ages = {row.group: row.override_rate for row in report.attribute("age_band").groups}
    # People decide 20 of each 40-block and 1 of each east pair: 81 per age band. In 55+ they
    # change the emails they decide: 8 per north block, 4 per south block, 2 tiers.
    assert {band: (rate.hits, rate.n) for band, rate in ages.items()} == {
        "18-34": (0, 81),
        "35-54": (0, 81),
        "55+": (24, 81),
    }
    people = frame[frame["by_person"]]
    changed = (people["model"] != people["final"]).astype(int)
    expected = MetricFrame(
        metrics=selection_rate,
        y_true=changed,
        y_pred=changed,
        sensitive_features=people["age_band"],
    ).by_group.to_dict()
    assert {band: rate.value for band, rate in ages.items()} == pytest.approx(expected)
    overrides = report.attribute("age_band").disparity("overrides", "override_rate")
    assert (overrides.highest, overrides.lowest) == ("55+", "18-34")
    assert overrides.difference.value == pytest.approx(24 / 81)
    newcombe = share_difference(wilson(24, 81), wilson(0, 81))
    assert (overrides.difference.low, overrides.difference.high) == pytest.approx(
        (newcombe.low, newcombe.high)
    )
    # The regions' people change 16 of 120 (north) and 8 of 120 (south): within the limit.
    region = report.attribute("region").disparity("overrides", "override_rate")
    assert region.difference.value == pytest.approx(16 / 120 - 8 / 120)


def test_the_breaches_are_the_region_s_offers_and_the_age_band_s_overrides():
    report = action_fairness_report(planted_population(), LIMITS)

    found = {(b.attribute, b.decider, b.metric, b.action, b.bound) for b in report.breaches}
    region = {
        ("region", decider, "demographic_parity", action, bound)
        for decider in ("model", "final")
        for action in ACTIONS
        for bound in ("max", "min")
    }
    # The age bands' model offers are alike; their final decisions differ where 55+'s people
    # turn emails into no action (24 of 162 each way), and so do their override rates.
    ages = {
        ("age_band", "final", "demographic_parity", action, bound)
        for action in ("email", "no_action")
        for bound in ("max", "min")
    } | {("age_band", "overrides", "override_rate", None, "max")}
    assert found == region | ages
    assert report.breached("region") >= {"model.demographic_parity.discount"}
    assert "overrides.override_rate" in report.breached("age_band")
    breach = next(
        b for b in report.breaches if b.key == "region.model.demographic_parity.discount.max"
    )
    assert breach.shown == (
        "Region, Model: Demographic parity (share offered discount) difference 0.500 above "
        "the limit 0.100"
    )
    assert report.held_out == 1 and report.decisions == 6 * 80 + 6


def test_the_tier_is_reported_but_never_judged():
    frame = planted_population()
    frame["tier"] = frame["region"]

    report = action_fairness_report(frame, LIMITS)

    tier = report.attribute("tier")
    assert not tier.is_protected
    assert tier.disparity("model", "demographic_parity", "discount").difference.value == (
        pytest.approx(0.5)
    )
    assert "tier" not in {breach.attribute for breach in report.breaches}


def test_limits_left_empty_are_not_judged_and_odds_and_calibration_do_not_apply():
    limits = Limits(
        min_group_size=30,
        max_parity_difference=None,
        min_parity_ratio=None,
        max_override_difference=None,
        max_equalized_odds_difference=0.0,
        max_calibration_difference=0.0,
    )

    report = action_fairness_report(planted_population(), limits)

    assert report.breaches == []
    metrics = {d.metric for a in report.attributes for d in a.disparities}
    assert metrics == {"demographic_parity", "override_rate"}


def test_no_decisions_report_nothing_and_breach_nothing():
    report = action_fairness_report(planted_population().iloc[0:0])

    assert (report.decisions, report.actions, report.breaches) == (0, [], [])
    assert all(not attribute.groups for attribute in report.attributes)


# --- from real decisions ---------------------------------------------------------------------

# The model recommends the west's members a personal discount and the east's the win-back
# email; each age band holds the same four: in each region one auto-approved and one for the
# analyst, who approves the west's and changes the east's to no action.
PLANTED_MEMBERS = [
    # (name, age band, region, recommended action, route, the analyst's action (None: approve))
    ("w1", "18-34", "west", "personal_discount", "auto", None),
    ("w2", "18-34", "west", "personal_discount", "analyst", None),
    ("e1", "18-34", "east", "win_back_email", "auto", None),
    ("e2", "18-34", "east", "win_back_email", "analyst", "no_action"),
    ("w3", "55+", "west", "personal_discount", "auto", None),
    ("w4", "55+", "west", "personal_discount", "analyst", None),
    ("e3", "55+", "east", "win_back_email", "auto", None),
    ("e4", "55+", "east", "win_back_email", "analyst", "no_action"),
]
# With the lenient next-action policy: auto-approved from 0.5, an analyst's from 0.1.
CONFIDENCE = {"auto": 0.9, "analyst": 0.3}


@pytest.fixture
def people(make_user):
    return {
        "ann": make_user("analyst", "ann"),
        "eve": make_user("expert", "eve"),
        "boss": make_user("admin", "boss", email="boss@example.com"),
        "feed": make_user("integrator", "feed"),
    }


def _recommend(member_fields: dict, action: str, confidence: float, version) -> Review:
    from reviews.services.routing import route_new_predictions
    from tests.factories import PredictionFactory

    prediction = PredictionFactory(
        model_version=version,
        kind="next_action",
        score=0.7,
        confidence=confidence,
        probabilities={action: 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code=action),
        **{f"member__{name}": value for name, value in member_fields.items()},
    )
    route_new_predictions(kind="next_action")
    return Review.objects.get(prediction=prediction)


@pytest.fixture
def planted_action_decisions(lenient_catalog, without_blind_review, people):
    """The members above scored, routed and decided (the policy and ann); groups of 2 are
    large enough here."""
    from reviews.services.decisions import approve_prediction, override_prediction
    from tests.factories import ModelVersionFactory

    version = ModelVersionFactory(kind="next_action")
    reviews = {}
    for name, age_band, region, action, route, changed_to in PLANTED_MEMBERS:
        member = {"external_id": f"M-{name}", "age_band": age_band, "region": region}
        review = _recommend(member | {"tier": "gold"}, action, CONFIDENCE[route], version)
        assert review.route == route
        assert review.recommended_action.code == action
        if route == "analyst" and changed_to is None:
            approve_prediction(
                review_id=review.pk, actor=people["ann"], reason_code="model-correct"
            )
        elif route == "analyst":
            override_prediction(
                review_id=review.pk,
                actor=people["ann"],
                reason_code="better-action",
                action_code=changed_to,
            )
        reviews[name] = review
    FairnessLimits.objects.update_or_create(kind="next_action", defaults={"min_group_size": 2})
    return reviews


@pytest.mark.django_db
def test_the_frame_holds_every_decision_with_its_actions(
    planted_action_decisions, planted_churn_review, django_assert_num_queries
):
    with django_assert_num_queries(1):  # one query, whatever the number of decisions
        frame = action_frame(timezone.now() - timedelta(days=1))

    assert len(frame) == 8  # not the churn review's decision
    assert list(frame.columns) == [
        "age_band", "region", "tier", "model", "final", "by_person", "held_out",
    ]  # fmt: skip
    assert int(frame["by_person"].sum()) == 4
    changed = frame[frame["model"] != frame["final"]]
    assert sorted(changed["region"]) == ["east", "east"]
    assert set(changed["final"]) == {"no_action"}
    assert sorted(frame.loc[frame["model"] == "personal_discount", "region"]) == ["west"] * 4
    assert set(frame["tier"]) == {"gold"}


@pytest.fixture
def planted_churn_review(planted_action_decisions, people):
    """A decided churn review: it settles no action, so it is not measured here."""
    from reviews.services.decisions import approve_prediction
    from reviews.services.routing import route_new_predictions
    from tests.factories import PredictionFactory

    prediction = PredictionFactory(score=0.7, confidence=0.8)
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)
    if not Decision.objects.filter(review=review).exists():
        approve_prediction(review_id=review.pk, actor=people["eve"], reason_code="model-correct")
    assert Decision.objects.filter(review=review).exists()
    return review


@pytest.mark.django_db
def test_a_case_s_action_side_is_measured_and_nothing_eligible_is_no_action(
    case_versions, without_blind_review, people
):
    from reviews.services.decisions import override_prediction
    from reviews.services.routing import route_new_predictions
    from tests.factories import MemberFactory, PredictionFactory

    member = MemberFactory(age_band="35-54", region="north")
    cutoff = timezone.now().replace(microsecond=0)
    PredictionFactory(
        member=member,
        model_version=case_versions["next_action"],
        kind="next_action",
        cutoff=cutoff,
        score=0.7,
        confidence=0.3,
        probabilities={"win_back_email": 0.7, "no_action": 0.3},
        recommended_action=Action.objects.get(code="win_back_email"),
    )
    churn = PredictionFactory(
        member=member, model_version=case_versions["churn"], cutoff=cutoff, score=0.8
    )
    route_new_predictions(kind="churn")
    case = Review.objects.get(prediction=churn)
    assert case.is_case and case.route != Review.Route.AUTO
    override_prediction(
        review_id=case.pk,
        actor=people["eve"],
        reason_code="better-action",
        action_code="bonus_points",
        churn_label=True,
    )

    frame = action_frame(timezone.now() - timedelta(days=1))

    [row] = frame.to_dict("records")
    assert row | {"tier": None} == {
        "age_band": "35-54",
        "region": "north",
        "tier": None,
        "model": "win_back_email",
        "final": "bonus_points",
        "by_person": True,
        "held_out": Decision.objects.get(review=case).held_out,
    }
    # A settled action that is missing (nothing was eligible) is "no action".
    Decision.objects.filter(review=case).update(settled_action=None)
    assert action_frame(timezone.now() - timedelta(days=1))["final"].tolist() == ["no_action"]


@pytest.mark.django_db
def test_a_breach_tells_the_admins_once_and_does_not_pause_by_default(
    planted_action_decisions, people
):
    check = check_fairness(kind="next_action")

    assert check.decisions == 8
    assert check.paused is False
    keys = {breach["key"] for breach in check.breaches}
    assert {
        "region.model.demographic_parity.personal_discount.max",
        "region.model.demographic_parity.personal_discount.min",
        "region.final.demographic_parity.win_back_email.max",
        "region.overrides.override_rate.max",
    } <= keys
    assert not any(key.startswith("age_band") for key in keys)
    assert "Region, People's overrides: Override rate difference 1.000 above the limit 0.100" in [
        breach["text"] for breach in check.breaches
    ]
    notes = Notification.objects.filter(subject="Fairness limits breached: Next best action")
    assert [note.recipient.username for note in notes.all()] == ["boss"]
    assert notes.get().link == "/reviews/manage/loop/fairness/?kind=next_action"
    assert not AutomationPause.objects.open().exists()

    check_fairness(kind="next_action")

    assert notes.count() == 1
    assert FairnessCheck.objects.filter(kind="next_action").count() == 2


@pytest.mark.django_db
def test_with_the_setting_on_a_breach_pauses_next_action_auto_approval(
    planted_action_decisions, people
):
    FairnessLimits.objects.update_or_create(kind="next_action", defaults={"pause_on_breach": True})

    assert check_fairness_task.run() == 1  # next action breached; no churn decisions

    check = FairnessCheck.objects.get(kind="next_action")
    assert check.paused
    pause = AutomationPause.objects.open().get()
    assert pause.kind == "next_action"
    assert pause.reason.startswith(
        "fairness: Region, Final decisions (auto + people): Demographic parity (share offered "
        "no_action) difference 0.500 above the limit 0.100"
    )
    assert FairnessCheck.objects.get(kind="churn").breaches == []


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["eve", "boss"])
def test_the_api_answers_the_page_s_figures_to_experts_and_admins(
    planted_action_decisions, people, role
):
    response = token_client(people[role]).get(
        reverse("learning-api:fairness"), {"kind": "next_action"}
    )

    assert response.status_code == 200
    body = response.json()
    report = kind_fairness("next_action").report
    assert (body["kind"], body["decisions"], body["by_person"]) == ("next_action", 8, 4)
    assert body["held_out"] == report.held_out
    assert body["actions"] == ["no_action", "personal_discount", "win_back_email"]
    assert body["not_applicable"] == ["equalized_odds", "calibration"]
    assert set(body["limits"]) == {
        "window_days", "min_group_size", "max_parity_difference", "min_parity_ratio",
        "max_override_difference", "pause_on_breach",
    }  # fmt: skip
    assert [b["text"] for b in body["breaches"]] == [b.shown for b in report.breaches]
    region = next(a for a in body["attributes"] if a["attribute"] == "region")
    assert region["is_protected"] is True
    west = next(g for g in region["groups"] if g["group"] == "west")
    east = next(g for g in region["groups"] if g["group"] == "east")
    discount = next(s for s in west["actions"] if s["action"] == "personal_discount")
    assert discount["model"] == {
        "value": 1.0, "low": wilson(4, 4).low, "high": 1.0, "n": 4, "hits": 4, "too_small": False,
    }  # fmt: skip
    nothing = next(s for s in east["actions"] if s["action"] == "no_action")
    assert (nothing["model"]["hits"], nothing["final"]["hits"]) == (0, 2)
    assert east["override_rate"] | {"low": None, "high": None} == {
        "value": 1.0, "low": None, "high": None, "n": 2, "hits": 2, "too_small": False,
    }  # fmt: skip
    assert west["override_rate"]["value"] == 0.0
    parity = next(
        d
        for d in region["disparities"]
        if (d["decider"], d["metric"], d["action"])
        == ("model", "demographic_parity", "personal_discount")
    )
    assert parity["difference"]["value"] == pytest.approx(1.0)  # 4/4 west − 0/4 east
    assert parity["ratio"] == {"value": 0.0, "low": None, "high": None}
    assert (parity["highest"], parity["lowest"]) == ("west", "east")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["ann", "feed"])
def test_the_api_refuses_analysts_and_integrators(planted_action_decisions, people, role):
    response = token_client(people[role]).get(
        reverse("learning-api:fairness"), {"kind": "next_action"}
    )

    assert response.status_code == 403
    assert "region" not in response.content.decode()


@pytest.mark.django_db
def test_the_page_for_an_expert_and_403_for_an_analyst(client, planted_action_decisions, people):
    client.force_login(people["eve"])

    page = client.get(reverse("learning:fairness"), {"kind": "next_action"})

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="fairness-region"' in html
    assert html.count('class="js-plotly-figure"') == 9  # 3 charts × 3 attributes
    assert 'data-testid="disparity-model-demographic_parity-personal_discount"' in html
    assert "Not applicable to actions: equalized odds" in html
    client.force_login(people["ann"])
    assert client.get(reverse("learning:fairness"), {"kind": "next_action"}).status_code == 403
