"""Decisions as the review pages ask for them: a verdict by name (the member page's forms, a
queue row's buttons) and bulk approval of queue rows. The decisions themselves are
`reviews.services.decisions`; this only picks which one and gathers the outcomes."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser

from loyalty.exceptions import DomainError
from reviews.exceptions import ReviewNotOpen
from reviews.models import Decision, Review
from reviews.permissions import visible_reviews
from reviews.services.decisions import approve_prediction, escalate_review, override_prediction

ESCALATE = "escalate"
# The reasons of a queue row's one-click approve and escalate.
QUICK_APPROVE_REASON = "model-correct"
QUICK_ESCALATE_REASON = "needs-expert"


def decide_by_verdict(
    *,
    review_id: int,
    actor: AbstractBaseUser,
    verdict: str,
    reason_code: str,
    comment: str = "",
    override_answer: dict | None = None,
    proposal: dict | None = None,
    override_contact_rules: bool = False,
    unopened: bool = False,
) -> Decision | Review:
    """Approve, override (with `override_answer`, override_prediction's answer arguments) or
    escalate (with the analyst's optional `proposal`); domain errors as the services raise them.
    `unopened`: decided from a queue row without opening the item, which never approves a blind
    item (`blind`), answered or not."""
    common = {
        "review_id": review_id,
        "actor": actor,
        "reason_code": reason_code,
        "comment": comment,
    }
    if verdict == ESCALATE:
        return escalate_review(**common, proposal=proposal)
    if unopened:
        refuse_blind(review_id)
    common["override_contact_rules"] = override_contact_rules
    if verdict == Decision.Verdict.OVERRIDE:
        return override_prediction(**common, **(override_answer or {}))
    return approve_prediction(**common)


NOT_UNOPENED = "This item is blind: open it and give your own answer before deciding."


def refuse_blind(review_id: int) -> None:
    """Quick and bulk approval decide without opening the item: never a blind one."""
    if Review.objects.filter(pk=review_id, is_blind=True).exists():
        raise ReviewNotOpen(NOT_UNOPENED, review_id=review_id)


@dataclass(frozen=True)
class BulkApproval:
    selected: int
    approved: int
    problems: tuple[str, ...]

    @property
    def summary(self) -> str:
        return f"Approved {self.approved} of {self.selected} selected."


def bulk_approve(
    *, review_ids: list[int], actor: AbstractBaseUser, reason_code: str = QUICK_APPROVE_REASON
) -> BulkApproval:
    """Approve every selected review, one decision (and transaction) each; a review that cannot
    be approved is reported by its member with why, and the others go on. An id the actor may
    not see is reported as not found, without a word about the member behind it."""
    reviews = visible_reviews(actor).select_related("member").in_bulk(review_ids)
    approved, problems = 0, []
    for review_id in review_ids:
        review = reviews.get(review_id)
        if review is None:
            problems.append(f"Review {review_id}: not found.")
            continue
        try:
            refuse_blind(review_id)
            approve_prediction(review_id=review_id, actor=actor, reason_code=reason_code)
            approved += 1
        except DomainError as error:
            problems.append(f"{review.member.external_id}: {error.message}")
    return BulkApproval(selected=len(review_ids), approved=approved, problems=tuple(problems))
