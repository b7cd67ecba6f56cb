"""Escalation over time: an analyst item left waiting past its SLA goes to the experts.

`due_at` is set when an item is routed (routed_at + the policy's sla_hours). The periodic task
moves every pending analyst item whose due time has passed to the expert queue, says why in its
route reason, audits it, and tells the experts (one notification per run, not one per item).
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from reviews.models import Review
from reviews.permissions import DECIDE_ESCALATED
from reviews.selectors.queue import overdue_analyst_items
from reviews.services.notifications import notify, users_with_permission

SLA_BATCH = 1000


@dataclass(frozen=True)
class SlaResult:
    escalated: int
    notified: int


def escalate_overdue(*, now: datetime | None = None) -> SlaResult:
    """Move exactly the overdue pending analyst items to the expert queue."""
    now = now or timezone.now()
    escalated = 0
    while True:
        with transaction.atomic():
            batch = list(
                overdue_analyst_items(now=now)
                .select_for_update(skip_locked=True)
                .select_related("policy")
                .order_by("due_at", "pk")[:SLA_BATCH]
            )
            if not batch:
                break
            for review in batch:
                waited = (now - review.routed_at).total_seconds() / 3600
                review.route = Review.Route.EXPERT
                review.route_reason = (
                    f"escalated: waited {waited:.0f} h, past the {review.policy.sla_hours} h SLA "
                    f"(was: {review.route_reason})"
                )[:300]
                review.escalated_at = now
            Review.objects.bulk_update(batch, ["route", "route_reason", "escalated_at"])
            record_audit(
                kind=AuditRecord.Kind.ESCALATION,
                actor=None,
                subject="sla",
                details={"reviews": [review.pk for review in batch], "reason": "sla"},
            )
        escalated += len(batch)
    notified = 0
    if escalated:
        experts = list(users_with_permission(DECIDE_ESCALATED))
        notify(
            recipients=experts,
            subject=f"{escalated} analyst item{'s' if escalated != 1 else ''} passed the SLA",
            body=(
                f"{escalated} item{'s' if escalated != 1 else ''} waited longer than the "
                "escalation policy allows and moved to the expert queue."
            ),
            link=reverse("reviews:expert_queue"),
        )
        notified = len(experts)
    return SlaResult(escalated=escalated, notified=notified)
