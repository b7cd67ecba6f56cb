"""Plotly figures of the review pages as plain JSON-ready dicts ({data, layout, config}, the
arguments of `Plotly.newPlot`), drawn in the browser by static/js/figures.js. Plain dicts, not
plotly.graph_objects, whose validation cost tens of milliseconds a page; no inline script, so a
strict Content-Security-Policy needs no nonce."""

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html, json_script

from predictions.ml.contracts import SEQUENCE_ITEM
from predictions.models import PredictionKind
from reviews.selectors.formatting import RISK_BANDS, feature_name, format_feature_value
from reviews.selectors.member_page import ActionProbability

INK, MUTED, GRID, TEXT = "#1d2330", "#667085", "#e4e7ec", "#2a3f5f"
UP, DOWN, TOTAL, ACCENT, OUT_OF_SET = "#d92d20", "#079455", "#2952cc", "#2952cc", "#d0d5dd"
CONNECTOR = "#98a2b3"
BAND_COLORS = {"low": "#ecfdf3", "medium": "#fffaeb", "high": "#fef3f2"}
ROUTE_COLORS = {"auto": "#067647", "analyst": "#2952cc", "expert": "#b54708"}
ERROR_COLOR = "#b42318"
FONT = {
    "family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif",
    "size": 13,
    "color": TEXT,
}
MEMBER_PAGE_CONFIG = {"displayModeBar": False, "responsive": True}
POLICY_PAGE_CONFIG = {"displaylogo": False, "responsive": True}
# Axis defaults that the Python library's "plotly" template used to add to every figure.
AXIS = {
    "ticks": "",
    "linecolor": "white",
    "gridcolor": "white",
    "zerolinecolor": "white",
    "zerolinewidth": 2,
    "automargin": True,
}
# Room around the waterfall's bars, as a share of their span: the value labels are drawn
# outside the bars and must not run into the feature names or off the chart.
WATERFALL_PAD = 0.18
WATERFALL_MIN_SPAN = 0.5


class _CompactJSONEncoder(DjangoJSONEncoder):
    item_separator, key_separator = ",", ":"


def figure_html(figure: dict | None, div_id: str) -> str:
    """The figure's div and its spec as a JSON script element ('' for no figure). The JSON is
    escaped for a script element (no '<', '>' or '&' in it), so labels cannot break out."""
    if not figure:
        return ""
    return format_html(
        '<div id="{}" class="js-plotly-figure" data-figure="{}"></div>{}',
        div_id,
        f"{div_id}-spec",
        json_script(figure, f"{div_id}-spec", encoder=_CompactJSONEncoder),
    )


def _layout(**layout) -> dict:
    return {
        "showlegend": False,
        "plot_bgcolor": "white",
        "paper_bgcolor": "white",
        "font": FONT,
        "hoverlabel": {"align": "left"},
        **layout,
    }


def _axis(**axis) -> dict:
    return {**AXIS, **axis}


# --- the churn interval ----------------------------------------------------------------------


def interval_figure(*, score: float, low: float | None, high: float | None) -> dict:
    """The churn probability as a point with its interval on 0–100 %, risk bands shaded."""
    low = score if low is None else low
    high = score if high is None else high
    shapes, annotations = [], []
    for band, (start, end) in RISK_BANDS.items():
        x0, x1 = start * 100, (1.0 if end is None else end) * 100
        shapes.append(
            {
                "type": "rect",
                "xref": "x",
                "yref": "y domain",
                "x0": x0,
                "x1": x1,
                "y0": 0,
                "y1": 1,
                "fillcolor": BAND_COLORS[band],
                "line": {"width": 0},
                "layer": "below",
            }
        )
        annotations.append(
            {
                "text": f"{band} risk",
                "xref": "x",
                "yref": "y domain",
                "x": x0,
                "y": 1,
                "xanchor": "left",
                "yanchor": "top",
                "showarrow": False,
                "font": {"color": MUTED, "size": 11},
            }
        )
    point = {
        "type": "scatter",
        "x": [score * 100],
        "y": [0],
        "mode": "markers",
        "marker": {"size": 14, "color": INK, "symbol": "diamond"},
        "error_x": {
            "type": "data",
            "symmetric": False,
            "array": [(high - score) * 100],
            "arrayminus": [(score - low) * 100],
            "thickness": 3,
            "width": 10,
            "color": INK,
        },
        "hovertemplate": (
            f"Churn probability {score * 100:.0f} %<br>interval {low * 100:.0f}–{high * 100:.0f} %"
            "<extra></extra>"
        ),
    }
    layout = _layout(
        height=120,
        margin={"l": 10, "r": 10, "t": 24, "b": 30},
        shapes=shapes,
        annotations=annotations,
        xaxis=_axis(
            range=[0, 100], ticksuffix=" %", dtick=10, showgrid=True, gridcolor=GRID, zeroline=False
        ),
        yaxis=_axis(visible=False, range=[-1, 1]),
    )
    return {"data": [point], "layout": layout, "config": MEMBER_PAGE_CONFIG}


