"""Queues that fit the team: a queue holds at most what people can decide in a day, and the
overflow waits in a backlog until there is room.

A kind's current policy says how many items of its reviews each queue may hold awaiting a
decision (`analyst_daily_capacity`, `expert_daily_capacity`; None: no limit). A case is a churn
review: the churn policy's capacity governs it. The items that count are the queue's own
(`Review.objects.queued`): pending, escalated ones included, not those in the backlog.

- Routing (`hold_overflow`, each batch, in its transaction): the room left in a queue goes to
  the highest priorities among the batch's new items and those already waiting (priority, then
  the older id); the rest wait: `in_backlog`, no due time (no SLA clock runs), neither
  auto-approved nor in the queue. An item already in a queue stays there: someone may be
  working it and its SLA clock runs. Lowering a capacity therefore takes effect as the queue
  empties. Capacity bounds what routing adds: an escalation (a person's, or the SLA's) moves
  its item to the expert queue whatever its load, and the backlog waits until it is below.
- Draining (`drain_backlog`): beat every few minutes, and queued on commit when a decision or
  an escalation frees room (`request_drain`) or a policy version is saved. The highest
  priorities enter the queue first, each routed now: `routed_at` now, `due_at` by the
  current policy's `sla_hours`. With no limit any more, the whole backlog enters.
- The admins who set the policy are told when routing starts a backlog (one that was empty):
  once per overflow episode, not per item or batch.

A waiting item is pending: a newer prediction supersedes it, a withdrawal of consent withdraws
it, a policy change re-routes it (staying in the backlog) like any pending review; nobody
decides it before it enters its queue (ReviewNotOpen).

Concurrency: whoever fills a kind's queues (routing's overflow, draining) takes the kind's lock
for the rest of its transaction (PostgreSQL: an advisory transaction lock; SQLite runs every
write transaction IMMEDIATE, one at a time already), so two of them never share out the same
room. Not a policy row lock: routing holds a key-share lock on the policy its new reviews point
to, and two routing batches upgrading it would deadlock. Waiting rows are taken with SKIP
LOCKED (a row another transaction is superseding is left to it) and moved by a conditional
update, so nothing moves twice.
"""

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from predictions.models import PredictionKind
from reviews.models import EscalationPolicy, Review
from reviews.permissions import MANAGE_POLICY
from reviews.selectors.capacity import QUEUE_LABELS
from reviews.selectors.policy import current_policy
from reviews.selectors.queue import QUEUE_ORDER, QUEUE_ROUTES
from reviews.services.notifications import notify, users_with_permission

# Waiting items moved per transaction when a limit is lifted (a surge's backlog may be large).
DRAIN_BATCH = 1000
WAITING_NOT_DECIDABLE = (
    "This item waits in the backlog: its queue is at the capacity the policy sets. It can be "
    "decided once it enters the queue (highest priority first, as people decide what is there)."
)


