"""Pages of the escalation policy: settings with a live simulation, versions, saving."""

import plotly.graph_objects as go
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from loyalty.exceptions import DomainError
from predictions.models import PredictionKind
from reviews.models import EscalationPolicy, Review
from reviews.policy_forms import PolicyForm
from reviews.services.policy import PolicySettings, change_policy, current_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.simulation import Simulation, simulate_policy

MANAGE_POLICY = "reviews.add_escalationpolicy"
HISTORY_SHOWN = 20
ROUTE_COLORS = {"auto": "#067647", "analyst": "#2952cc", "expert": "#b54708"}


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
        form = PolicyForm.for_policy(current, kind=kind)
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
        )
    except DomainError as error:
        raise PermissionDenied(error.message) from error
    # change_policy's transaction has committed here (no ATOMIC_REQUESTS): the new version is
    # saved and audited whatever happens to the re-routing, which is idempotent and can rerun.
    result = reroute_undecided(kind=kind, actor=request.user)
    moves = f" ({result.describe_moves()})" if result.moved else ""
    messages.success(
        request,
        f"Saved as version {new.version}; {result.moved} item{'s' if result.moved != 1 else ''} "
        f"re-routed{moves}.",
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
    curve = simulation.curve
    figure = go.Figure()
    for route, label in Review.Route.choices:
        figure.add_trace(
            go.Scatter(
                x=curve.thresholds,
                y=getattr(curve, route),
                name=label,
                mode="lines",
                line={"color": ROUTE_COLORS[route], "width": 2},
                hovertemplate=f"{label}: %{{y:,}}<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=curve.thresholds,
            y=[None if rate is None else rate * 100 for rate in curve.expected_error_rate],
            name="Expected error among auto-approved (%)",
            mode="lines",
            line={"color": "#b42318", "width": 1.5, "dash": "dot"},
            yaxis="y2",
            hovertemplate="expected error %{y:.1f} %<extra></extra>",
        )
    )
    figure.add_vline(
        x=settings.auto_approve_confidence,
        line={"color": "#1d2330", "width": 1.5, "dash": "dash"},
        annotation_text=f"chosen {settings.auto_approve_confidence:.2f}",
        annotation_position="top",
    )
    figure.update_layout(
        height=340,
        margin={"l": 50, "r": 50, "t": 30, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.22},
        plot_bgcolor="#fff",
        xaxis={"title": "auto-approve threshold", "gridcolor": "#e4e7ec", "range": [0.5, 0.99]},
        yaxis={"title": "reviews", "gridcolor": "#e4e7ec", "rangemode": "tozero"},
        yaxis2={
            "title": "expected error %",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
    )
    return figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        config={"displaylogo": False, "responsive": True},
    )


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
