"""Policy tests (reviews.services.experiments): two escalation-policy versions side by side,
members split by a stable hash, each routed and re-routed by their arm's version until an admin
adopts one. Members are chosen by their hash, never by their database id: the assertions state
the rule (a member's route follows their arm), not which ids landed where."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import AuditRecord
from reviews.exceptions import (
    InvalidPolicyTest,
    PolicyTestEnded,
    PolicyTestNotFound,
    PolicyTestRunning,
)
from reviews.models import EscalationPolicy, PolicyExperiment, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.experiments import (
    CHALLENGER,
    CHAMPION,
    COLLECTING,
    FINISHED,
    arm_items,
    collects,
    policy_test_state,
)
from reviews.selectors.policy import current_policy, policy_history
from reviews.services.decisions import approve_prediction
from reviews.services.experiments import (
    arm_of,
    end_policy_test,
    policy_for_members,
    start_policy_test,
)
from reviews.services.policy import change_policy
from reviews.services.rerouting import awaiting_rerouting, reroute_stale, reroute_undecided
from reviews.services.routing import route_new_predictions
from tests.factories import MemberFactory, ModelVersionFactory, PredictionFactory

# Confidence alone routes: no audit sample, no risk band, no value rule, nothing blind.
CHAMPION_SETTINGS = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.99,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
    segment_overrides={},
    blind_share=0.0,
)
# The challenger auto-approves from 0.7: a prediction at 0.8 is the analyst's under the
# champion and auto-approved under the challenger.
CHALLENGER_SETTINGS = replace(CHAMPION_SETTINGS, auto_approve_confidence=0.7)
BETWEEN = 0.8


def _members_by_arm(test: PolicyExperiment, per_arm: int) -> dict[str, list]:
    """`per_arm` members in each arm, chosen by their hash."""
    found: dict[str, list] = {CHAMPION: [], CHALLENGER: []}
    while min(len(members) for members in found.values()) < per_arm:
        member = MemberFactory()
        arm = arm_of(test, member.pk)
        if len(found[arm]) < per_arm:
            found[arm].append(member)
    return found


@pytest.fixture
def champion(db):
    return change_policy(
        kind="churn", settings=CHAMPION_SETTINGS, actor=None, reason="confidence alone routes"
    )


@pytest.fixture
def admin(make_user):
    return make_user("admin", "boss")


def _start(admin, **changes) -> PolicyExperiment:
    arguments = {
        "kind": "churn",
        "challenger_settings": CHALLENGER_SETTINGS,
        "share": 0.5,
        "hypothesis": "Auto-approving from 0.7 halves the analysts' items without more errors.",
        "actor": admin,
        "max_decisions": 100,
        **changes,
    }
    return start_policy_test(**arguments)


@pytest.fixture
def test(champion, admin):
    return _start(admin)


def _route(members, *, confidence=BETWEEN, version=None) -> list[Review]:
    version = version or ModelVersionFactory()
    predictions = [
        PredictionFactory(member=member, model_version=version, confidence=confidence)
        for member in members
    ]
    route_new_predictions(kind="churn")
    return [Review.objects.get(prediction=prediction) for prediction in predictions]


def test_the_arm_split_is_stable_and_near_the_share():
    test = PolicyExperiment(salt="0123456789abcdef", challenger_share=0.3)
    members = range(1, 20_001)

    arms = [arm_of(test, member) for member in members]
    again = [arm_of(PolicyExperiment(salt=test.salt, challenger_share=0.3), m) for m in members]
    other_salt = [
        arm_of(PolicyExperiment(salt="another", challenger_share=0.3), m) for m in members
    ]

    assert arms == again
    assert abs(arms.count(CHALLENGER) / len(arms) - 0.3) < 0.015
    assert arms != other_salt  # a new test draws its own split
    assert set(arms) == {CHAMPION, CHALLENGER}


@pytest.mark.django_db
def test_the_challenger_is_a_new_version_that_is_never_the_one_in_force(champion, admin):
    versions_before = EscalationPolicy.objects.filter(kind="churn").count()

    test = _start(admin, share=0.25)

    assert EscalationPolicy.objects.filter(kind="churn").count() == versions_before + 1
    assert (test.champion, test.challenger.version) == (champion, champion.version + 1)
    assert PolicySettings.of(test.challenger) == CHALLENGER_SETTINGS
    assert current_policy("churn") == champion
    assert (test.challenger_share, test.started_by, test.ended_at) == (0.25, admin, None)
    assert len(test.salt) == 16
    history = {row.policy.version: row.test_role for row in policy_history("churn")}
    assert history[test.challenger.version] == f"challenger in policy test {test.pk}"
    assert history[champion.version] == ""
    start = AuditRecord.objects.get(subject=f"policy:churn:test:{test.pk}:start")
    assert (start.kind, start.actor_name) == ("policy_change", "boss")
    assert start.details["challenger"]["auto_approve_confidence"] == 0.7
    assert (start.details["champion_version"], start.details["challenger_share"]) == (
        champion.version,
        0.25,
    )


@pytest.mark.django_db
def test_each_member_is_routed_by_their_arms_thresholds(test):
    members = _members_by_arm(test, 4)

    reviews = _route(members[CHAMPION] + members[CHALLENGER])

    for review in reviews:
        arm = arm_of(test, review.member_id)
        expected = (test.challenger, "auto") if arm == CHALLENGER else (test.champion, "analyst")
        assert (review.policy, review.route) == expected
    everyone = [member.pk for arm in members.values() for member in arm]
    assert {
        member: policy.version for member, policy in policy_for_members("churn", everyone).items()
    } == {
        member: (test.challenger if arm_of(test, member) == CHALLENGER else test.champion).version
        for member in everyone
    }
    # The policy decided what its version auto-approved, as it does without a test.
    assert all(
        review.decision.decided_as == "policy"
        for review in Review.objects.filter(route="auto", member__in=members[CHALLENGER])
    )


@pytest.mark.django_db
def test_a_next_action_test_routes_the_action_side_of_each_case_by_the_members_arm(
    case_versions, admin
):
    from loyalty.models import Action

    lenient = PolicySettings.of(current_policy("next_action"))
    test = start_policy_test(
        kind="next_action",
        challenger_settings=replace(lenient, auto_approve_confidence=0.7),
        share=0.5,
        hypothesis="A stricter next-action threshold catches more wrong actions.",
        actor=admin,
        max_decisions=50,
    )
    churn_version = current_policy("churn")
    members = _members_by_arm(test, 3)
    cases = {}
    for member in members[CHAMPION] + members[CHALLENGER]:
        PredictionFactory(
            member=member,
            model_version=case_versions["next_action"],
            kind="next_action",
            score=0.6,
            confidence=0.6,
            probabilities={"win_back_email": 0.6, "no_action": 0.4},
            recommended_action=Action.objects.get(code="win_back_email"),
        )
        cases[member.pk] = PredictionFactory(
            member=member, model_version=case_versions["churn"], score=0.2, confidence=0.95
        )
    route_new_predictions(kind="churn")

    for member_id, churn in cases.items():
        case = Review.objects.get(prediction=churn)
        in_challenger = arm_of(test, member_id) == CHALLENGER
        assert case.is_case and case.policy == churn_version
        assert case.action_policy == (test.challenger if in_challenger else test.champion)
        # Next-action confidence 0.6: auto-approved from 0.5 (champion), not from 0.7.
        assert case.route == ("analyst" if in_challenger else "auto")


@pytest.mark.django_db
def test_the_sweep_leaves_the_challengers_items_and_rerouting_moves_the_rest_to_their_arm(
    champion, admin
):
    # Items routed under an older version, before the test: they await re-routing.
    older = change_policy(
        kind="churn",
        settings=replace(CHAMPION_SETTINGS, auto_approve_confidence=0.95),
        actor=None,
        reason="an older version",
    )
    waiting = _route(MemberFactory.create_batch(6))
    assert {review.policy for review in waiting} == {older}
    current = change_policy(kind="churn", settings=CHAMPION_SETTINGS, actor=None, reason="back")
    test = _start(admin)
    assert test.champion == current
    members = _members_by_arm(test, 3)
    routed = _route(members[CHAMPION] + members[CHALLENGER])
    EscalationPolicy.objects.filter(pk__in=[current.pk, test.challenger.pk]).update(
        created_at=timezone.now() - timedelta(hours=2)
    )

    assert awaiting_rerouting("churn") == len(waiting)
    result = reroute_undecided(kind="churn", policy_version=current.version)

    # The test's items keep their arm's version; the older items moved to their member's.
    for review in routed:
        review.refresh_from_db()
        arm = arm_of(test, review.member_id)
        assert review.policy == (test.challenger if arm == CHALLENGER else test.champion)
    for review in waiting:
        review.refresh_from_db()
        arm = arm_of(test, review.member_id)
        assert review.policy == (test.challenger if arm == CHALLENGER else test.champion)
        assert review.route == ("auto" if arm == CHALLENGER else "analyst")
    assert result.considered == len(waiting) + len(members[CHAMPION])
    assert awaiting_rerouting("churn") == 0
    assert reroute_stale(older_than=timedelta(minutes=30)) == []
    # Nothing the challenger routed went back to the champion.
    assert Review.objects.filter(policy=test.challenger).count() == len(
        [r for r in waiting + routed if arm_of(test, r.member_id) == CHALLENGER]
    )


@pytest.mark.django_db
def test_the_thresholds_cannot_change_while_a_test_runs(test, admin, client):
    versions = EscalationPolicy.objects.count()

    with pytest.raises(PolicyTestRunning, match="end it first"):
        change_policy(
            kind="churn",
            settings=replace(CHAMPION_SETTINGS, audit_sample_rate=0.1),
            actor=admin,
            reason="while testing",
        )
    client.force_login(admin)
    page = client.get(reverse("reviews:policy", args=["churn"])).content.decode()
    refused = client.post(
        reverse("reviews:policy", args=["churn"]),
        {
            "auto_approve_confidence": "0.95",
            "expert_confidence": "0.5",
            "expert_value_quantile": "0.99",
            "audit_sample_rate": "0",
            "blind_share": "0",
            "sla_hours": "48",
            "reason": "while testing",
        },
    )

    assert EscalationPolicy.objects.count() == versions
    assert 'data-testid="policy-test-running"' in page
    assert reverse("learning:policy_test", args=["churn"]) in page
    assert refused.status_code == 409
    assert "end it first, by adopting one of them" in refused.content.decode()
    # The other kind's thresholds are free to change.
    change_policy(
        kind="next_action",
        settings=replace(PolicySettings.of(current_policy("next_action")), sla_hours=24),
        actor=admin,
        reason="another kind",
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"share": 0.0}, "strictly between 0 and 1"),
        ({"share": 1.0}, "strictly between 0 and 1"),
        ({"share": 1.5}, "strictly between 0 and 1"),
        ({"max_decisions": None}, "Give the test an end"),
        ({"ends_at": "past"}, "has passed already"),
        ({"max_decisions": 0}, "at least 1"),
        ({"hypothesis": "  "}, "the hypothesis"),
        ({"challenger_settings": CHAMPION_SETTINGS}, "holds the current settings"),
        ({"kind": "loyalty"}, "No prediction kind"),
    ],
)
@pytest.mark.django_db
def test_a_bad_start_is_refused_and_changes_nothing(champion, admin, changes, message):
    if changes.get("ends_at") == "past":
        changes["ends_at"] = timezone.now() - timedelta(minutes=1)
    versions = EscalationPolicy.objects.count()

    with pytest.raises(InvalidPolicyTest, match=message):
        _start(admin, **changes)

    assert (EscalationPolicy.objects.count(), PolicyExperiment.objects.count()) == (versions, 0)
    assert not AuditRecord.objects.filter(subject__contains=":test:").exists()


@pytest.mark.django_db
def test_a_second_test_of_the_kind_is_a_conflict(test, admin):
    versions = EscalationPolicy.objects.count()

    with pytest.raises(PolicyTestRunning):
        _start(admin, challenger_settings=replace(CHAMPION_SETTINGS, sla_hours=24))

    assert (EscalationPolicy.objects.count(), PolicyExperiment.objects.count()) == (versions, 1)


@pytest.mark.django_db
def test_an_analyst_may_not_start_or_end_a_test(champion, test, make_user):
    analyst = make_user("analyst", "ann")

    with pytest.raises(Exception, match="lacks the permission"):
        _start(analyst, kind="next_action")
    with pytest.raises(Exception, match="lacks the permission"):
        end_policy_test(test_id=test.pk, adopt=CHALLENGER, reason="mine", actor=analyst)

    assert PolicyExperiment.objects.running().count() == 1


@pytest.mark.django_db
def test_once_the_decisions_are_in_everyone_is_routed_by_the_champion(
    champion, admin, make_user, reason_codes
):
    test = _start(admin, max_decisions=1)
    members = _members_by_arm(test, 2)
    first = _route([members[CHAMPION][0], members[CHALLENGER][0]])
    assert collects(test)
    analyst_item = next(review for review in first if review.route == "analyst")

    decision = approve_prediction(
        review_id=analyst_item.pk, actor=make_user("analyst", "ann"), reason_code="model-correct"
    )
    later = _route([members[CHAMPION][1], members[CHALLENGER][1]])

    test.refresh_from_db()
    assert not collects(test)
    assert {review.policy for review in later} == {test.champion}
    state = policy_test_state(test)
    assert (state.state, state.stopped_at, state.decisions) == (
        FINISHED,
        decision.decided_at,
        1,
    )
    # The arms' items are those routed while the test collected.
    assert {review.pk for review in arm_items(test, CHAMPION)} | {
        review.pk for review in arm_items(test, CHALLENGER)
    } == {review.pk for review in first}
    assert current_policy("churn") == test.champion  # still waiting for an adoption


@pytest.mark.django_db
def test_once_the_period_is_over_the_test_waits_for_an_adoption(champion, admin):
    test = _start(admin, ends_at=timezone.now() + timedelta(days=7), max_decisions=None)
    assert policy_test_state(test).state == COLLECTING
    PolicyExperiment.objects.filter(pk=test.pk).update(ends_at=timezone.now())
    test.refresh_from_db()
    members = _members_by_arm(test, 2)

    later = _route(members[CHALLENGER])

    assert {review.policy for review in later} == {test.champion}
    assert (policy_test_state(test).state, policy_test_state(test).stopped_at) == (
        FINISHED,
        test.ends_at,
    )


@pytest.mark.django_db
def test_ending_adopts_the_arm_as_a_new_audited_version_and_reroutes(
    test, admin, django_capture_on_commit_callbacks
):
    members = _members_by_arm(test, 2)
    _route(members[CHAMPION] + members[CHALLENGER])
    newest = EscalationPolicy.objects.filter(kind="churn").order_by("-version").first()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        ended = end_policy_test(
            test_id=test.pk, adopt=CHALLENGER, reason="fewer items, same errors", actor=admin
        )

    adopted = ended.adopted
    assert adopted.version == newest.version + 1
    assert PolicySettings.of(adopted) == CHALLENGER_SETTINGS
    assert current_policy("churn") == adopted
    assert (ended.ended_by, ended.end_reason) == (admin, "fewer items, same errors")
    assert adopted.change_reason.startswith(f"Adopted the challenger (v{newest.version}) of")
    change = AuditRecord.objects.get(subject=f"policy:churn:v{adopted.version}")
    assert change.details["before"]["auto_approve_confidence"] == 0.9  # the champion's
    assert change.details["after"]["auto_approve_confidence"] == 0.7
    end = AuditRecord.objects.get(subject=f"policy:churn:test:{test.pk}:end")
    assert (end.details["adopted"], end.details["adopted_version"]) == (
        "challenger",
        adopted.version,
    )
    assert len(queued) >= 1  # the re-routing under the adopted version, on commit
    assert awaiting_rerouting("churn") == len(members[CHAMPION])  # the champion's analyst items
    reroute_undecided(kind="churn", policy_version=adopted.version)
    assert awaiting_rerouting("churn") == 0
    assert set(Review.objects.filter(state="pending").values_list("policy", flat=True)) <= {
        adopted.pk
    }
    # Thresholds can change again.
    change_policy(kind="churn", settings=CHAMPION_SETTINGS, actor=admin, reason="after the test")


@pytest.mark.django_db
def test_ending_twice_answers_like_the_first_time_and_the_other_arm_is_a_conflict(test, admin):
    first = end_policy_test(test_id=test.pk, adopt=CHAMPION, reason="no gain", actor=admin)
    versions = EscalationPolicy.objects.count()

    again = end_policy_test(test_id=test.pk, adopt=CHAMPION, reason="no gain", actor=admin)
    with pytest.raises(PolicyTestEnded, match="adopted the champion"):
        end_policy_test(test_id=test.pk, adopt=CHALLENGER, reason="changed my mind", actor=admin)
    with pytest.raises(PolicyTestNotFound):
        end_policy_test(test_id=test.pk + 1000, adopt=CHAMPION, reason="?", actor=admin)
    with pytest.raises(InvalidPolicyTest, match="Adopt one of"):
        end_policy_test(test_id=test.pk, adopt="both", reason="?", actor=admin)

    assert again.adopted == first.adopted
    assert PolicySettings.of(first.adopted) == CHAMPION_SETTINGS
    assert EscalationPolicy.objects.count() == versions
