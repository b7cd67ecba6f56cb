"""Read side of the review workspace: the queues, a review's page and who may open what.

Everything a page shows is formatted here, in Python, into frozen dataclasses of strings:
template filters on 50 rows cost twice the CPU of the query and the page together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from loyalty import shared_cache
from loyalty.models import Action, Event
from loyalty.parsing import parse_id
from predictions.ml.features import FEATURE_NAMES
from predictions.models import PredictionKind
from reviews.models import AutomationPause, Decision, ReasonCode, Review

QUEUE_PAGE_SIZE = 50
TIMELINE_EVENTS = 50
MEMBER_HISTORY = 20
# What a model version records about its training: kilobytes of JSON that the member page
# never shows, left in the database.
MODEL_VERSION_BULK = (
    "training_cutoffs",
    "row_counts",
    "hyperparameters",
    "library_versions",
    "metrics",
    "global_importance",
    "artifact_checksums",
)
# Risk bands of a churn probability, as loyalty managers talk about them.
RISK_BANDS = {"low": (0.0, 0.3), "medium": (0.3, 0.6), "high": (0.6, None)}
# Reason categories map to how routing words its reasons (reviews.services.routing).
REASON_PREFIXES = {
    "confidence": "confidence",
    "value": "member value",
    "risk": "churn risk",
    "audit": "audit sample",
    "escalated": "escalated",
}
REASON_LABELS = {
    "confidence": "Low confidence",
    "value": "High member value",
    "risk": "Risk band",
    "audit": "Audit sample",
    "escalated": "Escalated",
}
DECIDE = "reviews.decide_review"
DECIDE_ESCALATED = "reviews.decide_escalated"
VIEW_REVIEW = "reviews.view_review"


# --- who may open and decide ----------------------------------------------------------------


def queue_route_for(user) -> str | None:
    """The queue a user works by default: experts the expert queue, analysts theirs."""
    if user.has_perm(DECIDE_ESCALATED):
        return Review.Route.EXPERT
    if user.has_perm(DECIDE):
        return Review.Route.ANALYST
    return None


def can_open_queue(user, route: str) -> bool:
    if route == Review.Route.EXPERT:
        return user.has_perm(DECIDE_ESCALATED)
    return user.has_perm(DECIDE)


# What an analyst reads: their own queue's items, and the auto-approved ones read-only (an
# analyst checks what the automation decided; deciding it again is an expert's call).
ANALYST_READABLE_ROUTES = (Review.Route.ANALYST.value, Review.Route.AUTO.value)


def readable_routes(user) -> tuple[str, ...] | None:
    """The routes whose reviews a user may read, on the member page and in the API alike:
    None for every route (experts; admins, who read but do not decide), the analyst queue and
    the auto-approved items for analysts, nothing for anyone else."""
    if user.has_perm(DECIDE_ESCALATED):
        return None
    if user.has_perm(DECIDE):
        return ANALYST_READABLE_ROUTES
    return None if user.has_perm(VIEW_REVIEW) else ()


def visible_reviews_filter(user) -> Q:
    """The one visibility rule of reviews, as a filter: every page, API view and service that
    hands out a review by id or lists reviews applies it before anything else, and answers
    404 for what it excludes (an id the caller may not see is as good as no id).

    - the routes of `readable_routes`;
    - an analyst keeps sight of an item they escalated until an expert decides it, so that
      repeating the escalation answers like the first time (and never shows the expert's
      decision);
    - nobody sees the reviews of an erased member: they are no one's case any more.
    """
    routes = readable_routes(user)
    if routes is None:
        visible = Q()
    elif not routes:
        return Q(pk__in=[])
    else:
        visible = Q(route__in=routes)
        if user.is_authenticated:
            visible |= Q(escalated_by=user.pk, state=Review.State.PENDING)
    return visible & Q(member__erased_at__isnull=True)


def visible_reviews(user, reviews=None):
    """`reviews` (all reviews by default) narrowed to what `user` may see."""
    queryset = Review.objects.all() if reviews is None else reviews
    return queryset.filter(visible_reviews_filter(user))


def can_decide_review(user, review: Review) -> bool:
    """May the user decide it now: experts any undecided review, an auto-approval included
    (overriding the automation is theirs to do); analysts pending items of their queue. The
    decision services enforce the same (ReviewNotYours)."""
    if review.state == Review.State.DECIDED:
        return False
    if user.has_perm(DECIDE_ESCALATED):
        return True
    return (
        user.has_perm(DECIDE)
        and review.route == Review.Route.ANALYST
        and review.state == Review.State.PENDING
    )


# --- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilters:
    """The queue's GET filters, already validated; unknown values are dropped."""

    kind: str = ""
    tier: str = ""
    risk: str = ""
    reason: str = ""
    older_than_hours: int | None = None

    @classmethod
    def from_params(cls, params) -> QueueFilters:
        kind = params.get("kind", "")
        tier = params.get("tier", "")
        risk = params.get("risk", "")
        reason = params.get("reason", "")
        age = params.get("age", "")
        hours = parse_id(age)
        hours = hours if hours is not None and hours < 24 * 365 else None
        return cls(
            kind=kind if kind in PredictionKind.values else "",
            tier=tier if tier in settings.LOYALTY_TIER_LADDER else "",
            risk=risk if risk in RISK_BANDS else "",
            reason=reason if reason in REASON_PREFIXES else "",
            older_than_hours=hours,
        )

    def as_params(self) -> dict[str, str]:
        params = {"kind": self.kind, "tier": self.tier, "risk": self.risk, "reason": self.reason}
        if self.older_than_hours:
            params["age"] = str(self.older_than_hours)
        return {key: value for key, value in params.items() if value}

    @property
    def is_active(self) -> bool:
        return bool(self.as_params())

    def apply(self, reviews, *, now: datetime):
        if self.kind:
            reviews = reviews.filter(kind=self.kind)
        if self.tier:
            reviews = reviews.filter(tier=self.tier)
        if self.risk:
            low, high = RISK_BANDS[self.risk]
            reviews = reviews.filter(risk__gte=low)
            if high is not None:
                reviews = reviews.filter(risk__lt=high)
        if self.reason:
            reviews = reviews.filter(route_reason__startswith=REASON_PREFIXES[self.reason])
        if self.older_than_hours:
            reviews = reviews.filter(routed_at__lt=now - timedelta(hours=self.older_than_hours))
        return reviews


