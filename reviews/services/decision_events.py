"""What a decision says to the systems that act on it: one shape for the webhook event, the
pull feed and the export, built here from the decision and its prediction."""

from typing import Any

from loyalty import outbox
from loyalty.models import Action
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import Decision, Review

# What a feed or event needs of a decision, in one query per page.
DECISION_RELATIONS = (
    "reason",
    "action",
    "decided_by",
    "review__member",
    "review__prediction__model_version",
    "review__prediction__recommended_action",
)


def settled_action(review: Review, verdict: str, override_action: Action | None) -> Action | None:
    """The action a decision settles on: on a next-action review, the model's recommended
    action when approved, the person's when overridden; a churn review settles none."""
    if review.kind != PredictionKind.NEXT_ACTION:
        return None
    if verdict == Decision.Verdict.OVERRIDE:
        return override_action
    return review.prediction.recommended_action


def decided_action_code(decision: Decision) -> str | None:
    action = settled_action(decision.review, decision.verdict, decision.action)
    return action.code if action is not None else None


def decided_churn_call(decision: Decision) -> bool | None:
    """The churn call the decision settles on: the model's when approved, the person's when
    overridden; a next-action review settles none."""
    review = decision.review
    if review.kind != PredictionKind.CHURN:
        return None
    if decision.verdict == Decision.Verdict.OVERRIDE:
        return decision.churn_label
    return model_churn_call(review.prediction.score)


def decision_data(decision: Decision) -> dict[str, Any]:
    """The decision as it leaves the product (schema: `DecisionEvent` in the OpenAPI document).
    The member is named by the pseudonymous external id only."""
    review: Review = decision.review
    prediction = review.prediction
    return {
        "decision_id": decision.pk,
        "sequence": decision.sequence,
        "held_out": decision.held_out,
        "member_external_id": review.member.external_id,
        "kind": review.kind,
        "verdict": decision.verdict,
        "action_code": decided_action_code(decision),
        "churn_call": decided_churn_call(decision),
        "score": prediction.score,
        "model_version_id": prediction.model_version_id,
        "model_version": str(prediction.model_version),
        "reason_code": decision.reason.code,
        "decided_as": decision.decided_as,
        "decided_at": decision.decided_at.isoformat(),
        "review_id": review.pk,
        "prediction_id": prediction.pk,
    }


def emit_decision(decision: Decision) -> None:
    """Announce the decision in the caller's transaction: `decision.created`, or for a
    held-out decision only `decision.held_out`, so that a receiver that ignores the flag
    still cannot act on it."""
    event_type = outbox.DECISION_HELD_OUT if decision.held_out else outbox.DECISION_CREATED
    outbox.emit(event_type, decision_data(decision), member_id=decision.review.member_id)


def emit_escalation(review: Review, *, reason_code: str) -> None:
    """Announce an escalation in the caller's transaction (`review.escalated`)."""
    outbox.emit(
        outbox.REVIEW_ESCALATED,
        {
            "review_id": review.pk,
            "member_external_id": review.member.external_id,
            "kind": review.kind,
            "reason_code": reason_code,
            "escalated_at": review.escalated_at.isoformat(),
        },
        member_id=review.member_id,
    )
