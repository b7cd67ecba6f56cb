"""Policy tests: two escalation-policy versions of one kind side by side (an A/B test).

- Start (`start_policy_test`): the version in force is the champion; the challenger's settings
  become a new version that is never the one in force (`selectors.policy.current_policy` skips
  it). Each member falls in an arm by a stable hash of the test's salt and their id
  (`arm_of`): `challenger_share` of them in the challenger's. One running test per kind; while
  it runs, the kind's thresholds cannot change (`policy.change_policy` refuses: end it first).
- Routing (`member_policies`): while the test collects, each member's new reviews are routed
  by their arm's version (a case: the churn test decides its churn side, a next-action test
  its action side); once it stops collecting (`selectors.experiments.collects`), everyone's
  by the champion, until an admin ends it.
- Re-routing, while the test runs: a review on either arm's version keeps its version (its
  route follows that version's rules); a review on neither moves to its member's version.
- End (`end_policy_test`): the admin adopts one arm; its settings become a new audited version
  (`policy.save_policy`, which re-routes what nobody decided, as any policy change does).
"""

import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind
from reviews.exceptions import (
    InvalidPolicyTest,
    PolicyTestEnded,
    PolicyTestNotFound,
    PolicyTestRunning,
)
from reviews.models import EscalationPolicy, PolicyExperiment
from reviews.permissions import MANAGE_POLICY
from reviews.policy_settings import PolicySettings
from reviews.selectors.experiments import (
    ARMS,
    CHALLENGER,
    CHAMPION,
    adopted_arm,
    arm_version,
    collects,
    running_test,
)
from reviews.selectors.policy import current_policy

SALT_BYTES = 8


def arm_of(test: PolicyExperiment, member_id: int) -> str:
    """The member's arm: fixed by the test's salt and the member's id (the same every time,
    independent of anything the model or a person says about the member)."""
    digest = hashlib.blake2b(f"{test.salt}:{member_id}".encode(), digest_size=8).digest()
    return CHALLENGER if int.from_bytes(digest, "big") / 2**64 < test.challenger_share else CHAMPION


@dataclass(frozen=True)
class MemberPolicies:
    """Which version routes each member's reviews of one kind, as it stands at one moment:
    `current` (the version in force), or while `test` collects, the member's arm's."""

    current: EscalationPolicy
    test: PolicyExperiment | None = None  # the running test, collecting or not
    collecting: bool = False

    def of(self, member_id: int) -> EscalationPolicy:
        """The version that routes the member's new reviews."""
        if self.test is None or not self.collecting:
            return self.current
        return arm_version(self.test, arm_of(self.test, member_id))

    def for_review(self, member_id: int, version_id: int | None) -> EscalationPolicy:
        """The version a re-routing applies to a review now on `version_id`: an arm's version
        is kept while the test runs (its items are not pulled back), any other gives way to
        the member's."""
        test = self.test
        if test is not None and version_id in (test.champion_id, test.challenger_id):
            return test.champion if version_id == test.champion_id else test.challenger
        return self.of(member_id)

    @property
    def in_force_ids(self) -> list[int]:
        """The versions a re-routing leaves reviews on: the current one, and the arms'."""
        ids = [self.current.pk]
        return ids + [self.test.challenger_id] if self.test is not None else ids


def member_policies(kind: str, *, now: datetime | None = None) -> MemberPolicies:
    """The versions of `kind` routing members now (a few queries, not one per member)."""
    test = running_test(kind)
    return MemberPolicies(current_policy(kind), test, collects(test, now=now))


def policy_for_members(kind: str, member_ids) -> dict[int, EscalationPolicy]:
    """{member id: the version of `kind` that routes their new reviews}."""
    policies = member_policies(kind)
    return {member_id: policies.of(member_id) for member_id in member_ids}


def split_by_policy(
    rows: Sequence, key: Callable[[object], tuple[EscalationPolicy, ...]]
) -> list[tuple[tuple[EscalationPolicy, ...], list]]:
    """`rows` grouped by the versions `key` gives each, in the order each group first appears
    (one group, all rows, when no test runs)."""
    groups: dict[tuple, tuple[tuple[EscalationPolicy, ...], list]] = {}
    for row in rows:
        policies = key(row)
        groups.setdefault(tuple(p.version for p in policies), (policies, []))[1].append(row)
    return list(groups.values())