@dataclass(frozen=True)
class Cursor:
    """Where a queue page starts: after the row with this priority and id."""

    priority: float
    review_id: int

    @classmethod
    def parse(cls, text: str | None) -> Cursor | None:
        """`<priority>:<id>`; anything else means the first page."""
        if not text or ":" not in text:
            return None
        priority, _, review_id = text.rpartition(":")
        try:
            value, pk = float(priority), int(review_id)
        except ValueError:
            return None
        return cls(value, pk) if math.isfinite(value) else None

    def __str__(self) -> str:
        # repr() round-trips a float exactly, so equal priorities compare equal on page 2.
        return f"{self.priority!r}:{self.review_id}"


@dataclass(frozen=True)
class QueueRow:
    review_id: int
    member: str
    kind: str
    kind_label: str
    call: str
    call_detail: str
    risk_band: str
    confidence: str
    value: str
    reason: str
    waiting: str
    is_overdue: bool
    escalation: str = ""
    escalation_comment: str = ""
    escalated_by: str = ""
    proposal: str = ""


@dataclass(frozen=True)
class QueuePage:
    route: str
    rows: tuple[QueueRow, ...]
    next_cursor: str | None
    cursor: str | None
    filters: QueueFilters
    counts: dict[str, str] = field(default_factory=dict)


