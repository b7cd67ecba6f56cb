"""Policy changes: re-routing undecided reviews, and the settings page that saves versions."""

from dataclasses import asdict, replace
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import AuditRecord
from reviews.models import EscalationPolicy, Review
from reviews.policy_settings import PolicySettings
from reviews.services.decisions import approve_prediction, escalate_review
from reviews.services.policy import change_policy
from reviews.services.rerouting import (
    STALE_REROUTING_AFTER,
    awaiting_rerouting,
    reroute_stale,
    reroute_undecided,
)
from reviews.services.routing import route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

# No audit sample and no risk band: every route follows from confidence alone.
EXACT = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.95,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
)
CONFIDENCES = {
    "auto_high": 0.97,
    "auto_mid": 0.92,
    "analyst_a": 0.85,
    "analyst_b": 0.7,
    "expert": 0.3,
    "decided": 0.8,
    "escalated": 0.75,
}
FIELDS = ("route", "state", "route_reason", "policy_id", "routed_at", "due_at")


@pytest.fixture
def population(reason_codes, make_user):
    """Seven churn reviews under policy v2 (EXACT): two auto, two analyst, one expert, one
    decided by an analyst, one escalated by an analyst."""
    change_policy(kind="churn", settings=EXACT, actor=None, reason="exact test policy")
    version = ModelVersionFactory()
    predictions = {
        name: PredictionFactory(model_version=version, confidence=confidence, score=0.1)
        for name, confidence in CONFIDENCES.items()
    }
    route_new_predictions(kind="churn")
    reviews = {name: Review.objects.get(prediction=p) for name, p in predictions.items()}
    analyst = make_user("analyst")
    approve_prediction(review_id=reviews["decided"].pk, actor=analyst, reason_code="model-correct")
    escalate_review(review_id=reviews["escalated"].pk, actor=analyst, reason_code="needs-expert")
    return {name: Review.objects.get(pk=review.pk) for name, review in reviews.items()}


def _snapshot(reviews: dict) -> dict:
    return {
        name: tuple(getattr(Review.objects.get(pk=r.pk), field) for field in FIELDS)
        for name, r in reviews.items()
    }


def test_raising_thresholds_reroutes_only_undecided_unescalated_reviews(population):
    before = _snapshot(population)
    stricter = replace(EXACT, auto_approve_confidence=0.95, expert_confidence=0.8)
    v3 = change_policy(kind="churn", settings=stricter, actor=None, reason="stricter")

    result = reroute_undecided(kind="churn")

    # The auto-approvals are the policy's announced decisions: nothing reopens them.
    assert (result.policy_version, result.considered) == (3, 3)
    assert result.moves == {("analyst", "expert"): 1}
    assert result.by_route == {"analyst": 1, "expert": 2}
    assert result.describe_moves() == "analyst → expert 1"
    after = {name: Review.objects.get(pk=r.pk) for name, r in population.items()}
    assert {name: (r.route, r.state) for name, r in after.items()} == {
        "auto_high": ("auto", "auto_approved"),
        "auto_mid": ("auto", "auto_approved"),
        "analyst_a": ("analyst", "pending"),
        "analyst_b": ("expert", "pending"),
        "expert": ("expert", "pending"),
        "decided": ("analyst", "decided"),
        "escalated": ("expert", "pending"),
    }
    for name in ("analyst_a", "analyst_b", "expert"):
        assert after[name].policy_id == v3.pk
    assert _snapshot({"a": population["auto_mid"]})["a"] == before["auto_mid"]
    assert after["auto_mid"].decision.decided_as == "policy"
    # Moved between people: its wait goes on.
    assert after["analyst_b"].routed_at == before["analyst_b"][4]
    assert after["analyst_b"].due_at == before["analyst_b"][5]
    # What people decided or escalated keeps its route, reason and version.
    assert _snapshot({"d": population["decided"]})["d"] == before["decided"]
    assert _snapshot({"e": population["escalated"]})["e"] == before["escalated"]
    assert after["escalated"].route_reason == (
        "escalated by analyst-user: Needs an expert's judgement"
    )
    record = AuditRecord.objects.get(subject="policy:churn:v3:reroute")
    assert record.details == {
        "considered": 3,
        "moved": 1,
        "moves": {"analyst → expert": 1},
    }


