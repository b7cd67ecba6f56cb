"""Deciding reviews: approve, override, escalate. One decision per review, ever.

A repeated identical request returns the first decision; a different one raises
ReviewAlreadyDecided (HTTP 409). The row is locked (`select_for_update`) and the one-to-one
constraint stands behind it, so two people deciding at once get one decision and one conflict.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.control_groups import holdout_for
from loyalty.exceptions import require_permission
from loyalty.models import Action, AuditRecord
from loyalty.sequences import next_values
from loyalty.services.audit import record_audit
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.exceptions import (
    InvalidDecision,
    ReviewAlreadyDecided,
    ReviewNotFound,
    ReviewNotOpen,
    ReviewNotYours,
)
from reviews.models import CASE, VERDICT_TREATMENTS, BlindAnswer, Decision, ReasonCode, Review
from reviews.permissions import DECIDE, DECIDE_ESCALATED, visible_reviews
from reviews.services.capacity import WAITING_NOT_DECIDABLE, request_drain
from reviews.services.contact_rules import flags_now, lock_for_rules
from reviews.services.decision_events import (
    emit_decision,
    emit_escalation,
    repeat_silences,
    settled_action,
    settled_churn_call,
)
from reviews.services.openings import seconds_on_item
from reviews.signals import decision_recorded

BLIND_ANSWER_FIRST = (
    "This item is blind: commit your own answer first; then the model's is shown and you decide."
)
# The answer fields a decision may carry besides its reason, and what can be wrong with one.
CHURN_CALL, ACTION = "churn_label", "action_code"
# A case's override takes either answer or both: what it needs is one of them.
EITHER = "either"
MISSING, NOT_TAKEN = "missing", "not taken"
_ANSWER_ERRORS = {
    None: "An approval takes the model's answer; give no other answer.",
    CHURN_CALL: "Overriding a churn call needs the right call: churn or stay.",
    ACTION: "Overriding a next action needs the right action.",
    EITHER: "Overriding a case needs another action, the corrected churn call, or both.",
}


def _reason(code: str, verdict: str) -> ReasonCode:
    """The active reason code, if it may back this verdict (`ReasonCode.fits`)."""
    try:
        reason = ReasonCode.objects.get(code=code, is_active=True)
    except ReasonCode.DoesNotExist as error:
        raise InvalidDecision(f"Unknown reason code {code!r}.", reason_code=code) from error
    if not reason.fits(verdict):
        fitting = ReasonCode.objects.filter(
            is_active=True, treatment__in=VERDICT_TREATMENTS[verdict]
        ).order_by("code")
        raise InvalidDecision(
            f"The reason {code!r} ({reason.get_treatment_display().lower()}) does not fit "
            f"{'an' if verdict[0] in 'aeiou' else 'a'} {verdict}; use one of: "
            f"{', '.join(fitting.values_list('code', flat=True))}.",
            reason_code=code,
        )
    return reason


def lock_review(review_id: int, actor: AbstractBaseUser | None) -> Review:
    """The review, row-locked, if the actor may see it (the visibility rule comes before
    anything else: an id they may not see answers as no id). `actor=None` is the system."""
    reviews = Review.objects.select_for_update(of=("self",)).select_related(
        "member", "prediction__model_version", "recommended_action"
    )
    if actor is not None:
        reviews = visible_reviews(actor, reviews)
    try:
        return reviews.get(pk=review_id)
    except Review.DoesNotExist as error:
        raise ReviewNotFound("No such review.") from error


def decider_role(review: Review, actor: AbstractBaseUser) -> str:
    """The role the actor decides this review in; refuses a review outside their role."""
    require_permission(actor, DECIDE)
    if actor.has_perm(DECIDE_ESCALATED):
        return "expert"
    if review.route != Review.Route.ANALYST:
        raise ReviewNotYours(
            "Only an expert can decide this review.", review_id=review.pk, route=review.route
        )
    return "analyst"


def approve_prediction(
    *,
    review_id: int,
    actor: AbstractBaseUser,
    reason_code: str,
    comment: str = "",
    override_contact_rules: bool = False,
) -> Decision:
    """Accept what the model said."""
    return decide_review(
        review_id=review_id,
        actor=actor,
        verdict=Decision.Verdict.APPROVE,
        reason_code=reason_code,
        comment=comment,
        override_contact_rules=override_contact_rules,
    )[0]


def override_prediction(
    *,
    review_id: int,
    actor: AbstractBaseUser,
    reason_code: str,
    churn_label: bool | None = None,
    action_code: str | None = None,
    comment: str = "",
    override_contact_rules: bool = False,
) -> Decision:
    """Replace the model's answer: the right churn call, or the right action."""
    return decide_review(
        review_id=review_id,
        actor=actor,
        verdict=Decision.Verdict.OVERRIDE,
        reason_code=reason_code,
        comment=comment,
        churn_label=churn_label,
        action_code=action_code,
        override_contact_rules=override_contact_rules,
    )[0]


