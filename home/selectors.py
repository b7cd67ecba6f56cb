"""What the home page reads: what waits for the user in the review queues, and (for admins)
the health of the system's moving parts, each with the page where it is handled. Plain
dataclasses, one function per concern; sentences are written here so that a test can read them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.db.models import F, Max, Q
from django.urls import reverse
from django.utils import timezone

from integrations.models import Delivery, WebhookEndpoint
from learning.models import RetrainingRun
from loyalty.models import WorkerHeartbeat
from predictions.models import PredictionKind, ScoringRun
from reviews.models import CASE, AutomationPause, Review
from reviews.permissions import can_open_queue, readable_routes, visible_reviews
from reviews.selectors.capacity import QUEUE_LABELS, QueueLoad, queue_loads
from reviews.selectors.formatting import format_age
from reviews.selectors.queue import PENDING_COUNT_CAP, QUEUE_KINDS, QUEUE_ROUTES, count_label
from reviews.services.rerouting import awaiting_rerouting
from reviews.services.routing import awaiting_routing

# --- what waits for the user -----------------------------------------------------------------

QUEUE_URL_NAMES = {
    Review.Route.ANALYST: "reviews:queue",
    Review.Route.EXPERT: "reviews:expert_queue",
}
# Enough to start work from the home page; the queue itself has the rest.
WAITING_ROWS = 5


def _duration(age: timedelta) -> str:
    """An age as the queue writes it ("5 h"), with "less than a minute" for under one."""
    return "less than a minute" if age < timedelta(minutes=1) else format_age(age)


@dataclass(frozen=True)
class QueueCount:
    """A queue's pending items that the user may see, counted up to the queue's cap."""

    route: str
    label: str
    count: int
    count_label: str
    url: str  # "" where the user may read the items but not work the queue (admins)
    # Items routed to the queue that wait in its backlog (its capacity is reached).
    waiting: int = 0
    waiting_label: str = ""


@dataclass(frozen=True)
class WaitingItem:
    """One pending review, with how its wait stands and the member page that decides it."""

    review_id: int
    member: str
    kind_label: str
    when: str
    is_overdue: bool
    url: str


@dataclass(frozen=True)
class Attention:
    queues: tuple[QueueCount, ...]
    # Pending analyst items, nearest their due time (the SLA) first.
    nearest_sla: tuple[WaitingItem, ...]
    # Pending expert items, longest waiting first (experts and admins only).
    oldest_escalated: tuple[WaitingItem, ...]

    @property
    def shows_sla(self) -> bool:
        return any(queue.route == Review.Route.ANALYST for queue in self.queues)

    @property
    def shows_escalated(self) -> bool:
        return any(queue.route == Review.Route.EXPERT for queue in self.queues)


def attention_for(user, *, now: datetime | None = None) -> Attention:
    """The queues whose items `user` may see (`reviews.permissions`), their pending counts, and
    the few items to take first: nothing of a queue the user may not read."""
    now = now or timezone.now()
    routes = queue_routes_for(user)
    queues = tuple(_queue_count(user, route) for route in routes)
    nearest = oldest = ()
    if Review.Route.ANALYST in routes:
        nearest = _waiting(
            user,
            route=Review.Route.ANALYST,
            order=(F("due_at").asc(nulls_last=True), "routed_at", "pk"),
            now=now,
        )
    if Review.Route.EXPERT in routes:
        oldest = _waiting(user, route=Review.Route.EXPERT, order=("routed_at", "pk"), now=now)
    return Attention(queues=queues, nearest_sla=nearest, oldest_escalated=oldest)


def queue_routes_for(user) -> tuple[str, ...]:
    """The queues whose items the user may read: analysts theirs; experts and admins both."""
    readable = readable_routes(user)
    return tuple(route for route in QUEUE_ROUTES if readable is None or route in readable)


def _pending(user, route: str, *, waiting: bool = False):
    pending = Review.objects.backlogged(route) if waiting else Review.objects.queued(route)
    return visible_reviews(user, pending)


def _queue_count(user, route: str) -> QueueCount:
    count = _pending(user, route).order_by().values("pk")[: PENDING_COUNT_CAP + 1].count()
    waiting = (
        _pending(user, route, waiting=True).order_by().values("pk")[: PENDING_COUNT_CAP + 1].count()
    )
    return QueueCount(
        route=route,
        label=QUEUE_LABELS[route],
        count=count,
        count_label=count_label(count),
        url=reverse(QUEUE_URL_NAMES[route]) if can_open_queue(user, route) else "",
        waiting=waiting,
        waiting_label=count_label(waiting) if waiting else "",
    )


def _waiting(user, *, route: str, order: Sequence, now: datetime) -> tuple[WaitingItem, ...]:
    rows = (
        _pending(user, route)
        .order_by(*order)
        .values("pk", "kind", "action_prediction_id", "due_at", "routed_at", "member__external_id")
    )
    return tuple(_waiting_item(row, route=route, now=now) for row in rows[:WAITING_ROWS])


def _waiting_item(row: dict, *, route: str, now: datetime) -> WaitingItem:
    due_at = row["due_at"]
    is_overdue = route == Review.Route.ANALYST and due_at is not None and due_at < now
    if route != Review.Route.ANALYST or due_at is None:
        when = f"waiting {_duration(now - row['routed_at'])}"
    elif is_overdue:
        when = f"overdue by {_duration(now - due_at)}"
    else:
        when = f"due in {_duration(due_at - now)}"
    kind = CASE if row["action_prediction_id"] is not None else row["kind"]
    return WaitingItem(
        review_id=row["pk"],
        member=row["member__external_id"],
        kind_label=QUEUE_KINDS[kind],
        when=when,
        is_overdue=is_overdue,
        url=reverse("reviews:review", args=[row["pk"]]),
    )


# --- the system's health (admins) --------------------------------------------------------------

OK, WARN, BAD = "ok", "warn", "bad"
LEVEL_ORDER = (OK, WARN, BAD)

# Beat has a worker write a heartbeat every 60 s: three missed in a row is no accident.
HEARTBEAT_STALE_AFTER = timedelta(minutes=3)
# The delivery sweep sends what is due every minute: a delivery pending this long is being
# retried against a failing receiver, or nothing is sending.
OUTBOX_BEHIND_AFTER = timedelta(minutes=15)
# The routing task runs every 5 minutes: twice that, and routing is not keeping up.
ROUTING_BEHIND_AFTER = timedelta(minutes=10)
# A failed run's error in one line of the page; the full text is on the run's own page.
ERROR_SHOWN_CHARACTERS = 160


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class HealthItem:
    """One moving part: a status word (its `level`, ok / warn / bad, is its class), what is
    going on in a sentence or a few, and where it is handled."""

    key: str  # the page's data-testid is health-<key>
    title: str
    level: str
    word: str
    sentences: tuple[str, ...]
    links: tuple[Link, ...]


@dataclass(frozen=True)
class _Line:
    """One kind's state within an item: the item takes the worst level and its word."""

    level: str
    word: str
    sentence: str


