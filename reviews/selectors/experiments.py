"""Policy tests read: the running test of a kind, its arms, the reviews that are its items and
whether it still collects (the writes and the arm split: `reviews.services.experiments`).

A test's items are the reviews its arms' versions routed (a churn test: the review's `policy`;
a next-action test: a next-action review's `policy`, a case's `action_policy`) that were made
while it collected: from `started_at` until it stopped (its end, `ends_at`, or the moment of the
`max_decisions`-th person decision on its items, whichever came first). Items routed before
the test keep their version and are not its items.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from reviews.models import Decision, EscalationPolicy, PolicyExperiment, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import PolicyVersionRow, version_row

CHAMPION, CHALLENGER = "champion", "challenger"
ARMS = (CHAMPION, CHALLENGER)
ARM_LABELS = {CHAMPION: "Champion (the version in force)", CHALLENGER: "Challenger"}

# What the page and the API call a test's state.
COLLECTING, FINISHED, ENDED = "collecting", "finished", "ended"


def running_test(kind: str) -> PolicyExperiment | None:
    """The test of `kind` that has not ended (at most one, by a constraint), with its arms."""
    return (
        PolicyExperiment.objects.running()
        .filter(kind=kind)
        .select_related("champion", "challenger", "started_by")
        .first()
    )


def policy_tests(kind: str | None = None):
    """Every test (of `kind`), newest first, with what the pages and the API show of it."""
    tests = PolicyExperiment.objects.select_related(
        "champion", "challenger", "adopted", "started_by", "ended_by"
    )
    return tests.filter(kind=kind) if kind is not None else tests


def arm_version(test: PolicyExperiment, arm: str) -> EscalationPolicy:
    return test.challenger if arm == CHALLENGER else test.champion


def routed_by_versions(version_ids) -> Q:
    """The reviews one of these versions routed: a churn version a review's `policy` (a case's
    churn side); a next-action version a next-action review's `policy` or a case's
    `action_policy` (a version routes only its own kind, so one filter serves both)."""
    version_ids = list(version_ids)
    return Q(policy_id__in=version_ids) | Q(action_policy_id__in=version_ids)


def _decided_by_people():
    return Decision.objects.exclude(decided_as=Decision.POLICY)


def _made_while_running(test: PolicyExperiment) -> Q:
    """Reviews made since the start and before the end or `ends_at`, whichever came first."""
    limits = [moment for moment in (test.ended_at, test.ends_at) if moment is not None]
    made = Q(created_at__gte=test.started_at)
    return made & Q(created_at__lt=min(limits)) if limits else made


def _candidate_items(test: PolicyExperiment):
    return Review.objects.filter(
        routed_by_versions([test.champion_id, test.challenger_id]), _made_while_running(test)
    )


def person_decisions(test: PolicyExperiment) -> int:
    """Person decisions on the reviews the arms routed while the test ran (what
    `max_decisions` counts)."""
    return _decided_by_people().filter(review__in=_candidate_items(test)).count()


def stopped_at(test: PolicyExperiment, *, now: datetime | None = None) -> datetime | None:
    """When the test stopped collecting (None: it still collects): its end, its `ends_at`
    once passed, or the moment of its `max_decisions`-th person decision."""
    now = now or timezone.now()
    moments = [test.ended_at] if test.ended_at is not None else []
    if test.ends_at is not None and test.ends_at <= now:
        moments.append(test.ends_at)
    if test.max_decisions is not None:
        last = (
            _decided_by_people()
            .filter(review__in=_candidate_items(test))
            .order_by("decided_at", "pk")
            .values_list("decided_at", flat=True)[test.max_decisions - 1 : test.max_decisions]
        )
        moments += list(last)
    return min(moments) if moments else None


def collects(test: PolicyExperiment | None, *, now: datetime | None = None) -> bool:
    """Whether new reviews of the test's members are routed by their arms: not ended, before
    `ends_at` and below `max_decisions` person decisions on its items."""
    if test is None or test.ended_at is not None:
        return False
    now = now or timezone.now()
    if test.ends_at is not None and now >= test.ends_at:
        return False
    return test.max_decisions is None or person_decisions(test) < test.max_decisions


def arm_items(test: PolicyExperiment, arm: str, *, now: datetime | None = None):
    """The reviews that are the arm's items (see the module docstring)."""
    now = now or timezone.now()
    stop = stopped_at(test, now=now)
    items = Review.objects.filter(
        routed_by_versions([arm_version(test, arm).pk]),
        created_at__gte=test.started_at,
    )
    return items.filter(created_at__lt=stop) if stop is not None else items


@dataclass(frozen=True)
class PolicyTestState:
    """Where a test stands: collecting, finished (stopped collecting, waiting for an admin to
    adopt a version) or ended; `stopped_at` None while it collects."""

    state: str
    stopped_at: datetime | None
    decisions: int

    @property
    def waits_for_adoption(self) -> bool:
        return self.state == FINISHED


def policy_test_state(test: PolicyExperiment, *, now: datetime | None = None) -> PolicyTestState:
    now = now or timezone.now()
    stop = stopped_at(test, now=now)
    state = ENDED if test.ended_at is not None else FINISHED if stop is not None else COLLECTING
    return PolicyTestState(state=state, stopped_at=stop, decisions=person_decisions(test))


def adopted_arm(test: PolicyExperiment) -> str | None:
    """Which arm the end adopted (None: not ended): the arm whose settings the adopted version
    holds (a challenger must differ from its champion, so only one can)."""
    if test.adopted_id is None:
        return None
    adopted = PolicySettings.of(test.adopted)
    return CHALLENGER if adopted == PolicySettings.of(test.challenger) else CHAMPION


@dataclass(frozen=True)
class SettingRow:
    """One setting of a test's two versions, as the test page compares them."""

    label: str
    champion: str
    challenger: str

    @property
    def differs(self) -> bool:
        return self.champion != self.challenger


def settings_comparison(test: PolicyExperiment) -> list[SettingRow]:
    """The champion's and the challenger's settings side by side, as the history writes them."""
    rows: dict[str, PolicyVersionRow] = {
        CHAMPION: version_row(test.champion),
        CHALLENGER: version_row(test.challenger),
    }
    shown = [
        ("Auto-approve at confidence ≥", lambda row: f"{row.policy.auto_approve_confidence:.2f}"),
        ("Expert below confidence", lambda row: f"{row.policy.expert_confidence:.2f}"),
        ("Expert above value quantile", lambda row: f"{row.policy.expert_value_quantile:.2f}"),
        ("Risk band for people", lambda row: row.risk_band),
        ("Audit sample", lambda row: f"{row.policy.audit_sample_rate:.1%}"),
        ("Blind review", lambda row: f"{row.policy.blind_share:.0%}"),
        ("Escalate after", lambda row: f"{row.policy.sla_hours} h"),
        ("Capacity a day", lambda row: row.capacity),
        ("Ranking", lambda row: row.ranking),
        ("Per tier", lambda row: row.tier_overrides),
    ]
    return [
        SettingRow(label, text(rows[CHAMPION]), text(rows[CHALLENGER])) for label, text in shown
    ]
