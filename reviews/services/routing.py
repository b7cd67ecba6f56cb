"""Routing: every new prediction gets a review with its route and a reason a person can read.

Rules, in order (the policy version holds the thresholds; a tier may override the two
confidence thresholds):
1. member value (spend over the last year) above the policy's value quantile of the
   predictions being routed -> expert, "member value in top 5 %";
2. confidence below the expert threshold -> expert;
3. confidence at or above the auto-approve threshold -> auto-approved, unless the churn risk
   lies in the band that always needs a person, or the prediction falls in the audit sample
   (a deterministic hash of its id, so routing twice gives the same answer) -> analyst;
4. otherwise -> analyst.
While the calibration monitor has paused auto-approval of the kind, what rule 3 would
auto-approve goes to an analyst instead, saying so.

Priority (higher first in the queues) = churn risk x (1 + value percentile) x (1.1 - confidence):
risky, valuable, uncertain members first. A next-action review weighs its member's latest churn
probability (0.5 when the member has none) and recommends the action its policy's ranking picks
(`action_ranking`).

Routing needs no SHAP. Once a batch of reviews is committed, the predictions it gives to people
get their explanations (`predictions.services.explanations`), so that the queue's items open
at once; an auto-approved one is explained when someone first opens it.
"""

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from django.db import connection, models, transaction
from django.db.models import Count
from django.db.models.constants import OnConflict
from django.utils import timezone

from predictions.ml.contracts import MLError
from predictions.models import Prediction, PredictionKind
from predictions.services.explanations import explain_predictions
from reviews.models import EscalationPolicy, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.pauses import open_pause
from reviews.selectors.policy import current_policy
from reviews.services.action_ranking import rank_batch
from reviews.services.cases import (
    carried_action_predictions,
    cases_in_force,
    next_action_scoring_unfinished,
    supersede_replaced_reviews,
)
from reviews.services.contact_rules import RuleBook
from reviews.services.policy_decisions import decide_auto_approvals

logger = logging.getLogger(__name__)

ROUTING_BATCH_SIZE = 5000
# The member value scoring stored beside the prediction (spend over the last 365 days).
VALUE_LOOKUP = "member_value"
NO_RISK = 0.5


@dataclass(frozen=True)
class RouteChoice:
    route: str
    reason: str


@dataclass(frozen=True)
class RoutingResult:
    routed: int
    by_route: dict[str, int]


@dataclass(frozen=True)
class RoutingRule:
    """The rule of one kind as it stands: a policy's settings, the member value above which an
    expert decides (over the population being routed) and why auto-approval is paused ('' when
    it is not). Routing and re-routing build it with `routing_rule`, so that neither can leave
    a part out; the simulation routes with it, vectorized."""

    kind: str
    settings: PolicySettings
    value_threshold: float | None
    paused: str

    def route(
        self, *, prediction_id: int, confidence: float, risk: float | None, value: float, tier: str
    ) -> RouteChoice:
        return choose_route(
            settings=self.settings,
            kind=self.kind,
            prediction_id=prediction_id,
            confidence=confidence,
            risk=risk,
            value=value,
            value_threshold=self.value_threshold,
            tier=tier,
            paused=self.paused,
        )


def is_for_people(route: str) -> bool:
    """Whether a person works items of this route (an analyst or an expert; the audit sample
    is an analyst's): those get their explanation when they are routed."""
    return route != Review.Route.AUTO


def routing_rule(*, kind: str, settings: PolicySettings, values: np.ndarray) -> RoutingRule:
    """The rule for routing a population whose member values are `values`, with the pause of
    `kind` that is open now."""
    pause = open_pause(kind)
    return RoutingRule(
        kind=kind,
        settings=settings,
        value_threshold=value_threshold_of(values, settings.expert_value_quantile),
        paused=pause.reason if pause is not None else "",
    )


def value_threshold_of(values: np.ndarray, quantile: float) -> float | None:
    """The member value above which an expert decides: the policy's quantile of `values`."""
    return float(np.quantile(values, quantile)) if len(values) else None


