"""What the learning loop reads: the gate policy of a kind, and what the loop's page shows
(in a few aggregate queries)."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, F, Q
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from learning.models import (
    GatePolicy,
    LabeledExample,
    MonitorReport,
    ProtectedAttribute,
    RetrainingRun,
)
from loyalty.selectors import member_attribute_counts
from predictions.calls import CHURN_CALL_THRESHOLD
from predictions.models import ModelVersion, PredictionKind
from reviews.models import AutomationPause, Decision, Review
from reviews.services.rerouting import routed_by

RUNS_SHOWN = 20


def gate_policy(kind: str) -> GatePolicy:
    """The kind's gate policy (seeded by a migration, edited in the admin); the model's
    defaults where its row is missing (a flushed test database), without writing one."""
    return GatePolicy.objects.filter(kind=kind).first() or GatePolicy(kind=kind)


@dataclass(frozen=True)
class LabelCounts:
    total: int
    by_source: dict[str, int] = field(default_factory=dict)
    excluded: int = 0
    disagreeing: int = 0


@dataclass(frozen=True)
class LoopOverview:
    labels: dict[str, LabelCounts]
    runs: list[RetrainingRun]
    pauses: dict[str, AutomationPause]
    monitors: dict[str, MonitorReport]


def latest_monitors() -> dict[str, MonitorReport]:
    latest: dict[str, MonitorReport] = {}
    for kind in PredictionKind.values:
        report = MonitorReport.objects.filter(kind=kind).first()
        if report is not None:
            latest[kind] = report
    return latest


def top_drift(report: MonitorReport | None, count: int = 5) -> list[tuple[str, float]]:
    if report is None:
        return []
    values = [(code, psi) for code, psi in (report.drift or {}).items() if psi is not None]
    return sorted(values, key=lambda item: -item[1])[:count]


def label_counts() -> dict[str, LabelCounts]:
    rows = LabeledExample.objects.values("kind", "source").annotate(
        n=Count("pk"),
        excluded=Count("pk", filter=Q(excluded=True)),
        disagreeing=Count("pk", filter=Q(agrees_with_model=False)),
    )
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(
            row["kind"], {"total": 0, "by_source": {}, "excluded": 0, "disagreeing": 0}
        )
        entry["total"] += row["n"]
        entry["by_source"][row["source"]] = row["n"]
        entry["excluded"] += row["excluded"]
        entry["disagreeing"] += row["disagreeing"]
    return {kind: LabelCounts(**entry) for kind, entry in out.items()}


def recent_runs() -> list[RetrainingRun]:
    """The latest retraining runs, newest first, with what the loop page shows of each."""
    return list(
        RetrainingRun.objects.select_related("candidate", "compared_with", "requested_by")[
            :RUNS_SHOWN
        ]
    )


def loop_overview() -> LoopOverview:
    pauses = {pause.kind: pause for pause in AutomationPause.objects.open()}
    return LoopOverview(
        labels=label_counts(), runs=recent_runs(), pauses=pauses, monitors=latest_monitors()
    )


# --- chart data -----------------------------------------------------------------------------


def labels_per_week(kind: str) -> dict[str, list]:
    """Examples gathered per week: by source, and the decisions by reason code."""
    rows = (
        LabeledExample.objects.filter(kind=kind)
        .annotate(week=TruncWeek("observed_at"))
        .values("week", "source", "decision__reason__code")
        .annotate(n=Count("pk"))
        .order_by("week")
    )
    by_source: dict[str, dict[str, int]] = {}
    by_reason: dict[str, dict[str, int]] = {}
    for row in rows:
        week = row["week"].date().isoformat()
        sources = by_source.setdefault(row["source"], {})
        sources[week] = sources.get(week, 0) + row["n"]
        if row["source"] == LabeledExample.Source.DECISION and row["decision__reason__code"]:
            reasons = by_reason.setdefault(row["decision__reason__code"], {})
            reasons[week] = reasons.get(week, 0) + row["n"]
    return {"by_source": by_source, "by_reason": by_reason}


def version_metrics(kind: str) -> list[dict]:
    """Every version of the kind, oldest first, with the out-of-time figures of the candidate
    that training selected."""
    out = []
    for version in ModelVersion.objects.filter(kind=kind).order_by("created_at", "pk"):
        metrics = version.metrics or {}
        selected = metrics.get("selected", "xgboost")
        figures = metrics.get("model", {}) if selected == "xgboost" else None
        if figures is None:
            figures = (metrics.get("baselines") or {}).get(selected, {})
        if kind != PredictionKind.CHURN:
            figures = metrics.get("metrics", {})
        out.append(
            {
                "version": version.pk,
                "created_at": version.created_at,
                "status": version.status,
                "roc_auc": figures.get("roc_auc"),
                "ece": figures.get("ece"),
                "top1": figures.get("top1"),
            }
        )
    return out


def override_rates(kind: str) -> dict[str, list]:
    """Share of people's decisions that overrode the model's answer of `kind`, per model
    version and per reason code (the policy's auto-approvals never override). A case counts
    on each side by what its decision changed: its churn call against the model's, its action
    against the recommendation, under that side's model version."""
    people = Decision.objects.exclude(decided_as=Decision.POLICY)
    own = people.filter(review__kind=kind, review__action_prediction__isnull=True)
    cases = people.filter(review__action_prediction__isnull=False)
    if kind == PredictionKind.CHURN:
        case_version = "review__prediction__model_version"
        case_override = Q(churn_label=True, review__prediction__score__lt=CHURN_CALL_THRESHOLD) | Q(
            churn_label=False, review__prediction__score__gte=CHURN_CALL_THRESHOLD
        )
    else:
        case_version = "review__action_prediction__model_version"
        case_override = ~Q(settled_action_id=F("review__recommended_action_id"))
    counts: dict[int, list[int]] = {}
    for decisions, version, overridden in (
        (own, "review__prediction__model_version", Q(verdict=Decision.Verdict.OVERRIDE)),
        (cases, case_version, case_override),
    ):
        rows = (
            decisions.values(version)
            .annotate(n=Count("pk"), overrides=Count("pk", filter=overridden))
            .values_list(version, "n", "overrides")
        )
        for model_version, n, overrides in rows:
            total = counts.setdefault(model_version, [0, 0])
            total[0] += n
            total[1] += overrides
    per_reason = (
        (own | cases).values("reason__code").annotate(n=Count("pk")).order_by("-n", "reason__code")
    )
    return {
        "per_version": [
            {"version": version, "n": n, "rate": overrides / n if n else None}
            for version, (n, overrides) in sorted(counts.items())
        ],
        "per_reason": [{"reason": row["reason__code"], "n": row["n"]} for row in per_reason],
    }


def queue_activity(kind: str, *, days: int = 30) -> dict:
    """Pending items per route now, and per day: items routed to people, decided, and moved
    to experts by the SLA. A case is work on both kinds: it counts for each."""
    since = timezone.now() - timedelta(days=days)
    reviews = Review.objects.filter(routed_by(kind))
    pending = dict(
        reviews.filter(state=Review.State.PENDING)
        .values_list("route")
        .annotate(n=Count("pk"))
        .values_list("route", "n")
    )
    routed = _per_day(reviews.filter(routed_at__gte=since).exclude(route="auto"), "routed_at")
    decided = _per_day(
        reviews.filter(decided_at__gte=since, state=Review.State.DECIDED), "decided_at"
    )
    breaches = _per_day(
        reviews.filter(escalated_at__gte=since, escalated_by__isnull=True, route="expert"),
        "escalated_at",
    )
    return {"pending": pending, "routed": routed, "decided": decided, "sla_breaches": breaches}


def _per_day(queryset, field_name: str) -> dict[str, int]:
    rows = (
        queryset.annotate(day=TruncDate(field_name))
        .values("day")
        .annotate(n=Count("pk"))
        .order_by("day")
    )
    return {row["day"].isoformat(): row["n"] for row in rows}


@dataclass(frozen=True)
class ProtectedAttributes:
    """The Fairness page's marking form: the marked attributes with how many members have
    each, and every attribute key among the members with its count."""

    marked: list[tuple[ProtectedAttribute, int]]
    counts: dict[str, int]

    @property
    def marked_keys(self) -> set[str]:
        return {attribute.key for attribute, _ in self.marked}


def protected_attributes() -> ProtectedAttributes:
    """Two queries: the marks, and the keys among the members counted in the database."""
    counts = member_attribute_counts()
    marked = [(row, counts.get(row.key, 0)) for row in ProtectedAttribute.objects.all()]
    return ProtectedAttributes(marked=marked, counts=counts)
