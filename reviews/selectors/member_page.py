"""The member page: one review with its member, the model's call and explanation, the member's
recent activity and past predictions, for a viewer who may see it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from loyalty.models import Action, Event
from predictions.behavior_clusters import ClusterLabels
from predictions.ml.segments import RFM_SEGMENT_NAMES
from predictions.models import PredictionKind
from reviews.models import Decision, EscalationPolicy, Review
from reviews.permissions import visible_reviews
from reviews.selectors.blind import BlindAnswerFacts, blind_answer_facts, still_blind
from reviews.selectors.formatting import (
    format_age,
    format_contact_flags,
    format_datetime,
    format_interval,
    format_money,
    format_percent,
    format_proposal,
    format_tenure,
    risk_band,
)
from reviews.services.action_ranking import ranked_actions

TIMELINE_EVENTS = 50
# The states a decision comes with: a person's, or the policy's auto-approval (an auto-approval
# routed before policy decisions existed has none, and shows as auto-approved).
DECIDED_STATES = (Review.State.DECIDED, Review.State.AUTO_APPROVED)
# A pending review that waits for room in its queue (`reviews.services.capacity`).
WAITING_LABEL = "waiting in the backlog"
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
class ActionWorthRow:
    """One eligible action as the member page ranks it, with its expected value's numbers."""

    code: str
    name: str
    propensity: str
    gain: str
    cost: str
    expected_value: str
    formula: str
    is_recommended: bool
    is_positive: bool


@dataclass(frozen=True)
class ReviewPage:
    review: Review
    member_facts: tuple[Fact, ...]
    kind_label: str
    headline: str
    headline_detail: str
    # A case's second call: the recommended action and its numbers ('' otherwise).
    action_headline: str
    action_detail: str
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
    ranked_actions: tuple[ActionWorthRow, ...]
    ranking_label: str
    contact_warning: str
    # The action the explanation explains: the model's likeliest, which a ranking by expected
    # value may not recommend ('' for a churn review).
    explained_action: str
    explanation: dict
    timeline: tuple[TimelineItem, ...]
    history: tuple[HistoryItem, ...]
    # A blind item's committed answer beside the model's call (None: not a blind item).
    blind_answer: BlindAnswerFacts | None = None


def review_page(*, review_id: int, viewer, now: datetime | None = None) -> ReviewPage:
    """Everything the member page shows about one review, for a viewer who may see it.
    Raises Review.DoesNotExist for an unknown id and for one the viewer may not see alike."""
    review = visible_page_review(review_id=review_id, viewer=viewer)
    return page_of_review(review=review, viewer=viewer, now=now)


def visible_page_review(*, review_id: int, viewer) -> Review:
    """The review the member page shows, with what every page reads, for a viewer who may
    see it. Raises Review.DoesNotExist for an unknown id and for one the viewer may not see
    alike: nothing else about the review is read before this."""
    # Joined: what every page shows. Read lazily, one small query each and only where there
    # is one: the recommended action (next-action pages), who escalated and why (escalated
    # reviews). Every join costs the planner time on every page view.
    return (
        visible_reviews(viewer)
        .select_related("member", "prediction__model_version", "policy", "action_policy")
        .defer(*(f"prediction__model_version__{name}" for name in MODEL_VERSION_BULK))
        .get(pk=review_id)
    )