# Counting all of a million pending items on every page view cost ~60 ms on PostgreSQL
# (bench/pages.py); past this many, the exact number changes nothing an analyst does.
PENDING_COUNT_CAP = 1000


QUEUE_ROUTES = (Review.Route.ANALYST.value, Review.Route.EXPERT.value)


def pending_counts(*, cap: int = PENDING_COUNT_CAP) -> dict[str, int]:
    """Pending reviews per route, counted up to `cap + 1`: each count reads at most that many
    entries of the (route, state, ...) queue index, whatever the queue's size. Both counts in
    one statement: a round trip costs more than either count."""
    capped = [
        Review.objects.filter(route=route, state=Review.State.PENDING)
        .order_by()
        .values("pk")[: cap + 1]
        .query.sql_with_params()
        for route in QUEUE_ROUTES
    ]
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM ({part}) AS capped)" for part, _ in capped)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, params in capped for param in params])
        counts = cursor.fetchone()
    return dict(zip(QUEUE_ROUTES, counts, strict=True))


def pending_count_labels(*, cap: int = PENDING_COUNT_CAP) -> dict[str, str]:
    """The counts as the queue shows them: "1,000+" past the cap."""
    return {
        route: f"{cap:,}+" if count > cap else f"{count:,}"
        for route, count in pending_counts(cap=cap).items()
    }


def _after(reviews, cursor: Cursor):
    """Rows after the cursor in (priority desc, id asc) order. Written as
    `priority <= p AND (priority < p OR id > i)` so that PostgreSQL bounds the index range
    on priority instead of filtering the whole route (RECIPES: 0.05 ms at any depth)."""
    return reviews.filter(
        Q(priority__lte=cursor.priority)
        & (Q(priority__lt=cursor.priority) | Q(pk__gt=cursor.review_id))
    )


# Three tables, not six: the planner's time grows with every join (a six-table join cost
# ~1.6 ms to plan against 0.4 ms to run, bench/pages.py), so the few escalations and action
# names of a page are looked up by id afterwards, one small query each and only when needed.
QUEUE_FIELDS = (
    "pk",
    "kind",
    "priority",
    "route_reason",
    "member_value",
    "risk",
    "confidence",
    "routed_at",
    "due_at",
    "escalated_by_id",
    "escalation_reason_id",
    "escalation_comment",
    "analyst_proposal",
    "member__external_id",
    "prediction__score",
    "prediction__interval_low",
    "prediction__interval_high",
    "prediction__recommended_action_id",
)


@dataclass(frozen=True)
class _RowLabels:
    """Names that queue rows refer to by id or code, fetched once per page."""

    usernames: dict[int, str] = field(default_factory=dict)
    reason_labels: dict[int, str] = field(default_factory=dict)
    action_names_by_id: dict[int, str] = field(default_factory=dict)
    action_names_by_code: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_rows(cls, rows: list[dict]) -> _RowLabels:
        user_ids = {row["escalated_by_id"] for row in rows} - {None}
        reason_ids = {row["escalation_reason_id"] for row in rows} - {None}
        needs_actions = any(
            row["prediction__recommended_action_id"] or row["analyst_proposal"] for row in rows
        )
        actions = list(Action.objects.values_list("pk", "code", "name")) if needs_actions else []
        return cls(
            usernames=_usernames(user_ids),
            reason_labels=dict(
                ReasonCode.objects.filter(pk__in=reason_ids).values_list("pk", "label")
            )
            if reason_ids
            else {},
            action_names_by_id={pk: name for pk, _, name in actions},
            action_names_by_code={code: name for _, code, name in actions},
        )


