"""Re-routing: after a policy change, undecided reviews follow the new thresholds.

Which reviews move (`reroutable_reviews`):
- pending items (analyst or expert queue) and auto-approved items that no person has decided.
  Auto-approved items are pulled back to people when the new policy says so (raising the
  auto-approve threshold sends them to analysts): an auto-approval is the policy's call, not a
  person's, and nothing has acted on it that a person confirmed;
- never an item a person escalated (or the SLA sweep escalated): it stays with the experts,
  with the escalation's reason, whatever the thresholds say;
- never a decided review: its route, reason and policy version stay as they were decided.

The rules themselves are `routing.choose_route`, applied with the current policy version; the
member-value threshold is the policy's quantile of the member values of the reviews being
re-routed, as routing computes it over the predictions it routes.

Clocks: an item that stays with people keeps its `routed_at` (its wait does not restart because
an admin moved a threshold) and gets `due_at = routed_at + sla_hours` of the new version; an item
that changes between automatic and human handling is routed now (`routed_at` = now).

Idempotent: rows whose route, state, reason, version and clocks already match are not written,
so a second run changes nothing and moves nothing.
"""

from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from reviews.models import Review
from reviews.services.policy import PolicySettings, current_policy
from reviews.services.routing import choose_route

# Rows locked and rewritten per transaction: short enough that a reviewer deciding an item of
# the batch waits well under a second (SQLite serializes every write transaction).
REROUTE_BATCH_SIZE = 2000
UNDECIDED_STATES = (Review.State.PENDING, Review.State.AUTO_APPROVED)
_UPDATED_FIELDS = ["route", "state", "route_reason", "policy", "routed_at", "due_at"]


@dataclass(frozen=True)
class ReroutingResult:
    """What a re-routing did: reviews considered, moves between routes, routes afterwards."""

    kind: str
    policy_version: int
    considered: int
    moves: dict[tuple[str, str], int] = field(default_factory=dict)
    by_route: dict[str, int] = field(default_factory=dict)

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


def value_threshold_of(values: np.ndarray, quantile: float) -> float | None:
    """The member value above which an expert decides, as routing computes it."""
    return float(np.quantile(values, quantile)) if len(values) else None


def reroute_undecided(*, kind: str, actor: AbstractBaseUser | None = None) -> ReroutingResult:
    """Apply the current policy of `kind` to every reroutable review, in batches of
    REROUTE_BATCH_SIZE, one transaction each. Records one audit record when anything moved."""
    require_permission(actor, "reviews.add_escalationpolicy")
    policy = current_policy(kind)
    settings = PolicySettings.of(policy)
    values = np.fromiter(
        reroutable_reviews(kind).values_list("member_value", flat=True).iterator(chunk_size=10000),
        dtype="float64",
    )
    threshold = value_threshold_of(values, settings.expert_value_quantile)
    moves: dict[tuple[str, str], int] = {}
    by_route: dict[str, int] = {}
    considered = 0
    last_id = 0
    while True:
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
                review, source, target = _rerouted(row, policy, settings, kind, threshold, now)
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


def _rerouted(row: tuple, policy, settings: PolicySettings, kind: str, threshold, now):
    """The review with its new routing (None when nothing changes), and its old and new route."""
    (pk, prediction_id, route, state, reason, policy_id, routed_at, due_at) = row[:8]
    confidence, risk, value, tier = row[8:]
    choice = choose_route(
        settings=settings,
        kind=kind,
        prediction_id=prediction_id,
        confidence=confidence,
        risk=risk,
        value=value,
        value_threshold=threshold,
        tier=tier or "",
    )
    is_auto = choice.route == Review.Route.AUTO
    was_auto = route == Review.Route.AUTO
    new_routed_at = routed_at if is_auto == was_auto else now
    new = {
        "route": choice.route,
        "state": Review.State.AUTO_APPROVED if is_auto else Review.State.PENDING,
        "route_reason": choice.reason,
        "policy_id": policy.pk,
        "routed_at": new_routed_at,
        "due_at": None if is_auto else new_routed_at + timedelta(hours=policy.sla_hours),
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
