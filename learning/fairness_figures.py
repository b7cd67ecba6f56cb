"""The Fairness page's charts, per attribute: for each group, the model beside the final
decisions and people's overrides, each point with its 95 % interval (Plotly specs drawn by
static/js/figures.js, as on the other evidence pages). A group too small for a rate has no
point: its axis label says so. Next actions: the share offered each action, one point per
action and group, for the model and for the final decisions; and the override rate."""

from learning.fairness_actions import (
    ActionAttributeFairness,
)
from learning.fairness_stats import (
    AttributeFairness,
    GroupRate,
)
from learning.figures import PALETTE, _figure, _percent_points
from learning.quality_stats import Estimate
from reviews.figures import figure_html

MODEL_COLOR, FINAL_COLOR = PALETTE[7], PALETTE[0]
CHURN_COLOR, STAY_COLOR = PALETTE[3], PALETTE[1]
CATEGORIES = {"type": "category", "gridcolor": "#eef0f3", "automargin": True}
PERCENT = {"title": {"text": "%"}, "range": [0, 100], "gridcolor": "#eef0f3"}


def _point(rate: GroupRate) -> Estimate:
    """What a chart draws of a rate: nothing for a group too small."""
    if rate.too_small:
        return Estimate(None, None, None, rate.n)
    return rate.estimate


def _axis(attribute: AttributeFairness | ActionAttributeFairness) -> list[str]:
    return [
        f"{row.group} (n={row.n})" + (", too small" if row.too_small else "")
        for row in attribute.groups
    ]


def _chart(attribute, traces, *, title: str, height: int = 300) -> dict | None:
    if not any(trace["x"] for trace in traces):
        return None
    return _figure(
        traces,
        title=f"{attribute.label}: {title}",
        showlegend=True,
        scattermode="group",
        xaxis=CATEGORIES,
        yaxis=PERCENT,
        height=height,
    )


def selection_figure(attribute: AttributeFairness) -> dict | None:
    """Share called churn per group: the model's calls beside the final decisions'."""
    x = _axis(attribute)
    traces = [
        _percent_points(
            [_point(row.rates[decider].selection) for row in attribute.groups],
            name=name,
            x=x,
            color=color,
        )
        for decider, name, color in (
            ("model", "Model", MODEL_COLOR),
            ("final", "Final decisions", FINAL_COLOR),
        )
    ]
    return _chart(attribute, traces, title="share called churn")


def error_rates_figure(attribute: AttributeFairness) -> dict | None:
    """True and false positive rates against outcomes, model and final decisions."""
    x = _axis(attribute)
    traces = [
        _percent_points(
            [_point(getattr(row.rates[decider], rate)) for row in attribute.groups],
            name=name,
            x=x,
            color=color,
        )
        for decider, rate, name, color in (
            ("model", "true_positive", "Model TPR", MODEL_COLOR),
            ("final", "true_positive", "Final TPR", FINAL_COLOR),
            ("model", "false_positive", "Model FPR", PALETTE[2]),
            ("final", "false_positive", "Final FPR", PALETTE[4]),
        )
    ]
    return _chart(attribute, traces, title="true and false positive rates against outcomes")


def calibration_figure(attribute: AttributeFairness) -> dict | None:
    """Mean predicted churn probability against observed churn (with its interval)."""
    x = _axis(attribute)
    predicted = [
        Estimate(row.calibration.predicted, row.calibration.predicted, row.calibration.predicted,
                 row.calibration.observed.n)
        if row.calibration.predicted is not None
        else Estimate(None, None, None, 0)
        for row in attribute.groups
    ]  # fmt: skip
    traces = [
        _percent_points(predicted, name="Predicted (mean)", x=x, color=MODEL_COLOR),
        _percent_points(
            [_point(row.calibration.observed) for row in attribute.groups],
            name="Observed churn",
            x=x,
            color=CHURN_COLOR,
        ),
    ]
    return _chart(attribute, traces, title="predicted vs observed churn")


def overrides_figure(attribute: AttributeFairness) -> dict | None:
    """People's overrides of the model's call per group, toward churn and toward stay (shares
    of the group's people's decisions)."""
    x = _axis(attribute)
    traces = [
        _percent_points(
            [_point(getattr(row.overrides, name)) for row in attribute.groups],
            name=label,
            x=x,
            color=color,
        )
        for name, label, color in (
            ("override_rate", "Overrides, all", FINAL_COLOR),
            ("toward_churn", "Toward churn", CHURN_COLOR),
            ("toward_stay", "Toward stay", STAY_COLOR),
        )
    ]
    return _chart(attribute, traces, title="people's overrides of the model")


FIGURES = {
    "selection": selection_figure,
    "error-rates": error_rates_figure,
    "calibration": calibration_figure,
    "overrides": overrides_figure,
}


def attribute_charts(attribute: AttributeFairness) -> list[dict]:
    """The attribute's charts as HTML (div + JSON spec), each with what it would have shown,
    said in words where no group is large enough to draw."""
    charts = []
    for name, build in FIGURES.items():
        div_id = f"fairness-{attribute.attribute}-{name}-fig"
        charts.append({"html": figure_html(build(attribute), div_id), "missing": MISSING[name]})
    return charts


MISSING = {
    "selection": "share called churn (no group large enough)",
    "error-rates": "error rates (no group with enough churners or stayers among its outcomes)",
    "calibration": "calibration (no group with enough outcomes)",
    "overrides": "overrides (no group with enough people's decisions)",
}


# --- next actions ----------------------------------------------------------------------------


def action_shares_figure(attribute: ActionAttributeFairness, decider: str) -> dict | None:
    """Share offered each action per group, by the model or by the final decisions."""
    x = _axis(attribute)
    actions = [shares.action for shares in attribute.groups[0].actions] if attribute.groups else []
    traces = [
        _percent_points(
            [_point(row.share(decider, action)) for row in attribute.groups],
            name=action,
            x=x,
            color=PALETTE[position % len(PALETTE)],
        )
        for position, action in enumerate(actions)
    ]
    title = "share offered each action, " + ("model" if decider == "model" else "final decisions")
    return _chart(attribute, traces, title=title)


def action_overrides_figure(attribute: ActionAttributeFairness) -> dict | None:
    """How often people changed the recommended action, per group."""
    traces = [
        _percent_points(
            [_point(row.override_rate) for row in attribute.groups],
            name="Action changed",
            x=_axis(attribute),
            color=FINAL_COLOR,
        )
    ]
    return _chart(attribute, traces, title="people's overrides of the action")


ACTION_FIGURES = {
    "model-shares": lambda attribute: action_shares_figure(attribute, "model"),
    "final-shares": lambda attribute: action_shares_figure(attribute, "final"),
    "overrides": action_overrides_figure,
}
ACTION_MISSING = {
    "model-shares": "the model's share offered each action (no group large enough)",
    "final-shares": "the final decisions' share offered each action (no group large enough)",
    "overrides": "overrides (no group with enough people's decisions)",
}


def action_attribute_charts(attribute: ActionAttributeFairness) -> list[dict]:
    """`attribute_charts` for next actions."""
    charts = []
    for name, build in ACTION_FIGURES.items():
        div_id = f"fairness-{attribute.attribute}-{name}-fig"
        charts.append(
            {"html": figure_html(build(attribute), div_id), "missing": ACTION_MISSING[name]}
        )
    return charts
