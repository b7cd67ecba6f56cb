"""Blind review: a share of the items routed to people open without the model's answer.

Which items open blind is systematic, not random: of the items a policy version routes to
people, every (1 / blind_share)-th is blind (the 20th, 40th, ... at 5 %), counted over the
version's whole history in routing order. So exactly that share is blind, a handful of items is
never blind by chance, and nothing the model says (score, confidence, route) picks them.

A blind item shows nothing of the model (score, probability, interval, confidence, route
reason, risk, explanation, what-if) and sits in its queue by a neutral priority (its member
value alone) until a person commits their own answer (`commit_blind_answer`): their churn call
and, on a case, their action. The answer is stored once and never changed; then the item is
shown like any other and the person decides (confirming or revising their answer) as usual.
Quick and bulk approve never decide a blind item.
"""

import math

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.models import Action
from predictions.calls import model_churn_call
from reviews.exceptions import InvalidDecision, ReviewNotOpen
from reviews.models import BlindAnswer, EscalationPolicy, Review
from reviews.services.decisions import decider_role, lock_review


def blind_draws(*, for_people: list[bool], share: float, already: int) -> list[bool]:
    """Which of these items open blind: counting the items for people from `already` (how many
    the version routed to people before), item k is blind when floor(k * share) steps up."""
    draws, counted = [], already
    for person in for_people:
        if not person:
            draws.append(False)
            continue
        counted += 1
        draws.append(math.floor(counted * share) > math.floor((counted - 1) * share))
    return draws


def routed_to_people(policy: EscalationPolicy) -> int:
    """How many items `policy` has routed to people so far (where its blind count stands)."""
    if policy.pk is None:
        return 0
    return Review.objects.filter(policy=policy).exclude(route=Review.Route.AUTO).count()


class BlindAnswerError(ReviewNotOpen):
    """A blind answer that cannot be taken (not blind, answered already, not pending)."""


@transaction.atomic
def commit_blind_answer(
    *,
    review_id: int,
    user: AbstractBaseUser,
    churn_label: bool,
    action_code: str | None = None,
) -> BlindAnswer:
    """Store `user`'s own answer to a blind item, once. The identical answer again (a double
    submit) returns the first; any other second answer is refused and changes nothing. Who may
    commit is who may decide the item (its visibility first, then the role)."""
    review = lock_review(review_id, user)
    decider_role(review, user)
    action = _action(review, action_code)
    earlier = BlindAnswer.objects.filter(review=review).first()
    if earlier is not None:
        same = (
            earlier.user_id == user.pk
            and earlier.churn_label == churn_label
            and earlier.action_id == (action.pk if action else None)
        )
        if same:  # a repeated submit: the answer stands as it was
            return earlier
        raise BlindAnswerError("An answer to this blind item was committed already.")
    if not review.is_blind:
        raise BlindAnswerError("This item is not blind: decide it directly.")
    if review.state != Review.State.PENDING or review.in_backlog:
        raise BlindAnswerError("This item is not awaiting a decision.")
    try:
        with transaction.atomic():
            return BlindAnswer.objects.create(
                review=review,
                member_id=review.member_id,
                user=user,
                churn_label=churn_label,
                action=action,
                model_churn_call=model_churn_call(review.prediction.score),
                committed_at=timezone.now(),
            )
    except IntegrityError as error:
        raise BlindAnswerError("An answer to this blind item was committed already.") from error


def _action(review: Review, code: str | None) -> Action | None:
    """The action a blind answer names: required where the item recommends one, refused where
    it does not."""
    if not review.recommends_action:
        if code:
            raise InvalidDecision("This item settles only the churn call: name no action.")
        return None
    if not code:
        raise InvalidDecision("Name the action you would take for this member.")
    try:
        return Action.objects.get(code=code, is_active=True)
    except Action.DoesNotExist as error:
        raise InvalidDecision(f"Unknown action {code!r}.", action=code) from error
