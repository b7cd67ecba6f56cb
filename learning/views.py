"""The learning loop's page: labels gathered, retraining runs with their gate, approvals."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from learning import figures, selectors
from learning.models import RetrainingRun
from learning.quality_stats import SMALL_SAMPLE
from learning.review_quality import GROUPINGS, SORTS, quality_scope, review_quality
from learning.selectors import gate_policy, loop_overview, recent_runs, top_drift
from learning.services.retraining import approve_candidate, request_retraining
from predictions.models import PredictionKind
from predictions.services.registry import PROMOTE_PERMISSION
from reviews.figures import figure_html
from reviews.page_errors import domain_errors_as_pages, flash_and_redirect
from reviews.services.automation import resume_auto_approval

WATCH_LOOP = "learning.view_retrainingrun"
# While a run is queued or running, its table asks for itself again this often.
RUNS_POLL_SECONDS = 3
RUNS_FRAGMENT = "retraining-runs"


@login_required
def loop_page(request):
    if not request.user.has_perm(WATCH_LOOP):
        raise PermissionDenied("Only experts and admins may watch the learning loop.")
    can_retrain = request.user.has_perm(PROMOTE_PERMISSION)
    if request.htmx and request.htmx.target == RUNS_FRAGMENT:
        context = _runs_context(recent_runs(), can_retrain=can_retrain)
        return render(request, "learning/partials/runs.html", context)
    overview = loop_overview()
    context = {
        **_runs_context(overview.runs, can_retrain=can_retrain),
        "overview": overview,
        "kind_rows": [
            {
                "kind": kind,
                "label": label,
                "counts": overview.labels.get(kind),
                "pause": overview.pauses.get(kind),
                "monitor": overview.monitors.get(kind),
                "top_drift": top_drift(overview.monitors.get(kind)),
                "charts": _charts(kind, overview.monitors.get(kind)),
            }
            for kind, label in PredictionKind.choices
        ],
    }
    return render(request, "learning/loop.html", context)


@login_required
def review_quality_page(request):
    """People's churn calls against observed outcomes, beside the model's on the same items:
    everyone's for experts and admins, a reviewer's own for them."""
    scope = quality_scope(request.user)
    if scope is None:
        raise PermissionDenied("Only reviewers, experts and admins may see review quality.")
    quality = review_quality(request.user, scope, sort=request.GET.get("sort", ""))
    context = {
        "quality": quality,
        "groupings": [(GROUPINGS[name], quality.groups[name]) for name in GROUPINGS],
        "sorts": SORTS,
        "small_sample": SMALL_SAMPLE,
        "charts": _quality_charts(quality),
    }
    return render(request, "learning/review_quality.html", context)


def _quality_charts(quality) -> list[dict]:
    """The page's charts as HTML (div + JSON spec), each with what it would show, said in
    words where there is no data for it."""
    reviewers = quality.groups["reviewer"]
    charts = [
        figures.reviewer_accuracy_figure(
            reviewers, metric="accuracy", title="Accuracy per reviewer: person vs model"
        ),
        figures.reviewer_accuracy_figure(
            reviewers,
            metric="balanced_accuracy",
            title="Balanced accuracy per reviewer: person vs model",
        ),
        figures.override_precision_figure(quality.by_month),
    ]
    names = ("quality-accuracy-fig", "quality-balanced-fig", "quality-overrides-fig")
    # What a chart without data would have shown, said instead of an empty plot.
    missing = (
        "accuracy per reviewer",
        "balanced accuracy per reviewer (it needs churners and stayers among a reviewer's items)",
        "override precision per month (no overrides scored yet)",
    )
    return [
        {"html": figure_html(chart, name), "missing": what}
        for chart, name, what in zip(charts, names, missing, strict=True)
    ]


def _runs_context(runs: list[RetrainingRun], *, can_retrain: bool) -> dict:
    """What the runs table needs, in the page and as its own fragment."""
    open_statuses = (RetrainingRun.Status.QUEUED, RetrainingRun.Status.RUNNING)
    return {
        "runs": runs,
        "can_retrain": can_retrain,
        "runs_open": any(run.status in open_statuses for run in runs),
        "poll_seconds": RUNS_POLL_SECONDS,
    }


def _charts(kind: str, monitor) -> list[str]:
    """The kind's charts as HTML (div + JSON spec), the ones with data only."""
    per_week = selectors.labels_per_week(kind)
    rates = selectors.override_rates(kind)
    limit = gate_policy(kind).monitor_max_psi
    named = [
        ("labels", figures.labels_figure(per_week)),
        ("reasons", figures.reasons_figure(per_week)),
        (
            "versions",
            figures.version_metrics_figure(selectors.version_metrics(kind), kind=kind),
        ),
        ("overrides", figures.override_figure(rates)),
        ("reason-codes", figures.reason_figure(rates)),
        ("calibration", figures.calibration_figure(monitor)),
        ("drift", figures.drift_figure(monitor, limit=limit)),
        ("queue", figures.queue_figure(selectors.queue_activity(kind))),
    ]
    return [
        figure_html(figure, f"{kind}-{name}-fig") for name, figure in named if figure is not None
    ]


@login_required
@require_POST
@domain_errors_as_pages()
def retrain_now(request, kind: str):
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")
    run = request_retraining(kind=kind, trigger="manual", actor=request.user)
    messages.success(
        request, f"Retraining run {run.pk} ({run.get_kind_display()}) is {run.status}."
    )
    return redirect("learning:loop")


@login_required
@require_POST
@domain_errors_as_pages()
def resume_automation(request, kind: str):
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")
    reason = request.POST.get("reason", "").strip() or "resumed by an admin"
    pause = resume_auto_approval(kind=kind, actor=request.user, reason=reason)
    if pause is None:
        messages.info(request, "Auto-approval was not paused.")
    else:
        messages.success(request, f"Auto-approval of {pause.get_kind_display()} resumed.")
    return redirect("learning:loop")


@login_required
@require_POST
@domain_errors_as_pages(flash_and_redirect("learning:loop"))
def approve_run(request, run_id: int):
    run = approve_candidate(run_id=run_id, actor=request.user)
    messages.success(request, f"Version {run.candidate_id} is active; members are being re-scored.")
    return redirect("learning:loop")