def choose_route(
    *,
    settings: PolicySettings,
    kind: str,
    prediction_id: int,
    confidence: float,
    risk: float | None,
    value: float,
    value_threshold: float | None,
    tier: str,
    paused: str,
) -> RouteChoice:
    """The route of one prediction and why (the rules in the module docstring). `paused`:
    why auto-approval is paused for this kind (empty when it is not): a would-be
    auto-approval then goes to an analyst."""
    auto, expert = tier_thresholds(settings, tier)
    # Strictly above: when many members share one value, none of them is 'the top'.
    if value_threshold is not None and value > value_threshold:
        top = round((1 - settings.expert_value_quantile) * 100)
        return RouteChoice(Review.Route.EXPERT, f"member value in top {top} %")
    if confidence < expert:
        return RouteChoice(
            Review.Route.EXPERT, f"confidence {confidence:.2f} < expert threshold {expert:.2f}"
        )
    if confidence >= auto:
        band = human_risk_band(settings, kind)
        if band is not None and risk is not None and band[0] <= risk <= band[1]:
            return RouteChoice(
                Review.Route.ANALYST,
                f"churn risk {risk:.2f} in the band that needs a person "
                f"({band[0]:.2f}–{band[1]:.2f})",
            )
        if in_audit_sample(prediction_id, settings.audit_sample_rate):
            return RouteChoice(
                Review.Route.ANALYST, f"audit sample ({settings.audit_sample_rate:.0%})"
            )
        if paused:
            return RouteChoice(Review.Route.ANALYST, f"auto-approval paused: {paused}"[:300])
        return RouteChoice(
            Review.Route.AUTO, f"confidence {confidence:.2f} ≥ auto-approve threshold {auto:.2f}"
        )
    return RouteChoice(
        Review.Route.ANALYST,
        f"confidence {confidence:.2f} between expert {expert:.2f} and auto-approve {auto:.2f}",
    )


def tier_thresholds(settings: PolicySettings, tier: str) -> tuple[float, float]:
    """The auto-approve and expert confidence thresholds of a tier (its override, if any)."""
    override = (settings.segment_overrides or {}).get(tier, {})
    return (
        float(override.get("auto_approve_confidence", settings.auto_approve_confidence)),
        float(override.get("expert_confidence", settings.expert_confidence)),
    )


def human_risk_band(settings: PolicySettings, kind: str) -> tuple[float, float] | None:
    """The churn risks (both ends included) that always need a person; None when no band
    applies (another kind, or no lower bound set)."""
    low, high = settings.human_risk_low, settings.human_risk_high
    if kind != PredictionKind.CHURN or low is None:
        return None
    return low, high if high is not None else 1.0


def audit_digest(prediction_id: int) -> bytes:
    """Eight bytes fixed by the prediction id: its place in (or out of) the audit sample."""
    return hashlib.blake2b(str(prediction_id).encode(), digest_size=8).digest()


def in_audit_sample(prediction_id: int, rate: float) -> bool:
    """Deterministic: the same prediction is in or out of the sample every time."""
    return int.from_bytes(audit_digest(prediction_id), "big") / 2**64 < rate


# How demanding each route is: a case takes its more demanding side's.
ROUTE_DEMAND = {Review.Route.AUTO: 0, Review.Route.ANALYST: 1, Review.Route.EXPERT: 2}


def case_route(churn: RouteChoice, action: RouteChoice) -> RouteChoice:
    """The route of a case from its two sides' choices: the more demanding one (the churn side
    on a tie), its reason naming the side after it (the queue filters reasons by how they
    begin); auto-approved only when both sides are."""
    if churn.route == action.route == Review.Route.AUTO:
        return RouteChoice(
            Review.Route.AUTO, f"{churn.reason} (churn call); {action.reason} (next action)"[:300]
        )
    if ROUTE_DEMAND[action.route] > ROUTE_DEMAND[churn.route]:
        return RouteChoice(action.route, f"{action.reason} (next action)"[:300])
    return RouteChoice(churn.route, f"{churn.reason} (churn call)"[:300])


def routed_fields(choice: RouteChoice, *, routed_at: datetime, sla_hours: int) -> dict:
    """The review fields that follow from a route: an auto-approval has no deadline, a
    person's item is pending and due `sla_hours` after it was routed."""
    is_auto = choice.route == Review.Route.AUTO
    return {
        "route": choice.route,
        "state": Review.State.AUTO_APPROVED if is_auto else Review.State.PENDING,
        "route_reason": choice.reason,
        "routed_at": routed_at,
        "due_at": None if is_auto else routed_at + timedelta(hours=sla_hours),
    }


