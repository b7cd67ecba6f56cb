"""The review queues: one keyset page of a route's pending items, its filters and counts, and
the item that follows a decided one."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from loyalty import keyset
from loyalty.models import Action
from loyalty.parsing import parse_id
from predictions.behavior_clusters import ClusterLabels, ClusterRef
from predictions.ml.segments import RFM_SEGMENT_NAMES
from predictions.models import PredictionKind
from reviews.models import CASE, BlindAnswer, ReasonCode, Review
from reviews.selectors.formatting import (
    RISK_BANDS,
    format_age,
    format_contact_flags,
    format_interval,
    format_money,
    format_percent,
    format_proposal,
    risk_band,
)

QUEUE_PAGE_SIZE = 50
# What the kind filter offers: cases, and the reviews of one prediction of either kind.
QUEUE_KINDS = {CASE: "Case", **dict(PredictionKind.choices)}
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


@dataclass(frozen=True)
class QueueFilters:
    """The queue's GET filters, already validated; unknown values are dropped."""

    kind: str = ""
    tier: str = ""
    # An RFM segment code (`predictions.ml.segments`): data about the member, not the model's
    # answer, so blind items are listed too.
    segment: str = ""
    # A behavioral cluster, as "<version id>-<number>" (`predictions.behavior_clusters`).
    cluster: str = ""
    risk: str = ""
    reason: str = ""
    older_than_hours: int | None = None

    @classmethod
    def from_params(cls, params) -> QueueFilters:
        kind = params.get("kind", "")
        tier = params.get("tier", "")
        segment = params.get("segment", "")
        cluster = ClusterRef.parse(params.get("cluster"))
        risk = params.get("risk", "")
        reason = params.get("reason", "")
        age = params.get("age", "")
        hours = parse_id(age)
        hours = hours if hours is not None and hours < 24 * 365 else None
        return cls(
            kind=kind if kind in QUEUE_KINDS else "",
            tier=tier if tier in settings.LOYALTY_TIER_LADDER else "",
            segment=segment if segment in RFM_SEGMENT_NAMES else "",
            cluster=cluster.token if cluster else "",
            risk=risk if risk in RISK_BANDS else "",
            reason=reason if reason in REASON_PREFIXES else "",
            older_than_hours=hours,
        )

    def as_params(self) -> dict[str, str]:
        params = {
            "kind": self.kind,
            "tier": self.tier,
            "segment": self.segment,
            "cluster": self.cluster,
            "risk": self.risk,
            "reason": self.reason,
        }
        if self.older_than_hours:
            params["age"] = str(self.older_than_hours)
        return {key: value for key, value in params.items() if value}

    @property
    def is_active(self) -> bool:
        return bool(self.as_params())

    def apply(self, reviews, *, now: datetime):
        if self.risk or self.reason:
            # A blind item in a risk band's or a reason's results would tell its risk or why
            # the model sent it: filters on what the model said never list blind items.
            reviews = reviews.filter(is_blind=False)
        if self.kind == CASE:
            reviews = reviews.filter(action_prediction__isnull=False)
        elif self.kind:
            reviews = reviews.filter(kind=self.kind, action_prediction__isnull=True)
        if self.tier:
            reviews = reviews.filter(tier=self.tier)
        if self.segment:
            reviews = reviews.filter(rfm_segment=self.segment)
        if cluster := ClusterRef.parse(self.cluster):
            reviews = reviews.filter(
                prediction__model_version_id=cluster.version_id,
                prediction__behavior_cluster=cluster.number,
            )
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
class QueueRow:
    review_id: int
    member: str
    kind: str
    kind_label: str
    call: str
    call_detail: str
    # A case's recommended action and its worth, beside its churn call ('' otherwise).
    action: str
    action_detail: str
    risk_band: str
    confidence: str
    value: str
    reason: str
    waiting: str
    is_overdue: bool
    # The member's RFM segment when routed ('' when none): shown on blind items too.
    segment: str = ""
    # The member's behavioral cluster, "Cluster 2: …" ('' when none): member data, like the
    # segment.
    cluster: str = ""
    escalation: str = ""
    escalation_comment: str = ""
    escalated_by: str = ""
    proposal: str = ""
    contact_rules: str = ""
    # Hides the model's answer: no quick or bulk approval either.
    is_blind: bool = False


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
        Review.objects.queued(route).order_by().values("pk")[: cap + 1].query.sql_with_params()
        for route in QUEUE_ROUTES
    ]
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM ({part}) AS capped)" for part, _ in capped)
    with connection.cursor() as cursor:
        cursor.execute(sql, [param for _, params in capped for param in params])
        counts = cursor.fetchone()
    return dict(zip(QUEUE_ROUTES, counts, strict=True))