def test_rerouting_twice_moves_and_writes_nothing_more(population):
    change_policy(
        kind="churn",
        settings=replace(EXACT, auto_approve_confidence=0.95),
        actor=None,
        reason="stricter",
    )
    reroute_undecided(kind="churn")
    once = _snapshot(population)
    audit_count = AuditRecord.objects.count()

    again = reroute_undecided(kind="churn")

    assert (again.considered, again.moves) == (3, {})
    assert _snapshot(population) == once
    assert AuditRecord.objects.count() == audit_count


def test_lowering_the_auto_threshold_auto_approves_analyst_items(population):
    change_policy(
        kind="churn",
        settings=replace(EXACT, auto_approve_confidence=0.8),
        actor=None,
        reason="trust the model more",
    )

    result = reroute_undecided(kind="churn")

    assert result.moves == {("analyst", "auto"): 1}
    review = Review.objects.get(pk=population["analyst_a"].pk)
    assert (review.route, review.state, review.due_at) == ("auto", "auto_approved", None)
    assert review.route_reason == "confidence 0.85 ≥ auto-approve threshold 0.80"


def test_the_value_rule_uses_the_quantile_of_the_policys_whole_population(reason_codes):
    """Re-routing moves only pending items, but the value quantile is over every review the
    policy routes (the auto-approved ones too): otherwise the pending items' own top half
    would go to experts."""
    change_policy(kind="churn", settings=EXACT, actor=None, reason="exact")
    version = ModelVersionFactory()
    for spend in (5000, 5000, 5000, 5000):  # auto-approved: decided, they stay
        PredictionFactory(model_version=version, confidence=0.97, score=0.1, spend=spend)
    for spend in (100, 100, 100, 100, 200, 200):  # analyst items: nobody has decided them
        PredictionFactory(model_version=version, confidence=0.7, score=0.1, spend=spend)
    route_new_predictions(kind="churn")
    change_policy(
        kind="churn",
        settings=replace(EXACT, expert_value_quantile=0.5),
        actor=None,
        reason="value",
    )

    result = reroute_undecided(kind="churn")

    # The median of all ten is 200, which no pending item exceeds (theirs alone is 100).
    assert (result.considered, result.moves) == (6, {})
    change_policy(
        kind="churn",
        settings=replace(EXACT, expert_value_quantile=0.3),
        actor=None,
        reason="value",
    )
    result = reroute_undecided(kind="churn")
    # The 0.3 quantile of all ten is 100: the two at 200 exceed it.
    assert result.moves == {("analyst", "expert"): 2}
    assert set(Review.objects.filter(member_value=200).values_list("route_reason", flat=True)) == {
        "member value in top 70 %"
    }


# --- the settings page ---------------------------------------------------------------------


def _form(settings: PolicySettings, reason: str = "Fewer auto-approvals after Q3 audit") -> dict:
    data = {key: value for key, value in asdict(settings).items() if value is not None}
    data.pop("segment_overrides", None)
    for tier, override in (settings.segment_overrides or {}).items():
        if "auto_approve_confidence" in override:
            data[f"tier_{tier}_auto"] = override["auto_approve_confidence"]
        if "expert_confidence" in override:
            data[f"tier_{tier}_expert"] = override["expert_confidence"]
    data["reason"] = reason
    return data


@pytest.fixture
def admin_client(client, make_user):
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    return client


