"""The learning loop page's charts, as Plotly specs ({data, layout, config} dicts) that
static/js/figures.js draws in the browser (see reviews.figures)."""

from learning.models import MonitorReport

FONT = {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12}
CONFIG = {"displaylogo": False, "responsive": True}
PALETTE = ("#2952cc", "#067647", "#b54708", "#b42318", "#6941c6", "#0e9384", "#c11574", "#667085")
SOURCE_COLORS = {"decision": "#2952cc", "outcome": "#067647"}
DRIFT_SHOWN = 15
DAY_MS = 24 * 60 * 60 * 1000
# Time axes tick at whole days or weeks, whatever the span (one point would tick in seconds).
DAYS = {"type": "date", "tickformat": "%b %d", "dtick": DAY_MS, "gridcolor": "#eef0f3"}
WEEKS = {"type": "date", "tickformat": "%b %d", "dtick": 7 * DAY_MS, "gridcolor": "#eef0f3"}


def _figure(data: list, *, title: str, height: int = 280, **layout) -> dict:
    return {
        "data": data,
        "layout": {
            "title": {"text": title, "font": {"size": 14}},
            "height": height,
            "margin": {"l": 56, "r": 16, "t": 40, "b": 56},
            "font": FONT,
            "plot_bgcolor": "white",
            "paper_bgcolor": "white",
            "legend": {"orientation": "h", "y": -0.28},
            "xaxis": {"gridcolor": "#eef0f3", "automargin": True},
            "yaxis": {"gridcolor": "#eef0f3", "automargin": True},
            **layout,
        },
        "config": CONFIG,
    }


def _stacked(series: dict[str, dict[str, int]], colors: dict[str, str] | None = None) -> list:
    return [
        {
            "type": "bar",
            "name": name,
            "x": list(points),
            "y": list(points.values()),
            "marker": {"color": (colors or {}).get(name, PALETTE[i % len(PALETTE)])},
        }
        for i, (name, points) in enumerate(sorted(series.items()))
    ]


def labels_figure(per_week: dict) -> dict | None:
    if not per_week["by_source"]:
        return None
    return _figure(
        _stacked(per_week["by_source"], SOURCE_COLORS),
        title="Labels gathered per week, by source",
        barmode="stack",
        showlegend=True,
        xaxis=WEEKS,
    )


def reasons_figure(per_week: dict) -> dict | None:
    if not per_week["by_reason"]:
        return None
    return _figure(
        _stacked(per_week["by_reason"]),
        title="Decision labels per week, by reason code",
        barmode="stack",
        showlegend=True,
        xaxis=WEEKS,
    )


def version_metrics_figure(rows: list[dict], *, kind: str) -> dict | None:
    first = "roc_auc" if kind == "churn" else "top1"
    if not any(row[first] is not None for row in rows):
        return None
    x = [f"v{row['version']}" for row in rows]
    data = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "ROC AUC" if first == "roc_auc" else "top-1 accuracy",
            "x": x,
            "y": [row[first] for row in rows],
            "marker": {"color": PALETTE[0]},
        }
    ]
    if kind == "churn":
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": "ECE",
                "x": x,
                "y": [row["ece"] for row in rows],
                "yaxis": "y2",
                "marker": {"color": PALETTE[2]},
            }
        )
    return _figure(
        data,
        title="Out-of-time figures per model version",
        showlegend=True,
        yaxis2={"overlaying": "y", "side": "right", "title": {"text": "ECE"}, "showgrid": False},
        xaxis={"type": "category", "gridcolor": "#eef0f3"},
    )


def override_figure(rates: dict) -> dict | None:
    versions = [row for row in rates["per_version"] if row["rate"] is not None]
    if not versions:
        return None
    return _figure(
        [
            {
                "type": "bar",
                "x": [f"v{row['version']}" for row in versions],
                "y": [row["rate"] * 100 for row in versions],
                "text": [f"{row['n']} decisions" for row in versions],
                "marker": {"color": PALETTE[3]},
                "hovertemplate": "%{x}: %{y:.1f} % overridden (%{text})<extra></extra>",
            }
        ],
        title="Override rate per model version",
        yaxis={"title": {"text": "% of decisions"}, "rangemode": "tozero"},
        xaxis={"type": "category"},
    )


