"""Fairness per protected group: the group metrics against fairlearn's own on a planted-bias
population (one region over-flagged by construction, age bands not), too-small groups, people's
overrides by group and direction; then from real decisions: the frame, the daily check's
notification and pause, the API and the page, and who may see them."""

from dataclasses import replace
from datetime import timedelta

import pandas as pd
import pytest
from django.urls import reverse
from django.utils import timezone
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    equalized_odds_ratio,
    false_positive_rate,
    mean_prediction,
    selection_rate,
    true_positive_rate,
)

from learning.fairness import fairness_frame, kind_fairness
from learning.fairness_stats import NOT_RECORDED, Limits, fairness_report
from learning.models import FairnessCheck, FairnessLimits
from learning.quality_stats import share_difference, wilson
from learning.services.fairness import check_fairness
from learning.tasks import check_fairness_task
from reviews.models import AutomationPause, Decision, Notification, Review
from tests.learning.test_review_quality import _outcome, decide, route_by_confidence
from tests.tokens import token_client

AGE_BANDS = ("18-34", "35-54", "55+")
TIERS = ("gold", "silver")
# Per region, a block of 40 decisions: 8 churners and 32 stayers, and how many of each the
# model called churn. The south's stayers are flagged five times as often as the north's.
REGION_PLAN = {
    "north": {"churn_flagged": 6, "stay_flagged": 3},
    "south": {"churn_flagged": 8, "stay_flagged": 16},
}
CHURNERS, STAYERS = 8, 32
FLAGGED_SCORE, UNFLAGGED_SCORE = 0.7, 0.2


def _block(*, age_band, region, tier, churners, stayers, churn_flagged, stay_flagged):
    rows = []
    for i in range(churners + stayers):
        churned = i < churners
        flagged = i < churn_flagged if churned else i - churners < stay_flagged
        rows.append(
            {
                "age_band": age_band,
                "region": region,
                "tier": tier,
                "score": FLAGGED_SCORE if flagged else UNFLAGGED_SCORE,
                "model": flagged,
                "final": flagged,
                "by_person": False,
                "outcome": churned,
            }
        )
    return rows


def planted_population() -> pd.DataFrame:
    """Every (age band, tier) cell holds one 40-decision block of each region, so age band and
    tier see the same mix of north and south: only the region is biased. The east has 6
    decisions, fewer than the minimum group size."""
    rows = []
    for age_band in AGE_BANDS:
        for tier in TIERS:
            for region, plan in REGION_PLAN.items():
                rows += _block(
                    age_band=age_band,
                    region=region,
                    tier=tier,
                    churners=CHURNERS,
                    stayers=STAYERS,
                    **plan,
                )
    for age_band in AGE_BANDS:
        rows += _block(
            age_band=age_band,
            region="east",
            tier="gold",
            churners=1,
            stayers=1,
            churn_flagged=1,
            stay_flagged=0,
        )
    return pd.DataFrame(rows)


def _fairlearn(frame, attribute, metric, *, y_true, y_pred) -> dict:
    return (
        MetricFrame(
            metrics=metric,
            y_true=frame[y_true].astype(int),
            y_pred=frame[y_pred].astype(int) if y_pred != "score" else frame[y_pred],
            sensitive_features=frame[attribute],
        )
        .by_group.astype(float)
        .to_dict()
    )


# --- the arithmetic, against fairlearn -------------------------------------------------------


