"""Escalation policies: the current version per kind, and changes as new audited versions."""

from dataclasses import asdict, dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Max

from loyalty.exceptions import require_permission
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind
from reviews.exceptions import PolicyChanged
from reviews.models import EscalationPolicy

POLICY_FIELDS = (
    "auto_approve_confidence",
    "expert_confidence",
    "expert_value_quantile",
    "human_risk_low",
    "human_risk_high",
    "audit_sample_rate",
    "sla_hours",
    "segment_overrides",
)


@dataclass(frozen=True)
class PolicySettings:
    """The routing thresholds of one policy version, as plain values (what a form submits)."""

    auto_approve_confidence: float = 0.9
    expert_confidence: float = 0.5
    expert_value_quantile: float = 0.95
    human_risk_low: float | None = 0.6
    human_risk_high: float | None = 1.0
    audit_sample_rate: float = 0.02
    sla_hours: int = 48
    segment_overrides: dict | None = None

    @classmethod
    def of(cls, policy: EscalationPolicy) -> "PolicySettings":
        return cls(**{name: getattr(policy, name) for name in POLICY_FIELDS})


# Next-action reviews carry no churn risk: no risk band applies to them.
DEFAULT_SETTINGS = {
    PredictionKind.CHURN: PolicySettings(),
    PredictionKind.NEXT_ACTION: PolicySettings(human_risk_low=None, human_risk_high=None),
}


def current_policy(kind: str) -> EscalationPolicy:
    """The newest version for a kind; the defaults become version 1 the first time."""
    policy = EscalationPolicy.objects.filter(kind=kind).order_by("-version").first()
    if policy is not None:
        return policy
    with transaction.atomic():
        policy, _ = EscalationPolicy.objects.get_or_create(
            kind=kind,
            version=1,
            defaults={**_as_fields(DEFAULT_SETTINGS[kind]), "change_reason": "defaults"},
        )
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
    caller's next step (`rerouting.reroute_undecided`), after this commits.

    `based_on_version` is the version the person was looking at: when someone saved another
    version since, PolicyChanged (409) instead of silently replacing their change. Two saves at
    the same moment queue on a lock of the kind's versions; the second sees the first's
    version (and, given `based_on_version`, a conflict)."""
    require_permission(actor, "reviews.add_escalationpolicy")
    current_policy(kind)  # version 1 exists before anyone locks the versions
    list(EscalationPolicy.objects.select_for_update().filter(kind=kind).values_list("pk"))
    previous = EscalationPolicy.objects.filter(kind=kind).order_by("-version").first()
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
        **_as_fields(settings),
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


def _by(policy: EscalationPolicy) -> str:
    return f" by {policy.created_by.get_username()}" if policy.created_by_id else ""


def _as_fields(settings: PolicySettings) -> dict:
    fields = asdict(settings)
    fields["segment_overrides"] = fields["segment_overrides"] or {}
    return fields