def _combined(key: str, title: str, lines: Sequence[_Line], links: Sequence[Link]) -> HealthItem:
    worst = max(lines, key=lambda line: LEVEL_ORDER.index(line.level))  # first of the worst
    return HealthItem(
        key=key,
        title=title,
        level=worst.level,
        word=worst.word,
        sentences=tuple(line.sentence for line in lines),
        links=tuple(links),
    )


def system_health(*, now: datetime | None = None) -> tuple[HealthItem, ...]:
    now = now or timezone.now()
    return (
        worker_health(now=now),
        scoring_health(now=now),
        retraining_health(now=now),
        outbox_health(now=now),
        pause_health(now=now),
        routing_health(now=now),
        capacity_health(),
    )


def worker_health(*, now: datetime) -> HealthItem:
    """Whether a Celery worker wrote a heartbeat lately (beat's task, and each worker's start)."""
    last = WorkerHeartbeat.objects.aggregate(at=Max("beat_at"))["at"]
    if last is None:
        line = _Line(
            BAD,
            "never",
            "No worker has reported yet (start one: `make run` starts a worker and beat).",
        )
    elif now - last > HEARTBEAT_STALE_AFTER:
        line = _Line(
            WARN,
            "stale",
            f"The last heartbeat was {_duration(now - last)} ago: the worker or beat has "
            "stopped (`make run` starts both).",
        )
    else:
        line = _Line(OK, "fresh", f"A worker reported {_duration(now - last)} ago.")
    link = Link("Periodic tasks", reverse("admin:django_celery_beat_periodictask_changelist"))
    return _combined("worker", "Background worker", [line], [link])


def _kinds() -> list[tuple[str, str]]:
    return list(PredictionKind.choices)


def _first_line_of(error: str) -> str:
    first = (error or "no error recorded").strip().splitlines()[0]
    if len(first) <= ERROR_SHOWN_CHARACTERS:
        return first
    return first[: ERROR_SHOWN_CHARACTERS - 1] + "…"