def reason_figure(rates: dict) -> dict | None:
    reasons = rates["per_reason"]
    if not reasons:
        return None
    return _figure(
        [
            {
                "type": "bar",
                "orientation": "h",
                "y": [row["reason"] for row in reasons][::-1],
                "x": [row["n"] for row in reasons][::-1],
                "marker": {"color": PALETTE[4]},
            }
        ],
        title="Decisions per reason code",
        height=max(200, 40 + 28 * len(reasons)),
    )


def calibration_figure(report: MonitorReport | None) -> dict | None:
    if report is None or not report.reliability:
        return None
    bins = report.reliability
    return _figure(
        [
            {
                "type": "scatter",
                "mode": "lines",
                "name": "perfect",
                "x": [0, 1],
                "y": [0, 1],
                "line": {"dash": "dot", "color": "#98a2b3"},
            },
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"v{report.model_version_id}",
                "x": [row["mean_predicted"] for row in bins],
                "y": [row["observed_rate"] for row in bins],
                "text": [f"{row['n']} members" for row in bins],
                "marker": {"color": PALETTE[0], "size": 8},
                "hovertemplate": "predicted %{x:.2f}, observed %{y:.2f} (%{text})<extra></extra>",
            },
        ],
        title=f"Calibration of the active version (ECE {report.ece:.3f}, {report.outcomes} "
        "outcomes)",
        showlegend=True,
        xaxis={"title": {"text": "predicted churn probability"}, "range": [0, 1]},
        yaxis={"title": {"text": "observed churn rate"}, "range": [0, 1]},
        height=320,
    )


def drift_figure(report: MonitorReport | None, *, limit: float) -> dict | None:
    if report is None or not report.drift:
        return None
    values = sorted(
        ((code, psi) for code, psi in report.drift.items() if psi is not None),
        key=lambda item: -item[1],
    )[:DRIFT_SHOWN]
    if not values:
        return None
    return _figure(
        [
            {
                "type": "bar",
                "orientation": "h",
                "y": [code for code, _ in values][::-1],
                "x": [psi for _, psi in values][::-1],
                "marker": {
                    "color": ["#b42318" if psi > limit else "#2952cc" for _, psi in values][::-1]
                },
            }
        ],
        title=f"Feature drift (PSI) against the training data; limit {limit:.2f}",
        height=max(220, 60 + 24 * len(values)),
        shapes=[
            {
                "type": "line",
                "x0": limit,
                "x1": limit,
                "yref": "paper",
                "y0": 0,
                "y1": 1,
                "line": {"dash": "dash", "color": "#b42318"},
            }
        ],
    )


def queue_figure(activity: dict) -> dict | None:
    series = {
        "routed to people": activity["routed"],
        "decided": activity["decided"],
        "SLA breaches": activity["sla_breaches"],
    }
    if not any(series.values()):
        return None
    colors = {"routed to people": "#2952cc", "decided": "#067647", "SLA breaches": "#b42318"}
    return _figure(
        [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": name,
                "x": list(points),
                "y": list(points.values()),
                "marker": {"color": colors[name]},
            }
            for name, points in series.items()
        ],
        title="Queue activity per day (last 30 days)",
        showlegend=True,
        xaxis=DAYS,
    )


# --- review quality ---------------------------------------------------------------------------

PERSON_COLOR, MODEL_COLOR = PALETTE[0], PALETTE[7]


