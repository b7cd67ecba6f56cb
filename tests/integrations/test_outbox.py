"""The outbox: written in the transaction of the change it announces, by every change the
issue lists, with the member named by the pseudonymous id only, and redacted at erasure."""

import pytest
from django.db import transaction

from loyalty import outbox
from loyalty.models import Member, OutboxEvent
from loyalty.services.erasure import erase_member
from loyalty.services.members import set_consent
from predictions.models import ModelVersion
from predictions.services.registry import promote_model_version, rollback_model_version
from reviews.services.automation import pause_auto_approval, resume_auto_approval
from reviews.services.decisions import (
    approve_prediction,
    escalate_review,
    override_prediction,
)
from tests.factories import MemberFactory, ModelVersionFactory

pytestmark = pytest.mark.django_db


def _events(event_type: str) -> list[OutboxEvent]:
    """The events of a type, but those of the policy's own decisions: the `routed` fixture's
    auto-approval is announced as it is routed (tests/reviews/test_policy_decisions.py)."""
    events = OutboxEvent.objects.filter(type=event_type).order_by("pk")
    return [event for event in events if event.data.get("decided_as") != "policy"]


def test_an_unknown_event_type_is_refused():
    with pytest.raises(ValueError, match="Unknown outbox event type"):
        with transaction.atomic():
            outbox.emit("decision.made", {})
    assert not OutboxEvent.objects.exists()


def test_an_event_rolls_back_with_its_change():
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            outbox.emit(outbox.MODEL_PROMOTED, {"model_version_id": 1})
            raise RuntimeError("the change failed")
    assert not OutboxEvent.objects.exists()


def test_every_event_type_has_a_schema_in_the_openapi_document(tmp_path):
    import yaml
    from django.core.management import call_command

    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())

    assert set(schema["webhooks"]) == set(outbox.EVENT_TYPES)
    body = schema["webhooks"]["decision.created"]["post"]["requestBody"]
    reference = body["content"]["application/json"]["schema"]["$ref"]
    assert reference == "#/components/schemas/DecisionCreatedWebhookV1"
    assert "decision_id" in schema["components"]["schemas"]["DecisionEvent"]["properties"]