# --- the SHAP waterfall ----------------------------------------------------------------------


@dataclass(frozen=True)
class WaterfallSteps:
    """The waterfall's bars: the base value, one step per top contribution, the rest of the
    features as one step, and the margin. The steps add up to the margin by construction:
    "Other features" is what the named contributions leave of the margin."""

    labels: tuple[str, ...]
    base_value: float
    contributions: tuple[float, ...]
    remainder: float
    margin: float

    @classmethod
    def of(cls, explanation: dict) -> "WaterfallSteps | None":
        if not explanation or "base_value" not in explanation:
            return None
        top = explanation.get("top", [])
        base = float(explanation["base_value"])
        contributions = tuple(float(item["contribution"]) for item in top)
        named = base + math.fsum(contributions)
        if "margin" in explanation:
            margin = float(explanation["margin"])
        else:
            margin = named + float(explanation.get("remainder", 0.0))
        labels = tuple(_step_label(item) for item in top)
        return cls(labels, base, contributions, margin - named, margin)

    @property
    def steps(self) -> tuple[float, ...]:
        """The relative bars, in order: each contribution, then the remainder."""
        return (*self.contributions, self.remainder)


def _step_label(item: dict) -> str:
    """'Name = value' for a feature; the sequence model's share has no one value."""
    if item["feature"] == SEQUENCE_ITEM:
        return "Behavior sequence (sequence model's share)"
    name = item.get("name") or feature_name(item["feature"])
    return f"{name} = {format_feature_value(item['feature'], item.get('value'))}"


def waterfall_figure(explanation: dict) -> dict | None:
    """SHAP waterfall from the stored explanation: base value, the top contributions (human
    names with the member's values), the rest as 'Other features', ending at the margin."""
    steps = WaterfallSteps.of(explanation)
    if steps is None:
        return None
    labels = [
        "Average member (base)",
        *steps.labels,
        "Other features",
        "This member (model output)",
    ]
    values = [steps.base_value, *steps.steps, steps.margin]
    measures = ["absolute"] + ["relative"] * len(steps.steps) + ["total"]
    text = [f"{steps.base_value:.2f}", *(f"{v:+.2f}" for v in steps.steps), f"{steps.margin:.2f}"]
    low, high = _running_range(steps)
    pad = max(high - low, WATERFALL_MIN_SPAN) * WATERFALL_PAD
    bars = {
        "type": "waterfall",
        "orientation": "h",
        "y": labels,
        "x": values,
        "measure": measures,
        "text": text,
        "textposition": "outside",
        "cliponaxis": False,
        "increasing": {"marker": {"color": UP}},
        "decreasing": {"marker": {"color": DOWN}},
        "totals": {"marker": {"color": TOTAL}},
        "connector": {"line": {"color": CONNECTOR, "width": 1, "dash": "dot"}},
        "hovertemplate": "%{y}<br>%{text} log-odds<extra></extra>",
    }
    layout = _layout(
        height=70 + 32 * len(labels),
        margin={"l": 10, "r": 20, "t": 10, "b": 40},
        yaxis=_axis(autorange="reversed"),
        xaxis=_axis(
            gridcolor=GRID,
            zerolinecolor=CONNECTOR,
            range=[low - pad, high + pad],
            title={"text": "log-odds", "font": {"size": 12, "color": MUTED}, "standoff": 15},
        ),
    )
    return {"data": [bars], "layout": layout, "config": MEMBER_PAGE_CONFIG}


def _running_range(steps: WaterfallSteps) -> tuple[float, float]:
    """The lowest and highest point the bars reach (from 0 through every running total)."""
    running = [0.0, steps.base_value]
    for value in steps.steps:
        running.append(running[-1] + value)
    return min(running), max(running)