def page_of_review(*, review: Review, viewer, now: datetime | None = None) -> ReviewPage:
    """The member page of a review `visible_page_review` gave. It shows the explanation the
    prediction has: the view asks `predictions.services.explanations.ensure_explanation` for
    a missing one first (a read computes and stores nothing)."""
    now = now or timezone.now()
    prediction, member = review.prediction, review.member
    # The action catalog, read once for the headline, the ranking and the chart.
    catalog = {action.pk: action for action in Action.objects.all()}
    action_headline = action_detail = ""
    if review.kind == PredictionKind.CHURN:
        headline = format_percent(prediction.score)
        interval = format_interval(prediction.interval_low, prediction.interval_high)
        headline_detail = f"churn risk · interval {interval}" if interval else "churn risk"
        outcomes = " or ".join(prediction.label_set or ()) or "none"
        set_text = f"possible outcomes: {outcomes}"
        if review.is_case:
            action_headline, action_detail = _recommendation(review, catalog)
    else:
        headline, headline_detail = _recommendation(review, catalog)
        size = len(prediction.label_set or ())
        set_text = f"{size} action{'s' if size != 1 else ''} the model cannot rule out"
    return ReviewPage(
        review=review,
        member_facts=member_facts(review, now=now),
        kind_label="Case" if review.is_case else PredictionKind(review.kind).label,
        headline=headline,
        headline_detail=headline_detail,
        action_headline=action_headline,
        action_detail=action_detail,
        set_text=set_text,
        risk_band=risk_band(review.risk),
        confidence=_confidence_text(review),
        route_label=review.get_route_display(),
        route_reason=review.route_reason,
        waiting=format_age(now - review.routed_at),
        state_label=WAITING_LABEL
        if review.is_waiting
        else review.get_state_display().replace("_", " "),
        escalation=_escalation_facts(review),
        decision=_decision_facts(review),
        actions=_action_probabilities(review, catalog),
        ranked_actions=_ranked_action_rows(review, catalog),
        ranking_label=_ranking_label(review),
        explained_action=_name(catalog.get(prediction.recommended_action_id)),
        contact_warning=format_contact_flags(review.contact_flags),
        explanation=prediction.explanation or {},
        timeline=member_timeline(
            member_id=member.pk,
            marked=(prediction.explanation or {}).get("sequence_events") or (),
        ),
        history=member_history(
            member_id=member.pk,
            viewer=viewer,
            current=review.pk,
            action_names={pk: action.name for pk, action in catalog.items()},
        ),
        blind_answer=blind_answer_facts(review),
    )


def member_facts(review: Review, *, now: datetime) -> tuple[Fact, ...]:
    """Who the member is, as of the data the model saw: a historical import must not age its
    members to today."""
    member = review.member
    as_of = min(now, review.prediction.cutoff).date()
    tenure = (as_of - member.joined_on).days if member.joined_on else None
    return (
        Fact("Member", member.external_id),
        Fact("Tier", (member.tier or "—").title()),
        Fact("Tenure", format_tenure(tenure)),
        Fact("Points", f"{member.points_balance:,}"),
        Fact("12-month spend", format_money(review.member_value)),
        # Data about the member, not the model's answer: a blind page shows it too.
        Fact("RFM segment", RFM_SEGMENT_NAMES.get(review.rfm_segment, "—")),
        Fact("Behavior cluster", _cluster_text(review.prediction) or "—"),
    )


def _cluster_text(prediction) -> str:
    """The member's behavioral cluster in the scoring version's clustering (its number means
    nothing in another version's), with what sets it apart."""
    labels = ClusterLabels.for_versions({prediction.model_version_id})
    return labels.label(prediction.model_version_id, prediction.behavior_cluster)


@dataclass(frozen=True)
class BlindPage:
    """A blind item's page before anyone answered (`reviews.services.blind`): the member and
    their own data, nothing of the model (no score, interval, confidence, route reason, risk,
    explanation or past calls)."""

    review: Review
    member_facts: tuple[Fact, ...]
    kind_label: str
    waiting: str
    asks_action: bool
    actions: tuple[tuple[str, str], ...]
    timeline: tuple[TimelineItem, ...]


def blind_page(review: Review, *, now: datetime | None = None) -> BlindPage:
    now = now or timezone.now()
    asks_action = review.recommends_action
    return BlindPage(
        review=review,
        member_facts=member_facts(review, now=now),
        kind_label="Case" if review.is_case else PredictionKind(review.kind).label,
        waiting=format_age(now - review.routed_at),
        asks_action=asks_action,
        actions=tuple(
            Action.objects.filter(is_active=True).order_by("name").values_list("code", "name")
        )
        if asks_action
        else (),
        timeline=member_timeline(member_id=review.member_id, marked=()),
    )