@pytest.mark.parametrize("attribute", ["age_band", "region", "tier"])
@pytest.mark.parametrize("decider", ["model", "final"])
def test_group_rates_are_fairlearn_s_on_the_planted_population(attribute, decider):
    frame = planted_population()

    report = fairness_report(frame, Limits(min_group_size=30))

    rows = {row.group: row for row in report.attribute(attribute).groups}
    expected = {
        "selection": _fairlearn(frame, attribute, selection_rate, y_true=decider, y_pred=decider),
        "true_positive": _fairlearn(
            frame, attribute, true_positive_rate, y_true="outcome", y_pred=decider
        ),
        "false_positive": _fairlearn(
            frame, attribute, false_positive_rate, y_true="outcome", y_pred=decider
        ),
    }
    for rate, by_group in expected.items():
        for group, value in by_group.items():
            figure = getattr(rows[group].rates[decider], rate)
            if figure.too_small:
                assert figure.value is None
            else:
                assert figure.value == pytest.approx(value, abs=1e-12)
    observed = _fairlearn(frame, attribute, mean_prediction, y_true="outcome", y_pred="outcome")
    predicted = _fairlearn(frame, attribute, mean_prediction, y_true="outcome", y_pred="score")
    for group, row in rows.items():
        if not row.calibration.observed.too_small:
            assert row.calibration.observed.value == pytest.approx(observed[group])
            assert row.calibration.predicted == pytest.approx(predicted[group])


def test_the_planted_region_is_over_flagged_by_exactly_its_construction():
    report = fairness_report(planted_population(), Limits(min_group_size=30))

    region = {row.group: row for row in report.attribute("region").groups}
    south, north = region["south"].rates["model"], region["north"].rates["model"]
    # 6 blocks of 40 per region: (8 + 16) / 40 and (6 + 3) / 40 called churn.
    assert (south.selection.hits, south.selection.n) == (144, 240)
    assert (north.selection.hits, north.selection.n) == (54, 240)
    assert (south.false_positive.hits, south.false_positive.n) == (96, 192)
    assert (north.false_positive.hits, north.false_positive.n) == (18, 192)
    assert (north.true_positive.hits, north.true_positive.n) == (36, 48)
    parity = report.attribute("region").disparity("model", "demographic_parity")
    assert (parity.highest, parity.lowest, parity.groups_compared) == ("south", "north", 2)
    assert parity.difference.value == pytest.approx(0.6 - 0.225)
    assert parity.ratio.value == pytest.approx(0.225 / 0.6)
    newcombe = share_difference(wilson(144, 240), wilson(54, 240))
    assert (parity.difference.low, parity.difference.high) == pytest.approx(
        (newcombe.low, newcombe.high)
    )
    assert parity.ratio.low < parity.ratio.value < parity.ratio.high
    odds = report.attribute("region").disparity("model", "equalized_odds")
    assert odds.difference.value == pytest.approx(96 / 192 - 18 / 192)  # FPR beats TPR
    # Age bands share the mix of regions: within 3 points of each other.
    for decider in ("model", "final"):
        ages = report.attribute("age_band").disparity(decider, "demographic_parity")
        assert ages.groups_compared == 3
        assert ages.difference.value < 0.03


@pytest.mark.parametrize("attribute", ["age_band", "region", "tier"])
def test_disparities_are_fairlearn_s_over_the_groups_large_enough(attribute):
    frame = planted_population()
    report = fairness_report(frame, Limits(min_group_size=30))
    compared = frame[frame[attribute] != "east"]  # 6 decisions: too small

    for decider in ("model", "final"):
        calls, outcomes = compared[decider].astype(int), compared["outcome"].astype(int)
        groups = compared[attribute]
        parity = report.attribute(attribute).disparity(decider, "demographic_parity")
        odds = report.attribute(attribute).disparity(decider, "equalized_odds")
        assert parity.difference.value == pytest.approx(
            demographic_parity_difference(outcomes, calls, sensitive_features=groups)
        )
        assert parity.ratio.value == pytest.approx(
            demographic_parity_ratio(outcomes, calls, sensitive_features=groups)
        )
        assert odds.difference.value == pytest.approx(
            equalized_odds_difference(outcomes, calls, sensitive_features=groups)
        )
        assert odds.ratio.value == pytest.approx(
            equalized_odds_ratio(outcomes, calls, sensitive_features=groups)
        )