@pytest.mark.parametrize("kind", ["churn", "next_action"])
def test_admin_sees_the_current_version_and_its_simulation(admin_client, kind):
    response = admin_client.get(reverse("reviews:policy", args=[kind]))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Version 1" in page and "Save as version 2" in page
    assert 'data-testid="simulated-counts"' in page
    assert "plotly/plotly.min.js" in page and "js/figures.js" in page
    assert '<script id="workload-figure-spec" type="application/json">' in page
    assert ("Churn risk that always needs a person" in page) is (kind == "churn")


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("reviews:policy", ["churn"]),
        ("reviews:policy_simulate", ["churn"]),
        ("reviews:audit_log", []),
    ],
)
def test_an_analyst_is_refused(client, make_user, name, args):
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    response = (client.post if name.endswith("simulate") else client.get)(reverse(name, args=args))

    assert response.status_code == 403


def test_an_unknown_kind_is_not_found(admin_client):
    assert admin_client.get(reverse("reviews:policy", args=["loyalty"])).status_code == 404


def test_saving_creates_the_next_version_audits_it_and_leaves_the_rerouting_to_a_worker(
    population, admin_client, django_capture_on_commit_callbacks
):
    stricter = replace(
        EXACT,
        auto_approve_confidence=0.95,
        segment_overrides={"gold": {"auto_approve_confidence": 0.99}},
    )
    before = _snapshot(population)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = admin_client.post(
            reverse("reviews:policy", args=["churn"]), _form(stricter), follow=True
        )

    assert response.status_code == 200
    policy = EscalationPolicy.objects.get(kind="churn", version=3)
    assert PolicySettings.of(policy) == stricter
    assert (policy.created_by.username, policy.change_reason) == (
        "admin-user",
        "Fewer auto-approvals after Q3 audit",
    )
    change = AuditRecord.objects.get(kind="policy_change", subject="policy:churn:v3")
    assert (change.actor_name, change.details["after"]["auto_approve_confidence"]) == (
        "admin-user",
        0.95,
    )
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [
        "Saved as version 3. The undecided reviews are being re-routed in the background; "
        "each keeps its current route until the re-routing reaches it."
    ]
    # The request only queued the re-routing (one task, sent on commit): nothing moved yet,
    # and the page says what is still to do.
    assert len(queued) == 1
    assert _snapshot(population) == before
    page = response.content.decode()
    assert "Version 3" in page
    assert "Re-routing to version 3 is under way: <strong>3</strong> undecided reviews" in page


def test_the_page_follows_the_rerouting_until_it_is_done(population, admin_client):
    change_policy(
        kind="churn",
        settings=replace(EXACT, auto_approve_confidence=0.95),
        actor=None,
        reason="stricter",
    )
    assert awaiting_rerouting("churn") == 3

    result = reroute_undecided(kind="churn", policy_version=3)  # what the worker runs

    # The two auto-approvals are announced decisions: only the three pending items move.
    assert (result.considered, result.moves, result.superseded) == (3, {}, False)
    assert awaiting_rerouting("churn") == 0
    page = admin_client.get(reverse("reviews:policy", args=["churn"])).content.decode()
    assert 'data-testid="rerouting"' not in page


def test_a_queued_rerouting_of_an_older_version_does_nothing(population):
    change_policy(
        kind="churn", settings=replace(EXACT, auto_approve_confidence=0.95), actor=None, reason="v3"
    )
    change_policy(
        kind="churn", settings=replace(EXACT, auto_approve_confidence=0.8), actor=None, reason="v4"
    )
    before = _snapshot(population)

    stale = reroute_undecided(kind="churn", policy_version=3)

    assert (stale.considered, stale.moves, stale.superseded) == (0, {}, True)
    assert _snapshot(population) == before
    assert awaiting_rerouting("churn") == 3