@transaction.atomic
def decide_review(
    *,
    review_id: int,
    actor: AbstractBaseUser,
    verdict: str,
    reason_code: str,
    comment: str = "",
    churn_label: bool | None = None,
    action_code: str | None = None,
    override_contact_rules: bool = False,
) -> tuple[Decision, bool]:
    """Approve or override; `(decision, created)`, where `created` is False when the identical
    decision was made before (a repeated request) and that one is returned.

    A decision that would break a contact rule (`contact_rules`, checked now: consent as it
    stands, the caps and budgets with every decision committed before it) is refused unless
    the person overrides the rules and says why in the comment."""
    review = lock_review(review_id, actor)
    role = decider_role(review, actor)
    if review.state == Review.State.SUPERSEDED:
        raise ReviewNotOpen(
            "A newer prediction replaced this one before anyone decided it; "
            "decide the member's current review instead.",
            review_id=review.pk,
        )
    if review.state == Review.State.WITHDRAWN:
        raise ReviewNotOpen(
            "The member withdrew consent to profiling: this review left the queues and "
            "cannot be decided.",
            review_id=review.pk,
        )
    if review.is_waiting:
        raise ReviewNotOpen(WAITING_NOT_DECIDABLE, review_id=review.pk)
    if review.is_blind and not BlindAnswer.objects.filter(review=review).exists():
        raise ReviewNotOpen(BLIND_ANSWER_FIRST, review_id=review.pk)
    reason = _reason(reason_code, verdict)
    action = _answer_action(review, verdict, churn_label, action_code)
    if review.is_case:  # a case's decision carries its churn call, confirmed or corrected
        churn_label = settled_churn_call(review, verdict, churn_label)
    earlier = (
        Decision.objects.select_related("reason", "action", "decided_by")
        .filter(review=review)
        .first()
    )
    if earlier is not None:
        same = (
            earlier.verdict == verdict
            and earlier.reason_id == reason.pk
            and earlier.churn_label == churn_label
            and earlier.action_id == (action.pk if action else None)
        )
        if same:
            return earlier, False
        raise ReviewAlreadyDecided(
            f"This review was already decided ({earlier.verdict}) by {earlier.decider}.",
            review_id=review.pk,
            verdict=earlier.verdict,
        )
    settled = settled_action(review, verdict, action)
    now = timezone.now()
    lock_for_rules(member_id=review.member_id, action=settled)
    broken, described = flags_now(member_id=review.member_id, action=settled, now=now)
    if broken and not (override_contact_rules and comment.strip()):
        raise InvalidDecision(
            f"This decision breaks the contact rules: {described}. To send it anyway, "
            "override the contact rules and say why in the comment.",
            contact_rules=broken,
        )
    silence = repeat_silences(
        [
            (
                review.member_id,
                review.decision_kind,
                settled,
                settled_churn_call(review, verdict, churn_label),
            )
        ],
        now=now,
    )[0]
    holdout = holdout_for(
        member_id=review.member_id, action=settled, subject=f"prediction:{review.prediction_id}"
    )
    try:
        with transaction.atomic():
            decision = Decision.objects.create(
                review=review,
                member_id=review.member_id,
                settled_action=settled,
                contact_flags=broken,
                announced=not silence,
                silenced_because=silence,
                verdict=verdict,
                decided_by=actor,
                decided_as=role,
                reason=reason,
                comment=comment,
                churn_label=churn_label,
                action=action,
                held_out=holdout.held_out,
                holdout_reason=holdout.reason,
                holdout_draw=holdout.draw,
                seconds_on_item=seconds_on_item(review=review, user=actor, decided_at=now),
                sequence=next_values("decision")[0],
            )
    except IntegrityError as error:  # a concurrent decision won the race
        raise ReviewAlreadyDecided("This review was decided a moment ago.") from error
    review.state = Review.State.DECIDED
    review.decided_at = timezone.now()
    review.save(update_fields=["state", "decided_at"])
    request_drain(kind=review.kind, route=review.route)  # its queue has room for one more
    decision_recorded.send(sender=Decision, decision_id=decision.pk)
    emit_decision(decision)
    record_audit(
        kind=AuditRecord.Kind.DECISION,
        actor=actor,
        subject=f"review:{review.pk}",
        details={
            "verdict": verdict,
            "reason": reason.code,
            "as": role,
            "member": review.member_id,
            "prediction": review.prediction_id,
            "churn_label": churn_label,
            "action": action.code if action else None,
            "held_out": holdout.held_out,
            "holdout_reason": holdout.reason,
            "contact_rules_overridden": broken,
            "announced": not silence,
        },
    )
    return decision, True


