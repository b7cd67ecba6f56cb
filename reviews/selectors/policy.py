"""The escalation policy in force per kind, and its version history."""

from dataclasses import dataclass

from predictions.models import PredictionKind
from reviews.models import EscalationPolicy, PolicyExperiment
from reviews.policy_settings import first_version_fields, override_label

HISTORY_SHOWN = 20


def current_policy(kind: str) -> EscalationPolicy:
    """The version in force for a kind: the newest that is not a policy test's challenger (a
    challenger routes only its arm's members, and only while its test collects; the end of a
    test adopts a new version, `reviews.services.experiments`). Version 1 is seeded (migration
    0010, and again after a test database's flush); where it is missing anyway, an unsaved
    version 1 with the defaults, without writing one."""
    newest = versions_in_force(kind).order_by("-version").first()
    return newest or EscalationPolicy(**first_version_fields(kind))


def versions_in_force(kind: str):
    """The versions of a kind that were (or are) the one in force: every version but the
    policy tests' challengers."""
    challengers = PolicyExperiment.objects.filter(kind=kind).values("challenger_id")
    return EscalationPolicy.objects.filter(kind=kind).exclude(pk__in=challengers)


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
    # A policy test's challenger: "challenger in policy test 3" ('' for every other version).
    test_role: str = ""


def policy_history(kind: str, *, limit: int = HISTORY_SHOWN) -> list[PolicyVersionRow]:
    """The newest versions of a kind, newest first."""
    versions = (
        EscalationPolicy.objects.filter(kind=kind)
        .select_related("created_by")
        .order_by("-version")[:limit]
    )
    tests = dict(PolicyExperiment.objects.filter(kind=kind).values_list("challenger_id", "pk"))
    return [version_row(version, tests.get(version.pk)) for version in versions]


def version_row(policy: EscalationPolicy, test_id: int | None = None) -> PolicyVersionRow:
    overrides = ", ".join(
        f"{override_label(key, override)}: "
        + " / ".join(
            f"{label} {override[key]:.2f}"
            for key, label in (("auto_approve_confidence", "auto"), ("expert_confidence", "expert"))
            if key in override
        )
        for key, override in sorted((policy.segment_overrides or {}).items())
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
        test_role=f"challenger in policy test {test_id}" if test_id is not None else "",
    )


RANKING_LABELS = {
    EscalationPolicy.Ranking.PROPENSITY: "Propensity",
    EscalationPolicy.Ranking.EXPECTED_VALUE: "Expected value",
}
