"""Routing: every new prediction gets a review with its route and a reason a person can read
(the rules: `routing_rules`).

Priority (higher first in the queues) = churn risk x (1 + value percentile) x (1.1 - confidence):
risky, valuable, uncertain members first. A next-action review weighs its member's latest churn
probability (0.5 when the member has none) and recommends the action its policy's ranking picks
(`action_ranking`); a case weighs its own churn score.

Routing needs no SHAP. Once a batch of reviews is committed, the predictions it gives to people
get their explanations (`predictions.services.explanations`), so that the queue's items open
at once; an auto-approved one is explained when someone first opens it.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.db import connection, models, transaction
from django.db.models import Count
from django.db.models.constants import OnConflict
from django.utils import timezone

from predictions.ml.contracts import MLError
from predictions.models import Prediction, PredictionKind
from predictions.services.explanations import explain_predictions
from reviews.models import EscalationPolicy, Review
from reviews.services.action_ranking import rank_batch
from reviews.services.blind import blind_draws, routed_to_people
from reviews.services.capacity import hold_overflow
from reviews.services.cases import (
    carried_action_predictions,
    cases_in_force,
    next_action_scoring_unfinished,
    supersede_replaced_reviews,
)
from reviews.services.contact_rules import RuleBook
from reviews.services.experiments import member_policies, split_by_policy
from reviews.services.policy_decisions import decide_auto_approvals
from reviews.services.routing_rules import (
    ReviewRules,
    RouteChoice,
    RulesByVersion,
    ValueScale,
    is_for_people,
    population_scale,
    routed_fields,
)

logger = logging.getLogger(__name__)

ROUTING_BATCH_SIZE = 5000
# The member value scoring stored beside the prediction (spend over the last 365 days).
VALUE_LOOKUP = "member_value"
NO_RISK = 0.5
# A blind item's priority weighs its member value alone: neither its risk nor its confidence.
NEUTRAL_CONFIDENCE = 0.5


@dataclass(frozen=True)
class RoutingResult:
    routed: int
    by_route: dict[str, int]


def hold_back_for_contact_rules(
    *,
    choices: list[RouteChoice],
    member_ids,
    action_ids,
    priorities,
    now: datetime,
    earlier: Sequence[tuple[int, int | None]] = (),
) -> tuple[list[RouteChoice], list[list[str]]]:
    """The contact rules each recommendation would break (`contact_rules`), and the routes
    once a would-be auto-approval that breaks one goes to an analyst instead. The highest
    priorities come first: what the batch auto-approves counts against the caps and budgets
    of the rows after it, as do the `earlier` (member, action) auto-approvals of the batch's
    rows routed by another policy version (a policy test's other arm)."""
    book = RuleBook.load(
        member_ids=[*member_ids, *(member for member, _ in earlier)],
        action_ids=[*action_ids, *(action for _, action in earlier)],
        now=now,
    )
    for member_id, action_id in earlier:
        book.record(member_id=member_id, action_id=action_id)
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
    While both kinds are active, routing either kind routes cases (`cases`). Each member's
    reviews are routed by the version `experiments.member_policies` gives them (a policy
    test's arm, or the version in force)."""
    if cases_in_force():
        return route_new_cases()
    versions = member_policies(kind)
    unrouted = unrouted_predictions(kind)
    if model_version_id is not None:
        unrouted = unrouted.filter(model_version_id=model_version_id)
    scale = population_scale(lambda: _member_values(unrouted))
    rules = RulesByVersion(scale)
    extra = ("probabilities",) if ranks_actions(kind) else ()

    def groups(batch: list[tuple]) -> list[RoutingGroup]:
        found = []
        for (policy,), rows in split_by_policy(batch, lambda row: (versions.of(row[1]),)):
            side = None
            if ranks_actions(kind):
                side = ActionSide(
                    ranking=policy.ranking, probabilities=[row[EXTRA_POSITION] for row in rows]
                )
            found.append(RoutingGroup(policy, ReviewRules(rules.of(kind, policy)), rows, side))
        return found

    return _route_batches(unrouted, kind=kind, groups=groups, scale=scale, extra=extra)


def route_new_cases() -> RoutingResult:
    """Make a case of every churn prediction without a review (`cases`), once no next-action
    run is still scoring. Each side is routed by its kind's version for the member (a policy
    test of either kind routes its side by the member's arm)."""
    if next_action_scoring_unfinished():
        return RoutingResult(routed=0, by_route={})
    churn, next_action = PredictionKind.CHURN, PredictionKind.NEXT_ACTION
    versions = {kind: member_policies(kind) for kind in (churn, next_action)}
    unrouted = unrouted_predictions(churn)
    scale = population_scale(lambda: _member_values(unrouted))
    rules = RulesByVersion(scale)

    def groups(batch: list[tuple]) -> list[RoutingGroup]:
        carried = carried_action_predictions(
            member_ids=[row[1] for row in batch], cutoffs=[row[EXTRA_POSITION] for row in batch]
        )
        split = split_by_policy(
            list(zip(batch, carried, strict=True)),
            lambda pair: (versions[churn].of(pair[0][1]), versions[next_action].of(pair[0][1])),
        )
        found = []
        for (policy, action_policy), pairs in split:
            side = ActionSide(
                ranking=action_policy.ranking,
                probabilities=[one[2] if one else None for _, one in pairs],
                prediction_ids=[one[0] if one else None for _, one in pairs],
                confidences=[one[1] if one else None for _, one in pairs],
                policy_id=action_policy.pk,
            )
            case_rules = ReviewRules(
                rules.of(churn, policy), action=rules.of(next_action, action_policy)
            )
            found.append(RoutingGroup(policy, case_rules, [row for row, _ in pairs], side))
        return found

    return _route_batches(
        unrouted, kind=churn, groups=groups, scale=scale, extra=("cutoff",), cases=True
    )


@dataclass(frozen=True)
class RoutingGroup:
    """Rows of a batch routed by one version (a case: one version of each side)."""

    policy: EscalationPolicy
    rules: ReviewRules
    rows: list[tuple]
    side: "ActionSide | None"


def unrouted_predictions(kind: str):
    """The predictions of `kind` that have no review yet."""
    return Prediction.objects.filter(kind=kind, review__isnull=True)


def awaiting_routing():
    """The predictions routing has yet to give a review: every kind's, or while cases are in
    force only churn's (a next-action prediction is never routed alone: a case carries it)."""
    if cases_in_force():
        return unrouted_predictions(PredictionKind.CHURN)
    return Prediction.objects.filter(review__isnull=True)


def _route_batches(unrouted, *, kind, groups, scale, extra, cases=False) -> RoutingResult:
    """Route `unrouted` in batches of ROUTING_BATCH_SIZE, one transaction each: the reviews,
    the older reviews they replace superseded, the policy's decisions of what it auto-approves.
    `groups(batch)` splits a batch by the versions that route its rows (`RoutingGroup`); the
    rows of `cases` supersede their members' pending next-action reviews too."""
    counts: dict[str, int] = {}
    # Per version, the items it has routed to people so far: where its blind count stands.
    to_people: dict[int | None, int] = {}
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
        routed_at = timezone.now()
        rows: list[tuple] = []
        for group in groups(batch):
            if group.policy.pk not in to_people:  # counted once per call, then carried on
                to_people[group.policy.pk] = routed_to_people(group.policy)
            group_rows = _review_rows(
                group.policy,
                group.rules,
                group.rows,
                scale,
                routed_at=routed_at,
                side=group.side,
                blind_before=to_people[group.policy.pk],
                earlier=_auto_approved_contacts(rows),
            )
            to_people[group.policy.pk] += sum(
                is_for_people(row[ROUTE_POSITION]) for row in group_rows
            )
            rows += group_rows
        member_ids = [row[1] for row in batch]
        with transaction.atomic():
            insert_reviews(columns=REVIEW_COLUMNS, rows=rows)
            supersede_older_reviews(kind=kind, member_ids=member_ids)
            if cases:
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
            hold_overflow(prediction_ids=[row[0] for row in rows])  # queue capacity
        routes = [row[ROUTE_POSITION] for row in rows]
        for route in routes:
            counts[route] = counts.get(route, 0) + 1
        _explain_for_people(
            [row[0] for row, route in zip(rows, routes, strict=True) if is_for_people(route)]
        )
    return RoutingResult(routed=sum(counts.values()), by_route=counts)


def _auto_approved_contacts(rows: list[tuple]) -> list[tuple[int, int | None]]:
    """(member, action) of the auto-approvals among review rows that recommend an action."""
    return [
        (row[1], row[ACTION_POSITION])
        for row in rows
        if row[ROUTE_POSITION] == Review.Route.AUTO and row[ACTION_POSITION] is not None
    ]


# What routing reads of a prediction (a next-action one adds its "probabilities", a churn one
# made a case its "cutoff").
BATCH_FIELDS = (
    "pk",
    "member_id",
    "score",
    "confidence",
    VALUE_LOOKUP,
    "member__tier",
    "rfm_segment",
)
# Where a batch row's `extra` field sits (after BATCH_FIELDS).
EXTRA_POSITION = len(BATCH_FIELDS)


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


# What routing writes of a new review, in this order (insert_reviews); the rest take defaults.
REVIEW_COLUMNS = (
    "prediction_id",
    "member_id",
    "kind",
    "policy_id",
    "priority",
    "tier",
    "rfm_segment",
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
    "is_blind",
)
ROUTE_POSITION = REVIEW_COLUMNS.index("route")
ACTION_POSITION = REVIEW_COLUMNS.index("recommended_action_id")


def case_confidence(confidence: float, action_confidence: float | None) -> float:
    """A case is as confident as its less confident side."""
    return confidence if action_confidence is None else min(confidence, action_confidence)


def _review_rows(
    policy: EscalationPolicy,
    rules: ReviewRules,
    batch: list[tuple],
    scale: ValueScale,
    *,
    routed_at: datetime,
    side: ActionSide | None = None,
    blind_before: int = 0,
    earlier: Sequence[tuple[int, int | None]] = (),
) -> list[tuple]:
    """The REVIEW_COLUMNS of each prediction of the batch: its route by `rules` (one row at a
    time: the rule's home is `choose_route`), its priority computed for the whole batch. Of
    the items for people, the policy's blind share opens blind (`blind`, counting on from the
    `blind_before` the version routed to people before) with a neutral priority: nothing of
    the model orders them."""
    columns = list(zip(*batch, strict=True))
    prediction_ids, member_ids, scores, own_confidences, raw_values, tiers, segments = columns[:7]
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
    priorities = priority(
        risk=np.array(risks, dtype="float64"),
        value_percentile=scale.percentiles(values),
        confidence=np.array(confidences, dtype="float64"),
    ).tolist()
    tiers = [tier or "" for tier in tiers]
    segments = [segment or "" for segment in segments]
    choices = [
        rules.route(
            prediction_id=prediction_id,
            confidence=confidence,
            risk=risk,
            value=value,
            tier=tier,
            rfm_segment=segment,
            action_prediction_id=action_prediction_id,
            action_confidence=action_confidence,
        )
        for (
            prediction_id,
            confidence,
            risk,
            value,
            tier,
            segment,
            action_prediction_id,
            action_confidence,
        ) in zip(
            prediction_ids,
            own_confidences,
            risks,
            values,
            tiers,
            segments,
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
            earlier=earlier,
        )
    action_policy_id = side.policy_id if side is not None and side.is_case else None
    blind = blind_draws(
        for_people=[is_for_people(choice.route) for choice in choices],
        share=policy.blind_share,
        already=blind_before,
    )
    if any(blind):
        neutral = priority(
            risk=None, value_percentile=scale.percentiles(values), confidence=NEUTRAL_CONFIDENCE
        ).tolist()
        priorities = [
            neutral[i] if is_blind else rank
            for i, (rank, is_blind) in enumerate(zip(priorities, blind, strict=True))
        ]
    rows = []
    for (
        prediction_id,
        member_id,
        risk,
        confidence,
        value,
        tier,
        segment,
        rank,
        action_id,
        worth,
        choice,
        broken,
        action_prediction_id,
        is_blind,
    ) in zip(
        prediction_ids,
        member_ids,
        risks,
        confidences,
        values,
        tiers,
        segments,
        priorities,
        action_ids,
        worths,
        choices,
        flags,
        action_prediction_ids,
        blind,
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
                segment,
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
                is_blind,
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