def test_only_the_biased_attribute_breaches_the_limits():
    report = fairness_report(planted_population(), Limits(min_group_size=30))

    assert {breach.attribute for breach in report.breaches} == {"region"}
    assert {(b.decider, b.metric, b.bound) for b in report.breaches} == {
        ("model", "demographic_parity", "max"),
        ("model", "demographic_parity", "min"),
        ("model", "equalized_odds", "max"),
        ("final", "demographic_parity", "max"),
        ("final", "demographic_parity", "min"),
        ("final", "equalized_odds", "max"),
        # Flagged at 0.7, unflagged at 0.2: the south's predictions run 19 points higher.
        ("model", "calibration", "max"),
    }
    assert report.breached("age_band") == set()


def test_the_tier_is_reported_but_never_judged():
    frame = planted_population()
    frame["tier"] = frame["region"]  # the tier now carries the whole bias

    report = fairness_report(frame, Limits(min_group_size=30))

    tier = report.attribute("tier")
    assert not tier.is_protected
    assert tier.disparity("model", "demographic_parity").difference.value == pytest.approx(0.375)
    assert "tier" not in {breach.attribute for breach in report.breaches}


def test_small_groups_are_reported_as_too_small_not_as_zero():
    report = fairness_report(planted_population(), Limits(min_group_size=30))

    east = next(row for row in report.attribute("region").groups if row.group == "east")
    assert (east.n, east.too_small) == (6, True)
    for rate in (
        east.rates["model"].selection,
        east.rates["model"].true_positive,
        east.rates["final"].false_positive,
        east.calibration.observed,
        east.overrides.override_rate,  # nobody decided any of them: n 0
    ):
        assert rate.too_small
        assert (rate.value, rate.low, rate.high, rate.hits) == (None, None, None, None)
    assert east.rates["model"].selection.n == 6
    assert east.calibration.predicted is None
    assert "too small (n=6)" == east.rates["model"].selection.shown
    parity = report.attribute("region").disparity("model", "demographic_parity")
    assert "east" not in (parity.highest, parity.lowest)


def test_a_rate_of_a_large_group_without_churners_is_too_small_not_zero():
    frame = planted_population()
    frame.loc[frame["region"] == "north", "outcome"] = False  # no churner in the north

    report = fairness_report(frame, Limits(min_group_size=30))

    north = next(row for row in report.attribute("region").groups if row.group == "north")
    assert not north.too_small
    assert north.rates["model"].true_positive.too_small
    assert north.rates["model"].true_positive.value is None
    assert north.rates["model"].false_positive.value == pytest.approx(54 / 240)


def test_members_without_the_attribute_are_shown_but_not_compared():
    frame = planted_population()
    frame.loc[frame["region"] == "east", "region"] = ""
    frame = pd.concat([frame, frame[frame["region"] == "north"].assign(region="")])

    report = fairness_report(frame, Limits(min_group_size=30))

    groups = {row.group: row for row in report.attribute("region").groups}
    assert groups[NOT_RECORDED].n == 246
    parity = report.attribute("region").disparity("model", "demographic_parity")
    assert (parity.groups_compared, parity.highest, parity.lowest) == (2, "south", "north")


def _with_people(frame: pd.DataFrame) -> pd.DataFrame:
    """Half of each block decided by people (the even rows); in age band 55+, people turn 8 of
    the model's 'stays' per 40-block half into 'churns'; elsewhere they change nothing."""
    frame = frame.copy().reset_index(drop=True)
    frame["by_person"] = frame.index % 2 == 0
    target = frame.index[(frame["age_band"] == "55+") & frame["by_person"] & ~frame["model"]]
    chosen = [index for position, index in enumerate(target) if position % 2 == 0]
    frame.loc[chosen, "final"] = True
    return frame


