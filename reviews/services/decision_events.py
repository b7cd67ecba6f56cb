"""What a decision says to the systems that act on it: one shape for the webhook event, the
pull feed and the export, built here from the decision and its prediction."""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from loyalty import outbox
from loyalty.models import Action
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import CASE, Decision, Review

# What a feed or event needs of a decision, in one query per page.
DECISION_RELATIONS = (
    "reason",
    "action",
    "decided_by",
    "review__member",
    "review__prediction__model_version",
    "settled_action",
)


def settled_action(review: Review, verdict: str, override_action: Action | None) -> Action | None:
    """The action a decision settles on: on a review that recommends one (a case, a next-action
    review), the recommendation (ranked by its policy, `action_ranking`) when approved, the
    person's when overridden (a case overridden on its churn call alone keeps the
    recommendation); a churn review settles none."""
    if not review.recommends_action:
        return None
    if verdict == Decision.Verdict.OVERRIDE and (override_action or not review.is_case):
        return override_action
    return review.recommended_action


def decided_action_code(decision: Decision) -> str | None:
    action = decision.settled_action
    return action.code if action is not None else None


def settled_churn_call(review: Review, verdict: str, churn_label: bool | None) -> bool | None:
    """The churn call a decision settles on: the model's when approved, the person's when
    overridden (a case's decision always carries its call; one overridden on its action alone
    keeps the model's); a next-action review settles none."""
    if not review.settles_churn_call:
        return None
    if churn_label is not None and (verdict == Decision.Verdict.OVERRIDE or review.is_case):
        return churn_label
    return model_churn_call(review.prediction.score)


def decided_churn_call(decision: Decision) -> bool | None:
    return settled_churn_call(decision.review, decision.verdict, decision.churn_label)


def decision_data(decision: Decision) -> dict[str, Any]:
    """The decision as it leaves the product (schema: `DecisionEvent` in the OpenAPI document).
    The member is named by the pseudonymous external id only."""
    review: Review = decision.review
    prediction = review.prediction
    return {
        "decision_id": decision.pk,
        "sequence": decision.sequence,
        "held_out": decision.held_out,
        "announced": decision.announced,
        "contact_rules_overridden": list(decision.contact_flags or ()),
        "member_external_id": review.member.external_id,
        "kind": review.decision_kind,
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
        "action_prediction_id": review.action_prediction_id,
    }


def decision_emission(decision: Decision) -> outbox.Emission:
    """The event that announces a decision: `decision.created`, or for a held-out decision
    only `decision.held_out`, so that a receiver that ignores the flag still cannot act on it."""
    event_type = outbox.DECISION_HELD_OUT if decision.held_out else outbox.DECISION_CREATED
    return outbox.Emission(
        type=event_type, data=decision_data(decision), member_id=decision.review.member_id
    )


def emit_decision(decision: Decision) -> None:
    """Announce the decision in the caller's transaction, unless it was recorded silently
    (`repeat_silences`)."""
    if decision.announced:
        outbox.emit_many([decision_emission(decision)])


# How long the same churn call, or no action, stays a repeat (an action has its own cooldown).
NO_ACTION_COOLDOWN = timedelta(days=30)


def repeat_silences(
    decisions: Sequence[tuple[int, str, Action | None, bool | None]], *, now: datetime
) -> list[str]:
    """For decisions about to be made, `(member_id, kind, settled action, settled churn call)`
    each (`kind`: a review's `decision_kind`): why each is recorded without being announced
    ('' when it goes out). A re-score sends nothing new for a member unless what is decided
    changes (the action, for a case or a next-action review; the churn call, for a churn
    review) or the cooldown has passed since the same was last announced to them (the
    action's own; else NO_ACTION_COOLDOWN)."""
    member_ids = {member_id for member_id, *_ in decisions}
    last: dict[tuple[int, str], tuple[object, datetime]] = {}
    rows = (
        Decision.objects.filter(member_id__in=member_ids, announced=True)
        .order_by("member_id", "-decided_at", "-pk")
        .values_list(
            "member_id",
            "review__kind",
            "review__action_prediction_id",
            "settled_action_id",
            "verdict",
            "churn_label",
            "review__prediction__score",
            "decided_at",
        )
    )
    for member_id, kind, carried, action_id, verdict, churn_label, score, decided_at in rows:
        kind = CASE if carried is not None else kind
        if kind == PredictionKind.CHURN:
            settled = (
                churn_label if verdict == Decision.Verdict.OVERRIDE else model_churn_call(score)
            )
        else:
            settled = action_id
        last.setdefault((member_id, _settles(kind)), (settled, decided_at))
    reasons = []
    for member_id, kind, action, churn_call in decisions:
        settled = churn_call if kind == PredictionKind.CHURN else (action.pk if action else None)
        previous = last.get((member_id, _settles(kind)))
        if previous is None or previous[0] != settled:
            reasons.append("")
            continue
        cooldown = (
            timedelta(days=action.cooldown_days) if action is not None else NO_ACTION_COOLDOWN
        )
        if previous[1] + cooldown <= now:
            reasons.append("")
            continue
        if kind == PredictionKind.CHURN:
            what = f"the same churn call ({'will churn' if churn_call else 'will stay'})"
        else:
            what = action.name if action is not None else "no action"
        reasons.append(
            f"{what} was announced for this member on {previous[1]:%Y-%m-%d}; it is not sent "
            f"again within its {cooldown.days}-day cooldown"
        )
    return reasons


def _settles(kind: str) -> str:
    """What a decision of `kind` is compared on for a repeat: the churn call of a churn review,
    the action of anything else (a case and a next-action review compare alike)."""
    return "churn call" if kind == PredictionKind.CHURN else "action"


def emit_escalation(review: Review, *, reason_code: str) -> None:
    """Announce an escalation in the caller's transaction (`review.escalated`)."""
    outbox.emit(
        outbox.REVIEW_ESCALATED,
        {
            "review_id": review.pk,
            "member_external_id": review.member.external_id,
            "kind": review.decision_kind,
            "reason_code": reason_code,
            "escalated_at": review.escalated_at.isoformat(),
        },
        member_id=review.member_id,
    )
