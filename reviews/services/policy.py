"""Escalation policies: changes as new audited versions, and version 1 of each kind."""

from dataclasses import asdict

from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import Max

from loyalty.exceptions import require_permission
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind
from reviews.exceptions import PolicyChanged, PolicyTestRunning
from reviews.models import EscalationPolicy
from reviews.permissions import MANAGE_POLICY
from reviews.policy_settings import FIRST_VERSION, PolicySettings, first_version_fields
from reviews.selectors.experiments import running_test
from reviews.selectors.policy import current_policy
from reviews.services.capacity import request_drain
from reviews.services.rerouting import request_rerouting


def seed_first_versions(
    *,
    kinds=PredictionKind.values,
    model=EscalationPolicy,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Create version 1 (the defaults) of each kind that has none; the number created.

    Migration 0010 seeds them; this runs again after every `migrate` and test-database flush
    (post_migrate, with the migration state's model), so that they survive the table flush of
    transactional tests as the role groups do. Reading the policy never writes."""
    created = 0
    for kind in kinds:
        _, was_created = model.objects.using(using).get_or_create(
            kind=kind, version=FIRST_VERSION, defaults=first_version_fields(kind)
        )
        created += was_created
    return created


def save_policy(
    *,
    kind: str,
    settings: PolicySettings,
    actor: AbstractBaseUser | None,
    reason: str,
    based_on_version: int | None = None,
) -> EscalationPolicy:
    """What saving the policy page does: the new version (`change_policy`), then the re-routing
    of the undecided reviews under it, queued for a worker once the version has committed
    (minutes at a million reviews, far past a web request), and the draining of the kind's
    backlogs under its capacities (`capacity`)."""
    with transaction.atomic():
        policy = change_policy(
            kind=kind,
            settings=settings,
            actor=actor,
            reason=reason,
            based_on_version=based_on_version,
        )
        request_rerouting(kind=kind, actor=actor)
        request_drain(kind=kind)
    return policy


@transaction.atomic
def change_policy(
    *,
    kind: str,
    settings: PolicySettings,
    actor: AbstractBaseUser | None,
    reason: str,
    based_on_version: int | None = None,
) -> EscalationPolicy:
    """Save new thresholds as the next version, audited. Re-routing undecided reviews is the
    caller's next step (`save_policy` queues it), after this commits.

    `based_on_version` is the version the person was looking at: when someone saved another
    version since, PolicyChanged (409) instead of silently replacing their change. Two saves at
    the same moment queue on a lock of the kind's versions; the second sees the first's
    version (and, given `based_on_version`, a conflict). While a policy test of the kind runs,
    PolicyTestRunning (409): the test ends by adopting a version (`experiments`)."""
    require_permission(actor, MANAGE_POLICY)
    lock_versions(kind)
    running = running_test(kind)
    if running is not None:
        raise PolicyTestRunning.of(running)
    previous = current_policy(kind)  # a test's challenger never was the version in force
    if based_on_version is not None and previous.version != based_on_version:
        raise PolicyChanged(
            f"Version {previous.version} was saved since you opened version {based_on_version}"
            f"{_by(previous)}; look at it and save again.",
            kind=kind,
            version=previous.version,
        )
    version = (EscalationPolicy.objects.filter(kind=kind).aggregate(v=Max("version"))["v"]) + 1
    policy = EscalationPolicy(
        kind=kind,
        version=version,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        change_reason=reason,
        **settings.as_fields(),
    )
    policy.full_clean()
    try:
        with transaction.atomic():
            policy.save()
    except IntegrityError as error:  # a save that bypassed the lock won the race
        raise PolicyChanged(
            "Another version was saved at the same moment; look at it and save again.",
            kind=kind,
        ) from error
    record_audit(
        kind="policy_change",
        actor=actor,
        subject=f"policy:{kind}:v{version}",
        details={
            "reason": reason,
            "before": asdict(PolicySettings.of(previous)),
            "after": asdict(settings),
        },
    )
    return policy


def lock_versions(kind: str) -> None:
    """Hold the lock of `kind`'s versions until the caller's transaction ends: a change and a
    policy test's start queue on it. Version 1 exists before anyone locks the versions."""
    seed_first_versions(kinds=[kind])
    list(EscalationPolicy.objects.select_for_update().filter(kind=kind).values_list("pk"))


def _by(policy: EscalationPolicy) -> str:
    return f" by {policy.created_by.get_username()}" if policy.created_by_id else ""