def scoring_health(*, now: datetime) -> HealthItem:
    """The last scoring run of each kind."""
    lines = []
    for kind, label in _kinds():
        run = ScoringRun.objects.filter(model_version__kind=kind).first()  # newest first
        lines.append(_scoring_line(run, label=label, now=now))
    link = Link("Scoring runs", reverse("admin:predictions_scoringrun_changelist"))
    return _combined("scoring", "Scoring", lines, [link])


def _scoring_line(run: ScoringRun | None, *, label: str, now: datetime) -> _Line:
    if run is None:
        return _Line(OK, "none yet", f"{label}: not scored yet.")
    progress = f"{run.members_scored:,} of {run.members_total:,} members"
    if run.status == ScoringRun.Status.FAILED:
        when = _duration(now - (run.finished_at or run.created_at))
        return _Line(
            BAD, "failed", f"{label}: failed {when} ago ({progress}): {_first_line_of(run.error)}"
        )
    if run.status == ScoringRun.Status.DONE:
        when = _duration(now - (run.finished_at or run.created_at))
        what = "refresh" if run.scope == ScoringRun.Scope.REFRESH else "full run"
        return _Line(
            OK,
            "done",
            f"{label}: {what} done {when} ago, {progress} scored "
            f"on data before {run.cutoff:%Y-%m-%d}.",
        )
    started = _duration(now - run.created_at)
    return _Line(OK, run.status, f"{label}: {run.status} for {started}, {progress} scored so far.")


# A finished retraining's verdict: whether it asks anything of an admin.
VERDICT_LEVELS = {
    RetrainingRun.Verdict.PROMOTED: OK,
    RetrainingRun.Verdict.APPROVED: OK,
    RetrainingRun.Verdict.AWAITING_APPROVAL: WARN,
    RetrainingRun.Verdict.REJECTED: WARN,
}


def retraining_health(*, now: datetime) -> HealthItem:
    """The last retraining run of each kind and the gate's verdict on it."""
    lines = []
    for kind, label in _kinds():
        run = RetrainingRun.objects.filter(kind=kind).first()  # newest first
        lines.append(_retraining_line(run, label=label, now=now))
    return _combined(
        "retraining", "Retraining", lines, [Link("Learning loop", reverse("learning:loop"))]
    )


def _retraining_line(run: RetrainingRun | None, *, label: str, now: datetime) -> _Line:
    if run is None:
        return _Line(OK, "none yet", f"{label}: not retrained yet.")
    if run.status == RetrainingRun.Status.FAILED:
        when = _duration(now - (run.finished_at or run.created_at))
        return _Line(BAD, "failed", f"{label}: failed {when} ago: {_first_line_of(run.error)}")
    if run.status == RetrainingRun.Status.SUCCEEDED:
        when = _duration(now - (run.finished_at or run.created_at))
        verdict = run.get_verdict_display() or "no verdict recorded"
        level = VERDICT_LEVELS.get(run.verdict, WARN)
        word = (run.verdict or "finished").replace("_", " ")
        return _Line(
            level, word, f"{label}: finished {when} ago; {verdict[0].lower()}{verdict[1:]}."
        )
    if run.status == RetrainingRun.Status.RUNNING:
        since = _duration(now - (run.started_at or run.created_at))
        stage = f"{run.stage}, " if run.stage else ""
        return _Line(OK, "running", f"{label}: running for {since} ({stage}{run.progress}% done).")
    return _Line(OK, "queued", f"{label}: queued {_duration(now - run.created_at)} ago.")


def _failing_endpoints() -> list[WebhookEndpoint]:
    """Endpoints failing since their last success, and those disabled for a reason."""
    return list(
        WebhookEndpoint.objects.filter(
            Q(failing_since__isnull=False) | Q(is_enabled=False) & ~Q(disabled_reason="")
        ).order_by("pk")
    )


def _host(url: str) -> str:
    """An endpoint named by its host: its full URL may carry credentials."""
    return urlsplit(url).hostname or "an endpoint"


