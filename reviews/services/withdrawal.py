"""Reviews leave the queues when their member may no longer be profiled: erased, or consent to
profiling withdrawn. Decided and auto-approved reviews stay as the history they are."""

from collections.abc import Iterable

from django.db import transaction

from reviews.models import Review

# Undecided states: what a person could still be asked to decide.
OPEN_STATES = (Review.State.PENDING,)


@transaction.atomic
def withdraw_pending_reviews(*, member_ids: Iterable[int], why: str) -> int:
    """Take every undecided review of these members out of the queues (state `withdrawn`),
    with `why` as the route reason a person reads. Returns how many left; a second call finds
    none and changes nothing."""
    ids = list(member_ids)
    if not ids:
        return 0
    return Review.objects.filter(member_id__in=ids, state__in=OPEN_STATES).update(
        state=Review.State.WITHDRAWN, route_reason=why[:300]
    )
