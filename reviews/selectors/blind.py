"""What blind review hides, and what a blind item's page shows (`reviews.services.blind`)."""

from __future__ import annotations

from dataclasses import dataclass

from reviews.models import BlindAnswer, Review
from reviews.selectors.formatting import format_datetime

# What pages and the API say in place of the model's answer and the route reason.
BLIND_NOTE = "Blind review: give your own answer first; then the model's is shown."


def hides_model(review: Review) -> bool:
    """Whether the item still hides the model's answer: blind, and nobody committed one."""
    if not review.is_blind:
        return False
    return not BlindAnswer.objects.filter(review=review).exists()


def still_blind(blind_ids: list[int]) -> frozenset[int]:
    """Of these blind items, the ones nobody has answered yet (one query; none without ids)."""
    if not blind_ids:
        return frozenset()
    answered = BlindAnswer.objects.filter(review_id__in=blind_ids).values_list(
        "review_id", flat=True
    )
    return frozenset(blind_ids) - set(answered)


def call_words(churn: bool | None) -> str:
    return "" if churn is None else ("will churn" if churn else "will stay")


@dataclass(frozen=True)
class BlindAnswerFacts:
    """A committed blind answer beside the model's call, as the revealed page shows it."""

    by: str
    when: str
    churn_call: str
    action: str
    model_call: str
    agreed: bool


def blind_answer_facts(review: Review) -> BlindAnswerFacts | None:
    """The item's blind answer, once committed (None: not blind, or not answered yet)."""
    if not review.is_blind:
        return None
    answer = BlindAnswer.objects.select_related("user", "action").filter(review=review).first()
    if answer is None:
        return None
    return BlindAnswerFacts(
        by=answer.user.get_username(),
        when=format_datetime(answer.committed_at),
        churn_call=call_words(answer.churn_label),
        action=answer.action.name if answer.action else "",
        model_call=call_words(answer.model_churn_call),
        agreed=answer.churn_label == answer.model_churn_call,
    )