def pending_count_labels(*, cap: int = PENDING_COUNT_CAP) -> dict[str, str]:
    """The counts as the queue shows them: "1,000+" past the cap."""
    return {route: count_label(count, cap=cap) for route, count in pending_counts(cap=cap).items()}


def count_label(count: int, *, cap: int = PENDING_COUNT_CAP) -> str:
    """A pending count counted up to `cap + 1`, as pages show it: "1,000+" past the cap."""
    return f"{cap:,}+" if count > cap else f"{count:,}"


QUEUE_ORDER = ("-priority", "pk")


def _queue_cursor(text: str | None) -> keyset.Cursor | None:
    """The cursor of a queue link; a broken one means the first page."""
    if not text:
        return None
    try:
        return keyset.decode_cursor(text, model=Review, ordering=QUEUE_ORDER)
    except keyset.InvalidCursor:
        return None


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
    "recommended_action_id",
    "expected_value",
    "contact_flags",
    "action_prediction_id",
    "is_blind",
    "rfm_segment",
    "prediction__model_version_id",
    "prediction__behavior_cluster",
)


@dataclass(frozen=True)
class _RowLabels:
    """Names that queue rows refer to by id or code, fetched once per page."""

    usernames: dict[int, str] = field(default_factory=dict)
    reason_labels: dict[int, str] = field(default_factory=dict)
    action_names_by_id: dict[int, str] = field(default_factory=dict)
    action_names_by_code: dict[str, str] = field(default_factory=dict)
    action_costs_by_id: dict[int, float] = field(default_factory=dict)
    # The page's blind items that still hide the model's answer (nobody committed one).
    hidden_ids: frozenset[int] = frozenset()
    clusters: ClusterLabels = field(default_factory=lambda: ClusterLabels({}))

    @classmethod
    def for_rows(cls, rows: list[dict]) -> _RowLabels:
        user_ids = {row["escalated_by_id"] for row in rows} - {None}
        reason_ids = {row["escalation_reason_id"] for row in rows} - {None}
        needs_actions = any(row["recommended_action_id"] or row["analyst_proposal"] for row in rows)
        actions = (
            list(Action.objects.values_list("pk", "code", "name", "cost")) if needs_actions else []
        )
        return cls(
            usernames=_usernames(user_ids),
            reason_labels=dict(
                ReasonCode.objects.filter(pk__in=reason_ids).values_list("pk", "label")
            )
            if reason_ids
            else {},
            action_names_by_id={pk: name for pk, _, name, _ in actions},
            action_names_by_code={code: name for _, code, name, _ in actions},
            action_costs_by_id={pk: float(cost) for pk, _, _, cost in actions},
            hidden_ids=frozenset(
                row["pk"] for row in rows if row["is_blind"] and not row["blind_answered"]
            ),
            clusters=ClusterLabels.for_versions(
                {row["prediction__model_version_id"] for row in rows}
            ),
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
    reviews = filters.apply(Review.objects.queued(route), now=now).annotate(
        blind_answered=Exists(BlindAnswer.objects.filter(review=OuterRef("pk")))
    )
    cursor = _queue_cursor(after)
    page = keyset.keyset_page(
        reviews.values(*QUEUE_FIELDS, "blind_answered"),
        ordering=QUEUE_ORDER,
        cursor=cursor,
        size=limit,
    )
    labels = _RowLabels.for_rows(page.rows)
    rows = tuple(_queue_row(row, now, labels) for row in page.rows)
    next_cursor = None
    if page.has_more:
        boundary = keyset.ordering_key(page.rows[-1], QUEUE_ORDER)
        next_cursor = keyset.encode_cursor(keyset.Cursor(key=boundary))
    return QueuePage(
        route=route,
        rows=rows,
        next_cursor=next_cursor,
        cursor=after if cursor else None,
        filters=filters,
        counts=pending_count_labels(),
    )


def _queue_row(row: dict, now: datetime, labels: _RowLabels) -> QueueRow:
    kind = CASE if row["action_prediction_id"] is not None else row["kind"]
    action = action_detail = ""
    if kind != PredictionKind.NEXT_ACTION:
        call = format_percent(row["prediction__score"])
        call_detail = format_interval(
            row["prediction__interval_low"], row["prediction__interval_high"]
        )
    if kind != PredictionKind.CHURN:
        action_id = row["recommended_action_id"]
        action = labels.action_names_by_id.get(action_id) or "No eligible action"
        action_detail = action_worth(
            expected_value=row["expected_value"],
            cost=labels.action_costs_by_id.get(action_id),
            probability=None if kind == CASE else row["prediction__score"],
        )
    if kind == PredictionKind.NEXT_ACTION:  # the action is the call
        call, call_detail, action, action_detail = action, action_detail, "", ""
    due_at = row["due_at"]
    shown = QueueRow(
        review_id=row["pk"],
        member=row["member__external_id"],
        kind=kind,
        kind_label=QUEUE_KINDS[kind],
        call=call,
        call_detail=call_detail,
        action=action,
        action_detail=action_detail,
        risk_band=risk_band(row["risk"]),
        confidence=format_percent(row["confidence"]),
        value=format_money(row["member_value"]),
        reason=row["route_reason"],
        waiting=format_age(now - row["routed_at"]),
        is_overdue=due_at is not None and due_at < now,
        segment=RFM_SEGMENT_NAMES.get(row["rfm_segment"], ""),
        cluster=labels.clusters.label(
            row["prediction__model_version_id"], row["prediction__behavior_cluster"]
        ),
        escalation=labels.reason_labels.get(row["escalation_reason_id"], ""),
        escalation_comment=row["escalation_comment"] or "",
        escalated_by=labels.usernames.get(row["escalated_by_id"], ""),
        proposal=format_proposal(row["analyst_proposal"], labels.action_names_by_code),
        contact_rules=format_contact_flags(row["contact_flags"]),
    )
    return _blind(shown) if row["pk"] in labels.hidden_ids else shown


BLIND_REASON = "Blind review: open it and give your own answer; then the model's is shown."


def _blind(row: QueueRow) -> QueueRow:
    """A blind item's row: who, what kind and how long; nothing of what the model said or why
    it is here (`reviews.services.blind`)."""
    return replace(
        row,
        call="Blind",
        call_detail="",
        action="",
        action_detail="",
        risk_band="",
        confidence="—",
        reason=BLIND_REASON,
        contact_rules="",
        is_blind=True,
    )


def action_worth(*, expected_value: float | None, cost: float | None, probability) -> str:
    """A recommendation's worth in a few words: its expected value and cost when a churn score
    weighed it, the model's probability otherwise."""
    if expected_value is None or cost is None:
        return f"p = {format_percent(probability)}" if probability is not None else ""
    return f"EV {format_money(expected_value)} · cost {format_money(cost)}"


def next_pending_review(*, route: str, after: Review) -> int | None:
    """The id of the pending review that follows `after` in its queue's order; the top of the
    queue when `after` was the last one; None when the queue is empty."""
    pending = Review.objects.queued(route).exclude(pk=after.pk)
    ordered = pending.order_by(*QUEUE_ORDER).values_list("pk", flat=True)
    following = ordered.filter(keyset.after(QUEUE_ORDER, (after.priority, after.pk)))
    return following.first() or ordered.first()


def overdue_analyst_items(*, now: datetime):
    """Analyst items in the queue whose due time has passed (the SLA escalation takes them);
    one waiting in the backlog has no clock running."""
    return Review.objects.queued(Review.Route.ANALYST).filter(due_at__lte=now)