def test_overrides_per_group_and_direction():
    frame = _with_people(planted_population())

    report = fairness_report(frame, Limits(min_group_size=30))

    ages = {row.group: row.overrides for row in report.attribute("age_band").groups}
    people = frame[frame["by_person"]]
    for band, overrides in ages.items():
        mine = people[people["age_band"] == band]
        toward_churn = int((mine["final"] & ~mine["model"]).sum())
        assert (overrides.override_rate.hits, overrides.override_rate.n) == (
            toward_churn,
            len(mine),
        )
        assert overrides.toward_churn.hits == toward_churn
        assert overrides.toward_stay.hits == 0
    assert ages["55+"].toward_churn.value > 0.2
    assert ages["18-34"].override_rate.value == 0.0  # measured and none: a real zero
    expected = _fairlearn(
        people.assign(up=people["final"] & ~people["model"]),
        "age_band",
        selection_rate,
        y_true="up",
        y_pred="up",
    )
    assert {band: o.toward_churn.value for band, o in ages.items()} == pytest.approx(expected)
    flagged = {(b.attribute, b.decider, b.metric) for b in report.breaches}
    assert ("age_band", "overrides", "override_rate") in flagged
    assert ("age_band", "overrides", "toward_churn") in flagged
    assert ("age_band", "overrides", "toward_stay") not in flagged
    # The final decisions of 55+ now call churn more often than the model's.
    assert report.attribute("age_band").disparity("final", "demographic_parity").highest == "55+"


def test_limits_left_empty_are_not_judged():
    limits = Limits(
        min_group_size=30,
        max_parity_difference=None,
        min_parity_ratio=None,
        max_equalized_odds_difference=None,
        max_calibration_difference=None,
    )

    assert fairness_report(planted_population(), limits).breaches == []


def test_no_decisions_report_nothing_and_breach_nothing():
    report = fairness_report(planted_population().iloc[0:0])

    assert report.decisions == 0
    assert report.breaches == []
    assert all(not attribute.groups for attribute in report.attributes)


# --- from real decisions ---------------------------------------------------------------------

# The model calls region west's members churn (0.8) and east's not (0.2); each age band holds
# the same four: in each region one auto-approved churner and one stayer for the analyst, who
# approves the west's and turns the east's into churn. Only the region is biased.
PLANTED_MEMBERS = [
    # (name, age band, region, score, route, the analyst's call (None: approve), churned)
    ("w1", "18-34", "west", 0.8, "auto", None, True),
    ("w2", "18-34", "west", 0.8, "analyst", None, False),
    ("e1", "18-34", "east", 0.2, "auto", None, True),
    ("e2", "18-34", "east", 0.2, "analyst", True, False),
    ("w3", "55+", "west", 0.8, "auto", None, True),
    ("w4", "55+", "west", 0.8, "analyst", None, False),
    ("e3", "55+", "east", 0.2, "auto", None, True),
    ("e4", "55+", "east", 0.2, "analyst", True, False),
]
CONFIDENCE = {"auto": 0.99, "analyst": 0.8}


@pytest.fixture
def people(make_user):
    return {
        "ann": make_user("analyst", "ann"),
        "eve": make_user("expert", "eve"),
        "boss": make_user("admin", "boss", email="boss@example.com"),
        "feed": make_user("integrator", "feed"),
    }


@pytest.fixture
def planted_decisions(reason_codes, people):
    """The members above, routed, decided (the policy and ann) and their outcomes recorded;
    groups of 2 are large enough here."""
    from reviews.services.routing import route_new_predictions
    from tests.factories import ModelVersionFactory, PredictionFactory

    route_by_confidence(blind_share=0.0)
    version = ModelVersionFactory()
    predictions = {
        name: PredictionFactory(
            model_version=version,
            score=score,
            confidence=CONFIDENCE[route],
            member__external_id=f"M-{name}",
            member__age_band=age_band,
            member__region=region,
            member__tier="gold",
        )
        for name, age_band, region, score, route, _, _ in PLANTED_MEMBERS
    }
    route_new_predictions(kind="churn")
    reviews = {name: Review.objects.get(prediction=p) for name, p in predictions.items()}
    for name, _, _, _, route, call, churned in PLANTED_MEMBERS:
        if route == "analyst":
            decide(reviews[name], people["ann"], call)
        _outcome(reviews[name], churned=churned)
    FairnessLimits.objects.update_or_create(kind="churn", defaults={"min_group_size": 2})
    return reviews


