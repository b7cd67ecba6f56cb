"""Time on an item: when each person first opened it, and how long they took to decide.

The member page records a person's first opening of an item (`record_opening`); their
decision then stores the seconds since (`seconds_on_item`). An item decided without being
opened (quick or bulk approve from the queue, the API) has no time on it: nothing says how
long the person looked.
"""

from datetime import datetime

from django.utils import timezone

from reviews.models import Review, ReviewOpening


def record_opening(*, review: Review, user) -> None:
    """The person's first opening of `review`; idempotent. Whatever the review's state (only a
    later decision by the same person reads it). A read on every page view and a write only
    the first time: the embedded SQLite takes its one write lock for no page view after that;
    two first openings at once keep the earlier (the second insert conflicts and is dropped)."""
    if not user.is_authenticated:
        return
    if ReviewOpening.objects.filter(review=review, user=user).exists():
        return
    ReviewOpening.objects.bulk_create(
        [ReviewOpening(review=review, user=user, opened_at=timezone.now())],
        ignore_conflicts=True,
    )


def seconds_on_item(*, review: Review, user, decided_at: datetime) -> float | None:
    """Seconds from `user`'s first opening of `review` to `decided_at`; None if never opened."""
    opened_at = (
        ReviewOpening.objects.filter(review=review, user=user)
        .values_list("opened_at", flat=True)
        .first()
    )
    if opened_at is None:
        return None
    return max((decided_at - opened_at).total_seconds(), 0.0)
