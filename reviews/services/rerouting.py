"""Re-routing: after a policy change, undecided reviews follow the current version's rule.

What moves (`reroutable_reviews`): the reviews without a decision that no person escalated. An
auto-approval is the policy's decision, announced when it was routed: nothing reopens it (only
an auto-approval routed before policy decisions existed, which nothing announced, still moves).
What the new rule auto-approves is decided by it then (`policy_decisions`), and a
next-action review is ranked again by the version's ranking, the contact rules checked.
The rule is routing's (`routing_rules.routing_rule`, an open pause included); a case is routed
on both sides again, each by its kind's current version, whichever kind changed. An item that
stays with people keeps its `routed_at`: its wait does not restart because an admin moved a
threshold.

Saving a policy only queues this (`request_rerouting`, on commit): a worker re-routes in batches,
writing only rows that change, so a rerun moves nothing. Every review reached carries the current
version: `awaiting_rerouting` counts the rest and the sweep `reroute_stale` resumes a lost run.

While a policy test runs (`experiments`), the current version is the member's: a review on
either arm's version keeps it (its route follows that version's rules: the challenger's items
are not pulled back), and a review on neither moves to its member's version
(`MemberPolicies.for_review`); a case's two sides each so.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.models import Prediction, PredictionKind
from reviews.models import EscalationPolicy, Review
from reviews.permissions import MANAGE_POLICY
from reviews.selectors.experiments import running_test
from reviews.selectors.policy import current_policy
from reviews.services.action_ranking import rank_batch
from reviews.services.experiments import MemberPolicies, member_policies, split_by_policy
from reviews.services.policy_decisions import decide_auto_approvals
from reviews.services.routing import hold_back_for_contact_rules, ranks_actions
from reviews.services.routing_rules import (
    ReviewRules,
    RouteChoice,
    RulesByVersion,
    population_scale,
    routed_fields,
)

# Rows locked and rewritten per transaction: short enough that a reviewer deciding an item of
# the batch waits well under a second (SQLite serializes every write transaction).
REROUTE_BATCH_SIZE = 2000
UNDECIDED_STATES = (Review.State.PENDING, Review.State.AUTO_APPROVED)
# A re-routing still unfinished this long after its version was saved was lost (a worker killed,
# a message dropped): a million reviews take a few minutes, so this is well past a slow run.
STALE_REROUTING_AFTER = timedelta(minutes=30)
_UPDATED_FIELDS = [
    "route",
    "state",
    "route_reason",
    "policy",
    "action_policy",
    "routed_at",
    "due_at",
    "recommended_action",
    "expected_value",
    "risk",
    "contact_flags",
    "in_backlog",
]


@dataclass(frozen=True)
class ReroutingResult:
    """What a re-routing did: reviews considered, moves between routes, routes afterwards."""

    kind: str
    policy_version: int
    considered: int
    moves: dict[tuple[str, str], int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)
    superseded: bool = False  # stopped: a newer version is in force and re-routes on its own

    @property
    def moved(self) -> int:
        return sum(self.moves.values())

    def describe_moves(self) -> str:
        """'auto → analyst 12, analyst → expert 3', largest first; '' when nothing moved."""
        labels = dict(Review.Route.choices)
        ordered = sorted(self.moves.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(
            f"{labels.get(source, source).lower()} → {labels.get(target, target).lower()} {count}"
            for (source, target), count in ordered
        )


def routed_by(kind: str) -> Q:
    """The reviews a policy of `kind` routes: those of its kind, and for next action the cases
    too (their action side; a case's kind is churn)."""
    if kind == PredictionKind.NEXT_ACTION:
        return Q(kind=kind) | Q(action_prediction__isnull=False)
    return Q(kind=kind)


def reroutable_reviews(kind: str):
    """Undecided reviews a policy change of `kind` may move (see the module docstring)."""
    return Review.objects.filter(
        routed_by(kind),
        state__in=UNDECIDED_STATES,
        escalated_at__isnull=True,
        decision__isnull=True,
    )


def routed_population(kind: str):
    """The reviews a policy of `kind` routes that no person decided or escalated: pending, or
    auto-approved. The population a policy applies to: its value quantile is taken over it
    (re-routing only the pending ones must not make their own top 5 % the experts'), and the
    simulation routes it."""
    return Review.objects.filter(
        routed_by(kind),
        state__in=UNDECIDED_STATES,
        escalated_at__isnull=True,
    )


def awaiting_rerouting(kind: str) -> int:
    """Reroutable reviews that the current version's re-routing has not reached yet (a case
    records its next-action version as `action_policy`). While a policy test runs, a review on
    either arm's version has been reached."""
    test = running_test(kind)
    in_force = [current_policy(kind).pk] + ([test.challenger_id] if test is not None else [])
    if kind != PredictionKind.NEXT_ACTION:
        return reroutable_reviews(kind).exclude(policy__in=in_force).count()
    return (
        reroutable_reviews(kind)
        .filter(
            Q(action_prediction__isnull=True, policy__isnull=False) & ~Q(policy__in=in_force)
            | Q(action_prediction__isnull=False) & ~Q(action_policy__in=in_force)
        )
        .count()
    )


def request_rerouting(*, kind: str, actor: AbstractBaseUser | None = None) -> None:
    """Queue the re-routing of `kind` under its current version, once the caller's transaction
    (the policy change) has committed; a worker runs `reroute_undecided`."""
    require_permission(actor, MANAGE_POLICY)
    from reviews import tasks

    version = current_policy(kind).version
    actor_id = actor.pk if actor is not None else None
    transaction.on_commit(
        lambda: tasks.reroute_undecided_task.delay(
            kind=kind, policy_version=version, actor_id=actor_id
        )
    )


def reroute_stale(*, older_than: timedelta = STALE_REROUTING_AFTER) -> list[str]:
    """The sweep: queue the re-routing again for every kind whose current version was saved
    more than `older_than` ago and still has reviews awaiting it. The kinds queued."""
    queued = []
    for kind in PredictionKind.values:
        policy = current_policy(kind)
        if policy.created_at > timezone.now() - older_than or not awaiting_rerouting(kind):
            continue
        request_rerouting(kind=kind)
        queued.append(kind)
    return queued


def _is_current(policy: EscalationPolicy) -> bool:
    return current_policy(policy.kind).pk == policy.pk


def reroute_undecided(
    *, kind: str, actor: AbstractBaseUser | None = None, policy_version: int | None = None
) -> ReroutingResult:
    """Apply the current policy of `kind` to every reroutable review, in batches of
    REROUTE_BATCH_SIZE, one transaction each. Records one audit record when anything moved.
    With `policy_version` (a queued run), does nothing unless that version is still current;
    a run stops between batches as soon as a newer version is saved (`superseded`)."""
    require_permission(actor, MANAGE_POLICY)
    policy = current_policy(kind)
    if policy_version is not None and policy.version != policy_version:
        return ReroutingResult(
            kind=kind, policy_version=policy_version, considered=0, superseded=True
        )
    plan = _Plan.of(kind)
    moves: dict[tuple[str, str], int] = {}
    by_route: dict[str, int] = {}
    considered = 0
    last_id = 0
    superseded = False
    while True:
        if not _is_current(policy):
            superseded = True
            break
        with transaction.atomic():
            batch = list(
                reroutable_reviews(kind)
                # The review rows only: "no decision" is an outer join, which PostgreSQL
                # cannot lock the nullable side of.
                .select_for_update(of=("self",))
                .filter(pk__gt=last_id)
                .order_by("pk")
                .values_list(
                    "pk",
                    "prediction_id",
                    "route",
                    "state",
                    "route_reason",
                    "policy_id",
                    "routed_at",
                    "due_at",
                    "confidence",
                    "risk",
                    "member_value",
                    "tier",
                    "recommended_action_id",
                    "expected_value",
                    "member_id",
                    "priority",
                    "action_prediction_id",
                    "prediction__confidence",
                    "action_prediction__confidence",
                    "prediction__score",
                    "action_policy_id",
                    "in_backlog",
                    "rfm_segment",
                )[:REROUTE_BATCH_SIZE]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            now = timezone.now()
            changed, flags, earlier = [], {}, []
            for rules, rows in plan.groups(batch):
                rankings = _rankings(kind, rules, rows)
                choices, found = _choices(kind, rules, rows, rankings, now=now, earlier=earlier)
                flags.update(found)
                for row, ranked, choice in zip(rows, rankings, choices, strict=True):
                    review, source, target = _rerouted(row, rules, choice, now, ranked)
                    considered += 1
                    by_route[target] = by_route.get(target, 0) + 1
                    if source != target:
                        moves[(source, target)] = moves.get((source, target), 0) + 1
                    if review is not None:
                        changed.append(review)
                    if target == Review.Route.AUTO and ranked.get("recommended_action_id"):
                        earlier.append((row[14], ranked["recommended_action_id"]))
            for review in changed:
                review.contact_flags = flags.get(review.pk, review.contact_flags)
            Review.objects.bulk_update(changed, _UPDATED_FIELDS, batch_size=500)
            # What the new rule auto-approves is decided by it now, and announced.
            decide_auto_approvals(
                review_ids=[review.pk for review in changed if review.route == Review.Route.AUTO]
            )
    result = ReroutingResult(
        kind=kind,
        policy_version=policy.version,
        considered=considered,
        moves=moves,
        by_route=by_route,
        superseded=superseded,
    )
    if result.moved:
        record_audit(
            kind=AuditRecord.Kind.POLICY_CHANGE,
            actor=actor,
            subject=f"policy:{kind}:v{policy.version}:reroute",
            details={
                "considered": considered,
                "moved": result.moved,
                "moves": {f"{source} → {target}": n for (source, target), n in moves.items()},
            },
        )
    return result


@dataclass(frozen=True)
class Rules:
    """What re-routes a group of a batch's rows: the rules (and policies) of the changed kind's
    own reviews, and of cases (the churn rule, with the next-action rule for their action
    side), each the version `_Plan` gives the group (the current one, or a policy test's arm)."""

    own: ReviewRules
    own_policy: EscalationPolicy
    case: ReviewRules
    churn_policy: EscalationPolicy
    action_policy: EscalationPolicy

    def of(self, row: tuple) -> ReviewRules:
        return self.case if _is_case(row) else self.own


@dataclass
class _Plan:
    """What a re-routing run of `kind` routes each row by: the versions of both kinds per
    member (`experiments.MemberPolicies`: the current version, or a policy test's arms) and
    their rules on the population's value scale (before a full run stored one: the values of
    the population the policy routes), each pair of versions' Rules built once."""

    kind: str
    versions: dict[str, MemberPolicies]
    by_version: RulesByVersion
    built: dict = field(default_factory=dict)

    @classmethod
    def of(cls, kind: str) -> "_Plan":
        scale = population_scale(
            lambda: np.fromiter(
                routed_population(kind)
                .values_list("member_value", flat=True)
                .iterator(chunk_size=10000),
                dtype="float64",
            )
        )
        versions = {name: member_policies(name) for name in PredictionKind.values}
        return cls(kind=kind, versions=versions, by_version=RulesByVersion(scale))

    def groups(self, batch: list[tuple]) -> list[tuple[Rules, list[tuple]]]:
        """The batch's rows grouped by the (churn, next action) versions that re-route them."""
        churn, next_action = (
            self.versions[PredictionKind.CHURN],
            self.versions[PredictionKind.NEXT_ACTION],
        )

        def versions_of(row: tuple) -> tuple[EscalationPolicy, EscalationPolicy]:
            member, policy_id = row[14], row[5]
            if _is_case(row):
                return churn.for_review(member, policy_id), next_action.for_review(member, row[20])
            if self.kind == PredictionKind.CHURN:
                return churn.for_review(member, policy_id), next_action.current
            return churn.current, next_action.for_review(member, policy_id)

        return [(self.rules(*pair), rows) for pair, rows in split_by_policy(batch, versions_of)]

    def rules(self, churn_policy: EscalationPolicy, action_policy: EscalationPolicy) -> Rules:
        key = (churn_policy.version, action_policy.version)
        if key not in self.built:
            own = churn_policy if self.kind == PredictionKind.CHURN else action_policy
            rule = self.by_version.of
            self.built[key] = Rules(
                own=ReviewRules(rule(self.kind, own)),
                own_policy=own,
                case=ReviewRules(
                    rule(PredictionKind.CHURN, churn_policy),
                    action=rule(PredictionKind.NEXT_ACTION, action_policy),
                ),
                churn_policy=churn_policy,
                action_policy=action_policy,
            )
        return self.built[key]


# Positions in a re-routing batch row past the review's own columns.
_ACTION_PREDICTION, _CHURN_CONFIDENCE, _ACTION_CONFIDENCE, _CHURN_SCORE = 16, 17, 18, 19
_IN_BACKLOG, _RFM_SEGMENT = 21, 22


def _is_case(row: tuple) -> bool:
    return row[_ACTION_PREDICTION] is not None


def _rankings(kind: str, rules: Rules, batch: list[tuple]) -> list[dict]:
    """Per row of a batch, the recommendation fields under the current ranking (a case by the
    next-action version's, with its own churn score; a next-action review by its version's,
    with its member's churn risk as it stands now; {} for a churn review): a change of ranking
    re-ranks what no one has decided yet."""
    ranked: list[dict] = [{}] * len(batch)
    groups = {
        "case": [i for i, row in enumerate(batch) if _is_case(row)],
        "own": []
        if not ranks_actions(kind)
        else [i for i, row in enumerate(batch) if not _is_case(row)],
    }
    sources = {
        i: batch[i][_ACTION_PREDICTION] if name == "case" else batch[i][1]
        for name, positions in groups.items()
        for i in positions
    }
    probabilities = dict(
        Prediction.objects.filter(pk__in=set(sources.values())).values_list("pk", "probabilities")
    )
    for name, positions in groups.items():
        if not positions:
            continue
        rows = [batch[i] for i in positions]
        ranking = rank_batch(
            ranking=rules.action_policy.ranking if name == "case" else rules.own_policy.ranking,
            member_ids=[row[14] for row in rows],
            probabilities=[probabilities.get(sources[i]) for i in positions],
            values=[row[10] or 0.0 for row in rows],
            churn_probabilities=[row[_CHURN_SCORE] for row in rows] if name == "case" else None,
        )
        for i, action_id, worth, risk in zip(
            positions,
            ranking.action_ids,
            ranking.expected_values,
            ranking.churn_probabilities,
            strict=True,
        ):
            ranked[i] = {"recommended_action_id": action_id, "expected_value": worth, "risk": risk}
    return ranked


def _choices(
    kind: str,
    rules: Rules,
    batch: list[tuple],
    rankings: list[dict],
    *,
    now: datetime,
    earlier: list[tuple[int, int]] = (),
) -> tuple[list[RouteChoice], dict[int, list[str]]]:
    """Each row's route under its rules (a case: both sides, each with its own confidence),
    and where anything recommends actions, the contact rules each recommendation breaks
    ({review pk: flags}): a would-be auto-approval that breaks one goes to an analyst
    (`routing.hold_back_for_contact_rules`; `earlier`: the batch's auto-approvals under other
    versions)."""
    choices = [
        rules.of(row).route(
            prediction_id=row[1],
            confidence=row[_CHURN_CONFIDENCE] if _is_case(row) else row[8],
            risk=ranked.get("risk", row[9]),
            value=row[10],
            tier=row[11] or "",
            rfm_segment=row[_RFM_SEGMENT] or "",
            action_prediction_id=row[_ACTION_PREDICTION],
            action_confidence=row[_ACTION_CONFIDENCE],
        )
        for row, ranked in zip(batch, rankings, strict=True)
    ]
    if not any(rankings):
        return choices, {}
    choices, flags = hold_back_for_contact_rules(
        choices=choices,
        member_ids=[row[14] for row in batch],
        action_ids=[ranked["recommended_action_id"] for ranked in rankings],
        priorities=[row[15] for row in batch],
        now=now,
        earlier=earlier,
    )
    return choices, {row[0]: found for row, found in zip(batch, flags, strict=True)}


def _rerouted(row: tuple, rules: Rules, choice: RouteChoice, now: datetime, ranked: dict):
    """The review with its new routing (None when nothing changes), and its old and new route.
    `ranked`: its new recommendation fields (`_rankings`)."""
    (pk, prediction_id, route, state, reason, policy_id, routed_at, due_at) = row[:8]
    confidence, risk, value, tier, action_id, worth = row[8:14]
    policy = rules.churn_policy if _is_case(row) else rules.own_policy
    # Handing an item between automation and people routes it now; otherwise its wait goes on.
    was_auto, is_auto = route == Review.Route.AUTO, choice.route == Review.Route.AUTO
    # An item waiting in the backlog waits on, with no due time, while people are to decide it
    # (`capacity`: it enters its queue as room frees); auto-approved, it leaves the backlog.
    waits = bool(row[_IN_BACKLOG]) and not is_auto
    new = {
        **routed_fields(
            choice, routed_at=routed_at if is_auto == was_auto else now, sla_hours=policy.sla_hours
        ),
        **({"due_at": None} if waits else {}),
        "in_backlog": waits,
        "policy_id": policy.pk,
        **({"action_policy_id": rules.action_policy.pk} if _is_case(row) else {}),
        **ranked,
    }
    old = {
        "route": route,
        "state": state,
        "route_reason": reason,
        "policy_id": policy_id,
        **({"action_policy_id": row[20]} if _is_case(row) else {}),
        "routed_at": routed_at,
        "due_at": due_at,
        "in_backlog": bool(row[_IN_BACKLOG]),
        **(
            {"recommended_action_id": action_id, "expected_value": worth, "risk": row[9]}
            if ranked
            else {}
        ),
    }
    if new == old:
        return None, route, choice.route
    # Every updated field is set: a kind that recommends nothing keeps its own.
    kept = {"recommended_action_id": action_id, "expected_value": worth, "risk": row[9]}
    return Review(pk=pk, **{**kept, **new}), route, choice.route
