"""Erasure: the service, its reach into every layer, its idempotency, the management command
and the admin action."""

import hashlib
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import CommandError, call_command
from django.urls import reverse

from learning.models import LabeledExample
from learning.services.labels import label_decision
from loyalty.exceptions import MemberNotFoundError, PermissionDeniedError
from loyalty.models import AuditRecord, ErasureTombstone, Event, Member, SyntheticTruth
from loyalty.services.audit import record_audit
from loyalty.services.erasure import (
    erase_member,
    erase_member_by_external_id,
    tombstone_digest,
)
from loyalty.signals import member_erased
from predictions.models import Prediction
from reviews.models import Decision, Notification, Review
from reviews.selectors.notifications import unread_count
from reviews.selectors.policy import current_policy
from reviews.services.decisions import escalate_review, override_prediction
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

SHA256_OF_H42 = hashlib.sha256(b"H-42").hexdigest()
ROUTED_AT = datetime(2026, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def member_with_events():
    member = MemberFactory(
        external_id="H-42", tier="gold", points_balance=900, age_band="35-44", region="north"
    )
    EventFactory.create_batch(3, member=member)
    return member


def _counts() -> tuple[int, int, int]:
    return Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()


def test_erasure_deletes_events_blanks_personal_fields_and_writes_a_tombstone(
    make_user, member_with_events
):
    admin = make_user("admin")
    bystander = EventFactory()  # another member's event stays
    member = member_with_events

    result = erase_member(member_id=member.pk, actor=admin)

    member.refresh_from_db()
    digest = tombstone_digest("H-42")
    assert result.member_id == member.pk
    assert result.events_deleted == 3
    assert result.already_erased is False
    assert result.tombstone_digest == digest != SHA256_OF_H42
    assert member.external_id == f"erased-{member.pk}" == result.external_id
    assert (member.age_band, member.region, member.tier) == ("", "", "")
    assert (member.joined_on, member.points_balance) == (None, 0)
    assert (member.consent_profiling, member.consent_changed_at) == (False, None)
    assert member.erased_at == result.erased_at
    assert member.erased_at is not None
    assert list(Event.objects.all()) == [bystander]
    record = AuditRecord.objects.get(kind="erasure")
    assert record.pk == result.audit_record_id
    assert record.actor == admin
    assert record.subject == f"member:{member.pk}"
    assert record.details == {
        "member_id": member.pk,
        "events_deleted": 3,
        "tombstone_digest": digest,
    }
    # Neither the id nor its bare (guessable) SHA-256 stays in the append-only trail.
    assert "H-42" not in str(record.details)
    assert SHA256_OF_H42 not in str(record.details)
    tombstone = ErasureTombstone.objects.get()
    assert (tombstone.digest, tombstone.member, tombstone.erased_at) == (
        digest,
        member,
        member.erased_at,
    )
    assert (tombstone.lifted_at, tombstone.lifted_by, tombstone.lift_reason) == (None, None, "")


def test_second_erasure_is_harmless_and_returns_the_first_result(make_user, member_with_events):
    admin = make_user("admin")
    first = erase_member(member_id=member_with_events.pk, actor=admin)
    counts_after_first = _counts()

    second = erase_member(member_id=member_with_events.pk, actor=admin)

    assert _counts() == counts_after_first
    assert second.already_erased is True
    assert (second.events_deleted, second.audit_record_id) == (3, first.audit_record_id)
    assert second.tombstone_digest == first.tombstone_digest == tombstone_digest("H-42")
    assert second.erased_at == first.erased_at
    assert AuditRecord.objects.filter(kind="erasure").count() == 1
    assert ErasureTombstone.objects.count() == 1


def test_erasing_again_by_the_former_external_id_finds_the_erased_member(
    make_user, member_with_events
):
    admin = make_user("admin")
    erase_member_by_external_id(external_id="H-42", actor=admin)
    counts_after_first = _counts()

    again = erase_member_by_external_id(external_id="H-42", actor=admin)

    assert again.already_erased is True
    assert again.member_id == member_with_events.pk
    assert _counts() == counts_after_first


def test_erasing_an_unknown_external_id_raises_not_found(make_user):
    with pytest.raises(MemberNotFoundError):
        erase_member_by_external_id(external_id="nobody", actor=make_user("admin"))


def test_analyst_may_not_erase_and_nothing_changes(make_user, member_with_events):
    analyst = make_user("analyst")
    counts_before = _counts()

    with pytest.raises(PermissionDeniedError):
        erase_member(member_id=member_with_events.pk, actor=analyst)

    member_with_events.refresh_from_db()
    assert _counts() == counts_before
    assert (member_with_events.external_id, member_with_events.erased_at) == ("H-42", None)


def test_erasure_tells_higher_layers_inside_the_transaction(member_with_events):
    seen: list[tuple[int, str]] = []

    def receiver(sender, member_id, external_id, **kwargs):
        # Still before the commit: the events are gone, the member not yet blanked.
        seen.append((member_id, external_id))
        assert not Event.objects.filter(member_id=member_id).exists()

    member_erased.connect(receiver)
    try:
        erase_member(member_id=member_with_events.pk, actor=None)
    finally:
        member_erased.disconnect(receiver)

    assert seen == [(member_with_events.pk, "H-42")]


def test_command_erases_once_and_reports_the_second_run(make_user, member_with_events):
    admin = make_user("admin", username="dpo")
    out = StringIO()

    call_command("erase_member", "H-42", "--actor", "dpo", stdout=out)

    member_with_events.refresh_from_db()
    record = AuditRecord.objects.get(kind="erasure")
    assert member_with_events.is_erased
    assert record.actor == admin
    assert (
        f"Erased member {member_with_events.pk} (now erased-{member_with_events.pk}): "
        f"3 event(s) deleted, audit record {record.pk}, former id sha256 "
        f"{tombstone_digest('H-42')}."
    ) in out.getvalue()
    counts_after_first = _counts()

    again = StringIO()
    call_command("erase_member", "H-42", stdout=again)

    assert "was already erased" in again.getvalue()
    assert _counts() == counts_after_first


def test_command_without_actor_records_the_system(member_with_events):
    call_command("erase_member", "H-42", stdout=StringIO())

    record = AuditRecord.objects.get(kind="erasure")
    assert (record.actor, record.actor_name) == (None, "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nobody"], "No member has external id 'nobody'."),
        (["H-42", "--actor", "ghost"], "No user named 'ghost'."),
        (["H-42", "--actor", "analyst-user"], "analyst-user lacks the permission"),
    ],
)
def test_command_refuses_bad_input_and_changes_nothing(
    make_user, member_with_events, arguments, message
):
    make_user("analyst")
    counts_before = _counts()

    with pytest.raises(CommandError, match=message):
        call_command("erase_member", *arguments, stdout=StringIO())

    assert _counts() == counts_before


