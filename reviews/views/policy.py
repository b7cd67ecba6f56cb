"""The escalation policy page: the version in force with a live simulation, its history, and
saving a new version."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from predictions.models import PredictionKind
from reviews.figures import figure_html, workload_figure
from reviews.forms.policy import PolicyForm
from reviews.models import Review
from reviews.page_errors import domain_errors_as_pages
from reviews.permissions import MANAGE_POLICY
from reviews.policy_settings import PolicySettings
from reviews.selectors.capacity import queue_loads
from reviews.selectors.experiments import running_test
from reviews.selectors.policy import current_policy, policy_history
from reviews.services.policy import save_policy
from reviews.services.rerouting import awaiting_rerouting
from reviews.services.simulation import Simulation, simulate_policy, simulated_backlog


def _allowed(request, kind: str) -> None:
    if not request.user.has_perm(MANAGE_POLICY):
        raise PermissionDenied("Only an admin may change escalation thresholds.")
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")


def _not_saved(request, error, kind: str):
    """Someone saved a version meanwhile (409): show theirs, keep what this person typed, and
    base the next save on theirs."""
    policy = current_policy(kind)
    form = PolicyForm.for_policy(PolicySettings.of(policy), kind=kind, data=request.POST)
    form.is_valid()
    form.add_error(None, error.message)
    form.data = form.data.copy()
    form.data["based_on_version"] = str(policy.version)
    return _page(request, kind, policy, form, status=error.status)


@login_required
@require_http_methods(["GET", "POST"])
@domain_errors_as_pages(_not_saved)
def policy_settings(request, kind: str):
    """GET: the current version, its simulation and the history. POST: save a new version and
    re-route the undecided reviews; invalid input re-renders with errors (400), saving nothing."""
    _allowed(request, kind)
    policy = current_policy(kind)
    current = PolicySettings.of(policy)
    if request.method == "GET":
        form = PolicyForm.for_policy(current, kind=kind, based_on_version=policy.version)
        return _page(request, kind, policy, form)
    form = PolicyForm.for_policy(current, kind=kind, data=request.POST)
    if form.is_valid() and form.policy_settings() == current:
        form.add_error(None, "These are the current settings: there is nothing to save.")
    if not form.is_valid():
        return _page(request, kind, policy, form, status=400)
    new = save_policy(
        kind=kind,
        settings=form.policy_settings(),
        actor=request.user,
        reason=form.cleaned_data["reason"],
        based_on_version=form.cleaned_data.get("based_on_version"),
    )
    messages.success(
        request,
        f"Saved as version {new.version}. The undecided reviews are being re-routed in the "
        "background; each keeps its current route until the re-routing reaches it.",
    )
    return redirect("reviews:policy", kind=kind)


@login_required
@require_POST
def policy_simulation(request, kind: str):
    """The simulation fragment for the thresholds in the form (htmx); writes nothing."""
    _allowed(request, kind)
    current = PolicySettings.of(current_policy(kind))
    form = PolicyForm.for_policy(current, kind=kind, data=request.POST, require_reason=False)
    if not form.is_valid():
        return render(
            request, "reviews/partials/policy_simulation.html", {"form": form, "kind": kind}
        )
    settings = form.policy_settings()
    simulation = simulate_policy(kind=kind, settings=settings)
    return render(
        request,
        "reviews/partials/policy_simulation.html",
        {**_simulation_context(kind, simulation, settings), "form": form},
    )


def _page(request, kind: str, policy, form: PolicyForm, status: int = 200):
    """The page for `policy` (the version in force), its simulation and the history."""
    settings = PolicySettings.of(policy)
    context = {
        "kind": kind,
        "kinds": PredictionKind.choices,
        "kind_label": PredictionKind(kind).label,
        "policy": policy,
        "history": policy_history(kind),
        "awaiting_rerouting": awaiting_rerouting(kind),
        # The kind's queues against their capacity, and what waits in their backlogs.
        "loads": queue_loads(kinds=(kind,)),
        # While a policy test runs, the thresholds wait for its end (the test page).
        "running_test": running_test(kind),
        "form": form,
        **_simulation_context(kind, simulate_policy(kind=kind, settings=settings), settings),
    }
    return render(request, "reviews/policy.html", context, status=status)


def _simulation_context(kind, simulation: Simulation, settings: PolicySettings) -> dict:
    total = simulation.total
    routes = []
    for route, label in Review.Route.choices:
        count = simulation.counts[route]
        now = simulation.current_counts[route]
        capacity = settings.daily_capacity(route)
        routes.append(
            {
                "route": route,
                "label": label,
                "count": count,
                "share": _percent(count / total if total else 0.0),
                "now": now,
                "change": count - now,
                "capacity": capacity,
                "waiting": simulated_backlog(simulation, route=route, capacity=capacity),
            }
        )
    return {
        "kind": kind,
        "simulation": simulation,
        "routes": routes,
        "expected_error": _percent(simulation.expected_error_rate),
        "observed_override": _percent(simulation.observed_override_rate),
        "chart": _workload_chart(simulation, settings),
    }


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f} %"


def _workload_chart(simulation: Simulation, settings: PolicySettings) -> str:
    figure = workload_figure(
        simulation.curve,
        chosen_threshold=settings.auto_approve_confidence,
        route_labels=Review.Route.choices,
    )
    return figure_html(figure, "workload-figure")
