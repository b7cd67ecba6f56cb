"""The learning loop's page: labels gathered, retraining runs with their gate, approvals."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from loyalty.exceptions import DomainError
from predictions.models import PredictionKind
from predictions.services.registry import PROMOTE_PERMISSION
from reviews import loop_figures, loop_selectors
from reviews.figures import figure_html
from reviews.loop_selectors import loop_overview, top_drift
from reviews.services.monitoring import resume_auto_approval
from reviews.services.retraining import approve_candidate, gate_policy, request_retraining

WATCH_LOOP = "reviews.view_retrainingrun"


@login_required
def loop_page(request):
    if not request.user.has_perm(WATCH_LOOP):
        raise PermissionDenied("Only experts and admins may watch the learning loop.")
    overview = loop_overview()
    context = {
        "overview": overview,
        "can_retrain": request.user.has_perm(PROMOTE_PERMISSION),
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
    return render(request, "reviews/loop.html", context)


def _charts(kind: str, monitor) -> list[str]:
    """The kind's charts as HTML (div + JSON spec), the ones with data only."""
    per_week = loop_selectors.labels_per_week(kind)
    rates = loop_selectors.override_rates(kind)
    limit = gate_policy(kind).monitor_max_psi
    figures = [
        ("labels", loop_figures.labels_figure(per_week)),
        ("reasons", loop_figures.reasons_figure(per_week)),
        (
            "versions",
            loop_figures.version_metrics_figure(loop_selectors.version_metrics(kind), kind=kind),
        ),
        ("overrides", loop_figures.override_figure(rates)),
        ("reason-codes", loop_figures.reason_figure(rates)),
        ("calibration", loop_figures.calibration_figure(monitor)),
        ("drift", loop_figures.drift_figure(monitor, limit=limit)),
        ("queue", loop_figures.queue_figure(loop_selectors.queue_activity(kind))),
    ]
    return [
        figure_html(figure, f"{kind}-{name}-fig") for name, figure in figures if figure is not None
    ]


@login_required
@require_POST
def retrain_now(request, kind: str):
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")
    try:
        run = request_retraining(kind=kind, trigger="manual", actor=request.user)
    except DomainError as error:
        raise PermissionDenied(error.message) from error
    messages.success(
        request, f"Retraining run {run.pk} ({run.get_kind_display()}) is {run.status}."
    )
    return redirect("reviews:loop")


@login_required
@require_POST
def resume_automation(request, kind: str):
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")
    reason = request.POST.get("reason", "").strip() or "resumed by an admin"
    try:
        pause = resume_auto_approval(kind=kind, actor=request.user, reason=reason)
    except DomainError as error:
        raise PermissionDenied(error.message) from error
    if pause is None:
        messages.info(request, "Auto-approval was not paused.")
    else:
        messages.success(request, f"Auto-approval of {pause.get_kind_display()} resumed.")
    return redirect("reviews:loop")


@login_required
@require_POST
def approve_run(request, run_id: int):
    try:
        run = approve_candidate(run_id=run_id, actor=request.user)
    except DomainError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from error
        if error.status == 404:
            raise Http404(error.message) from error
        messages.error(request, error.message)
        return redirect("reviews:loop")
    messages.success(request, f"Version {run.candidate_id} is active; members are being re-scored.")
    return redirect("reviews:loop")
