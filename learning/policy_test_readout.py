"""The readout of a policy test (an A/B test of two escalation-policy versions): per arm, what it
asked of people and how its automatic decisions and its members fared against the outcomes.

An arm's items are the reviews its version routed while the test collected
(`reviews.selectors.experiments.arm_items`). Per arm:

- items to people: the items routed to an analyst or an expert, of all its items (Wilson);
- person-minutes: the sum of the people's time on the items (`Decision.seconds_on_item`, from
  their first opening to their decision) / 60, and per timed decision (mean, normal interval);
  a decision made without opening the item (quick or bulk approve, the API) has no time;
- error among auto-approvals: of the policy's auto-approved churn calls (a churn review's or a
  case's) whose outcome is known, the share the outcome contradicted (Wilson);
- outcome rate: churn among the arm's members whose outcome is known, each member counted
  once, by their first item with a known churn outcome (Wilson); a next-action review without
  a churn side has none.

Beside them: the challenger − champion difference of the outcome rate (Newcombe's hybrid score
interval), and a sample-size plan: the outcomes each arm needs for a two-sided test at 5 % with
80 % power to detect a difference of MIN_DETECTABLE_DIFFERENCE in the outcome rate, at the
pooled observed rate, with the arms in the test's split; and how many more that is.
"""

import math
import statistics
from dataclasses import dataclass
from datetime import datetime

from django.db.models import OuterRef, Subquery
from django.utils import timezone

from learning.models import LabeledExample
from learning.quality_stats import SMALL_SAMPLE, Difference, Estimate, Z, share_difference, wilson
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import Decision, EscalationPolicy, PolicyExperiment, Review
from reviews.selectors.experiments import (
    ARM_LABELS,
    ARMS,
    CHALLENGER,
    CHAMPION,
    PolicyTestState,
    arm_items,
    arm_version,
    policy_test_state,
)

# The difference in outcome rate the plan is sized to detect: 2 percentage points.
MIN_DETECTABLE_DIFFERENCE = 0.02
# A two-sided test at this level, with this power.
ALPHA = 0.05
POWER = 0.8
SECONDS_PER_MINUTE = 60


@dataclass(frozen=True)
class Mean:
    """A mean with its 95 % normal interval (None with fewer than two values) and its n."""

    value: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def is_small(self) -> bool:
        return self.n < SMALL_SAMPLE


def mean_of(values: list[float]) -> Mean:
    if not values:
        return Mean(None, None, None, 0)
    centre = statistics.fmean(values)
    if len(values) < 2:
        return Mean(centre, None, None, 1)
    half = Z * statistics.stdev(values) / math.sqrt(len(values))
    return Mean(centre, max(0.0, centre - half), centre + half, len(values))


@dataclass(frozen=True)
class ArmReadout:
    arm: str
    label: str
    version: EscalationPolicy
    items: int
    members: int
    to_people: Estimate
    person_decisions: int
    person_minutes: float
    minutes_per_decision: Mean
    auto_error: Estimate
    outcome_rate: Estimate

    @property
    def is_small(self) -> bool:
        return self.outcome_rate.n < SMALL_SAMPLE


@dataclass(frozen=True)
class SampleSizePlan:
    """Outcomes each arm needs (None: no plan yet, `reason` says why) and how many more."""

    difference: float
    pooled_rate: float | None
    needed: dict[str, int] | None
    more: dict[str, int] | None
    reason: str = ""

    @property
    def total_more(self) -> int | None:
        return None if self.more is None else sum(self.more.values())


@dataclass(frozen=True)
class PolicyTestReadout:
    test: PolicyExperiment
    state: PolicyTestState
    arms: list[ArmReadout]
    outcome_difference: Difference
    plan: SampleSizePlan
    computed_at: datetime

    def arm(self, name: str) -> ArmReadout:
        return next(arm for arm in self.arms if arm.arm == name)


