"""Blind review's evidence: per reviewer, how often their churn call matches the model's when
they see it and when they do not, how right their blind answers are, and the rubber-stamping
flag (the Review quality page's section "Blind review: agreement shown vs blind").

A share of the items for people opens blind (`reviews.services.blind`): the person commits their
own churn call (a `BlindAnswer`, never changed) before the model's answer is shown. So the same
person is seen both ways, on items chosen without regard to anything the model said:

- shown agreement: of their decisions on items that did not open blind, the share whose settled
  churn call (`decided_churn_call`) is the model's (`model_churn_call` of the score);
- blind agreement: of their blind answers, the share equal to the model's call at commit
  (`BlindAnswer.model_churn_call`). The blind answer counts, never the decision after it;
- gap: shown − blind agreement, with Newcombe's hybrid score interval;
- blind accuracy: their blind answers against the member's observed churn (once the horizon
  has passed), beside the model's calls on the same items; shown accuracy: their decisions on
  items that did not open blind, against the outcome;
- revisions: of the blind items they then decided themselves, the share where the decision's
  churn call differs from their blind answer.
Agreement needs no outcome, so it counts every decision and blind answer (churn reviews and
cases; never the policy's decisions, never an erased member); accuracy counts those with one.

The flag (`is_rubber_stamping`, the rule's one home): a reviewer is flagged when the lower bound
of the 95 % interval of the gap is above RUBBER_STAMP_MARGIN (10 points). Why: for the same
person on items drawn alike, seeing the model should not change how often they agree with it,
except where its explanation honestly changes their mind, and the blind and shown items differ
by chance and queue order. The margin leaves room for that and is an effect size worth acting
on: one shown item in ten called the model's way beyond what the person's own blind record
predicts. Requiring the interval's lower bound above it (not the point) means the data rule out
a smaller gap at 97.5 % one-sided: a reviewer whose true gap is at most the margin is flagged
less than one time in 40, one with no gap almost never (bench/evidence.py over 10 seeds: 2 of
30 honest reviewers had a gap interval wholly above 0, none above the margin). A handful of
items is never enough to name a person: both agreements must also rest on at least
SMALL_SAMPLE items (the page's small-sample line), since at the extremes the interval alone
would flag 3 shown agreements against 3 blind disagreements. The flag asks someone to look;
whether going along with the model costs anything the page shows beside it (blind accuracy
against the model's on the same items).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from learning.quality_stats import SMALL_SAMPLE, Difference, Estimate, share_difference, wilson
from learning.review_quality import OWN, observed_churn
from predictions.calls import model_churn_call
from predictions.models import PredictionKind
from reviews.models import BlindAnswer, Decision
from reviews.services.decision_events import decided_churn_call

# The gap (shown − blind agreement) a reviewer's interval must clear to be flagged: see above.
RUBBER_STAMP_MARGIN = 0.10


@dataclass(frozen=True)
class ShownCall:
    """A decision on an item that did not open blind: the settled churn call, the model's, and
    the observed churn (None: not yet known)."""

    person: bool
    model: bool
    outcome: bool | None = None


@dataclass(frozen=True)
class BlindCall:
    """A blind answer: the person's own call, the model's at commit, the observed churn, and
    the churn call the same person's decision then settled on (None: they have not decided
    the item, or someone else did)."""

    person: bool
    model: bool
    outcome: bool | None = None
    final: bool | None = None


def is_rubber_stamping(shown: Estimate, blind: Estimate) -> bool:
    """The flag: both agreements on at least SMALL_SAMPLE items, and the lower bound of the 95 %
    interval of their difference (shown − blind) above RUBBER_STAMP_MARGIN."""
    if min(shown.n, blind.n) < SMALL_SAMPLE:
        return False
    gap = share_difference(shown, blind)
    return gap.low is not None and gap.low > RUBBER_STAMP_MARGIN


@dataclass(frozen=True)
class BlindScores:
    shown_agreement: Estimate
    blind_agreement: Estimate
    gap: Difference
    blind_accuracy: Estimate
    # The model's calls on the items of `blind_accuracy`.
    model_accuracy: Estimate
    shown_accuracy: Estimate
    revisions: Estimate

    @property
    def flagged(self) -> bool:
        return is_rubber_stamping(self.shown_agreement, self.blind_agreement)

    @property
    def is_small(self) -> bool:
        return min(self.shown_agreement.n, self.blind_agreement.n) < SMALL_SAMPLE


def _share(items: Iterable, hit) -> Estimate:
    items = list(items)
    return wilson(sum(bool(hit(item)) for item in items), len(items))


def score_blind(shown: Iterable[ShownCall], blind: Iterable[BlindCall]) -> BlindScores:
    """One reviewer's figures from their shown decisions and their blind answers."""
    shown, blind = list(shown), list(blind)
    shown_agreement = _share(shown, lambda call: call.person == call.model)
    blind_agreement = _share(blind, lambda call: call.person == call.model)
    with_outcome = [call for call in blind if call.outcome is not None]
    return BlindScores(
        shown_agreement=shown_agreement,
        blind_agreement=blind_agreement,
        gap=share_difference(shown_agreement, blind_agreement),
        blind_accuracy=_share(with_outcome, lambda call: call.person == call.outcome),
        model_accuracy=_share(with_outcome, lambda call: call.model == call.outcome),
        shown_accuracy=_share(
            (call for call in shown if call.outcome is not None),
            lambda call: call.person == call.outcome,
        ),
        revisions=_share(
            (call for call in blind if call.final is not None),
            lambda call: call.final != call.person,
        ),
    )


