"""Auto-approvals are decisions: the policy decides (`decided_as="policy"`, nobody's name), the
decision leaves the product like a person's, and nothing reopens it afterwards: re-routing
moves only reviews without a decision, superseding only pending ones.

Routing calls `decide_auto_approvals` in the transaction that writes a batch's reviews, so a
review is never auto-approved without its decision, nor decided twice (the one-to-one
constraint, and the filter on reviews without one)."""

from django.db import transaction
from django.utils import timezone

from loyalty import outbox
from loyalty.control_groups import control_settings, holdout_for
from loyalty.sequences import next_values
from predictions.calls import model_churn_call
from reviews.models import Decision, ReasonCode, Review
from reviews.services.decision_events import decision_emission, repeat_silences

AUTO_APPROVAL_REASON = "auto-approved"
# What a policy decision and its event read of a review (`decision_events.decision_data`): the
# prediction's and the model version's stored bulk (features, explanation, metrics) stays in
# the database, where it is most of the read.
DECIDED_REVIEW_FIELDS = (
    "pk",
    "kind",
    "state",
    "member_id",
    "prediction_id",
    "action_prediction",
    "recommended_action",
    "member__external_id",
    "prediction__score",
    "prediction__model_version__kind",
    "prediction__model_version__status",
)


def auto_approval_reason() -> ReasonCode:
    """The reason of every policy decision: not one a person can pick (inactive)."""
    reason, _ = ReasonCode.objects.get_or_create(
        code=AUTO_APPROVAL_REASON,
        defaults={
            "label": "Approved automatically by the escalation policy",
            "treatment": ReasonCode.Treatment.CONFIRM,
            "is_active": False,
        },
    )
    return reason


def decide_auto_approvals(*, review_ids: list[int]) -> int:
    """The policy decisions of the auto-approved reviews among `review_ids` that have none yet,
    announced in this transaction (a repeat within its cooldown is recorded silently; a
    held-out one is announced as held out). Returns how many were made."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("decide_auto_approvals needs the routing batch's transaction")
    reviews = list(
        Review.objects.filter(
            pk__in=review_ids, state=Review.State.AUTO_APPROVED, decision__isnull=True
        )
        .select_related("member", "prediction__model_version", "recommended_action")
        .only(*DECIDED_REVIEW_FIELDS)
        .order_by("pk")
    )
    if not reviews:
        return 0
    reason = auto_approval_reason()
    settings = control_settings()
    now = timezone.now()
    actions = [
        review.recommended_action if review.recommends_action else None for review in reviews
    ]
    churn_calls = [
        model_churn_call(review.prediction.score) if review.settles_churn_call else None
        for review in reviews
    ]
    silences = repeat_silences(
        [
            (review.member_id, review.decision_kind, action, churn_call)
            for review, action, churn_call in zip(reviews, actions, churn_calls, strict=True)
        ],
        now=now,
    )
    decisions = []
    for review, action, churn_call, silence, sequence in zip(
        reviews, actions, churn_calls, silences, next_values("decision", len(reviews)), strict=True
    ):
        holdout = holdout_for(
            member_id=review.member_id,
            action=action,
            subject=f"prediction:{review.prediction_id}",
            settings=settings,
        )
        decisions.append(
            Decision(
                review=review,
                member_id=review.member_id,
                verdict=Decision.Verdict.APPROVE,
                decided_by=None,
                decided_as=Decision.POLICY,
                reason=reason,
                settled_action=action,
                # A case's decision carries its churn call, whoever made it.
                churn_label=churn_call if review.is_case else None,
                held_out=holdout.held_out,
                holdout_reason=holdout.reason,
                holdout_draw=holdout.draw,
                announced=not silence,
                silenced_because=silence,
                sequence=sequence,
            )
        )
    Decision.objects.bulk_create(decisions)
    Review.objects.filter(pk__in=[review.pk for review in reviews]).update(decided_at=now)
    outbox.emit_many(decision_emission(decision) for decision in decisions if decision.announced)
    return len(decisions)
