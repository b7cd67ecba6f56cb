"""A member's reviews under erasure and export: what people wrote or decided about the member
is blanked or deleted when the member is erased, and every review, decision and labeled
example goes into the member's export.

Erasure keeps that each review existed and how it was routed and decided (kind, route, state,
risk and confidence, the times, the decision's verdict, reason code, role and decider): the
counts the law allows and the record that people did their job. It blanks what describes the
person: the review's tier, member value and priority (which encodes the value's percentile),
the route reason (it may say "member value in top 5 %"), the escalation comment and the
analyst's proposal, and the decision's comment and answer (churn call or action). Labeled
examples are deleted: they leave every future training set; so are the member's predictions
that no review holds yet (the next routing would queue them). Audit records about the
member's reviews keep their kind, actor, time and the allowed details (KEPT_AUDIT_DETAILS);
notifications that point at the member's reviews or name the member are deleted.
"""

import re
from collections.abc import Sequence

from django.db.models import Q
from django.dispatch import receiver
from django.urls import reverse

from loyalty import shared_cache
from loyalty.models import AuditRecord
from loyalty.services.erasure import member_erased
from predictions.models import Prediction
from reviews.models import Decision, LabeledExample, Notification, Review
from reviews.services.notifications import unread_count_key
from reviews.services.withdrawal import withdraw_pending_reviews

# The route reason of every review of an erased member (a person reads it in the history).
ERASED_ROUTE_REASON = "member erased"

# What the details of an audit record about a review keep once its member is erased: that a
# decision or an escalation happened, why (the reason code), in which role, on which
# prediction. The answer about the member and the analyst's proposal go.
KEPT_AUDIT_DETAILS = {
    AuditRecord.Kind.DECISION: ("verdict", "reason", "as", "member", "prediction"),
    AuditRecord.Kind.ESCALATION: ("reason", "member", "with_proposal"),
}
# The details key that lists what erasure took out of a record.
REDACTED_KEY = "redacted_at_erasure"

# Reviews handled per query: well under SQLite's limit on query parameters.
REVIEW_SLICE = 500


@receiver(member_erased, dispatch_uid="reviews.erase_member_reviews")
def erase_member_reviews(sender, *, member_id: int, external_id: str = "", **kwargs) -> None:
    """Runs in the erasure's transaction: everything below commits with it or not at all."""
    reviews = Review.objects.filter(member_id=member_id)
    review_ids = list(reviews.order_by("pk").values_list("pk", flat=True))
    withdraw_pending_reviews(member_ids=[member_id], why=ERASED_ROUTE_REASON)
    reviews.update(
        tier="",
        member_value=0.0,
        priority=0.0,
        route_reason=ERASED_ROUTE_REASON,
        escalation_comment="",
        analyst_proposal=None,
    )
    # Decisions are immutable to their model's save(); erasure is the one sanctioned change.
    Decision.objects.filter(review__member_id=member_id).update(
        comment="", churn_label=None, action=None
    )
    LabeledExample.objects.filter(member_id=member_id).delete()
    # A prediction not routed yet would put the erased member in a queue at the next routing;
    # it has no review, decision or label to keep.
    Prediction.objects.filter(member_id=member_id, review__isnull=True).delete()
    for start in range(0, len(review_ids), REVIEW_SLICE):
        _redact_audit_records(review_ids[start : start + REVIEW_SLICE])
    _delete_notifications(review_ids=review_ids, external_id=external_id)


def _redact_audit_records(review_ids: Sequence[int]) -> None:
    subjects = [f"review:{pk}" for pk in review_ids]
    for kind, kept in KEPT_AUDIT_DETAILS.items():
        records = AuditRecord.objects.filter(kind=kind, subject__in=subjects).values_list(
            "pk", "details"
        )
        for pk, details in records:
            removed = sorted(set(details) - set(kept) - {REDACTED_KEY})
            if not removed:
                continue
            redacted = {key: value for key, value in details.items() if key in kept}
            redacted[REDACTED_KEY] = sorted({*details.get(REDACTED_KEY, []), *removed})
            # Audit records are append-only to their model's save(); a redaction is the one
            # sanctioned change, and it keeps that the record happened.
            AuditRecord.objects.filter(pk=pk).update(details=redacted)


def _delete_notifications(*, review_ids: Sequence[int], external_id: str) -> None:
    """Delete the notifications that link to these reviews' pages or name the external id."""
    doomed: set[int] = set()
    for start in range(0, len(review_ids), REVIEW_SLICE):
        linking = Q(pk__in=[])
        for pk in review_ids[start : start + REVIEW_SLICE]:
            linking |= Q(link__startswith=reverse("reviews:review", args=[pk]))
        doomed.update(Notification.objects.filter(linking).values_list("pk", flat=True))
    if external_id:
        # The database finds candidates; the pattern keeps "M1" from matching "M10".
        whole_id = re.compile(rf"(?<![\w-]){re.escape(external_id)}(?![\w-])")
        candidates = Notification.objects.filter(
            Q(subject__contains=external_id) | Q(body__contains=external_id)
        ).values_list("pk", "subject", "body")
        doomed.update(
            pk
            for pk, subject, body in candidates
            if whole_id.search(subject) or whole_id.search(body)
        )
    if not doomed:
        return
    notes = Notification.objects.filter(pk__in=sorted(doomed))
    unread_recipients = set(
        notes.filter(read_at__isnull=True).values_list("recipient_id", flat=True)
    )
    notes.delete()
    # The unread count in every page's nav is cached per recipient.
    shared_cache.forget(*(unread_count_key(user_id) for user_id in sorted(unread_recipients)))


# --- export ------------------------------------------------------------------------------------


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
            "kind": review.kind,
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


def export_labeled_examples(member_id: int) -> list[dict]:
    """The training rows made of the member's decisions and outcomes, oldest first."""
    examples = (
        LabeledExample.objects.filter(member_id=member_id)
        .select_related("action")
        .order_by("observed_at", "pk")
    )
    return [
        {
            "id": example.pk,
            "source": example.source,
            "kind": example.kind,
            "prediction": example.prediction_id,
            "decision": example.decision_id,
            "model_version": example.model_version_id,
            "cutoff": example.cutoff,
            "churn_label": example.churn_label,
            "action": example.action.code if example.action else None,
            "treatment": example.treatment,
            "agrees_with_model": example.agrees_with_model,
            "weight": example.weight,
            "excluded": example.excluded,
            "feature_values": example.feature_values,
            "observed_at": example.observed_at,
        }
        for example in examples
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