@dataclass(frozen=True)
class BlindRow:
    reviewer: str
    scores: BlindScores


def shown_calls(user, scope: str) -> dict[str, list[ShownCall]]:
    """Per reviewer, their decisions on churn-calling items that did not open blind."""
    decisions = (
        Decision.objects.exclude(decided_as=Decision.POLICY)
        .filter(
            review__kind=PredictionKind.CHURN,
            review__is_blind=False,
            review__member__erased_at__isnull=True,
        )
        .annotate(outcome=observed_churn())
        .select_related("review__prediction", "decided_by")
    )
    if scope == OWN:
        decisions = decisions.filter(decided_by=user)
    calls: dict[str, list[ShownCall]] = {}
    for decision in decisions.iterator(chunk_size=2000):
        calls.setdefault(decision.decided_by.get_username(), []).append(
            ShownCall(
                person=bool(decided_churn_call(decision)),
                model=bool(model_churn_call(decision.review.prediction.score)),
                outcome=decision.outcome,
            )
        )
    return calls


def blind_calls(user, scope: str) -> dict[str, list[BlindCall]]:
    """Per reviewer, their blind answers on churn-calling items."""
    answers = (
        BlindAnswer.objects.filter(
            review__kind=PredictionKind.CHURN, member__erased_at__isnull=True
        )
        .annotate(outcome=observed_churn("review__prediction_id"))
        .select_related("user", "review__prediction", "review__decision")
    )
    if scope == OWN:
        answers = answers.filter(user=user)
    calls: dict[str, list[BlindCall]] = {}
    for answer in answers.iterator(chunk_size=2000):
        calls.setdefault(answer.user.get_username(), []).append(
            BlindCall(
                person=answer.churn_label,
                model=answer.model_churn_call,
                outcome=answer.outcome,
                final=_own_final_call(answer),
            )
        )
    return calls


def _own_final_call(answer: BlindAnswer) -> bool | None:
    """The churn call the answer's author's decision settled on (None: no decision of theirs)."""
    try:
        decision = answer.review.decision
    except Decision.DoesNotExist:
        return None
    if decision.decided_by_id != answer.user_id:
        return None
    return decided_churn_call(decision)


def blind_agreement(user, scope: str) -> list[BlindRow]:
    """One row per reviewer `user` may see in `scope` (`review_quality.quality_scope`) who has a
    decision or a blind answer, by name."""
    shown = shown_calls(user, scope)
    blind = blind_calls(user, scope)
    return [
        BlindRow(name, score_blind(shown.get(name, []), blind.get(name, [])))
        for name in sorted(shown.keys() | blind.keys())
    ]