def test_the_sweep_queues_only_a_rerouting_left_unfinished_for_long(
    population, django_capture_on_commit_callbacks
):
    v3 = change_policy(
        kind="churn",
        settings=replace(EXACT, auto_approve_confidence=0.95),
        actor=None,
        reason="saved, but its re-routing message was lost",
    )

    with django_capture_on_commit_callbacks(execute=False) as recent:
        assert reroute_stale() == []
    EscalationPolicy.objects.filter(pk=v3.pk).update(
        created_at=timezone.now() - STALE_REROUTING_AFTER - timedelta(minutes=1)
    )
    with django_capture_on_commit_callbacks(execute=False) as old:
        assert reroute_stale() == ["churn"]
    reroute_undecided(kind="churn")
    with django_capture_on_commit_callbacks(execute=False) as done:
        assert reroute_stale() == []

    assert (len(recent), len(old), len(done)) == (0, 1, 0)


@pytest.mark.parametrize(
    ("change", "field", "error"),
    [
        ({"expert_confidence": 0.95}, "expert_confidence", "Must not exceed the auto-approve"),
        ({"audit_sample_rate": 1.5}, "audit_sample_rate", "less than or equal to 1"),
        ({"expert_value_quantile": 1.0}, "expert_value_quantile", "strictly between 0 and 1"),
        ({"human_risk_low": 0.8, "human_risk_high": 0.7}, "human_risk_high", "at least the band"),
        ({"tier_gold_expert": 0.95}, "tier_gold_expert", "gold: expert threshold 0.95 exceeds"),
        ({"reason": ""}, "reason", "This field is required."),
    ],
)
def test_invalid_settings_show_errors_and_change_nothing(
    population, admin_client, change, field, error
):
    policies, audits = EscalationPolicy.objects.count(), AuditRecord.objects.count()
    before = _snapshot(population)
    data = {**_form(replace(EXACT, auto_approve_confidence=0.93)), **change}

    response = admin_client.post(reverse("reviews:policy", args=["churn"]), data)

    assert response.status_code == 400
    assert any(error in message for message in response.context["form"].errors[field])
    assert error.split(":")[0] in response.content.decode()
    assert (EscalationPolicy.objects.count(), AuditRecord.objects.count()) == (policies, audits)
    assert _snapshot(population) == before


def test_saving_the_current_settings_again_is_refused(population, admin_client):
    response = admin_client.post(reverse("reviews:policy", args=["churn"]), _form(EXACT))

    assert response.status_code == 400
    assert "nothing to save" in response.content.decode()
    assert EscalationPolicy.objects.filter(kind="churn").count() == 2


def test_the_simulation_fragment_follows_the_submitted_thresholds(population, admin_client):
    data = _form(replace(EXACT, auto_approve_confidence=0.95), reason="")

    response = admin_client.post(reverse("reviews:policy_simulate", args=["churn"]), data)

    assert response.status_code == 200
    assert response.context["simulation"].counts == {"auto": 1, "analyst": 3, "expert": 1}
    assert "<html" not in response.content.decode()
    assert EscalationPolicy.objects.filter(kind="churn").count() == 2


def test_the_simulation_fragment_names_invalid_settings(population, admin_client):
    data = _form(replace(EXACT, expert_confidence=0.95), reason="")

    response = admin_client.post(reverse("reviews:policy_simulate", args=["churn"]), data)

    assert response.status_code == 200
    assert "Fix the highlighted settings" in response.content.decode()


def test_the_simulation_says_what_would_wait_beyond_a_queue_s_capacity(population, admin_client):
    """Three items for analysts under these thresholds, a capacity of 2: one would wait."""
    data = _form(replace(EXACT, auto_approve_confidence=0.95, analyst_daily_capacity=2), reason="")

    response = admin_client.post(reverse("reviews:policy_simulate", args=["churn"]), data)

    assert response.context["simulation"].counts["analyst"] == 3
    html = response.content.decode()
    assert "1 would wait in the backlog (capacity 2 a day)" in html
    assert 'data-testid="simulated-waiting-expert"' not in html  # no limit there