def _usernames(user_ids: set[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    users = get_user_model().objects.filter(pk__in=user_ids)
    return {user.pk: user.get_username() for user in users.only("pk", "username")}


def pending_reviews_for(
    *,
    route: str,
    filters: QueueFilters | None = None,
    after: str | None = None,
    limit: int = QUEUE_PAGE_SIZE,
    now: datetime | None = None,
) -> QueuePage:
    """One page of a route's pending reviews, highest priority first (keyset pagination)."""
    filters = filters or QueueFilters()
    now = now or timezone.now()
    reviews = Review.objects.filter(route=route, state=Review.State.PENDING)
    reviews = filters.apply(reviews, now=now)
    cursor = Cursor.parse(after)
    if cursor is not None:
        reviews = _after(reviews, cursor)
    values = list(reviews.order_by("-priority", "pk").values(*QUEUE_FIELDS)[: limit + 1])
    has_more = len(values) > limit
    values = values[:limit]
    labels = _RowLabels.for_rows(values)
    rows = tuple(_queue_row(row, now, labels) for row in values)
    next_cursor = str(Cursor(values[-1]["priority"], values[-1]["pk"])) if has_more else None
    return QueuePage(
        route=route,
        rows=rows,
        next_cursor=next_cursor,
        cursor=str(cursor) if cursor else None,
        filters=filters,
        counts=pending_count_labels(),
    )


def _queue_row(row: dict, now: datetime, labels: _RowLabels) -> QueueRow:
    kind = row["kind"]
    if kind == PredictionKind.CHURN:
        call = format_percent(row["prediction__score"])
        call_detail = format_interval(
            row["prediction__interval_low"], row["prediction__interval_high"]
        )
    else:
        action_id = row["prediction__recommended_action_id"]
        call = labels.action_names_by_id.get(action_id) or "No eligible action"
        call_detail = f"p = {format_percent(row['prediction__score'])}"
    due_at = row["due_at"]
    return QueueRow(
        review_id=row["pk"],
        member=row["member__external_id"],
        kind=kind,
        kind_label="Churn" if kind == PredictionKind.CHURN else "Next action",
        call=call,
        call_detail=call_detail,
        risk_band=risk_band(row["risk"]),
        confidence=format_percent(row["confidence"]),
        value=format_money(row["member_value"]),
        reason=row["route_reason"],
        waiting=format_age(now - row["routed_at"]),
        is_overdue=due_at is not None and due_at < now,
        escalation=labels.reason_labels.get(row["escalation_reason_id"], ""),
        escalation_comment=row["escalation_comment"] or "",
        escalated_by=labels.usernames.get(row["escalated_by_id"], ""),
        proposal=format_proposal(row["analyst_proposal"], labels.action_names_by_code),
    )


def next_pending_review(*, route: str, after: Review) -> int | None:
    """The id of the pending review that follows `after` in its queue's order; the top of the
    queue when `after` was the last one; None when the queue is empty."""
    pending = Review.objects.filter(route=route, state=Review.State.PENDING).exclude(pk=after.pk)
    ordered = pending.order_by("-priority", "pk").values_list("pk", flat=True)
    following = _after(pending, Cursor(after.priority, after.pk))
    return following.order_by("-priority", "pk").values_list("pk", flat=True).first() or (
        ordered.first()
    )


# --- the member page ------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


@dataclass(frozen=True)
class TimelineItem:
    when: str
    what: str
    detail: str
    css: str
    # Set on the events the sequence model's occlusion picked (ensemble predictions only):
    # how far removing the event would move the score, in the ensemble's log-odds.
    sequence_effect: str = ""


@dataclass(frozen=True)
class HistoryItem:
    review_id: int
    when: str
    kind_label: str
    call: str
    confidence: str
    status: str
    by: str
    reason: str
    is_current: bool


@dataclass(frozen=True)
class ActionProbability:
    code: str
    name: str
    probability: float
    label: str
    in_set: bool
    is_recommended: bool


@dataclass(frozen=True)
class ReviewPage:
    review: Review
    member_facts: tuple[Fact, ...]
    kind_label: str
    headline: str
    headline_detail: str
    set_text: str
    risk_band: str
    confidence: str
    route_label: str
    route_reason: str
    waiting: str
    state_label: str
    escalation: tuple[Fact, ...]
    decision: tuple[Fact, ...]
    actions: tuple[ActionProbability, ...]
    explanation: dict
    timeline: tuple[TimelineItem, ...]
    history: tuple[HistoryItem, ...]


def review_page(*, review_id: int, viewer, now: datetime | None = None) -> ReviewPage:
    """Everything the member page shows about one review, for a viewer who may see it.
    Raises Review.DoesNotExist for an unknown id and for one the viewer may not see alike."""
    now = now or timezone.now()
    # Joined: what every page shows. Read lazily, one small query each and only where there
    # is one: the recommended action (next-action pages), who escalated and why (escalated
    # reviews). Every join costs the planner time on every page view.
    review = (
        visible_reviews(viewer)
        .select_related("member", "prediction__model_version")
        .defer(*(f"prediction__model_version__{name}" for name in MODEL_VERSION_BULK))
        .get(pk=review_id)
    )
    prediction, member = review.prediction, review.member
    if review.kind == PredictionKind.CHURN:
        headline = format_percent(prediction.score)
        interval = format_interval(prediction.interval_low, prediction.interval_high)
        headline_detail = f"churn risk · interval {interval}" if interval else "churn risk"
        outcomes = " or ".join(prediction.label_set or ()) or "none"
        set_text = f"possible outcomes: {outcomes}"
    else:
        action = prediction.recommended_action
        headline = action.name if action else "No eligible action"
        headline_detail = f"probability {format_percent(prediction.score)}"
        size = len(prediction.label_set or ())
        set_text = f"{size} action{'s' if size != 1 else ''} the model cannot rule out"
    # As of the data the model saw: a historical import must not age its members to today.
    as_of = min(now, prediction.cutoff).date()
    tenure = (as_of - member.joined_on).days if member.joined_on else None
    facts = (
        Fact("Member", member.external_id),
        Fact("Tier", (member.tier or "—").title()),
        Fact("Tenure", format_tenure(tenure)),
        Fact("Points", f"{member.points_balance:,}"),
        Fact("12-month spend", format_money(review.member_value)),
    )
    return ReviewPage(
        review=review,
        member_facts=facts,
        kind_label=PredictionKind(review.kind).label,
        headline=headline,
        headline_detail=headline_detail,
        set_text=set_text,
        risk_band=risk_band(review.risk),
        confidence=format_percent(review.confidence),
        route_label=review.get_route_display(),
        route_reason=review.route_reason,
        waiting=format_age(now - review.routed_at),
        state_label=review.get_state_display().replace("_", " "),
        escalation=_escalation_facts(review),
        decision=_decision_facts(review),
        actions=_action_probabilities(prediction),
        explanation=prediction.explanation or {},
        timeline=member_timeline(
            member_id=member.pk,
            marked=(prediction.explanation or {}).get("sequence_events") or (),
        ),
        history=member_history(member_id=member.pk, viewer=viewer, current=review.pk),
    )


def _escalation_facts(review: Review) -> tuple[Fact, ...]:
    if not review.is_escalated:
        return ()
    facts = [
        Fact("Escalated by", review.escalated_by.get_username() if review.escalated_by else "—"),
        Fact("Why", review.escalation_reason.label if review.escalation_reason else "—"),
        Fact("When", format_datetime(review.escalated_at)),
    ]
    if review.escalation_comment:
        facts.append(Fact("Comment", review.escalation_comment))
    if review.analyst_proposal:
        facts.append(Fact("Analyst proposed", format_proposal(review.analyst_proposal)))
    return tuple(facts)


def _decision_facts(review: Review) -> tuple[Fact, ...]:
    if review.state != Review.State.DECIDED:
        return ()  # a review gets its decision and the state decided in one transaction
    decision = (
        Decision.objects.select_related("decided_by", "reason", "action")
        .filter(review=review)
        .first()
    )
    if decision is None:
        return ()
    facts = [
        Fact("Verdict", decision.get_verdict_display()),
        Fact("By", f"{decision.decided_by.get_username()} ({decision.decided_as})"),
        Fact("When", format_datetime(decision.decided_at)),
        Fact("Reason", decision.reason.label),
    ]
    if decision.churn_label is not None:
        facts.append(Fact("Right call", "Will churn" if decision.churn_label else "Will stay"))
    if decision.action is not None:
        facts.append(Fact("Right action", decision.action.name))
    if decision.comment:
        facts.append(Fact("Comment", decision.comment))
    return tuple(facts)


def _action_probabilities(prediction) -> tuple[ActionProbability, ...]:
    if not prediction.probabilities:
        return ()
    names = dict(Action.objects.values_list("code", "name"))
    recommended = prediction.recommended_action.code if prediction.recommended_action else ""
    in_set = set(prediction.label_set or ())
    ordered = sorted(prediction.probabilities.items(), key=lambda item: -float(item[1] or 0))
    return tuple(
        ActionProbability(
            code=code,
            name=names.get(code, code),
            probability=float(p or 0),
            label=format_percent(p),
            in_set=code in in_set,
            is_recommended=code == recommended,
        )
        for code, p in ordered
    )


EVENT_LABELS = {kind.value: kind.label.replace("_", " ").capitalize() for kind in Event.Kind}


def member_timeline(
    *, member_id: int, marked: Sequence[dict] = (), limit: int = TIMELINE_EVENTS
) -> tuple[TimelineItem, ...]:
    """The member's most recent events, newest first. `marked`: the events the sequence model
    attributed most to (an ensemble explanation's "sequence_events"); each is flagged with
    its effect, and shown even when it is older than the `limit` most recent."""
    effects = _sequence_effects(marked)
    columns = ("occurred_at", "kind", "amount", "category", "channel")
    rows = list(
        Event.objects.filter(member_id=member_id)
        .order_by("-occurred_at", "-pk")
        .values_list(*columns)[:limit]
    )
    missing = set(effects) - {(row[0], row[1]) for row in rows}
    if missing:
        older = Event.objects.filter(
            member_id=member_id, occurred_at__in={when for when, _ in missing}
        ).values_list(*columns)
        rows += [row for row in older if (row[0], row[1]) in missing]
        rows.sort(key=lambda row: row[0], reverse=True)
    return tuple(_timeline_item(row, effects) for row in rows)


def _sequence_effects(marked: Sequence[dict]) -> dict[tuple[datetime, str], float]:
    effects = {}
    for event in marked:
        try:
            when = datetime.fromisoformat(event["occurred_at"])
            effects[(when, event["kind"])] = float(event["attribution"])
        except (KeyError, TypeError, ValueError):
            continue  # an explanation stored by another version: show the timeline unmarked
    return effects


def _timeline_item(row: tuple, effects: dict[tuple[datetime, str], float]) -> TimelineItem:
    occurred_at, kind, amount, category, channel = row
    detail = " · ".join(
        part
        for part in (
            format_money(float(amount)) if amount is not None else "",
            category.title() if category else "",
            channel,
        )
        if part
    )
    effect = effects.get((occurred_at, kind))
    css = f"ev-{kind}"
    if effect is not None:
        css += " seq-up" if effect > 0 else " seq-down"
    return TimelineItem(
        when=format_datetime(occurred_at),
        what=EVENT_LABELS.get(kind, kind),
        detail=detail,
        css=css,
        sequence_effect="" if effect is None else f"{effect:+.3f}",
    )


def member_history(
    *, member_id: int, viewer, current: int | None = None, limit: int = MEMBER_HISTORY
) -> tuple[HistoryItem, ...]:
    """The member's past predictions with their reviews and decisions, newest first: those
    the viewer may see (an analyst does not learn how an expert decided an expert's item)."""
    reviews = list(
        visible_reviews(viewer)
        .filter(member_id=member_id)
        .order_by("-created_at", "-pk")
        .values(
            "pk",
            "kind",
            "route",
            "state",
            "confidence",
            "prediction__score",
            "prediction__cutoff",
            "prediction__recommended_action_id",
        )[:limit]
    )
    decisions = _decisions_of(
        [row["pk"] for row in reviews if row["state"] == Review.State.DECIDED]
    )
    action_ids = {row["prediction__recommended_action_id"] for row in reviews} - {None}
    action_names = (
        dict(Action.objects.filter(pk__in=action_ids).values_list("pk", "name"))
        if action_ids
        else {}
    )
    return tuple(
        _history_item(row, decisions.get(row["pk"]), action_names, current) for row in reviews
    )


def _decisions_of(review_ids: list[int]) -> dict[int, dict]:
    if not review_ids:
        return {}
    decisions = Decision.objects.filter(review_id__in=review_ids).values(
        "review_id", "verdict", "decided_by__username", "reason__label"
    )
    return {decision["review_id"]: decision for decision in decisions}


ROUTE_LABELS = dict(Review.Route.choices)
VERDICT_LABELS = dict(Decision.Verdict.choices)


def _history_item(
    row: dict, decision: dict | None, action_names: dict[int, str], current: int | None
) -> HistoryItem:
    is_churn = row["kind"] == PredictionKind.CHURN
    if is_churn:
        call = f"{format_percent(row['prediction__score'])} churn risk"
    else:
        call = action_names.get(row["prediction__recommended_action_id"], "No eligible action")
    if decision is not None:
        status = VERDICT_LABELS.get(decision["verdict"], decision["verdict"])
        by, reason = decision["decided_by__username"], decision["reason__label"]
    else:
        status = {
            Review.State.PENDING: f"Waiting ({ROUTE_LABELS[row['route']].lower()})",
            Review.State.AUTO_APPROVED: "Auto-approved",
        }.get(row["state"], row["state"])
        by, reason = "", ""
    return HistoryItem(
        review_id=row["pk"],
        when=format_datetime(row["prediction__cutoff"], with_time=False),
        kind_label="Churn" if is_churn else "Next action",
        call=call,
        confidence=format_percent(row["confidence"]),
        status=status,
        by=by,
        reason=reason,
        is_current=row["pk"] == current,
    )


@dataclass
class _Catalogs:
    """The active reason codes and actions, read once for a block of code (catalogs_read_once)."""

    reason_codes: list[tuple[str, str, str]] | None = None  # (treatment, code, label)
    actions: list[tuple[str, str]] | None = None  # (code, name)


_catalogs: ContextVar[_Catalogs | None] = ContextVar("review_catalogs", default=None)


@contextmanager
def catalogs_read_once():
    """Within the block, reason_choices and override_action_choices read their catalog from
    the database once and answer every later call from it: the member page builds three
    decision forms, each asking for both (six queries become two)."""
    token = _catalogs.set(_Catalogs())
    try:
        yield
    finally:
        _catalogs.reset(token)


REASON_CODES_KEY = "catalog:reason-codes"
ACTIONS_KEY = "catalog:actions"


def _active_reason_codes() -> list[tuple[str, str, str]]:
    """(treatment, code, label) of the active reason codes; in the shared cache when there is
    one (forgotten when a reason code is saved, reviews.signals)."""
    return shared_cache.remembered(
        REASON_CODES_KEY,
        lambda: list(
            ReasonCode.objects.filter(is_active=True)
            .order_by("treatment", "label")
            .values_list("treatment", "code", "label")
        ),
    )


def _active_actions() -> list[tuple[str, str]]:
    """(code, name) of the active actions, cached as the reason codes are."""
    return shared_cache.remembered(
        ACTIONS_KEY,
        lambda: list(
            Action.objects.filter(is_active=True).order_by("name").values_list("code", "name")
        ),
    )


def reason_choices(treatments: tuple[str, ...]) -> list[tuple[str, str]]:
    """Active reason codes of the given treatments, as (code, label) choices."""
    catalogs = _catalogs.get()
    if catalogs is None:
        codes = _active_reason_codes()
    else:
        if catalogs.reason_codes is None:
            catalogs.reason_codes = _active_reason_codes()
        codes = catalogs.reason_codes
    return [(code, label) for treatment, code, label in codes if treatment in treatments]


def override_action_choices(*, exclude: str = "") -> list[tuple[str, str]]:
    """Active actions a next-action override can pick (all but the model's own answer)."""
    catalogs = _catalogs.get()
    if catalogs is None:
        actions = _active_actions()
    else:
        if catalogs.actions is None:
            catalogs.actions = _active_actions()
        actions = catalogs.actions
    return [(code, name) for code, name in actions if code != exclude]


def feature_name(code: str) -> str:
    return FEATURE_NAMES.get(code, code.replace("_", " ").capitalize())


# --- formatting -----------------------------------------------------------------------------


def format_percent(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value * 100:.0f} %"


def format_interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"{low * 100:.0f}–{high * 100:.0f} %"


def format_money(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_age(age: timedelta) -> str:
    minutes = max(int(age.total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h"
    return f"{hours // 24} d {hours % 24} h"


def format_tenure(days: int | None) -> str:
    if days is None:
        return "—"
    if days < 60:
        return f"{days} days"
    years, months = divmod(days * 12 // 365, 12)
    if not years:
        return f"{months} months"
    return f"{years} y {months} m" if months else f"{years} y"


def format_datetime(value: datetime | None, *, with_time: bool = True) -> str:
    if value is None:
        return "—"
    local = timezone.localtime(value)
    return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def format_feature_value(code: str, value) -> str:
    """A feature's value as a person reads it: days as whole days, shares as percents."""
    if value is None:
        return "missing"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "missing"
    if "share" in code and 0 <= number <= 1:
        return f"{number * 100:.0f} %"
    if "trend" in code:
        return f"{number:+.2f}"
    if number == int(number) and abs(number) < 1e9:
        return f"{int(number):,}"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    return f"{number:.2f}"


def format_proposal(proposal: dict | None, action_names: dict[str, str] | None = None) -> str:
    """An analyst's escalation proposal in words ({'verdict', 'churn_label'|'action'})."""
    if not proposal:
        return ""
    verdict = proposal.get("verdict", "")
    if verdict == "approve":
        return "Approve the model's call"
    if "churn_label" in proposal and proposal["churn_label"] is not None:
        return "Override: will churn" if proposal["churn_label"] else "Override: will stay"
    if proposal.get("action"):
        code = proposal["action"]
        return f"Override: {(action_names or {}).get(code, code)}"
    return str(proposal.get("note") or verdict or "")


def risk_band(risk: float | None) -> str:
    if risk is None:
        return ""
    for band, (low, high) in RISK_BANDS.items():
        if risk >= low and (high is None or risk < high):
            return band
    return ""


# --- automation pauses ---------------------------------------------------------------------

PAUSES_KEY = "automation:open-pauses"


def open_pause(kind: str) -> AutomationPause | None:
    """The pause of `kind` in force, read from the database (routing decides by it)."""
    return AutomationPause.objects.open().filter(kind=kind).first()


def open_pauses() -> list[AutomationPause]:
    """Every open pause (the banner on every queue page reads this; from the shared cache when
    there is one: pausing and resuming forget it)."""
    return shared_cache.remembered(
        PAUSES_KEY,
        lambda: list(AutomationPause.objects.open().order_by("kind")),
    )
