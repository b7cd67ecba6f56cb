"""Pages of the escalation policy: settings with a live simulation, versions, saving."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from loyalty.exceptions import DomainError
from predictions.models import PredictionKind
from reviews.figures import figure_html, workload_figure
from reviews.models import EscalationPolicy, Review
from reviews.policy_forms import PolicyForm
from reviews.services.policy import PolicySettings, change_policy, current_policy
from reviews.services.rerouting import awaiting_rerouting, request_rerouting
from reviews.services.simulation import Simulation, simulate_policy

MANAGE_POLICY = "reviews.add_escalationpolicy"
HISTORY_SHOWN = 20


def _allowed(request, kind: str) -> None:
    if not request.user.has_perm(MANAGE_POLICY):
        raise PermissionDenied("Only an admin may change escalation thresholds.")
    if kind not in PredictionKind.values:
        raise Http404(f"No prediction kind {kind!r}.")


@login_required
@require_http_methods(["GET", "POST"])
def policy_settings(request, kind: str):
    """GET: the current version, its simulation and the history. POST: save a new version and
    re-route the undecided reviews; invalid input re-renders with errors (400), saving nothing."""
    _allowed(request, kind)
    policy = current_policy(kind)
    current = PolicySettings.of(policy)
    if request.method == "GET":
        form = PolicyForm.for_policy(current, kind=kind, based_on_version=policy.version)
        return _page(request, kind, policy, form, simulate_policy(kind=kind, settings=current))
    form = PolicyForm.for_policy(current, kind=kind, data=request.POST)
    if form.is_valid() and form.policy_settings() == current:
        form.add_error(None, "These are the current settings: there is nothing to save.")
    if not form.is_valid():
        simulation = simulate_policy(kind=kind, settings=current)
        return _page(request, kind, policy, form, simulation, status=400)
    try:
        new = change_policy(
            kind=kind,
            settings=form.policy_settings(),
            actor=request.user,
            reason=form.cleaned_data["reason"],
            based_on_version=form.cleaned_data.get("based_on_version"),
        )
    except DomainError as error:
        if error.status == 403:
            raise PermissionDenied(error.message) from error
        # Someone saved a version meanwhile: show theirs, keep what this person typed.
        form.add_error(None, error.message)
        policy = current_policy(kind)
        form.data = form.data.copy()
        form.data["based_on_version"] = str(policy.version)
        simulation = simulate_policy(kind=kind, settings=PolicySettings.of(policy))
        return _page(request, kind, policy, form, simulation, status=error.status)
    # change_policy's transaction has committed here (no ATOMIC_REQUESTS): the new version is
    # saved and audited; a worker re-routes the undecided reviews (minutes at a million).
    request_rerouting(kind=kind, actor=request.user)
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


def _page(request, kind, policy, form, simulation, status: int = 200):
    history = (
        EscalationPolicy.objects.filter(kind=kind)
        .select_related("created_by")
        .order_by("-version")[:HISTORY_SHOWN]
    )
    context = {
        "kind": kind,
        "kinds": PredictionKind.choices,
        "kind_label": PredictionKind(kind).label,
        "policy": policy,
        "history": [_version_row(version) for version in history],
        "awaiting_rerouting": awaiting_rerouting(kind),
        "form": form,
        **_simulation_context(kind, simulation, PolicySettings.of(policy)),
    }
    return render(request, "reviews/policy.html", context, status=status)


def _simulation_context(kind, simulation: Simulation, settings: PolicySettings) -> dict:
    total = simulation.total
    routes = []
    for route, label in Review.Route.choices:
        count = simulation.counts[route]
        now = simulation.current_counts[route]
        routes.append(
            {
                "route": route,
                "label": label,
                "count": count,
                "share": _percent(count / total if total else 0.0),
                "now": now,
                "change": count - now,
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
    return figure_html(figure, "workload-fig")


def _version_row(policy: EscalationPolicy) -> dict:
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
    return {
        "policy": policy,
        "who": policy.created_by.get_username() if policy.created_by else "system",
        "band": band,
        "overrides": overrides or "—",
    }
