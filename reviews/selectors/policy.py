"""The escalation policy in force per kind, and its version history."""

from dataclasses import dataclass

from predictions.models import PredictionKind
from reviews.models import EscalationPolicy
from reviews.policy_settings import first_version_fields

HISTORY_SHOWN = 20


def current_policy(kind: str) -> EscalationPolicy:
    """The newest version for a kind. Version 1 is seeded (migration 0010, and again after a
    test database's flush); where it is missing anyway, an unsaved version 1 with the
    defaults, without writing one."""
    newest = EscalationPolicy.objects.filter(kind=kind).order_by("-version").first()
    return newest or EscalationPolicy(**first_version_fields(kind))


@dataclass(frozen=True)
class PolicyVersionRow:
    """One version in the history table, with what the table writes about it."""

    policy: EscalationPolicy
    author: str
    risk_band: str
    tier_overrides: str
    ranking: str
    # The daily capacities: "analyst 200 · expert 50", "—" without any.
    capacity: str = "—"


def policy_history(kind: str, *, limit: int = HISTORY_SHOWN) -> list[PolicyVersionRow]:
    """The newest versions of a kind, newest first."""
    versions = (
        EscalationPolicy.objects.filter(kind=kind)
        .select_related("created_by")
        .order_by("-version")[:limit]
    )
    return [_version_row(version) for version in versions]


def _version_row(policy: EscalationPolicy) -> PolicyVersionRow:
    overrides = ", ".join(
        f"{tier}: "
        + " / ".join(
            f"{label} {override[key]:.2f}"
            for key, label in (("auto_approve_confidence", "auto"), ("expert_confidence", "expert"))
            if key in override
        )
        for tier, override in sorted((policy.segment_overrides or {}).items())
    )
    band = (
        f"{policy.human_risk_low:.2f}–{policy.human_risk_high or 1.0:.2f}"
        if policy.human_risk_low is not None
        else "—"
    )
    return PolicyVersionRow(
        policy=policy,
        author=policy.created_by.get_username() if policy.created_by else "system",
        risk_band=band,
        tier_overrides=overrides or "—",
        ranking=RANKING_LABELS.get(policy.ranking, policy.ranking)
        if policy.kind == PredictionKind.NEXT_ACTION
        else "—",
        capacity=" · ".join(
            f"{who} {limit:,}"
            for who, limit in (
                ("analyst", policy.analyst_daily_capacity),
                ("expert", policy.expert_daily_capacity),
            )
            if limit is not None
        )
        or "—",
    )


RANKING_LABELS = {
    EscalationPolicy.Ranking.PROPENSITY: "Propensity",
    EscalationPolicy.Ranking.EXPECTED_VALUE: "Expected value",
}