def waterfall_caption(
    explanation: dict, *, probability: float | None, kind: str, action: str = ""
) -> str:
    """What the waterfall's ends mean, in words (shown under the chart). `action`: the name of
    the action a next-action explanation explains, where it is known."""
    if not explanation or "margin" not in explanation:
        return ""
    toward = "churn" if kind == PredictionKind.CHURN else (action or "this action")
    text = (
        f"Red pushes toward {toward}, green away from it. The model's output is "
        f"{explanation['margin']:.2f} log-odds"
    )
    if probability is not None:
        text += f", a calibrated probability of {probability * 100:.0f} %"
    text += "."
    if explanation.get("model") == "ensemble":
        text += (
            " This score comes from the ensemble: each feature's bar is its exact tree SHAP"
            " value times the trees' weight, and “Behavior sequence” is the sequence model's"
            " share (its marked events are in Recent activity below)."
        )
    return text


# --- next-action probabilities ---------------------------------------------------------------


def actions_figure(actions: Sequence[ActionProbability]) -> dict | None:
    """Per-action probabilities; the conformal set in the accent colour, the pick marked."""
    if not actions:
        return None
    bars = {
        "type": "bar",
        "orientation": "h",
        "y": [("★ " if a.is_recommended else "") + a.name for a in actions],
        "x": [a.probability * 100 for a in actions],
        "text": [a.label + ("  in set" if a.in_set else "") for a in actions],
        "textposition": "outside",
        "cliponaxis": False,
        "marker": {
            "color": [ACCENT if a.in_set else OUT_OF_SET for a in actions],
            "line": {"color": [INK if a.is_recommended else "white" for a in actions], "width": 2},
        },
        "hovertemplate": "%{y}: %{x:.0f} %<extra></extra>",
    }
    layout = _layout(
        height=70 + 34 * len(actions),
        margin={"l": 10, "r": 70, "t": 10, "b": 30},
        yaxis=_axis(autorange="reversed"),
        xaxis=_axis(range=[0, 100], ticksuffix=" %", gridcolor=GRID),
    )
    return {"data": [bars], "layout": layout, "config": MEMBER_PAGE_CONFIG}


# --- the policy page's workload curve --------------------------------------------------------


def workload_figure(curve, *, chosen_threshold: float, route_labels: Sequence) -> dict:
    """Reviews per route against the auto-approve threshold (a `simulation.WorkloadCurve`),
    the expected error among auto-approved items on a second axis, the chosen threshold marked.
    `route_labels` are the (route, label) pairs, one line each."""
    lines = [
        {
            "type": "scatter",
            "x": list(curve.thresholds),
            "y": list(getattr(curve, route)),
            "name": label,
            "mode": "lines",
            "line": {"color": ROUTE_COLORS[route], "width": 2},
            "hovertemplate": f"{label}: %{{y:,}}<extra></extra>",
        }
        for route, label in route_labels
    ]
    lines.append(
        {
            "type": "scatter",
            "x": list(curve.thresholds),
            "y": [None if rate is None else rate * 100 for rate in curve.expected_error_rate],
            "name": "Expected error among auto-approved (%)",
            "mode": "lines",
            "line": {"color": ERROR_COLOR, "width": 1.5, "dash": "dot"},
            "yaxis": "y2",
            "hovertemplate": "expected error %{y:.1f} %<extra></extra>",
        }
    )
    chosen = {
        "type": "line",
        "xref": "x",
        "yref": "y domain",
        "x0": chosen_threshold,
        "x1": chosen_threshold,
        "y0": 0,
        "y1": 1,
        "line": {"color": INK, "width": 1.5, "dash": "dash"},
    }
    chosen_label = {
        "text": f"chosen {chosen_threshold:.2f}",
        "xref": "x",
        "yref": "y domain",
        "x": chosen_threshold,
        "y": 1,
        "xanchor": "center",
        "yanchor": "bottom",
        "showarrow": False,
    }
    layout = _layout(
        showlegend=True,
        height=340,
        margin={"l": 50, "r": 50, "t": 30, "b": 40},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.22},
        plot_bgcolor="#fff",
        shapes=[chosen],
        annotations=[chosen_label],
        xaxis=_axis(
            title={"text": "auto-approve threshold", "standoff": 15},
            gridcolor=GRID,
            range=[0.5, 0.99],
        ),
        yaxis=_axis(title={"text": "reviews", "standoff": 15}, gridcolor=GRID, rangemode="tozero"),
        yaxis2=_axis(
            title={"text": "expected error %", "standoff": 15},
            overlaying="y",
            side="right",
            rangemode="tozero",
            showgrid=False,
        ),
    )
    return {"data": lines, "layout": layout, "config": POLICY_PAGE_CONFIG}