def test_admin_action_erases_selected_members(client, make_user, member_with_events):
    admin = make_user("admin")
    client.force_login(admin)
    untouched = MemberFactory(external_id="H-43")

    response = client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "erase_selected", "_selected_action": [member_with_events.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Erased 1 member(s) and deleted 3 event(s)." in response.content.decode()
    member_with_events.refresh_from_db()
    untouched.refresh_from_db()
    assert member_with_events.is_erased
    assert not untouched.is_erased
    assert AuditRecord.objects.get(kind="erasure").actor == admin


def test_admin_action_is_offered_only_to_users_who_may_erase(client, django_user_model):
    staff_without_erase = django_user_model.objects.create_user(username="clerk", is_staff=True)
    staff_without_erase.user_permissions.add(
        Permission.objects.get(codename="view_member"),
        Permission.objects.get(codename="change_member"),
    )
    client.force_login(staff_without_erase)

    response = client.get(reverse("admin:loyalty_member_changelist"))

    assert response.status_code == 200
    assert "erase_selected" not in response.content.decode()


# --- erasure reaches everything derived from the member --------------------------------------

FEATURES = [{"code": "spend_365"}, {"code": "logins_30"}]
EXPLANATION = {
    "base_value": -1.2,
    "margin": 0.4,
    "top": [{"code": "spend_365", "contribution": 1.1}, {"code": "logins_30", "contribution": 0.5}],
    "remainder": 0.0,
}


def _review(prediction, *, tier: str, value: float, reason: str) -> Review:
    return Review.objects.create(
        prediction=prediction,
        member=prediction.member,
        kind=prediction.kind,
        route=Review.Route.ANALYST,
        state=Review.State.PENDING,
        route_reason=reason,
        policy=current_policy(prediction.kind),
        priority=0.42,
        tier=tier,
        member_value=value,
        risk=prediction.score,
        confidence=prediction.confidence,
        routed_at=ROUTED_AT,
        due_at=ROUTED_AT + timedelta(hours=48),
    )


def _footprint(member: Member, *, analyst, expert) -> dict:
    """A scored member with a decided review (and its labeled example), an escalated one, and
    what people and the trail wrote about them."""
    version = ModelVersionFactory(features=FEATURES)
    decided_prediction = PredictionFactory(
        member=member,
        model_version=version,
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        feature_values=[812.5, 3.0],
        explanation=EXPLANATION,
        spend=812.5,
        rfm_segment="loyal",
        behavior_cluster=2,
    )
    open_prediction = PredictionFactory(
        member=member,
        model_version=version,
        cutoff=datetime(2026, 2, 1, tzinfo=UTC),
        feature_values=[640.0, 1.0],
        explanation=EXPLANATION,
        spend=640.0,
        rfm_segment="loyal",
        behavior_cluster=2,
    )
    decided = _review(
        decided_prediction, tier="gold", value=812.5, reason="member value in top 5 %"
    )
    escalated = _review(open_prediction, tier="gold", value=640.0, reason="audit sample (2%)")
    decision = override_prediction(
        review_id=decided.pk,
        actor=expert,
        reason_code="wrong-churn-call",
        churn_label=True,
        comment="Told the store she is moving abroad.",
    )
    example = label_decision(decision_id=decision.pk)
    escalate_review(
        review_id=escalated.pk,
        actor=analyst,
        reason_code="needs-expert",
        comment="Her husband manages our Leeds store.",
        proposal={"verdict": "override", "churn_label": False},
    )
    decided.refresh_from_db()
    escalated.refresh_from_db()
    return {
        "decided": decided,
        "escalated": escalated,
        "decision": decision,
        "example": example,
        "predictions": (decided_prediction, open_prediction),
    }


@pytest.fixture
def people(make_user):
    return {role: make_user(role) for role in ("admin", "analyst", "expert")}


@pytest.fixture
def scored(member_with_events, people):
    """H-42's footprint in every layer, and a bystander's that erasure must leave alone."""
    seed_reason_codes()
    SyntheticTruth.objects.create(
        member=member_with_events,
        seed=7,
        cutoff=datetime(2026, 1, 1, tzinfo=UTC),
        horizon_days=90,
        churn_probability=0.31,
        churned=False,
    )
    mine = _footprint(member_with_events, analyst=people["analyst"], expert=people["expert"])
    theirs = _footprint(
        MemberFactory(external_id="H-420"), analyst=people["analyst"], expert=people["expert"]
    )
    return {"member": member_with_events, "mine": mine, "theirs": theirs}


def _snapshot(footprint: dict) -> list:
    """Every value erasure may change, of one member's footprint."""
    reviews = Review.objects.filter(pk__in=[footprint["decided"].pk, footprint["escalated"].pk])
    predictions = Prediction.objects.filter(pk__in=[p.pk for p in footprint["predictions"]])
    return [
        list(reviews.order_by("pk").values()),
        list(predictions.order_by("pk").values()),
        list(Decision.objects.filter(pk=footprint["decision"].pk).values()),
        list(LabeledExample.objects.filter(pk=footprint["example"].pk).values()),
        list(
            AuditRecord.objects.filter(
                subject__in=[
                    f"review:{footprint['decided'].pk}",
                    f"review:{footprint['escalated'].pk}",
                ]
            )
            .order_by("pk")
            .values("details")
        ),
    ]


def test_erasure_blanks_what_the_model_saw_and_keeps_what_it_answered(scored, people):
    decided, pending = scored["mine"]["predictions"]
    theirs_before = _snapshot(scored["theirs"])

    erase_member(member_id=scored["member"].pk, actor=people["admin"])

    for prediction in (decided, pending):
        stored = Prediction.objects.get(pk=prediction.pk)
        assert (stored.feature_values, stored.explanation, stored.member_value) == ([], {}, None)
        # The segment and the cluster were computed from the member's data: blanked too.
        assert (stored.rfm_segment, stored.behavior_cluster) == ("", None)
        assert stored.features_seen == {}
        kept = (stored.score, stored.interval_low, stored.interval_high, stored.label_set)
        assert kept == (0.3, 0.25, 0.35, ["stay"])
        assert (stored.kind, stored.model_version_id, stored.cutoff, stored.confidence) == (
            prediction.kind,
            prediction.model_version_id,
            prediction.cutoff,
            0.8,
        )
        assert stored.scored_at == prediction.scored_at
    assert _snapshot(scored["theirs"]) == theirs_before


def test_an_unrouted_prediction_is_deleted_so_routing_never_queues_the_erased_member(
    scored, people
):
    version = scored["mine"]["predictions"][0].model_version
    cutoff = datetime(2026, 3, 1, tzinfo=UTC)
    PredictionFactory(member=scored["member"], model_version=version, cutoff=cutoff)
    theirs = PredictionFactory(
        member=scored["theirs"]["decided"].member, model_version=version, cutoff=cutoff
    )

    erase_member(member_id=scored["member"].pk, actor=people["admin"])
    route_new_predictions(kind="churn")

    assert not Prediction.objects.filter(member=scored["member"], cutoff=cutoff).exists()
    assert list(
        Review.objects.filter(member=scored["member"])
        .order_by("pk")
        .values_list("state", flat=True)
    ) == ["decided", "withdrawn"]
    assert Review.objects.filter(prediction=theirs).count() == 1


def test_erasure_blanks_reviews_and_decisions_and_withdraws_undecided_reviews(scored, people):
    mine = scored["mine"]

    erase_member(member_id=scored["member"].pk, actor=people["admin"])

    decided = Review.objects.get(pk=mine["decided"].pk)
    escalated = Review.objects.get(pk=mine["escalated"].pk)
    for review in (decided, escalated):
        assert (review.tier, review.member_value, review.priority) == ("", 0.0, 0.0)
        assert (review.escalation_comment, review.analyst_proposal) == ("", None)
        assert (review.expected_value, review.contact_flags) == (None, [])
        assert review.route_reason == "member erased"
    assert (decided.state, decided.decided_at) == ("decided", mine["decided"].decided_at)
    assert (escalated.state, escalated.route, escalated.escalated_by) == (
        "withdrawn",
        "expert",
        people["analyst"],
    )
    decision = Decision.objects.select_related("reason").get(pk=mine["decision"].pk)
    assert (decision.comment, decision.churn_label, decision.action) == ("", None, None)
    assert (decision.settled_action, decision.contact_flags) == (None, [])
    assert (decision.verdict, decision.reason.code, decision.decided_as) == (
        "override",
        "wrong-churn-call",
        "expert",
    )
    assert (decision.decided_by, decision.decided_at) == (
        people["expert"],
        mine["decision"].decided_at,
    )


def test_erasure_deletes_labeled_examples_and_synthetic_truth(scored, people):
    theirs = scored["theirs"]["example"]

    erase_member(member_id=scored["member"].pk, actor=people["admin"])

    assert list(LabeledExample.objects.all()) == [theirs]
    assert not SyntheticTruth.objects.exists()


def test_erasure_redacts_the_audit_details_about_the_members_reviews(scored, people):
    mine = scored["mine"]
    member_id = scored["member"].pk
    current = AuditRecord.objects.get(kind="escalation", subject=f"review:{mine['escalated'].pk}")
    # An escalation audited before proposals were kept out of the trail.
    legacy = record_audit(
        kind=AuditRecord.Kind.ESCALATION,
        actor=people["analyst"],
        subject=f"review:{mine['escalated'].pk}",
        details={
            "reason": "needs-expert",
            "member": member_id,
            "proposal": {"verdict": "override", "churn_label": False},
        },
    )
    theirs_before = _snapshot(scored["theirs"])

    erase_member(member_id=member_id, actor=people["admin"])

    decision_record = AuditRecord.objects.get(
        kind="decision", subject=f"review:{mine['decided'].pk}"
    )
    assert decision_record.details == {
        "verdict": "override",
        "reason": "wrong-churn-call",
        "as": "expert",
        "member": member_id,
        "prediction": mine["decided"].prediction_id,
        # The control group's log stays: it says nothing about the member.
        "held_out": False,
        "holdout_reason": "",
        "announced": True,
        "redacted_at_erasure": ["action", "churn_label", "contact_rules_overridden"],
    }
    assert (decision_record.actor, decision_record.kind) == (people["expert"], "decision")
    escalations = dict(
        AuditRecord.objects.filter(
            kind="escalation", subject=f"review:{mine['escalated'].pk}"
        ).values_list("pk", "details")
    )
    assert escalations == {
        current.pk: {"reason": "needs-expert", "member": member_id, "with_proposal": True},
        legacy.pk: {
            "reason": "needs-expert",
            "member": member_id,
            "redacted_at_erasure": ["proposal"],
        },
    }
    assert _snapshot(scored["theirs"]) == theirs_before


def test_escalation_audits_say_whether_there_was_a_proposal_not_what_it_was(scored):
    record = AuditRecord.objects.get(
        kind="escalation", subject=f"review:{scored['mine']['escalated'].pk}"
    )

    assert record.details == {
        "reason": "needs-expert",
        "member": scored["member"].pk,
        "with_proposal": True,
    }


@pytest.fixture
def shared_cache(settings, tmp_path):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(tmp_path / "cache"),
        }
    }
    settings.SHARED_CACHE = True
    caches["default"].clear()