def _recommendation(review: Review, catalog: dict) -> tuple[str, str]:
    """The recommended action and its own numbers (it may not be the model's likeliest
    action): expected value, cost, probability."""
    action = catalog.get(review.recommended_action_id)
    source = review.action_source
    propensity = (source.probabilities or {}).get(action.code) if action and source else None
    detail = f"probability {format_percent(propensity)}"
    if review.expected_value is not None and action is not None:
        detail = (
            f"expected value {format_money(review.expected_value)} · cost "
            f"{format_money(float(action.cost))} · {detail}"
        )
    return (action.name if action else "No eligible action"), detail


def _confidence_text(review: Review) -> str:
    """A case names both sides' confidence; it is routed on the lower one."""
    if not review.is_case:
        return format_percent(review.confidence)
    return (
        f"{format_percent(review.prediction.confidence)} churn · "
        f"{format_percent(review.action_prediction.confidence)} action"
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
    if review.state not in DECIDED_STATES:
        return ()  # a review gets its decision and its state in one transaction
    decision = (
        Decision.objects.select_related("decided_by", "reason", "action", "settled_action")
        .filter(review=review)
        .first()
    )
    if decision is None:
        return ()
    facts = [
        Fact("Verdict", decision.get_verdict_display()),
        Fact(
            "By",
            decision.decider
            if decision.decided_by_id is None
            else f"{decision.decider} ({decision.decided_as})",
        ),
        Fact("When", format_datetime(decision.decided_at)),
        Fact("Reason", decision.reason.label),
    ]
    if review.is_case:
        call = "Will churn" if decision.churn_label else "Will stay"
        facts.append(Fact("Churn call", call))
        facts.append(Fact("Action", _name(decision.settled_action) or "None eligible"))
    else:
        if decision.churn_label is not None:
            facts.append(Fact("Right call", "Will churn" if decision.churn_label else "Will stay"))
        if decision.action is not None:
            facts.append(Fact("Right action", decision.action.name))
    if decision.comment:
        facts.append(Fact("Comment", decision.comment))
    if decision.contact_flags:
        facts.append(
            Fact(
                "Contact rules overridden",
                format_contact_flags(decision.contact_flags),
            )
        )
    if not decision.announced:
        facts.append(Fact("Not sent", decision.silenced_because))
    return tuple(facts)


def _name(action: Action | None) -> str:
    return action.name if action is not None else ""


def _ranking_label(review: Review) -> str:
    if not review.recommends_action:
        return ""
    if review.ranking_policy.ranking == EscalationPolicy.Ranking.EXPECTED_VALUE:
        if review.risk is None:
            return "by propensity: the member has no churn score to weigh expected value with"
        return "by expected value"
    return "by propensity (the policy's ranking)"


def _ranked_action_rows(review: Review, catalog: dict) -> tuple[ActionWorthRow, ...]:
    """The eligible actions in the order the review's policy ranks them; each expected value
    written out as P(churn) x gain x value - cost with the member's numbers."""
    rows = []
    for action in ranked_actions(review, list(catalog.values())):
        formula = ""
        if action.expected_value is not None:
            formula = (
                f"{format_percent(review.risk)} × {format_percent(action.gain)} × "
                f"{format_money(review.member_value)} − {format_money(action.cost)}"
            )
        rows.append(
            ActionWorthRow(
                code=action.code,
                name=action.name,
                propensity=format_percent(action.propensity),
                gain=format_percent(action.gain),
                cost=format_money(action.cost),
                expected_value=format_money(action.expected_value),
                formula=formula,
                is_recommended=action.is_recommended,
                is_positive=(action.expected_value or 0) > 0,
            )
        )
    return tuple(rows)


def _action_probabilities(review: Review, catalog: dict) -> tuple[ActionProbability, ...]:
    prediction = review.action_source
    if prediction is None or not prediction.probabilities:
        return ()
    names = {action.code: action.name for action in catalog.values()}
    recommended_action = catalog.get(review.recommended_action_id)
    recommended = recommended_action.code if recommended_action else ""
    in_set = set(prediction.label_set or ())
    ordered = sorted(prediction.probabilities.items(), key=lambda item: -float(item[1] or 0))
    return tuple(
        ActionProbability(
            code=code,
            name=names.get(code, code),
            probability=float(probability or 0),
            label=format_percent(probability),
            in_set=code in in_set,
            is_recommended=code == recommended,
        )
        for code, probability in ordered
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
    css = f"event-{kind}"
    if effect is not None:
        css += " sequence-up" if effect > 0 else " sequence-down"
    return TimelineItem(
        when=format_datetime(occurred_at),
        what=EVENT_LABELS.get(kind, kind),
        detail=detail,
        css=css,
        sequence_effect="" if effect is None else f"{effect:+.3f}",
    )


def member_history(
    *,
    member_id: int,
    viewer,
    current: int | None = None,
    limit: int = MEMBER_HISTORY,
    action_names: dict[int, str] | None = None,
) -> tuple[HistoryItem, ...]:
    """The member's past predictions with their reviews and decisions, newest first: those
    the viewer may see (an analyst does not learn how an expert decided an expert's item).
    `action_names`: {pk: name} of the catalog, where the caller has read it already."""
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
            "recommended_action_id",
            "action_prediction_id",
            "in_backlog",
            "is_blind",
        )[:limit]
    )
    hidden = still_blind([row["pk"] for row in reviews if row["is_blind"]])
    decisions = _decisions_of([row["pk"] for row in reviews if row["state"] in DECIDED_STATES])
    action_ids = {row["recommended_action_id"] for row in reviews} - {None}
    action_names = action_names or (
        dict(Action.objects.filter(pk__in=action_ids).values_list("pk", "name"))
        if action_ids
        else {}
    )
    return tuple(
        _history_item(row, decisions.get(row["pk"]), action_names, current, row["pk"] in hidden)
        for row in reviews
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
    row: dict,
    decision: dict | None,
    action_names: dict[int, str],
    current: int | None,
    hidden: bool = False,
) -> HistoryItem:
    is_churn = row["kind"] == PredictionKind.CHURN
    is_case = row["action_prediction_id"] is not None
    if hidden:  # a blind item nobody answered yet: nothing of the model's call
        call = "blind review"
    elif is_churn:
        call = f"{format_percent(row['prediction__score'])} churn risk"
        if is_case:
            action = action_names.get(row["recommended_action_id"], "no eligible action")
            call = f"{call} · {action}"
    else:
        call = action_names.get(row["recommended_action_id"], "No eligible action")
    if decision is not None:
        status = VERDICT_LABELS.get(decision["verdict"], decision["verdict"])
        by = decision["decided_by__username"] or Decision.POLICY
        reason = decision["reason__label"]
    else:
        waits_for = ROUTE_LABELS[row["route"]].lower()
        status = {
            Review.State.PENDING: f"In the backlog ({waits_for})"
            if row["in_backlog"]
            else f"Waiting ({waits_for})",
            Review.State.AUTO_APPROVED: "Auto-approved",
        }.get(row["state"], row["state"])
        by, reason = "", ""
    return HistoryItem(
        review_id=row["pk"],
        when=format_datetime(row["prediction__cutoff"], with_time=False),
        kind_label="Case" if is_case else "Churn" if is_churn else "Next action",
        call=call,
        confidence="—" if hidden else format_percent(row["confidence"]),
        status=status,
        by=by,
        reason=reason,
        is_current=row["pk"] == current,
    )