def _percent_points(estimates, *, name: str, x: list[str], color: str, offset: float = 0.0):
    """Points with their 95 % intervals as error bars and n in the hover; a group under
    `SMALL_SAMPLE` items is drawn hollow. Groups without a value are left out."""
    shown = [(label, e) for label, e in zip(x, estimates, strict=True) if e.value is not None]
    return {
        "type": "scatter",
        "mode": "markers",
        "name": name,
        "x": [label for label, _ in shown],
        "y": [e.value * 100 for _, e in shown],
        "error_y": {
            "type": "data",
            "symmetric": False,
            "array": [(e.high - e.value) * 100 for _, e in shown],
            "arrayminus": [(e.value - e.low) * 100 for _, e in shown],
            "color": color,
            "thickness": 1.5,
            "width": 6,
        },
        "customdata": [
            [e.low * 100, e.high * 100, e.n, "small sample" if e.is_small else ""] for _, e in shown
        ],
        "marker": {
            "color": color,
            "size": 10,
            "symbol": ["circle-open" if e.is_small else "circle" for _, e in shown],
        },
        "offsetgroup": name,
        "hovertemplate": f"{name}: %{{y:.1f}} % (95 % interval %{{customdata[0]:.1f}}–"
        "%{customdata[1]:.1f} %, n %{customdata[2]}) %{customdata[3]}<extra></extra>",
    }


def reviewer_accuracy_figure(rows, *, metric: str, title: str) -> dict | None:
    """Person vs model per reviewer on the same items: `metric` of `CallScores` (accuracy,
    balanced_accuracy), each with its interval; the axis names each reviewer's n."""
    if not rows:
        return None
    x = [f"{row.label} (n={row.scores.n})" for row in rows]
    person = [getattr(row.scores.person, metric) for row in rows]
    model = [getattr(row.scores.model, metric) for row in rows]
    if all(e.value is None for e in person):
        return None
    return _figure(
        [
            _percent_points(person, name="Person", x=x, color=PERSON_COLOR),
            _percent_points(model, name="Model, same items", x=x, color=MODEL_COLOR),
        ],
        title=title,
        showlegend=True,
        scattermode="group",
        xaxis={"type": "category", "gridcolor": "#eef0f3", "automargin": True},
        yaxis={"title": {"text": "%"}, "range": [0, 100], "gridcolor": "#eef0f3"},
        height=320,
    )


def override_precision_figure(rows) -> dict | None:
    """Override precision per month with its interval: of the items where the person's call
    differed from the model's, the share where the person was right."""
    x = [f"{row.label} (n={row.scores.override_precision.n})" for row in rows]
    estimates = [row.scores.override_precision for row in rows]
    if all(e.value is None for e in estimates):
        return None
    return _figure(
        [_percent_points(estimates, name="Override precision", x=x, color=PALETTE[3])],
        title="Override precision per month (person right where they overrode the model)",
        xaxis={"type": "category", "gridcolor": "#eef0f3", "automargin": True},
        yaxis={"title": {"text": "% right"}, "range": [0, 100], "gridcolor": "#eef0f3"},
        height=300,
    )


SHOWN_COLOR, BLIND_COLOR = PALETTE[2], PALETTE[0]


def blind_agreement_figure(rows) -> dict | None:
    """Per reviewer, agreement with the model's churn call when shown it and when blind, each
    with its interval; the axis names the two n (shown/blind) and marks a flagged reviewer."""
    rows = [row for row in rows if row.scores.blind_agreement.value is not None]
    if not rows:
        return None
    x = [
        f"{row.reviewer} (n={row.scores.shown_agreement.n}/{row.scores.blind_agreement.n})"
        + (" ⚑" if row.scores.flagged else "")
        for row in rows
    ]
    return _figure(
        [
            _percent_points(
                [row.scores.shown_agreement for row in rows],
                name="Shown the model",
                x=x,
                color=SHOWN_COLOR,
            ),
            _percent_points(
                [row.scores.blind_agreement for row in rows], name="Blind", x=x, color=BLIND_COLOR
            ),
        ],
        title="Agreement with the model's churn call: shown vs blind",
        showlegend=True,
        scattermode="group",
        xaxis={"type": "category", "gridcolor": "#eef0f3", "automargin": True},
        yaxis={"title": {"text": "% agreeing"}, "range": [0, 100], "gridcolor": "#eef0f3"},
        height=320,
    )
