"""What the learning loop reads: the gate policy of a kind, and what the loop's page shows
(in a few aggregate queries)."""

from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count, Q
from django.db.models.functions import TruncDate, TruncWeek
from django.utils import timezone

from learning.models import GatePolicy, LabeledExample, MonitorReport, RetrainingRun
from predictions.models import ModelVersion, PredictionKind
from reviews.models import AutomationPause, Decision, Review

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
    """Share of people's decisions that overrode the model, per model version and per reason
    code (the policy's auto-approvals never override)."""
    decisions = Decision.objects.filter(review__kind=kind).exclude(decided_as=Decision.POLICY)
    per_version = (
        decisions.values("review__prediction__model_version")
        .annotate(n=Count("pk"), overrides=Count("pk", filter=Q(verdict=Decision.Verdict.OVERRIDE)))
        .order_by("review__prediction__model_version")
    )
    per_reason = decisions.values("reason__code").annotate(n=Count("pk")).order_by("-n")
    return {
        "per_version": [
            {
                "version": row["review__prediction__model_version"],
                "n": row["n"],
                "rate": row["overrides"] / row["n"] if row["n"] else None,
            }
            for row in per_version
        ],
        "per_reason": [{"reason": row["reason__code"], "n": row["n"]} for row in per_reason],
    }


def queue_activity(kind: str, *, days: int = 30) -> dict:
    """Pending items per route now, and per day: items routed to people, decided, and moved
    to experts by the SLA."""
    since = timezone.now() - timedelta(days=days)
    pending = dict(
        Review.objects.filter(kind=kind, state=Review.State.PENDING)
        .values_list("route")
        .annotate(n=Count("pk"))
        .values_list("route", "n")
    )
    routed = _per_day(
        Review.objects.filter(kind=kind, routed_at__gte=since).exclude(route="auto"), "routed_at"
    )
    decided = _per_day(
        Review.objects.filter(kind=kind, decided_at__gte=since, state=Review.State.DECIDED),
        "decided_at",
    )
    breaches = _per_day(
        Review.objects.filter(
            kind=kind, escalated_at__gte=since, escalated_by__isnull=True, route="expert"
        ),
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