def outcomes_needed(
    *,
    rate: float,
    challenger_share: float,
    difference: float = MIN_DETECTABLE_DIFFERENCE,
    alpha: float = ALPHA,
    power: float = POWER,
) -> dict[str, int]:
    """Outcomes per arm for a two-sided two-proportion z-test at level `alpha` with `power` to
    detect `difference` at the common rate `rate`, the arms split as the test splits members:
    N = (z(1 − alpha / 2) + z(power))² · rate (1 − rate) · (1 / s + 1 / (1 − s)) / difference²
    outcomes in all, s · N of them the challenger's (at s = 0.5: 2 (z + z)² p (1 − p) / d² each)."""
    normal = statistics.NormalDist()
    z = normal.inv_cdf(1 - alpha / 2) + normal.inv_cdf(power)
    share = challenger_share
    total = z * z * rate * (1 - rate) * (1 / share + 1 / (1 - share)) / difference**2
    return {
        CHAMPION: math.ceil((1 - share) * total),
        CHALLENGER: math.ceil(share * total),
    }


def sample_size_plan(arms: list[ArmReadout], *, challenger_share: float) -> SampleSizePlan:
    churned = sum(arm.outcome_rate.hits or 0 for arm in arms)
    known = sum(arm.outcome_rate.n for arm in arms)
    difference = MIN_DETECTABLE_DIFFERENCE
    if known == 0:
        return SampleSizePlan(difference, None, None, None, "no outcomes are known yet")
    rate = churned / known
    if churned in (0, known):
        return SampleSizePlan(
            difference,
            rate,
            None,
            None,
            f"every known outcome is {'churn' if churned else 'a stay'} so far: the plan needs "
            "both",
        )
    needed = outcomes_needed(rate=rate, challenger_share=challenger_share, difference=difference)
    have = {arm.arm: arm.outcome_rate.n for arm in arms}
    more = {name: max(0, needed[name] - have[name]) for name in ARMS}
    return SampleSizePlan(difference, rate, needed, more)


def policy_test_readout(
    test: PolicyExperiment, *, now: datetime | None = None
) -> PolicyTestReadout:
    """Everything the test's page and API show of its evidence, as it stands `now`."""
    now = now or timezone.now()
    arms = [_arm_readout(test, arm, now=now) for arm in ARMS]
    by_name = {arm.arm: arm for arm in arms}
    return PolicyTestReadout(
        test=test,
        state=policy_test_state(test, now=now),
        arms=arms,
        outcome_difference=share_difference(
            by_name[CHALLENGER].outcome_rate, by_name[CHAMPION].outcome_rate
        ),
        plan=sample_size_plan(arms, challenger_share=test.challenger_share),
        computed_at=now,
    )


def _arm_readout(test: PolicyExperiment, arm: str, *, now: datetime) -> ArmReadout:
    outcome = LabeledExample.objects.filter(
        source=LabeledExample.Source.OUTCOME,
        kind=PredictionKind.CHURN,
        prediction_id=OuterRef("prediction_id"),
    ).values("churn_label")[:1]
    rows = list(
        arm_items(test, arm, now=now)
        .annotate(outcome=Subquery(outcome))
        .order_by("created_at", "pk")
        .values_list(
            "member_id",
            "kind",
            "route",
            "prediction__score",
            "outcome",
            "decision__decided_as",
            "decision__seconds_on_item",
        )
    )
    for_people = [route for _, _, route, *_ in rows if route != Review.Route.AUTO]
    people = [row for row in rows if row[5] is not None and row[5] != Decision.POLICY]
    seconds = [row[6] for row in people if row[6] is not None]
    auto_calls = [
        model_churn_call(score) != outcome
        for _, kind, _, score, outcome, decided_as, _ in rows
        if decided_as == Decision.POLICY and kind == PredictionKind.CHURN and outcome is not None
    ]
    first_outcome: dict[int, bool] = {}
    for member_id, kind, _, _, outcome, *_ in rows:
        if outcome is not None and kind == PredictionKind.CHURN:
            first_outcome.setdefault(member_id, bool(outcome))
    return ArmReadout(
        arm=arm,
        label=ARM_LABELS[arm],
        version=arm_version(test, arm),
        items=len(rows),
        members=len({row[0] for row in rows}),
        to_people=wilson(len(for_people), len(rows)),
        person_decisions=len(people),
        person_minutes=sum(seconds) / SECONDS_PER_MINUTE,
        minutes_per_decision=mean_of([value / SECONDS_PER_MINUTE for value in seconds]),
        auto_error=wilson(sum(auto_calls), len(auto_calls)),
        outcome_rate=wilson(sum(first_outcome.values()), len(first_outcome)),
    )