def test_an_approval_emits_decision_created_with_the_model_call(routed, make_user):
    review = routed["analyst"]  # score 0.3: the model's call is "stays"

    decision = approve_prediction(
        review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    [event] = _events(outbox.DECISION_CREATED)
    assert event.member_id == review.member_id
    assert event.data["decision_id"] == decision.pk
    assert event.data["sequence"] == decision.sequence
    assert event.data["member_external_id"] == review.member.external_id
    assert (event.data["kind"], event.data["verdict"]) == ("churn", "approve")
    assert (event.data["churn_call"], event.data["action_code"]) == (False, None)
    assert (event.data["held_out"], event.data["decided_as"]) == (False, "analyst")
    assert event.data["model_version_id"] == review.prediction.model_version_id
    assert event.data["score"] == pytest.approx(0.3)


def test_an_override_emits_the_persons_answer(routed, next_action_review, make_user):
    expert = make_user("expert")

    override_prediction(
        review_id=routed["expert"].pk,
        actor=expert,
        reason_code="wrong-churn-call",
        churn_label=True,
    )
    override_prediction(
        review_id=next_action_review.pk,
        actor=expert,
        reason_code="better-action",
        action_code="win_back_email",
    )

    churn, action = _events(outbox.DECISION_CREATED)
    assert (churn.data["churn_call"], churn.data["action_code"]) == (True, None)
    assert (action.data["churn_call"], action.data["action_code"]) == (None, "win_back_email")
    assert churn.data["sequence"] < action.data["sequence"]


def test_approving_a_next_action_emits_the_recommended_action(next_action_review, make_user):
    from loyalty.models import Action
    from predictions.models import Prediction

    Prediction.objects.filter(pk=next_action_review.prediction_id).update(
        recommended_action=Action.objects.get(code="bonus_points")
    )
    approve_prediction(
        review_id=next_action_review.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    [event] = _events(outbox.DECISION_CREATED)
    assert event.data["action_code"] == "bonus_points"


def test_a_repeated_decision_emits_nothing_new(routed, make_user):
    analyst = make_user("analyst")
    for _ in range(2):
        approve_prediction(
            review_id=routed["analyst"].pk, actor=analyst, reason_code="model-correct"
        )

    assert len(_events(outbox.DECISION_CREATED)) == 1


def test_an_escalation_emits_review_escalated(routed, make_user):
    review = routed["analyst"]
    escalate_review(review_id=review.pk, actor=make_user("analyst"), reason_code="needs-expert")

    [event] = _events(outbox.REVIEW_ESCALATED)
    assert event.data["review_id"] == review.pk
    assert event.data["reason_code"] == "needs-expert"
    assert event.data["member_external_id"] == review.member.external_id


def test_erasure_emits_the_former_id_and_redacts_earlier_events(routed, make_user):
    review = routed["analyst"]
    former = review.member.external_id
    approve_prediction(review_id=review.pk, actor=make_user("analyst"), reason_code="model-correct")

    erase_member(member_id=review.member_id, actor=None)

    [erased] = _events(outbox.MEMBER_ERASED)
    assert erased.data["member_external_id"] == former
    assert erased.redacted_at is None  # it must name the member until delivered
    [decided] = _events(outbox.DECISION_CREATED)
    assert decided.data["member_external_id"] == f"erased-{review.member_id}"
    assert decided.redacted_at is not None
    assert not OutboxEvent.objects.filter(data__icontains=former).exclude(pk=erased.pk).exists()


def test_the_erasure_event_is_redacted_once_no_delivery_is_pending(routed):
    from integrations.services.delivery import fan_out

    member = routed["analyst"].member
    erase_member(member_id=member.pk, actor=None)

    fan_out()  # no endpoint: nothing to deliver, so nothing waits for the id

    [erased] = _events(outbox.MEMBER_ERASED)
    assert erased.data["member_external_id"] == f"erased-{member.pk}"
    assert erased.redacted_at is not None


def test_withdrawing_consent_emits_an_event_and_granting_does_not():
    member = MemberFactory(consent_profiling=True)

    set_consent(member=member, consent=False, actor=None)
    set_consent(member=member, consent=True, actor=None)

    [event] = _events(outbox.MEMBER_CONSENT_WITHDRAWN)
    assert event.member_id == member.pk
    assert event.data["member_external_id"] == Member.objects.get(pk=member.pk).external_id
    assert event.data["withdrawn_at"] is not None


def test_promotion_and_rollback_emit_model_promoted():
    first = ModelVersionFactory(kind="churn", status=ModelVersion.Status.RETIRED)
    second = ModelVersionFactory(kind="churn", status=ModelVersion.Status.RETIRED)
    promote_model_version(version_id=first.pk, actor=None)
    promote_model_version(version_id=second.pk, actor=None)

    rollback_model_version(kind="churn", actor=None)

    events = [event.data for event in _events(outbox.MODEL_PROMOTED)]
    assert [
        (e["model_version_id"], e["retired_model_version_id"], e["rollback"]) for e in events
    ] == [
        (first.pk, None, False),
        (second.pk, first.pk, False),
        (first.pk, second.pk, True),
    ]


def test_pausing_and_resuming_automation_emit_events():
    pause_auto_approval(kind="churn", reason="calibration drifted")
    pause_auto_approval(kind="churn", reason="again")  # already paused: nothing new
    resume_auto_approval(kind="churn", actor=None, reason="recalibrated")

    [paused] = _events(outbox.AUTOMATION_PAUSED)
    [resumed] = _events(outbox.AUTOMATION_RESUMED)
    assert (paused.data["kind"], paused.data["reason"]) == ("churn", "calibration drifted")
    assert resumed.data["reason"] == "recalibrated"


@pytest.mark.django_db(transaction=True)
def test_emit_outside_a_transaction_is_refused_and_the_signal_follows_the_commit():
    from loyalty.outbox import outbox_committed

    with pytest.raises(RuntimeError, match="inside the transaction"):
        outbox.emit(outbox.MODEL_PROMOTED, {})

    heard = []

    def listen(sender, event_ids, **kwargs):
        heard.append(list(event_ids))

    outbox_committed.connect(listen)
    try:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                outbox.emit(outbox.MODEL_PROMOTED, {"model_version_id": 1})
                raise RuntimeError("rolled back")
        assert heard == []
        with transaction.atomic():
            event = outbox.emit(outbox.MODEL_PROMOTED, {"model_version_id": 2})
            assert heard == []  # not before the commit
        assert heard == [[event.pk]]
    finally:
        outbox_committed.disconnect(listen)