def lock_queues(kind: str) -> None:
    """Hold the lock of `kind`'s queues until the caller's transaction ends."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("lock_queues needs the caller's transaction")
    if connection.vendor == "postgresql":
        key = zlib.crc32(f"reviews.capacity:{kind}".encode())
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


@dataclass(frozen=True)
class Overflow:
    """What `hold_overflow` did to one queue: new items sent to the backlog, waiting items
    that took room first, and whether this began a backlog (the admins were told)."""

    kind: str
    route: str
    capacity: int
    held: int
    admitted: int
    started_backlog: bool


def hold_overflow(*, prediction_ids: Iterable[int], now: datetime | None = None) -> list[Overflow]:
    """Routing's hook, inside a batch's transaction: fit the queues to their capacity now that
    the reviews of `prediction_ids` are routed (see the module docstring)."""
    policies = {kind: current_policy(kind) for kind in PredictionKind.values}
    limited = {
        (kind, route)
        for kind, policy in policies.items()
        for route in QUEUE_ROUTES
        if policy.daily_capacity(route) is not None
    }
    if not limited:  # no capacity anywhere: routing goes on as it always did
        return []
    new = (
        Review.objects.queued()
        .filter(prediction_id__in=list(prediction_ids), route__in=QUEUE_ROUTES)
        .values_list("kind", "route", "priority", "pk")
    )
    groups: dict[tuple[str, str], list[tuple[float, int]]] = {}
    for kind, route, priority, pk in new:
        if (kind, route) in limited:
            groups.setdefault((kind, route), []).append((priority, pk))
    now = now or timezone.now()
    results = []
    for kind, route in sorted(groups):
        lock_queues(kind)
        policy = current_policy(kind)  # read again under the lock: a save may have come first
        capacity = policy.daily_capacity(route)
        if capacity is not None:
            results.append(_fit(kind, route, groups[(kind, route)], capacity, policy, now))
    started = [result for result in results if result.started_backlog]
    if started:
        _tell_admins(started)
    return results


def _fit(
    kind: str,
    route: str,
    new: list[tuple[float, int]],
    capacity: int,
    policy: EscalationPolicy,
    now: datetime,
) -> Overflow:
    """Share out the room of one queue between its new items and the waiting ones."""
    new_ids = {pk for _, pk in new}
    queue = Review.objects.filter(kind=kind)
    held_before = (
        queue.queued(route).exclude(pk__in=new_ids).order_by().values("pk")[:capacity].count()
    )
    room = capacity - held_before
    had_backlog = queue.backlogged(route).exists()
    waiting = _waiting(kind, route, limit=room) if had_backlog and room > 0 else []
    ranked = sorted([*new, *waiting], key=lambda item: (-item[0], item[1]))
    admitted = {pk for _, pk in ranked[: max(room, 0)]}
    to_backlog = sorted(new_ids - admitted)
    held = Review.objects.queued().filter(pk__in=to_backlog).update(in_backlog=True, due_at=None)
    entered = _admit(
        [pk for _, pk in waiting if pk in admitted], sla_hours=policy.sla_hours, now=now
    )
    return Overflow(
        kind=kind,
        route=route,
        capacity=capacity,
        held=held,
        admitted=entered,
        started_backlog=held > 0 and not had_backlog,
    )


def _waiting(kind: str, route: str, *, limit: int) -> list[tuple[float, int]]:
    """The `limit` first waiting items of a queue in queue order, row-locked (those another
    transaction holds are skipped: it is superseding or re-routing them)."""
    return list(
        Review.objects.backlogged(route)
        .filter(kind=kind)
        .select_for_update(skip_locked=True)
        .order_by(*QUEUE_ORDER)  # the order the queue would be worked in
        .values_list("priority", "pk")[:limit]
    )


def _admit(review_ids: list[int], *, sla_hours: int, now: datetime) -> int:
    """Waiting items enter their queue now; the due time runs from now. Conditional: one that
    stopped waiting meanwhile (superseded, decided elsewhere) is left as it is."""
    if not review_ids:
        return 0
    return (
        Review.objects.backlogged()
        .filter(pk__in=review_ids)
        .update(in_backlog=False, routed_at=now, due_at=now + timedelta(hours=sla_hours))
    )


def drain_backlog(
    *, kinds: Iterable[str] | None = None, routes: Iterable[str] | None = None
) -> dict[tuple[str, str], int]:
    """Move waiting items into queues with room, highest priority first, in transactions of at
    most DRAIN_BATCH; {(kind, route): items that entered}, for the queues where any did.
    Idempotent: a queue at capacity, or an empty backlog, moves nothing."""
    entered: dict[tuple[str, str], int] = {}
    for kind in kinds or PredictionKind.values:
        for route in routes or QUEUE_ROUTES:
            while Review.objects.backlogged(route).filter(kind=kind).exists():
                with transaction.atomic():
                    moved = _drain_once(kind, route)
                if not moved:
                    break
                entered[(kind, route)] = entered.get((kind, route), 0) + moved
    return entered


def _drain_once(kind: str, route: str) -> int:
    lock_queues(kind)
    policy = current_policy(kind)
    capacity = policy.daily_capacity(route)
    room = DRAIN_BATCH
    if capacity is not None:
        queued = Review.objects.filter(kind=kind).queued(route)
        room = min(capacity - queued.order_by().values("pk")[:capacity].count(), DRAIN_BATCH)
    if room <= 0:
        return 0
    waiting = [pk for _, pk in _waiting(kind, route, limit=room)]
    return _admit(waiting, sla_hours=policy.sla_hours, now=timezone.now())


def request_drain(*, kind: str | None = None, route: str | None = None) -> None:
    """After the caller's transaction commits, drain the backlog of `kind` on `route` (every
    backlog by default) in a worker, if anything waits there: a decision or an escalation
    freed room, a policy version changed a capacity. Beat drains every few minutes anyway, so
    a lost message costs minutes, not items."""
    from reviews import tasks

    waiting = Review.objects.backlogged(route)
    if kind is not None:
        waiting = waiting.filter(kind=kind)
    if route not in (None, *QUEUE_ROUTES) or not waiting.exists():
        return
    transaction.on_commit(
        lambda: tasks.drain_backlog_task.delay(kind=kind, route=route), robust=True
    )


def _tell_admins(started: list[Overflow]) -> None:
    """One notification to each admin who may change the policy, naming the queues whose
    backlog this routing began."""
    kinds = dict(PredictionKind.choices)
    parts = []
    for overflow in started:
        parts.append(
            f"{kinds[overflow.kind]}, {QUEUE_LABELS[overflow.route]}: {overflow.held:,} "
            f"item{'s' if overflow.held != 1 else ''} beyond its capacity of "
            f"{overflow.capacity:,} a day"
        )
    notify(
        recipients=users_with_permission(MANAGE_POLICY),
        subject="Routing sent items to the backlog: a queue is at capacity",
        body=(
            "; ".join(parts) + ". They wait in the backlog, neither auto-approved nor in the "
            "queue, and enter it by priority as people decide what is there. Raise the "
            "capacity on the policy page, or see who can help with the queue."
        ),
        link=reverse("reviews:policy", args=[started[0].kind]),
    )
