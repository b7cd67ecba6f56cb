"""A member's reviews, decisions and the audit records about them, for the member's export."""

from loyalty.models import AuditRecord
from reviews.erasure import KEPT_AUDIT_DETAILS, REVIEW_SLICE
from reviews.models import BlindAnswer, Decision, Review


def export_reviews(member_id: int) -> list[dict]:
    """The member's reviews, oldest first. Staff identities are left out: they are the staff's
    personal data, not the member's (the role that decided is in `decisions`)."""
    reviews = (
        Review.objects.filter(member_id=member_id)
        .select_related("escalation_reason")
        .order_by("created_at", "pk")
    )
    return [
        {
            "id": review.pk,
            "prediction": review.prediction_id,
            "action_prediction": review.action_prediction_id,
            "kind": review.decision_kind,
            "route": review.route,
            "state": review.state,
            "route_reason": review.route_reason,
            "policy": review.policy_id,
            "priority": review.priority,
            "tier": review.tier,
            "member_value": review.member_value,
            "risk": review.risk,
            "confidence": review.confidence,
            "created_at": review.created_at,
            "routed_at": review.routed_at,
            "due_at": review.due_at,
            "escalated_at": review.escalated_at,
            "escalation_reason": (
                review.escalation_reason.code if review.escalation_reason else None
            ),
            "escalation_comment": review.escalation_comment,
            "analyst_proposal": review.analyst_proposal,
            "decided_at": review.decided_at,
        }
        for review in reviews
    ]


def export_decisions(member_id: int) -> list[dict]:
    """The decisions on the member's reviews, oldest first."""
    decisions = (
        Decision.objects.filter(review__member_id=member_id)
        .select_related("reason", "action")
        .order_by("decided_at", "pk")
    )
    return [
        {
            "id": decision.pk,
            "review": decision.review_id,
            "verdict": decision.verdict,
            "decided_as": decision.decided_as,
            "decided_at": decision.decided_at,
            "reason": decision.reason.code,
            "comment": decision.comment,
            "churn_label": decision.churn_label,
            "action": decision.action.code if decision.action else None,
        }
        for decision in decisions
    ]


def export_blind_answers(member_id: int) -> list[dict]:
    """The answers people gave about the member before seeing the model's (blind review)."""
    answers = (
        BlindAnswer.objects.filter(review__member_id=member_id)
        .select_related("action")
        .order_by("committed_at", "pk")
    )
    return [
        {
            "review": answer.review_id,
            "committed_at": answer.committed_at,
            "churn_label": answer.churn_label,
            "action": answer.action.code if answer.action else None,
            "model_churn_call": answer.model_churn_call,
        }
        for answer in answers
    ]


def export_review_audit_records(member_id: int) -> list[dict]:
    """The audit records about the member's reviews (decisions, escalations), oldest first."""
    review_ids = list(Review.objects.filter(member_id=member_id).values_list("pk", flat=True))
    records = []
    for start in range(0, len(review_ids), REVIEW_SLICE):
        subjects = [f"review:{pk}" for pk in review_ids[start : start + REVIEW_SLICE]]
        records += AuditRecord.objects.filter(
            kind__in=list(KEPT_AUDIT_DETAILS), subject__in=subjects
        ).values("id", "occurred_at", "kind", "subject", "details")
    return sorted(records, key=lambda record: (record["occurred_at"], record["id"]))
