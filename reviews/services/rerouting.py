"""Re-routing: after a policy change, undecided reviews follow the current version's rule.

What moves (`reroutable_reviews`): pending and auto-approved reviews that no person decided or
escalated; an auto-approval is the policy's call, so a stricter policy pulls it back to people.
The rule is routing's (`routing.routing_rule`, an open pause included). An item that stays with
people keeps its `routed_at`: its wait does not restart because an admin moved a threshold.

Saving a policy only queues this (`request_rerouting`, on commit): a worker re-routes in batches,
writing only rows that change, so a rerun moves nothing. Every review reached carries the current
version: `awaiting_rerouting` counts the rest and the sweep `reroute_stale` resumes a lost run.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind
from reviews.models import EscalationPolicy, Review
from reviews.permissions import MANAGE_POLICY
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.routing import RoutingRule, routed_fields, routing_rule

# Rows locked and rewritten per transaction: short enough that a reviewer deciding an item of
# the batch waits well under a second (SQLite serializes every write transaction).
REROUTE_BATCH_SIZE = 2000
UNDECIDED_STATES = (Review.State.PENDING, Review.State.AUTO_APPROVED)
# A re-routing still unfinished this long after its version was saved was lost (a worker killed,
# a message dropped): a million reviews take a few minutes, so this is well past a slow run.
STALE_REROUTING_AFTER = timedelta(minutes=30)
_UPDATED_FIELDS = ["route", "state", "route_reason", "policy", "routed_at", "due_at"]


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


def reroutable_reviews(kind: str):
    """Undecided reviews of a kind that a policy change may move (see the module docstring)."""
    return Review.objects.filter(kind=kind, state__in=UNDECIDED_STATES, escalated_at__isnull=True)


def awaiting_rerouting(kind: str) -> int:
    """Reroutable reviews that the current version's re-routing has not reached yet."""
    return reroutable_reviews(kind).exclude(policy=current_policy(kind)).count()


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
    newest = EscalationPolicy.objects.filter(kind=policy.kind).order_by("-version")
    return newest.values_list("pk", flat=True).first() == policy.pk


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
    values = np.fromiter(
        reroutable_reviews(kind).values_list("member_value", flat=True).iterator(chunk_size=10000),
        dtype="float64",
    )
    rule = routing_rule(kind=kind, settings=PolicySettings.of(policy), values=values)
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
                .select_for_update()
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
                )[:REROUTE_BATCH_SIZE]
            )
            if not batch:
                break
            last_id = batch[-1][0]
            now = timezone.now()
            changed = []
            for row in batch:
                review, source, target = _rerouted(row, policy, rule, now)
                considered += 1
                by_route[target] = by_route.get(target, 0) + 1
                if source != target:
                    moves[(source, target)] = moves.get((source, target), 0) + 1
                if review is not None:
                    changed.append(review)
            Review.objects.bulk_update(changed, _UPDATED_FIELDS, batch_size=500)
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


def _rerouted(row: tuple, policy: EscalationPolicy, rule: RoutingRule, now: datetime):
    """The review with its new routing (None when nothing changes), and its old and new route."""
    (pk, prediction_id, route, state, reason, policy_id, routed_at, due_at) = row[:8]
    confidence, risk, value, tier = row[8:]
    choice = rule.route(
        prediction_id=prediction_id, confidence=confidence, risk=risk, value=value, tier=tier or ""
    )
    # Handing an item between automation and people routes it now; otherwise its wait goes on.
    was_auto, is_auto = route == Review.Route.AUTO, choice.route == Review.Route.AUTO
    new = {
        **routed_fields(
            choice, routed_at=routed_at if is_auto == was_auto else now, sla_hours=policy.sla_hours
        ),
        "policy_id": policy.pk,
    }
    old = {
        "route": route,
        "state": state,
        "route_reason": reason,
        "policy_id": policy_id,
        "routed_at": routed_at,
        "due_at": due_at,
    }
    if new == old:
        return None, route, choice.route
    return Review(pk=pk, **new), route, choice.route
