"""The learning loop's page: labels gathered, retraining runs with their gate, approvals; and the
policy tests' page (an A/B test of two escalation-policy versions, its readout and its end)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from learning import figures, selectors
from learning.blind_agreement import RUBBER_STAMP_MARGIN, blind_agreement
from learning.fairness import FAIRNESS_PERMISSION, MEASURED_KINDS, kind_fairness
from learning.fairness_figures import action_attribute_charts, attribute_charts
from learning.forms import ProtectedAttributeForm
from learning.models import RetrainingRun
from learning.policy_test_readout import MIN_DETECTABLE_DIFFERENCE, policy_test_readout
from learning.quality_stats import SMALL_SAMPLE
from learning.review_quality import GROUPINGS, SORTS, quality_scope, review_quality
from learning.selectors import gate_policy, loop_overview, recent_runs, top_drift
from learning.services.protected_attributes import (
    MARK_PERMISSION,
    mark_protected_attribute,
    unmark_protected_attribute,
)
from learning.services.retraining import approve_candidate, request_retraining
from loyalty.parsing import parse_id
from predictions.behavior_clusters import active_clusterings
from predictions.models import PredictionKind
from predictions.services.registry import PROMOTE_PERMISSION
from reviews.figures import figure_html
from reviews.forms.experiments import EndPolicyTestForm, PolicyTestForm
from reviews.models import PolicyExperiment
from reviews.page_errors import domain_errors_as_pages, flash_and_redirect
from reviews.permissions import MANAGE_POLICY
from reviews.policy_settings import PolicySettings
from reviews.selectors.experiments import (
    adopted_arm,
    policy_tests,
    running_test,
    settings_comparison,
)
from reviews.selectors.policy import current_policy
from reviews.services.automation import resume_auto_approval
from reviews.services.experiments import end_policy_test, start_policy_test

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
    clusterings = active_clusterings()
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
                "clustering": clusterings.get(kind),
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
    blind = blind_agreement(request.user, scope)
    context = {
        "quality": quality,
        "groupings": [(GROUPINGS[name], quality.groups[name]) for name in GROUPINGS],
        "sorts": SORTS,
        "small_sample": SMALL_SAMPLE,
        "charts": _quality_charts(quality),
        "blind": blind,
        "blind_chart": figure_html(figures.blind_agreement_figure(blind), "quality-blind-fig"),
        "rubber_stamp_margin": round(RUBBER_STAMP_MARGIN * 100),
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


# --- policy tests: an A/B test of two escalation-policy versions (admins) ------------------

EARLIER_TESTS_SHOWN = 20


def _manage_tests(request, kind: str | None = None) -> None:
    if not request.user.has_perm(MANAGE_POLICY):
        raise PermissionDenied("Only an admin may run policy tests.")
    if kind is not None and kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")


def _start_form(kind: str, data=None) -> PolicyTestForm:
    return PolicyTestForm.for_current(PolicySettings.of(current_policy(kind)), kind=kind, data=data)


def _policy_test_page(request, kind: str, *, shown=None, forms=None, status: int = 200):
    """The kind's test page: `shown` (the running test by default) with its readout; the start
    form while none runs, the end form while one does (`forms`: bound ones to show again)."""
    running = running_test(kind)
    shown = shown or running
    forms = forms or {}
    context = {
        "kind": kind,
        "kinds": PredictionKind.choices,
        "kind_label": PredictionKind(kind).label,
        "running": running,
        "shown": shown,
        "readout": policy_test_readout(shown) if shown else None,
        "comparison": settings_comparison(shown) if shown else [],
        "adopted_arm": adopted_arm(shown) if shown else None,
        "current": current_policy(kind),
        "start_form": forms.get("start") or (_start_form(kind) if running is None else None),
        "end_form": forms.get("end") or EndPolicyTestForm(),
        "earlier": policy_tests(kind).filter(ended_at__isnull=False)[:EARLIER_TESTS_SHOWN],
        "difference_points": round(MIN_DETECTABLE_DIFFERENCE * 100),
    }
    return render(request, "learning/policy_test.html", context, status=status)


def _start_refused(request, error, kind: str):
    """A start the service refused (a test runs already, the settings are the current ones):
    the page again, with what the admin typed and why."""
    form = _start_form(kind, data=request.POST)
    form.is_valid()
    form.add_error(None, error.message)
    return _policy_test_page(request, kind, forms={"start": form}, status=error.status)


def _end_refused(request, error, test_id: int):
    test = get_object_or_404(PolicyExperiment, pk=test_id)
    messages.error(request, error.message)
    return redirect("learning:policy_test", kind=test.kind)


@login_required
@require_GET
def policy_test_page(request, kind: str):
    """The running test of `kind` with its readout and the end form, or the start form with
    the current thresholds; `?test=<id>` shows an earlier test's readout."""
    _manage_tests(request, kind)
    shown = None
    if request.GET.get("test"):
        tests = policy_tests(kind)
        shown = get_object_or_404(tests, pk=_number(request.GET["test"]))
    return _policy_test_page(request, kind, shown=shown)


def _number(text: str) -> int:
    """The test id of `?test=` (`loyalty.parsing.parse_id`: ASCII digits only; "²" passes
    str.isdigit and then fails int())."""
    number = parse_id(text)
    if number is None:
        raise Http404(f"No policy test {text!r}.")
    return number