def test_erasure_deletes_notifications_about_the_member_and_forgets_unread_counts(
    scored, people, shared_cache
):
    expert = people["expert"]
    mine, theirs = scored["mine"], scored["theirs"]

    def note(subject: str, body: str = "", link: str = "") -> Notification:
        return Notification.objects.create(recipient=expert, subject=subject, body=body, link=link)

    note("A review needs you", link=reverse("reviews:review", args=[mine["decided"].pk]))
    note("Decide by Friday", link=reverse("reviews:decide", args=[mine["escalated"].pk]))
    note("Member H-42 called", body="About the bonus.")
    kept = [
        note("Member H-420 called", link=reverse("reviews:review", args=[theirs["decided"].pk])),
        note("3 analyst items passed the SLA", link=reverse("reviews:expert_queue")),
    ]
    assert unread_count(expert) == 5  # now cached

    erase_member(member_id=scored["member"].pk, actor=people["admin"])

    assert sorted(Notification.objects.values_list("pk", flat=True)) == sorted(
        note.pk for note in kept
    )
    assert unread_count(expert) == 2


def test_a_failing_receiver_rolls_the_whole_erasure_back(scored, people):
    member = scored["member"]
    before = _snapshot(scored["mine"])
    counts = (*_counts(), LabeledExample.objects.count(), SyntheticTruth.objects.count())

    def fail(sender, **kwargs):
        raise RuntimeError("a layer could not erase")

    member_erased.connect(fail)
    try:
        with pytest.raises(RuntimeError):
            erase_member(member_id=member.pk, actor=people["admin"])
    finally:
        member_erased.disconnect(fail)

    member.refresh_from_db()
    assert (member.external_id, member.erased_at) == ("H-42", None)
    assert _snapshot(scored["mine"]) == before
    assert (*_counts(), LabeledExample.objects.count(), SyntheticTruth.objects.count()) == counts
    assert not ErasureTombstone.objects.exists()
