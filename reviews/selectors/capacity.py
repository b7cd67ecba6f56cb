"""How full each queue is against its daily capacity, and how much waits in its backlog
(`reviews.services.capacity`): what the queue, policy and home pages say about it."""

from dataclasses import dataclass

from django.urls import reverse

from predictions.models import PredictionKind
from reviews.models import Review
from reviews.selectors.policy import current_policy
from reviews.selectors.queue import PENDING_COUNT_CAP, QUEUE_ROUTES, count_label

QUEUE_LABELS = {Review.Route.ANALYST: "analyst queue", Review.Route.EXPERT: "expert queue"}


@dataclass(frozen=True)
class QueueLoad:
    """One kind's items in one queue: those in it and those waiting in its backlog (each
    counted up to the queue counts' cap), against the capacity of the kind's current policy."""

    kind: str
    route: str
    capacity: int | None
    queued: int
    waiting: int

    @property
    def queue_label(self) -> str:
        return QUEUE_LABELS[self.route]

    @property
    def kind_label(self) -> str:
        return PredictionKind(self.kind).label

    @property
    def policy_url(self) -> str:
        return reverse("reviews:policy", args=[self.kind])

    @property
    def waiting_label(self) -> str:
        return count_label(self.waiting)

    @property
    def queued_label(self) -> str:
        return count_label(self.queued)

    @property
    def capacity_text(self) -> str:
        """'200 a day', or 'no limit'."""
        return "no limit" if self.capacity is None else f"{self.capacity:,} a day"

    @property
    def waiting_sentence(self) -> str:
        """What the queue page says about its backlog ('' when nothing waits)."""
        if not self.waiting:
            return ""
        items = "item waits" if self.waiting == 1 else "items wait"
        if self.capacity is None:
            return (
                f"{self.waiting_label} more {items} in the backlog; the {self.kind_label.lower()} "
                "policy sets no capacity now, so they enter the queue within minutes."
            )
        return (
            f"{self.waiting_label} more {items} in the backlog (capacity {self.capacity_text}, "
            f"{self.kind_label.lower()} policy): they enter the queue by priority as items here "
            "are decided."
        )


def queue_loads(
    *, kinds: tuple[str, ...] | None = None, routes: tuple[str, ...] = QUEUE_ROUTES
) -> tuple[QueueLoad, ...]:
    """Each kind's load of each queue, kinds and routes in their usual order."""
    loads = []
    for kind in kinds or tuple(PredictionKind.values):
        policy = current_policy(kind)
        for route in routes:
            reviews = Review.objects.filter(kind=kind)
            loads.append(
                QueueLoad(
                    kind=kind,
                    route=route,
                    capacity=policy.daily_capacity(route),
                    queued=_capped(reviews.queued(route)),
                    waiting=_capped(reviews.backlogged(route)),
                )
            )
    return tuple(loads)


def backlog_sentences(route: str) -> tuple[str, ...]:
    """What waits in `route`'s backlog, a sentence per kind with a backlog. One small query
    when nothing waits (the queue page asks on every view)."""
    if not Review.objects.backlogged(route).exists():
        return ()
    return tuple(load.waiting_sentence for load in queue_loads(routes=(route,)) if load.waiting)


def _capped(reviews) -> int:
    return reviews.order_by().values("pk")[: PENDING_COUNT_CAP + 1].count()