@login_required
@require_POST
@domain_errors_as_pages(_start_refused)
def start_policy_test_page(request, kind: str):
    """Start a test of the thresholds in the form against the version in force; invalid input
    shows the page again with the errors (400), starting nothing."""
    _manage_tests(request, kind)
    form = _start_form(kind, data=request.POST)
    if not form.is_valid():
        return _policy_test_page(request, kind, forms={"start": form}, status=400)
    test = start_policy_test(
        kind=kind,
        challenger_settings=form.policy_settings(),
        share=form.cleaned_data["challenger_share"],
        hypothesis=form.cleaned_data["hypothesis"],
        actor=request.user,
        ends_at=form.ends_at(),
        max_decisions=form.cleaned_data.get("max_decisions"),
    )
    messages.success(
        request,
        f"Policy test {test.pk} started: version {test.challenger.version} routes "
        f"{test.challenger_share:.0%} of members' new reviews, version "
        f"{test.champion.version} the rest.",
    )
    return redirect("learning:policy_test", kind=kind)


@login_required
@require_POST
@domain_errors_as_pages(_end_refused)
def end_policy_test_page(request, test_id: int):
    """End a test by adopting one of its versions: a new audited version with its settings."""
    _manage_tests(request)
    test = get_object_or_404(PolicyExperiment, pk=test_id)
    form = EndPolicyTestForm(request.POST)
    if not form.is_valid():
        return _policy_test_page(request, test.kind, forms={"end": form}, status=400)
    ended = end_policy_test(test_id=test.pk, actor=request.user, **form.cleaned_data)
    messages.success(
        request,
        f"Policy test {ended.pk} ended: version {ended.adopted.version} holds the adopted "
        "settings; the undecided reviews are being re-routed to it.",
    )
    return redirect("learning:policy_test", kind=test.kind)


@login_required
@require_GET
def fairness_page(request):
    """Per group of the protected attributes and of the tier: the model, the final decisions
    and people's overrides, with the comparisons between groups against the admin's limits
    (experts and admins; analysts never see protected attributes). Admins also mark and unmark
    member attributes as protected here."""
    return _fairness_page(request, request.GET.get("kind", PredictionKind.CHURN.value))


def _fairness_page(request, kind: str, *, attribute_form=None, status: int = 200):
    if not request.user.has_perm(FAIRNESS_PERMISSION):
        raise PermissionDenied("Only experts and admins may see fairness by protected group.")
    if kind not in MEASURED_KINDS:
        raise Http404(f"Fairness of {kind!r} is not measured.")
    fairness = kind_fairness(kind)
    is_action = kind == PredictionKind.NEXT_ACTION
    charts = action_attribute_charts if is_action else attribute_charts
    context = {
        "fairness": fairness,
        "report": fairness.report,
        "kind": kind,
        "kind_label": PredictionKind(kind).label,
        "kinds": [(measured, PredictionKind(measured).label) for measured in MEASURED_KINDS],
        "attributes": [
            {
                "fairness": attribute,
                "charts": charts(attribute),
                "breached": fairness.report.breached(attribute.attribute),
            }
            for attribute in fairness.report.attributes
        ],
        "can_edit_limits": request.user.has_perm("learning.change_fairnesslimits"),
        **_marking_context(request.user, attribute_form),
    }
    template = "learning/fairness_actions.html" if is_action else "learning/fairness.html"
    return render(request, template, context, status=status)


def _marking_context(user, form) -> dict:
    """The marking form's part of the Fairness page: only for those who may mark."""
    if not user.has_perm(MARK_PERMISSION):
        return {"protected": None}
    protected = selectors.protected_attributes()
    form = form or ProtectedAttributeForm(counts=protected.counts, marked=protected.marked_keys)
    return {"protected": protected, "attribute_form": form}


def _fairness_kind(request) -> str:
    kind = request.POST.get("kind", "")
    return kind if kind in MEASURED_KINDS else PredictionKind.CHURN.value


def _back_to_fairness(request):
    url = f"{reverse('learning:fairness')}?kind={_fairness_kind(request)}#protected-attributes"
    return redirect(url)


def _require_marking(request) -> None:
    if not request.user.has_perm(MARK_PERMISSION):
        raise PermissionDenied("Only admins may mark protected attributes.")


@login_required
@require_POST
@domain_errors_as_pages()
def mark_protected_attribute_page(request):
    """Mark a member attribute as protected: the reports and the daily check judge it from
    then on. An invalid choice shows the page again with the error (400)."""
    _require_marking(request)
    protected = selectors.protected_attributes()
    form = ProtectedAttributeForm(
        request.POST, counts=protected.counts, marked=protected.marked_keys
    )
    if not form.is_valid():
        return _fairness_page(request, _fairness_kind(request), attribute_form=form, status=400)
    marked = mark_protected_attribute(actor=request.user, **form.cleaned_data)
    messages.success(request, f"{marked.label} ({marked.key}) is now a protected attribute.")
    return _back_to_fairness(request)


@login_required
@require_POST
@domain_errors_as_pages()
def unmark_protected_attribute_page(request, key: str):
    """Stop judging a marked attribute (its values stay on the members)."""
    _require_marking(request)
    if not unmark_protected_attribute(key=key, actor=request.user):
        raise Http404(f"{key!r} is not a protected attribute.")
    messages.success(request, f"{key} is no longer a protected attribute.")
    return _back_to_fairness(request)
