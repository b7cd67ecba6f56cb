"""The arithmetic of review quality: churn calls scored against observed outcomes, with Wilson
intervals. Plain Python (no Django), so that the figures can be checked by hand.

Churn is rare, so accuracy alone rewards calling "stays" every time: beside it come balanced
accuracy (the mean of recall on churners and specificity on stayers), recall and precision.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
# The normal quantile of a two-sided 95 % interval (1.959963984540054).
Z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)
# Below this many items a figure is shown, but marked a small sample.
SMALL_SAMPLE = 30


@dataclass(frozen=True)
class Estimate:
    """A figure with its 95 % interval and the n it rests on; `value` None: nothing to say
    (n is 0). `hits` is the numerator of a proportion (None for balanced accuracy)."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    hits: int | None = None

    @property
    def is_small(self) -> bool:
        return self.n < SMALL_SAMPLE

    @property
    def shown(self) -> str:
        """As pages show it: '80.0 % (49.0–94.3)', or '–' with nothing to say."""
        if self.value is None:
            return "–"
        return f"{self.value * 100:.1f} % ({self.low * 100:.1f}–{self.high * 100:.1f})"


def wilson(hits: int, n: int, *, z: float = Z) -> Estimate:
    """The share hits / n with its Wilson score interval (good near 0 and 1 and for small n,
    where the normal approximation's interval runs outside [0, 1])."""
    if n <= 0:
        return Estimate(None, None, None, 0, 0)
    share = hits / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (share + z2 / (2 * n)) / denominator
    half = z * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / denominator
    # At 0 and n the bound is exactly 0 or 1; the formula leaves a rounding error there.
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return Estimate(share, low, high, n, hits)


@dataclass(frozen=True)
class Confusion:
    """Churn calls against outcomes: churn is the positive class."""

    true_positive: int = 0
    false_positive: int = 0
    true_negative: int = 0
    false_negative: int = 0

    @classmethod
    def of(cls, pairs: Iterable[tuple[bool, bool]]) -> "Confusion":
        """From (call, outcome) pairs."""
        counts = {(True, True): 0, (True, False): 0, (False, False): 0, (False, True): 0}
        for call, outcome in pairs:
            counts[(bool(call), bool(outcome))] += 1
        return cls(
            counts[(True, True)],
            counts[(True, False)],
            counts[(False, False)],
            counts[(False, True)],
        )

    @property
    def n(self) -> int:
        return self.true_positive + self.false_positive + self.true_negative + self.false_negative


@dataclass(frozen=True)
class CallScores:
    """How one decider's churn calls on a set of items matched what the members did.

    - accuracy: right calls / items;
    - recall: churners called churn / churners;
    - specificity: stayers called stay / stayers;
    - balanced accuracy: (recall + specificity) / 2; its interval is the mean of the two
      rates' Wilson bounds (conservative: at least as wide as the interval of the mean);
      None unless there are both churners and stayers;
    - precision: churners / items called churn.
    """

    n: int
    accuracy: Estimate
    balanced_accuracy: Estimate
    recall: Estimate
    specificity: Estimate
    precision: Estimate


def score_calls(confusion: Confusion) -> CallScores:
    c = confusion
    recall = wilson(c.true_positive, c.true_positive + c.false_negative)
    specificity = wilson(c.true_negative, c.true_negative + c.false_positive)
    return CallScores(
        n=c.n,
        accuracy=wilson(c.true_positive + c.true_negative, c.n),
        balanced_accuracy=balanced_accuracy(recall, specificity, n=c.n),
        recall=recall,
        specificity=specificity,
        precision=wilson(c.true_positive, c.true_positive + c.false_positive),
    )


def balanced_accuracy(recall: Estimate, specificity: Estimate, *, n: int) -> Estimate:
    if recall.value is None or specificity.value is None:
        return Estimate(None, None, None, n)
    return Estimate(
        (recall.value + specificity.value) / 2,
        (recall.low + specificity.low) / 2,
        (recall.high + specificity.high) / 2,
        n,
    )


@dataclass(frozen=True)
class ScoredCall:
    """One item: the person's churn call, the model's, and what the member did."""

    person: bool
    model: bool
    outcome: bool

    @property
    def disagrees(self) -> bool:
        return self.person != self.model


@dataclass(frozen=True)
class GroupScores:
    """A group's figures: the person's calls, the model's on the same items, and override
    precision: among the items where the person's call differed from the model's, the share
    where the person was right (n = those items)."""

    n: int
    person: CallScores
    model: CallScores
    override_precision: Estimate

    @property
    def is_small(self) -> bool:
        return self.n < SMALL_SAMPLE


def score_group(calls: Iterable[ScoredCall]) -> GroupScores:
    calls = list(calls)
    disagreements = [call for call in calls if call.disagrees]
    return GroupScores(
        n=len(calls),
        person=score_calls(Confusion.of((call.person, call.outcome) for call in calls)),
        model=score_calls(Confusion.of((call.model, call.outcome) for call in calls)),
        override_precision=wilson(
            sum(call.person == call.outcome for call in disagreements), len(disagreements)
        ),
    )


@dataclass(frozen=True)
class Difference:
    """a − b of two shares with Newcombe's hybrid score interval (method 10 of Newcombe,
    1998, built from the two Wilson intervals); None when either share has no items."""

    value: float | None
    low: float | None
    high: float | None

    @property
    def shown(self) -> str:
        if self.value is None:
            return "–"
        return f"{self.value * 100:+.1f} points ({self.low * 100:+.1f} to {self.high * 100:+.1f})"


def share_difference(a: Estimate, b: Estimate) -> Difference:
    if a.value is None or b.value is None:
        return Difference(None, None, None)
    value = a.value - b.value
    low = value - math.sqrt((a.value - a.low) ** 2 + (b.high - b.value) ** 2)
    high = value + math.sqrt((a.high - a.value) ** 2 + (b.value - b.low) ** 2)
    return Difference(value, low, high)


@dataclass(frozen=True)
class ActionEffect:
    """Whether a person's actions kept members, judged only where randomization allows:
    churn among the members whose action was sent (`treated`) against churn among those the
    control group drew at random and held out (`held_out`). `prevented` = held-out churn
    − treated churn: the churn the actions prevented (positive: they helped)."""

    treated: Estimate
    held_out: Estimate
    prevented: Difference

    @property
    def is_small(self) -> bool:
        return min(self.treated.n, self.held_out.n) < SMALL_SAMPLE


def action_effect(outcomes: Iterable[tuple[bool, bool]]) -> ActionEffect:
    """From (held out, churned) pairs, one per decision that settled on an action."""
    outcomes = list(outcomes)
    treated = [churned for held_out, churned in outcomes if not held_out]
    held = [churned for held_out, churned in outcomes if held_out]
    treated_churn = wilson(sum(treated), len(treated))
    held_out_churn = wilson(sum(held), len(held))
    return ActionEffect(
        treated=treated_churn,
        held_out=held_out_churn,
        prevented=share_difference(held_out_churn, treated_churn),
    )