def start_policy_test(
    *,
    kind: str,
    challenger_settings: PolicySettings,
    share: float,
    hypothesis: str,
    actor: AbstractBaseUser | None,
    ends_at: datetime | None = None,
    max_decisions: int | None = None,
) -> PolicyExperiment:
    """Start a test of `challenger_settings` against the version in force, audited. Refused
    (400) with a share outside (0, 1), without an end (`ends_at` or `max_decisions`), with an
    end in the past, without a hypothesis, or with the current settings; 409 while a test of
    the kind runs."""
    require_permission(actor, MANAGE_POLICY)
    now = timezone.now()
    _check_start(kind, share, hypothesis, ends_at, max_decisions, now=now)
    from reviews.services.policy import lock_versions

    with transaction.atomic():
        lock_versions(kind)
        running = running_test(kind)
        if running is not None:
            raise PolicyTestRunning.of(running)
        champion = current_policy(kind)
        if PolicySettings.of(champion) == challenger_settings:
            raise InvalidPolicyTest(
                "The challenger holds the current settings: change at least one threshold."
            )
        challenger = EscalationPolicy(
            kind=kind,
            version=EscalationPolicy.objects.filter(kind=kind).aggregate(v=Max("version"))["v"] + 1,
            created_by=_person(actor),
            change_reason=f"Challenger in a policy test: {hypothesis.strip()}"[:2000],
            **challenger_settings.as_fields(),
        )
        challenger.full_clean()
        challenger.save()
        test = PolicyExperiment(
            kind=kind,
            champion=champion,
            challenger=challenger,
            challenger_share=share,
            salt=secrets.token_hex(SALT_BYTES),
            hypothesis=hypothesis.strip(),
            started_at=now,
            started_by=_person(actor),
            ends_at=ends_at,
            max_decisions=max_decisions,
        )
        try:
            with transaction.atomic():
                test.save()
        except IntegrityError as error:  # a start that bypassed the lock won the race
            raise PolicyTestRunning(f"A {kind} policy test is running: end it first.") from error
        record_audit(
            kind=AuditRecord.Kind.POLICY_CHANGE,
            actor=actor,
            subject=f"policy:{kind}:test:{test.pk}:start",
            details={
                "hypothesis": test.hypothesis,
                "champion_version": champion.version,
                "challenger_version": challenger.version,
                "challenger_share": share,
                "ends_at": ends_at.isoformat() if ends_at else None,
                "max_decisions": max_decisions,
                "champion": asdict(PolicySettings.of(champion)),
                "challenger": asdict(challenger_settings),
            },
        )
    return test


def _check_start(kind, share, hypothesis, ends_at, max_decisions, *, now: datetime) -> None:
    if kind not in PredictionKind.values:
        raise InvalidPolicyTest(f"No prediction kind {kind!r}.")
    if not 0 < share < 1:
        raise InvalidPolicyTest(
            f"The challenger's share must lie strictly between 0 and 1, not {share}."
        )
    if not (hypothesis or "").strip():
        raise InvalidPolicyTest("Say what the test is to show (the hypothesis).")
    if ends_at is None and max_decisions is None:
        raise InvalidPolicyTest("Give the test an end: a date, a number of decisions, or both.")
    if ends_at is not None and ends_at <= now:
        raise InvalidPolicyTest(f"The end {ends_at:%Y-%m-%d %H:%M} has passed already.")
    if max_decisions is not None and max_decisions < 1:
        raise InvalidPolicyTest("The number of decisions must be at least 1.")


def end_policy_test(
    *, test_id: int, adopt: str, reason: str, actor: AbstractBaseUser | None
) -> PolicyExperiment:
    """End the test by adopting one arm: its settings become the next version, audited, and the
    undecided reviews are re-routed under it (`policy.save_policy`). Ending it again with the
    same arm returns the test as it is; with the other arm, PolicyTestEnded (409)."""
    require_permission(actor, MANAGE_POLICY)
    if adopt not in ARMS:
        raise InvalidPolicyTest(f"Adopt one of {', '.join(ARMS)}, not {adopt!r}.")
    if not (reason or "").strip():
        raise InvalidPolicyTest("Say why this version is adopted.")
    from reviews.services.policy import save_policy

    with transaction.atomic():
        test = (
            PolicyExperiment.objects.select_for_update(of=("self",))
            .select_related("champion", "challenger", "adopted")
            .filter(pk=test_id)
            .first()
        )
        if test is None:
            raise PolicyTestNotFound(f"No policy test {test_id}.")
        if test.ended_at is not None:
            if adopted_arm(test) == adopt:
                return test
            raise PolicyTestEnded(
                f"Policy test {test.pk} ended already: it adopted the {adopted_arm(test)} "
                f"as version {test.adopted.version}."
            )
        winner = arm_version(test, adopt)
        test.ended_at, test.ended_by, test.end_reason = timezone.now(), _person(actor), reason
        test.save(update_fields=["ended_at", "ended_by", "end_reason"])
        test.adopted = save_policy(
            kind=test.kind,
            settings=PolicySettings.of(winner),
            actor=actor,
            reason=f"Adopted the {adopt} (v{winner.version}) of policy test {test.pk}: {reason}",
        )
        test.save(update_fields=["adopted"])
        record_audit(
            kind=AuditRecord.Kind.POLICY_CHANGE,
            actor=actor,
            subject=f"policy:{test.kind}:test:{test.pk}:end",
            details={
                "adopted": adopt,
                "adopted_version": test.adopted.version,
                "champion_version": test.champion.version,
                "challenger_version": test.challenger.version,
                "reason": reason,
            },
        )
    return test


def _person(actor: AbstractBaseUser | None):
    return actor if actor is not None and actor.is_authenticated else None