def hold_back_for_contact_rules(
    *,
    choices: list[RouteChoice],
    member_ids,
    action_ids,
    priorities,
    now: datetime,
) -> tuple[list[RouteChoice], list[list[str]]]:
    """The contact rules each recommendation would break (`contact_rules`), and the routes
    once a would-be auto-approval that breaks one goes to an analyst instead. The highest
    priorities come first: what the batch auto-approves counts against the caps and budgets
    of the rows after it."""
    book = RuleBook.load(member_ids=member_ids, action_ids=action_ids, now=now)
    choices, flags = list(choices), [[] for _ in choices]
    for position in sorted(range(len(choices)), key=lambda i: -priorities[i]):
        member_id, action_id = member_ids[position], action_ids[position]
        flags[position] = book.flags(member_id=member_id, action_id=action_id)
        if choices[position].route != Review.Route.AUTO:
            continue
        if flags[position]:
            described = book.describe(flags[position], action_id=action_id)
            choices[position] = RouteChoice(
                Review.Route.ANALYST, f"contact rules: {described}"[:300]
            )
        else:
            book.record(member_id=member_id, action_id=action_id)
    return choices, flags


def priority(
    *,
    risk: float | np.ndarray | None,
    value_percentile: float | np.ndarray,
    confidence: float | np.ndarray,
) -> float | np.ndarray:
    """Floats, or numpy arrays of a batch's rows (a risk of None or NaN counts as NO_RISK)."""
    if risk is None:
        risk = NO_RISK
    elif isinstance(risk, np.ndarray):
        risk = np.where(np.isnan(risk), NO_RISK, risk)
    return risk * (1 + value_percentile) * (1.1 - confidence)


def route_new_predictions(*, kind: str, model_version_id: int | None = None) -> RoutingResult:
    """Give every prediction of `kind` that has no review yet its review. Idempotent: a
    prediction routed already is skipped; reruns route nothing twice (unique prediction).
    While both kinds are active, routing either kind routes cases (`cases`)."""
    if cases_in_force():
        return route_new_cases()
    policy = current_policy(kind)
    unrouted = Prediction.objects.filter(kind=kind, review__isnull=True)
    if model_version_id is not None:
        unrouted = unrouted.filter(model_version_id=model_version_id)
    values = _member_values(unrouted)
    rules = ReviewRules(routing_rule(kind=kind, settings=PolicySettings.of(policy), values=values))
    extra = ("probabilities",) if ranks_actions(kind) else ()

    def side(batch: list[tuple]) -> ActionSide | None:
        if not ranks_actions(kind):
            return None
        return ActionSide(ranking=policy.ranking, probabilities=[row[6] for row in batch])

    return _route_batches(
        unrouted, policy=policy, rules=rules, values=values, extra=extra, side=side
    )


def route_new_cases() -> RoutingResult:
    """Make a case of every churn prediction without a review (`cases`), once no next-action
    run is still scoring."""
    if next_action_scoring_unfinished():
        return RoutingResult(routed=0, by_route={})
    policy = current_policy(PredictionKind.CHURN)
    action_policy = current_policy(PredictionKind.NEXT_ACTION)
    unrouted = Prediction.objects.filter(kind=PredictionKind.CHURN, review__isnull=True)
    values = _member_values(unrouted)
    rules = ReviewRules(
        routing_rule(kind=PredictionKind.CHURN, settings=PolicySettings.of(policy), values=values),
        action=routing_rule(
            kind=PredictionKind.NEXT_ACTION,
            settings=PolicySettings.of(action_policy),
            values=values,
        ),
    )

    def side(batch: list[tuple]) -> ActionSide:
        carried = carried_action_predictions(
            member_ids=[row[1] for row in batch], cutoffs=[row[6] for row in batch]
        )
        return ActionSide(
            ranking=action_policy.ranking,
            probabilities=[found[2] if found else None for found in carried],
            prediction_ids=[found[0] if found else None for found in carried],
            confidences=[found[1] if found else None for found in carried],
            policy_id=action_policy.pk,
        )

    return _route_batches(
        unrouted, policy=policy, rules=rules, values=values, extra=("cutoff",), side=side
    )