def needed_answer(*, kind: str, verdict: str) -> str | None:
    """The answer a verdict on a review of `kind` (its `decision_kind`) must carry: overriding
    a churn call, the right call (CHURN_CALL); overriding a next action, the right action
    (ACTION); overriding a case, either or both (EITHER); anything else none."""
    if verdict != Decision.Verdict.OVERRIDE:
        return None
    if kind == CASE:
        return EITHER
    return CHURN_CALL if kind == PredictionKind.CHURN else ACTION


def answer_problems(
    *, kind: str, verdict: str, churn_label: bool | None, action_code: str | None
) -> dict[str, str]:
    """What is wrong with the answers given with a verdict, by field: MISSING for the answer it
    needs, NOT_TAKEN for any other; empty when they fit. The one rule of the service, the API
    and the decision form, which each word the problems for their own readers."""
    needed = needed_answer(kind=kind, verdict=verdict)
    given = {CHURN_CALL: churn_label is not None, ACTION: bool(action_code)}
    if needed == EITHER:
        return {} if any(given.values()) else {EITHER: MISSING}
    problems = {}
    for field in sorted(given, key=lambda field: field != needed):  # the needed one first
        if field == needed and not given[field]:
            problems[field] = MISSING
        elif field != needed and given[field]:
            problems[field] = NOT_TAKEN
    return problems


def _answer_action(
    review: Review, verdict: str, churn_label: bool | None, action_code: str | None
) -> Action | None:
    """The action an override names (None for anything else), once the answers fit. A case
    overridden with the model's own answers is refused: that is an approval."""
    kind = review.decision_kind
    problems = answer_problems(
        kind=kind, verdict=verdict, churn_label=churn_label, action_code=action_code
    )
    if problems:
        raise InvalidDecision(_ANSWER_ERRORS[needed_answer(kind=kind, verdict=verdict)])
    action = None
    if action_code:
        try:
            action = Action.objects.get(code=action_code, is_active=True)
        except Action.DoesNotExist as error:
            raise InvalidDecision(f"Unknown action {action_code!r}.", action=action_code) from error
    if review.is_case and verdict == Decision.Verdict.OVERRIDE:
        same_action = action is None or action.pk == review.recommended_action_id
        model_call = model_churn_call(review.prediction.score)
        if same_action and churn_label in (None, model_call):
            raise InvalidDecision(
                "That is the model's own answer (the recommended action and its churn call): "
                "approve it instead."
            )
    return action


@transaction.atomic
def escalate_review(
    *,
    review_id: int,
    actor: AbstractBaseUser,
    reason_code: str,
    comment: str = "",
    proposal: dict | None = None,
) -> Review:
    """Send an analyst's item to the experts, with why and what the analyst would have done.
    The same person escalating again with the same reason gets the review back unchanged."""
    review = lock_review(review_id, actor)
    require_permission(actor, DECIDE)
    reason = _reason(reason_code, "escalate")
    is_repeat = (
        review.is_escalated
        and review.escalation_reason_id == reason.pk
        and actor is not None
        and review.escalated_by_id == actor.pk
    )
    if is_repeat:
        return review
    if review.is_waiting:
        raise ReviewNotOpen(WAITING_NOT_DECIDABLE, review_id=review.pk)
    if review.state != Review.State.PENDING or review.route != Review.Route.ANALYST:
        raise ReviewNotOpen("Only a pending analyst item can be escalated.", review_id=review.pk)
    review.route = Review.Route.EXPERT
    review.route_reason = f"escalated by {actor.get_username()}: {reason.label}"
    review.escalated_at = timezone.now()
    review.escalated_by = actor
    review.escalation_reason = reason
    review.escalation_comment = comment
    review.analyst_proposal = proposal
    review.save(
        update_fields=[
            "route",
            "route_reason",
            "escalated_at",
            "escalated_by",
            "escalation_reason",
            "escalation_comment",
            "analyst_proposal",
        ]
    )
    request_drain(kind=review.kind, route=Review.Route.ANALYST)  # it left the analyst queue
    record_audit(
        kind=AuditRecord.Kind.ESCALATION,
        actor=actor,
        subject=f"review:{review.pk}",
        # Whether there was a proposal, not what it was: it lives on the review, where erasure
        # blanks it; the append-only trail would keep it for good.
        details={
            "reason": reason.code,
            "member": review.member_id,
            "with_proposal": proposal is not None,
        },
    )
    emit_escalation(review, reason_code=reason.code)
    return review
