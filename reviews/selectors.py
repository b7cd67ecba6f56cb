"""Read side of the review workspace: the queues, a review's page and who may open what.

Everything a page shows is formatted here, in Python, into frozen dataclasses of strings:
template filters on 50 rows cost twice the CPU of the query and the page together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from loyalty.models import Action, Event
from predictions.ml.features import FEATURE_NAMES
from predictions.models import PredictionKind
from reviews.models import Decision, ReasonCode, Review

QUEUE_PAGE_SIZE = 50
TIMELINE_EVENTS = 50
MEMBER_HISTORY = 20
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


def can_open_review(user, review: Review) -> bool:
    """Experts open any review; analysts analyst items and (read-only) auto-approved ones."""
    if user.has_perm(DECIDE_ESCALATED):
        return True
    return user.has_perm(DECIDE) and review.route in (Review.Route.ANALYST, Review.Route.AUTO)


def can_decide_review(user, review: Review) -> bool:
    if review.state != Review.State.PENDING:
        return False
    if user.has_perm(DECIDE_ESCALATED):
        return True
    return user.has_perm(DECIDE) and review.route == Review.Route.ANALYST


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
        hours = int(age) if age.isdigit() and 0 < int(age) < 24 * 365 else None
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


def pending_counts(*, cap: int = PENDING_COUNT_CAP) -> dict[str, int]:
    """Pending reviews per route, counted up to `cap + 1`: each count reads at most that many
    entries of the (route, state, ...) queue index, whatever the queue's size."""
    return {
        route: Review.objects.filter(route=route, state=Review.State.PENDING)
        .order_by()
        .values("pk")[: cap + 1]
        .count()
        for route in (Review.Route.ANALYST.value, Review.Route.EXPERT.value)
    }


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
    "escalation_comment",
    "analyst_proposal",
    "member__external_id",
    "prediction__score",
    "prediction__interval_low",
    "prediction__interval_high",
    "prediction__recommended_action__name",
    "escalated_by__username",
    "escalation_reason__label",
)


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
    action_names = _action_names() if route == Review.Route.EXPERT else {}
    rows = tuple(_queue_row(row, now, action_names) for row in values)
    next_cursor = str(Cursor(values[-1]["priority"], values[-1]["pk"])) if has_more else None
    return QueuePage(
        route=route,
        rows=rows,
        next_cursor=next_cursor,
        cursor=str(cursor) if cursor else None,
        filters=filters,
        counts=pending_count_labels(),
    )


def _action_names() -> dict[str, str]:
    return dict(Action.objects.values_list("code", "name"))


def _queue_row(row: dict, now: datetime, action_names: dict[str, str]) -> QueueRow:
    kind = row["kind"]
    if kind == PredictionKind.CHURN:
        call = format_percent(row["prediction__score"])
        call_detail = format_interval(
            row["prediction__interval_low"], row["prediction__interval_high"]
        )
    else:
        call = row["prediction__recommended_action__name"] or "No eligible action"
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
        escalation=row["escalation_reason__label"] or "",
        escalation_comment=row["escalation_comment"] or "",
        escalated_by=row["escalated_by__username"] or "",
        proposal=format_proposal(row["analyst_proposal"], action_names),
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


def review_page(*, review_id: int, now: datetime | None = None) -> ReviewPage:
    """Everything the member page shows about one review. Raises Review.DoesNotExist."""
    now = now or timezone.now()
    review = Review.objects.select_related(
        "member",
        "prediction__recommended_action",
        "prediction__model_version",
        "escalated_by",
        "escalation_reason",
    ).get(pk=review_id)
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
        timeline=member_timeline(member_id=member.pk),
        history=member_history(member_id=member.pk, current=review.pk),
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


def member_timeline(*, member_id: int, limit: int = TIMELINE_EVENTS) -> tuple[TimelineItem, ...]:
    """The member's most recent events, newest first."""
    events = (
        Event.objects.filter(member_id=member_id)
        .order_by("-occurred_at", "-pk")
        .values_list("occurred_at", "kind", "amount", "category", "channel")[:limit]
    )
    items = []
    for occurred_at, kind, amount, category, channel in events:
        detail = " · ".join(
            part
            for part in (
                format_money(float(amount)) if amount is not None else "",
                category.title() if category else "",
                channel,
            )
            if part
        )
        items.append(
            TimelineItem(
                when=format_datetime(occurred_at),
                what=EVENT_LABELS.get(kind, kind),
                detail=detail,
                css=f"ev-{kind}",
            )
        )
    return tuple(items)


def member_history(
    *, member_id: int, current: int | None = None, limit: int = MEMBER_HISTORY
) -> tuple[HistoryItem, ...]:
    """The member's past predictions with their reviews and decisions, newest first."""
    reviews = (
        Review.objects.filter(member_id=member_id)
        .select_related(
            "prediction__recommended_action", "decision__decided_by", "decision__reason"
        )
        .order_by("-created_at", "-pk")[:limit]
    )
    items = []
    for review in reviews:
        prediction = review.prediction
        if review.kind == PredictionKind.CHURN:
            call = f"{format_percent(prediction.score)} churn risk"
        else:
            action = prediction.recommended_action
            call = action.name if action else "No eligible action"
        decision = getattr(review, "decision", None)
        if decision is not None:
            status = decision.get_verdict_display()
            by, reason = decision.decided_by.get_username(), decision.reason.label
        else:
            status = {
                Review.State.PENDING: f"Waiting ({review.get_route_display().lower()})",
                Review.State.AUTO_APPROVED: "Auto-approved",
            }.get(review.state, review.state)
            by, reason = "", ""
        items.append(
            HistoryItem(
                review_id=review.pk,
                when=format_datetime(prediction.cutoff, with_time=False),
                kind_label="Churn" if review.kind == PredictionKind.CHURN else "Next action",
                call=call,
                confidence=format_percent(review.confidence),
                status=status,
                by=by,
                reason=reason,
                is_current=review.pk == current,
            )
        )
    return tuple(items)


def reason_choices(treatments: tuple[str, ...]) -> list[tuple[str, str]]:
    """Active reason codes of the given treatments, as (code, label) choices."""
    return list(
        ReasonCode.objects.filter(is_active=True, treatment__in=treatments)
        .order_by("treatment", "label")
        .values_list("code", "label")
    )


def override_action_choices(*, exclude: str = "") -> list[tuple[str, str]]:
    """Active actions a next-action override can pick (all but the model's own answer)."""
    return list(
        Action.objects.filter(is_active=True)
        .exclude(code=exclude)
        .order_by("name")
        .values_list("code", "name")
    )


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