@pytest.mark.django_db
def test_the_frame_holds_every_decision_with_its_calls_and_outcome(
    planted_decisions, django_assert_num_queries
):
    from learning.models import LabeledExample

    LabeledExample.objects.filter(prediction__review=planted_decisions["w1"]).delete()

    with django_assert_num_queries(1):  # one query, whatever the number of decisions
        frame = fairness_frame(timezone.now() - timedelta(days=1))

    assert len(frame) == 8
    assert list(frame.columns) == [
        "age_band", "region", "tier", "score", "model", "final", "by_person", "outcome",
    ]  # fmt: skip
    assert int(frame["by_person"].sum()) == 4
    assert int(frame["outcome"].notna().sum()) == 7
    overridden = frame[frame["by_person"] & (frame["model"] != frame["final"])]
    assert sorted(overridden["region"]) == ["east", "east"]
    assert overridden["final"].all()  # both toward churn
    assert sorted(frame.loc[frame["model"], "region"]) == ["west"] * 4
    assert set(frame["tier"]) == {"gold"}


@pytest.mark.django_db
def test_erased_members_next_actions_and_old_decisions_are_left_out(
    planted_decisions, next_action_review, people
):
    from loyalty.services.erasure import erase_member

    erase_member(member_id=planted_decisions["e1"].member_id, actor=None)
    Decision.objects.filter(review=planted_decisions["e3"]).update(
        decided_at=timezone.now() - timedelta(days=400)
    )
    decide(next_action_review, people["ann"])

    fairness = kind_fairness("churn")

    assert fairness.report.decisions == 6  # not e1 (erased) nor e3 (past the 365-day window)


@pytest.mark.django_db
def test_a_breach_tells_the_admins_once_and_does_not_pause_by_default(planted_decisions, people):
    check = check_fairness(kind="churn")

    assert check.decisions == 8
    assert check.paused is False
    keys = {breach["key"] for breach in check.breaches}
    assert "region.model.demographic_parity.max" in keys
    assert not any(key.startswith("age_band") for key in keys)
    assert (
        "Region, Model: Demographic parity (share called churn) difference 1.000 above the limit "
        "0.100" in [breach["text"] for breach in check.breaches]
    )
    notes = Notification.objects.filter(subject="Fairness limits breached: Churn risk")
    assert [note.recipient.username for note in notes.all()] == ["boss"]
    assert notes.get().link == "/reviews/manage/loop/fairness/?kind=churn"
    assert not AutomationPause.objects.open().exists()

    check_fairness(kind="churn")  # the same limits breached again: no second notification

    assert notes.count() == 1
    assert FairnessCheck.objects.filter(kind="churn").count() == 2
    # The limits breached change (the override limit is lifted): told of the new set.
    FairnessLimits.objects.update_or_create(
        kind="churn", defaults={"max_override_difference": None}
    )
    check_fairness(kind="churn")
    assert notes.count() == 2


@pytest.mark.django_db
def test_with_the_setting_on_a_breach_pauses_auto_approval(planted_decisions, people):
    FairnessLimits.objects.update_or_create(kind="churn", defaults={"pause_on_breach": True})

    check = check_fairness(kind="churn")

    assert check.paused
    pause = AutomationPause.objects.open().get()
    assert pause.kind == "churn"
    assert pause.reason.startswith("fairness: Region, Model: Demographic parity")
    paused_notes = Notification.objects.filter(subject="Auto-approval of Churn risk paused")
    assert [note.recipient.username for note in paused_notes] == ["boss"]


@pytest.mark.django_db
def test_within_the_limits_nobody_is_told_and_nothing_pauses(planted_decisions, people):
    FairnessLimits.objects.update_or_create(
        kind="churn", defaults={"min_group_size": 50, "pause_on_breach": True}
    )  # every group too small: nothing to compare

    assert check_fairness_task.run() == 0

    # Both kinds are checked; no next action was decided: nothing to compare either.
    assert {check.kind: check.breaches for check in FairnessCheck.objects.all()} == {
        "churn": [],
        "next_action": [],
    }
    assert not Notification.objects.exists()
    assert not AutomationPause.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["eve", "boss"])
