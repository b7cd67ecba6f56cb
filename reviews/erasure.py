"""A member's reviews under erasure: what people wrote or decided about the member is blanked
or deleted when the member is erased (the export of the same records is `reviews.export`).

Erasure keeps that each review existed and how it was routed and decided (kind, route, state,
risk and confidence, the times, the decision's verdict, reason code, role and decider): the
counts the law allows and the record that people did their job. It blanks what describes the
person: the review's tier, member value and priority (which encodes the value's percentile),
the route reason (it may say "member value in top 5 %"), the escalation comment and the
analyst's proposal, and the decision's comment and answer (churn call or action); a blind
answer (the person's own call before seeing the model's) is deleted. The
member's predictions that no review holds yet are deleted (the next routing would queue
them); labeled examples are the learning loop's to delete (`learning.erasure`). Audit
records about the member's reviews keep their kind, actor, time and the allowed details
(KEPT_AUDIT_DETAILS); notifications that point at the member's reviews or name the member
are deleted.
"""

import re
from collections.abc import Sequence

from django.db.models import Q
from django.dispatch import receiver
from django.urls import reverse

from loyalty import shared_cache
from loyalty.models import AuditRecord
from loyalty.signals import member_erased
from predictions.models import Prediction
from reviews.models import BlindAnswer, Decision, Notification, Review
from reviews.selectors.notifications import unread_count_key
from reviews.services.withdrawal import withdraw_pending_reviews

# The route reason of every review of an erased member (a person reads it in the history).
ERASED_ROUTE_REASON = "member erased"

# What the details of an audit record about a review keep once its member is erased: that a
# decision or an escalation happened, why (the reason code), in which role, on which
# prediction. The answer about the member and the analyst's proposal go.
KEPT_AUDIT_DETAILS = {
    # Whether a decision was held out is the control group's log, nothing about the member.
    AuditRecord.Kind.DECISION: (
        "verdict",
        "reason",
        "as",
        "member",
        "prediction",
        "held_out",
        "holdout_reason",
        "announced",
    ),
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
        rfm_segment="",
        member_value=0.0,
        priority=0.0,
        route_reason=ERASED_ROUTE_REASON,
        escalation_comment="",
        analyst_proposal=None,
        # Worked out from the member's value and consent: they go with them.
        expected_value=None,
        contact_flags=[],
    )
    # Decisions are immutable to their model's save(); erasure is the one sanctioned change.
    Decision.objects.filter(review__member_id=member_id).update(
        comment="", churn_label=None, action=None, settled_action=None, contact_flags=[]
    )
    # A blind answer is a person's call about the member, and nothing else: it goes whole.
    BlindAnswer.objects.filter(review__member_id=member_id).delete()
    # A prediction not routed yet would put the erased member in a queue at the next routing;
    # it has no review, decision or label to keep. A next-action prediction a case carries is
    # the case's: it stays, blanked like the case's churn prediction.
    Prediction.objects.filter(
        member_id=member_id, review__isnull=True, case_reviews__isnull=True
    ).delete()
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
