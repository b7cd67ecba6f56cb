"""The decision feed: every decision a caller may read, in the order their sequence numbers
were handed out (`loyalty.sequences`), so that polling with the last number received never
misses a decision that committed late and never repeats one."""

from collections.abc import Iterator
from dataclasses import dataclass

from django.utils import timezone

from reviews.models import CASE, Decision
from reviews.permissions import holdout_disclosed, visible_decisions_filter
from reviews.services.decision_events import DECISION_RELATIONS, decision_data


@dataclass(frozen=True)
class FeedPage:
    results: list[dict]
    next_since: int
    has_more: bool


def visible_decisions(user):
    return Decision.objects.filter(visible_decisions_filter(user))


def decision_pages(decisions, *, size: int) -> Iterator[list[Decision]]:
    """`decisions` in feed order, `size` at a time (keyset on the sequence: flat memory and one
    query per page at any size)."""
    after = 0
    while True:
        page = list(decisions.filter(sequence__gt=after).order_by("sequence")[:size])
        if page:
            yield page
        if len(page) < size:
            return
        after = page[-1].sequence


def decision_item(user, decision: Decision, *, now) -> dict:
    """The decision as `user` may read it: whether it was held out stays null for people
    until its horizon has passed (`reviews.permissions.holdout_disclosed`)."""
    item = decision_data(decision)
    if not holdout_disclosed(user, decision, now=now):
        item["held_out"] = None
    return item


def decision_feed(user, *, since: int, limit: int, kind: str | None = None) -> FeedPage:
    decisions = visible_decisions(user).filter(sequence__gt=since)
    if kind == CASE:
        decisions = decisions.filter(review__action_prediction__isnull=False)
    elif kind:
        decisions = decisions.filter(review__kind=kind, review__action_prediction__isnull=True)
    rows = list(decisions.select_related(*DECISION_RELATIONS).order_by("sequence")[: limit + 1])
    page = rows[:limit]
    now = timezone.now()
    return FeedPage(
        results=[decision_item(user, decision, now=now) for decision in page],
        next_since=page[-1].sequence if page else since,
        has_more=len(rows) > limit,
    )