def test_the_api_answers_the_page_s_figures_to_experts_and_admins(planted_decisions, people, role):
    response = token_client(people[role]).get(reverse("learning-api:fairness"), {"kind": "churn"})

    assert response.status_code == 200
    body = response.json()
    report = kind_fairness("churn").report
    assert (body["kind"], body["decisions"], body["by_person"]) == ("churn", 8, 4)
    assert [b["text"] for b in body["breaches"]] == [b.shown for b in report.breaches]
    region = next(a for a in body["attributes"] if a["attribute"] == "region")
    assert region["is_protected"] is True
    west = next(g for g in region["groups"] if g["group"] == "west")
    east = next(g for g in region["groups"] if g["group"] == "east")
    selection = wilson(4, 4)
    assert west["model"]["selection"] == {
        "value": 1.0, "low": selection.low, "high": 1.0, "n": 4, "hits": 4, "too_small": False,
    }  # fmt: skip
    assert (east["model"]["selection"]["hits"], east["final"]["selection"]["hits"]) == (0, 2)
    assert east["overrides"]["toward_churn"] | {"low": None, "high": None} == {
        "value": 1.0, "low": None, "high": None, "n": 2, "hits": 2, "too_small": False,
    }  # fmt: skip
    assert west["overrides"]["override_rate"]["value"] == 0.0
    assert west["calibration"]["predicted"] == pytest.approx(0.8)
    assert west["calibration"]["observed"]["value"] == 0.5
    parity = next(
        d
        for d in region["disparities"]
        if (d["decider"], d["metric"]) == ("model", "demographic_parity")
    )
    assert parity["difference"]["value"] == pytest.approx(1.0)  # 4/4 west − 0/4 east
    assert parity["ratio"] == {"value": 0.0, "low": None, "high": None}
    assert (parity["highest"], parity["lowest"]) == ("west", "east")


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "status"), [("ann", 403), ("feed", 403)])
def test_the_api_refuses_analysts_and_integrators(planted_decisions, people, role, status):
    response = token_client(people[role]).get(reverse("learning-api:fairness"))

    assert response.status_code == status
    assert "region" not in response.content.decode()


@pytest.mark.django_db
def test_the_api_refuses_a_kind_not_measured(people):
    response = token_client(people["boss"]).get(reverse("learning-api:fairness"), {"kind": "x"})

    assert response.status_code == 400
    assert "kind" in response.json()


@pytest.mark.django_db
def test_the_page_for_an_expert_and_403_for_an_analyst(client, planted_decisions, people):
    client.force_login(people["eve"])

    page = client.get(reverse("learning:fairness"))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-testid="fairness-region"' in html
    assert html.count('class="js-plotly-figure"') == 12  # 4 charts × 3 attributes
    assert ">Fairness</a>" in html  # the menu names it
    client.force_login(people["ann"])
    assert client.get(reverse("learning:fairness")).status_code == 403
    assert ">Fairness</a>" not in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_an_analyst_never_sees_a_member_s_age_band_or_region(client, planted_decisions, people):
    from loyalty.models import Member

    Member.objects.filter(external_id="M-e2").update(age_band="band-XYZ", region="region-XYZ")
    client.force_login(people["ann"])

    page = client.get(reverse("reviews:review", args=[planted_decisions["e2"].pk]))
    member = token_client(people["ann"]).get("/api/members/M-e2/")

    assert page.status_code == 200 and member.status_code == 200
    for answer in (page.content.decode(), member.content.decode()):
        assert "XYZ" not in answer


def test_limits_defaults_are_the_model_s():
    row = FairnessLimits(kind="churn")

    assert replace(Limits(), min_group_size=row.min_group_size) == Limits()
    assert (row.window_days, row.pause_on_breach) == (365, False)