def outbox_health(*, now: datetime) -> HealthItem:
    """Deliveries waiting to leave, and the webhook endpoints that refuse them."""
    pending = Delivery.objects.filter(status=Delivery.Status.PENDING)
    count = pending.count()
    oldest = pending.order_by("created_at").values_list("created_at", flat=True).first()
    if count:
        waited = now - oldest
        noun = "delivery" if count == 1 else "deliveries"
        backlog = _Line(
            WARN if waited > OUTBOX_BEHIND_AFTER else OK,
            "behind" if waited > OUTBOX_BEHIND_AFTER else "sending",
            f"{count:,} {noun} pending, the oldest for {_duration(waited)}.",
        )
    else:
        backlog = _Line(OK, "clear", "Nothing waits to be delivered.")
    lines = [backlog]
    for endpoint in _failing_endpoints():
        if not endpoint.is_enabled:
            sentence = f"{_host(endpoint.url)} is disabled: {endpoint.disabled_reason}."
            lines.append(_Line(BAD, "disabled", sentence))
        else:
            since = _duration(now - endpoint.failing_since)
            lines.append(_Line(BAD, "failing", f"{_host(endpoint.url)} has failed for {since}."))
    links = [
        Link("Pending deliveries", reverse("integrations:deliveries") + "?status=pending"),
        Link("Webhooks", reverse("integrations:webhooks")),
    ]
    return _combined("outbox", "Outbox", lines, links)


def pause_health(*, now: datetime) -> HealthItem:
    """Open automation pauses: while one is open, its kind's predictions all go to people."""
    labels = dict(_kinds())
    pauses = list(AutomationPause.objects.open().order_by("kind"))
    if not pauses:
        line = _Line(OK, "running", "Auto-approval runs for every kind.")
        link = Link("Thresholds", reverse("reviews:policy", args=[PredictionKind.CHURN]))
        return _combined("pause", "Auto-approval", [line], [link])
    lines, links = [], []
    for pause in pauses:
        label = labels.get(pause.kind, pause.kind)
        lines.append(
            _Line(
                WARN,
                "paused",
                f"{label}: paused for {_duration(now - pause.paused_at)}: {pause.reason}. "
                "Every new prediction goes to people.",
            )
        )
        links.append(Link(f"{label} thresholds", reverse("reviews:policy", args=[pause.kind])))
    return _combined("pause", "Auto-approval", lines, links)


def routing_health(*, now: datetime) -> HealthItem:
    """Predictions not routed yet, and reviews waiting to be re-routed after a policy change."""
    unrouted = awaiting_routing()
    count = unrouted.count()
    if count:
        oldest = unrouted.order_by("scored_at").values_list("scored_at", flat=True).first()
        waited = now - oldest
        noun = "prediction waits" if count == 1 else "predictions wait"
        lines = [
            _Line(
                WARN if waited > ROUTING_BEHIND_AFTER else OK,
                "behind" if waited > ROUTING_BEHIND_AFTER else "routing",
                f"{count:,} {noun} to be routed, the oldest for {_duration(waited)} "
                "(`manage.py route_predictions` routes them now).",
            )
        ]
    else:
        lines = [_Line(OK, "routed", "Every prediction has its review.")]
    links = []
    for kind, label in _kinds():
        waiting = awaiting_rerouting(kind)
        if waiting:
            noun = "review waits" if waiting == 1 else "reviews wait"
            lines.append(
                _Line(
                    OK,
                    "re-routing",
                    f"{label}: {waiting:,} undecided {noun} to be re-routed under the "
                    "current policy.",
                )
            )
            links.append(Link(f"{label} thresholds", reverse("reviews:policy", args=[kind])))
    if not links:
        links = [Link("Thresholds", reverse("reviews:policy", args=[PredictionKind.CHURN]))]
    return _combined("routing", "Routing", lines, links)


def capacity_health() -> HealthItem:
    """Each queue against its daily capacity (`reviews.services.capacity`): what waits in a
    backlog, and how full the queues with a capacity are."""
    shown = [load for load in queue_loads() if load.waiting or load.capacity is not None]
    lines = [_capacity_line(load) for load in shown]
    if not lines:
        lines = [
            _Line(
                OK,
                "no limit",
                "No queue has a daily capacity: routing puts every item for people in its queue.",
            )
        ]
    kinds = [kind for kind, _ in _kinds() if any(load.kind == kind for load in shown)]
    labels = dict(_kinds())
    links = [
        Link(f"{labels[kind]} thresholds", reverse("reviews:policy", args=[kind])) for kind in kinds
    ] or [Link("Thresholds", reverse("reviews:policy", args=[PredictionKind.CHURN]))]
    return _combined("capacity", "Queue capacity", lines, links)


def _capacity_line(load: QueueLoad) -> _Line:
    where = f"{load.kind_label}, {load.queue_label}"
    held = f"{load.queued_label} in the queue, capacity {load.capacity_text}"
    if load.waiting:
        items = "item waits" if load.waiting == 1 else "items wait"
        return _Line(
            WARN, "backlog", f"{where}: {load.waiting_label} {items} in the backlog ({held})."
        )
    return _Line(OK, "within", f"{where}: {held}; nothing waits.")