def _route_batches(unrouted, *, policy, rules, values, extra, side) -> RoutingResult:
    """Route `unrouted` in batches of ROUTING_BATCH_SIZE, one transaction each: the reviews,
    the older reviews they replace superseded, the policy's decisions of what it auto-approves.
    `side(batch)` gives the batch's ActionSide (None: its reviews recommend no action)."""
    sorted_values = np.sort(values)
    counts: dict[str, int] = {}
    last_id = 0
    while True:
        batch = list(
            unrouted.filter(pk__gt=last_id)
            .order_by("pk")
            .values_list(*BATCH_FIELDS, *extra)[:ROUTING_BATCH_SIZE]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        rows = _review_rows(
            policy, rules, batch, sorted_values, routed_at=timezone.now(), side=side(batch)
        )
        member_ids = [row[1] for row in batch]
        with transaction.atomic():
            insert_reviews(columns=REVIEW_COLUMNS, rows=rows)
            supersede_older_reviews(kind=rules.main.kind, member_ids=member_ids)
            if rules.action is not None:
                supersede_replaced_reviews(member_ids=member_ids)
            decide_auto_approvals(
                review_ids=list(
                    Review.objects.filter(
                        prediction_id__in=[
                            row[0] for row in rows if row[ROUTE_POSITION] == Review.Route.AUTO
                        ]
                    ).values_list("pk", flat=True)
                )
            )
        routes = [row[ROUTE_POSITION] for row in rows]
        for route in routes:
            counts[route] = counts.get(route, 0) + 1
        _explain_for_people(
            [row[0] for row, route in zip(rows, routes, strict=True) if is_for_people(route)]
        )
    return RoutingResult(routed=sum(counts.values()), by_route=counts)


# What routing reads of a prediction (a next-action one adds its "probabilities", a churn one
# made a case its "cutoff").
BATCH_FIELDS = ("pk", "member_id", "score", "confidence", VALUE_LOOKUP, "member__tier")


def ranks_actions(kind: str) -> bool:
    """Whether reviews of `kind` recommend an action (`action_ranking`)."""
    return kind == PredictionKind.NEXT_ACTION


@dataclass(frozen=True)
class ActionSide:
    """How each row of a batch recommends an action: its action `probabilities` (None: the row
    has no next-action prediction), ranked by `ranking`. A next-action review ranks its own
    prediction and weighs its member's latest churn probability; a case (`prediction_ids`
    set) ranks the next-action prediction it carries (with its `confidences`, routed by
    `policy_id`'s version) and weighs its own churn score."""

    ranking: str
    probabilities: Sequence[dict | None]
    prediction_ids: Sequence[int | None] | None = None
    confidences: Sequence[float | None] | None = None
    policy_id: int | None = None

    @property
    def is_case(self) -> bool:
        return self.prediction_ids is not None


@dataclass(frozen=True)
class ReviewRules:
    """The rule of the reviews' kind, and for cases the next-action rule of their action side
    (`cases.case_route` combines the two)."""

    main: RoutingRule
    action: RoutingRule | None = None

    def route(
        self,
        *,
        prediction_id: int,
        confidence: float,
        risk: float | None,
        value: float,
        tier: str,
        action_prediction_id: int | None = None,
        action_confidence: float | None = None,
    ) -> RouteChoice:
        choice = self.main.route(
            prediction_id=prediction_id, confidence=confidence, risk=risk, value=value, tier=tier
        )
        if self.action is None or action_prediction_id is None:
            return choice
        action_choice = self.action.route(
            prediction_id=action_prediction_id,
            confidence=action_confidence,
            risk=risk,
            value=value,
            tier=tier,
        )
        return case_route(choice, action_choice)


# What routing writes of a new review, in this order (insert_reviews); the rest take defaults.
REVIEW_COLUMNS = (
    "prediction_id",
    "member_id",
    "kind",
    "policy_id",
    "priority",
    "tier",
    "member_value",
    "risk",
    "confidence",
    "recommended_action_id",
    "expected_value",
    "contact_flags",
    "created_at",
    "route",
    "state",
    "route_reason",
    "routed_at",
    "due_at",
    "action_prediction_id",
    "action_policy_id",
)
ROUTE_POSITION = REVIEW_COLUMNS.index("route")


def case_confidence(confidence: float, action_confidence: float | None) -> float:
    """A case is as confident as its less confident side."""
    return confidence if action_confidence is None else min(confidence, action_confidence)


def _review_rows(
    policy: EscalationPolicy,
    rules: ReviewRules,
    batch: list[tuple],
    sorted_values: np.ndarray,
    *,
    routed_at: datetime,
    side: ActionSide | None = None,
) -> list[tuple]:
    """The REVIEW_COLUMNS of each prediction of the batch: its route by `rules` (one row at a
    time: the rule's home is `choose_route`), its priority computed for the whole batch."""
    columns = list(zip(*batch, strict=True))
    prediction_ids, member_ids, scores, own_confidences, raw_values, tiers = columns[:6]
    values = [_value(value) for value in raw_values]
    no_answer = (None,) * len(batch)
    risks, action_ids, worths = scores, no_answer, no_answer
    action_prediction_ids = action_confidences = no_answer
    if side is not None:
        ranking = rank_batch(
            ranking=side.ranking,
            member_ids=member_ids,
            probabilities=side.probabilities,
            values=values,
            churn_probabilities=scores if side.is_case else None,
        )
        # A next-action review weighs its member's churn risk: it orders the queue too.
        risks, action_ids = ranking.churn_probabilities, ranking.action_ids
        worths = ranking.expected_values
        if side.is_case:
            risks = scores
            action_prediction_ids, action_confidences = side.prediction_ids, side.confidences
            # A case without a next-action prediction recommends nothing.
            action_ids = [
                action if probabilities is not None else None
                for action, probabilities in zip(action_ids, side.probabilities, strict=True)
            ]
            worths = [
                worth if probabilities is not None else None
                for worth, probabilities in zip(worths, side.probabilities, strict=True)
            ]
    confidences = [
        case_confidence(confidence, action_confidence)
        for confidence, action_confidence in zip(own_confidences, action_confidences, strict=True)
    ]
    percentiles = (
        np.searchsorted(sorted_values, values, side="right") / len(sorted_values)
        if len(sorted_values)
        else np.zeros(len(batch))
    )
    priorities = priority(
        risk=np.array(risks, dtype="float64"),
        value_percentile=percentiles,
        confidence=np.array(confidences, dtype="float64"),
    ).tolist()
    tiers = [tier or "" for tier in tiers]
    choices = [
        rules.route(
            prediction_id=prediction_id,
            confidence=confidence,
            risk=risk,
            value=value,
            tier=tier,
            action_prediction_id=action_prediction_id,
            action_confidence=action_confidence,
        )
        for (
            prediction_id,
            confidence,
            risk,
            value,
            tier,
            action_prediction_id,
            action_confidence,
        ) in zip(
            prediction_ids,
            own_confidences,
            risks,
            values,
            tiers,
            action_prediction_ids,
            action_confidences,
            strict=True,
        )
    ]
    flags: list[list[str]] = [[] for _ in batch]
    if side is not None:
        choices, flags = hold_back_for_contact_rules(
            choices=choices,
            member_ids=member_ids,
            action_ids=action_ids,
            priorities=priorities,
            now=routed_at,
        )
    action_policy_id = side.policy_id if side is not None and side.is_case else None
    rows = []
    for (
        prediction_id,
        member_id,
        risk,
        confidence,
        value,
        tier,
        rank,
        action_id,
        worth,
        choice,
        broken,
        action_prediction_id,
    ) in zip(
        prediction_ids,
        member_ids,
        risks,
        confidences,
        values,
        tiers,
        priorities,
        action_ids,
        worths,
        choices,
        flags,
        action_prediction_ids,
        strict=True,
    ):
        routed = routed_fields(choice, routed_at=routed_at, sla_hours=policy.sla_hours)
        rows.append(
            (
                prediction_id,
                member_id,
                rules.main.kind,
                policy.pk,
                rank,
                tier,
                value,
                risk,
                confidence,
                action_id,
                worth,
                broken,
                routed_at,
                routed["route"],
                routed["state"],
                routed["route_reason"],
                routed["routed_at"],
                routed["due_at"],
                action_prediction_id,
                action_policy_id if action_prediction_id is not None else None,
            )
        )
    return rows


# Rows per INSERT statement where one statement carries many rows (PostgreSQL).
INSERT_ROWS_PER_STATEMENT = 1000


def insert_reviews(*, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert reviews, skipping any whose prediction has one already: what
    `bulk_create(ignore_conflicts=True)` did, without a model instance and its compiled SQL
    per row (they cost more than routing itself). `columns` are attribute names; each row holds
    plain ints, floats, strings, None, aware datetimes and JSON values; every other column takes its
    field's default (a JSON column takes a list or dict). Sends no signals, like
    bulk_create."""
    if not rows:
        return
    fields = {field.attname: field for field in Review._meta.concrete_fields}
    rest = [
        field
        for field in Review._meta.concrete_fields
        if not field.primary_key and field.attname not in columns
    ]
    defaults = tuple(field.get_db_prep_save(field.get_default(), connection) for field in rest)
    prepared: dict[tuple[str, datetime | None], object] = {}  # a batch shares a few times

    def database_value(field, value):
        if isinstance(value, list | dict):  # JSON: no two rows share one object
            return field.get_db_prep_save(value, connection)
        key = (field.attname, value)
        if key not in prepared:
            prepared[key] = field.get_db_prep_save(value, connection)
        return prepared[key]

    to_prepare = [
        position
        for position, name in enumerate(columns)
        if isinstance(fields[name], models.DateTimeField | models.JSONField)
    ]
    values = []
    for row in rows:
        if to_prepare:
            row = list(row)
            for position in to_prepare:
                row[position] = database_value(fields[columns[position]], row[position])
        values.append((*row, *defaults))
    ops = connection.ops
    names = ", ".join(ops.quote_name(fields[name].column) for name in columns)
    names += "".join(f", {ops.quote_name(field.column)}" for field in rest)
    head = (
        f"{ops.insert_statement(on_conflict=OnConflict.IGNORE)} "
        f"{ops.quote_name(Review._meta.db_table)} ({names}) VALUES "
    )
    suffix = ops.on_conflict_suffix_sql(list(fields.values()), OnConflict.IGNORE, None, None)
    one_row = "(" + ", ".join(["%s"] * (len(columns) + len(rest))) + ")"
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # its executemany loops in C over a prepared statement
            cursor.executemany(f"{head}{one_row} {suffix}", values)
            return
        for start in range(0, len(values), INSERT_ROWS_PER_STATEMENT):
            page = values[start : start + INSERT_ROWS_PER_STATEMENT]
            cursor.execute(
                f"{head}{', '.join([one_row] * len(page))} {suffix}",
                [value for row in page for value in row],
            )


def _explain_for_people(prediction_ids: list[int]) -> None:
    """The explanations of the batch's predictions that people will work, after the batch
    committed. An engine error (a corrupted artifact) leaves them to be explained when opened:
    the routing itself stands."""
    try:
        explain_predictions(prediction_ids=prediction_ids)
    except MLError:
        logger.exception("explaining %d routed predictions failed", len(prediction_ids))


def supersede_older_reviews(*, kind: str, member_ids: list[int]) -> int:
    """Undecided reviews of these members that a newer prediction of the same kind replaced
    (a re-score, a new model version) leave the queues: nobody should decide on stale
    numbers. Decided and auto-approved reviews stay as the history they are."""
    # Read through the member index, the newest prediction per member found here: one query
    # with a correlated EXISTS made SQLite walk every pending review in the queues per batch.
    reviews = Review.objects.filter(kind=kind)
    several = list(
        reviews.filter(member_id__in=member_ids)
        .values("member_id")
        .annotate(count=Count("pk"))
        .filter(count__gt=1)
        .values_list("member_id", flat=True)
    )
    if not several:  # a member's first review replaces nothing
        return 0
    rows = list(
        reviews.filter(member_id__in=several).values_list(
            "pk", "member_id", "state", "prediction__scored_at"
        )
    )
    newest: dict[int, datetime] = {}
    for _, member_id, _, scored_at in rows:
        if member_id not in newest or scored_at > newest[member_id]:
            newest[member_id] = scored_at
    stale = [
        pk
        for pk, member_id, state, scored_at in rows
        if state == Review.State.PENDING and scored_at < newest[member_id]
    ]
    if not stale:
        return 0
    # The state is checked again as the rows are written: a decision that committed since the
    # read keeps its review.
    return Review.objects.filter(pk__in=stale, state=Review.State.PENDING).update(
        state=Review.State.SUPERSEDED
    )


def _member_values(predictions) -> np.ndarray:
    values = predictions.values_list(VALUE_LOOKUP, flat=True).iterator(chunk_size=5000)
    return np.array([_value(value) for value in values], dtype="float64")


def _value(value: float | str | None) -> float:
    return float(value) if value is not None else 0.0
