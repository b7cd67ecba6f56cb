"""Figure specs of the review pages: plain dicts that Plotly accepts and that say the truth."""

import json
import math

import plotly.graph_objects as go
import pytest

from reviews.figures import (
    actions_figure,
    figure_html,
    interval_figure,
    waterfall_figure,
    workload_figure,
)
from reviews.selectors.member_page import ActionProbability
from reviews.services.simulation import WorkloadCurve

EXPLANATION = {
    "base_value": -1.2,
    "margin": 0.4,
    "top": [
        {
            "feature": "days_since_last_purchase",
            "name": "Days since last purchase",
            "value": 41.0,
            "contribution": 1.1,
        },
        {
            "feature": "spend_365",
            "name": "Spend, last 365 days",
            "value": 820.5,
            "contribution": -0.3,
        },
        {"feature": "return_share_365", "value": 0.25, "contribution": 0.1},
    ],
    # Stored rounded: the bars must still end exactly at the margin.
    "remainder": 0.7,
}


def _accepted_by_plotly(figure: dict) -> None:
    """Plotly's own validator: raises ValueError on any property it does not know."""
    go.Figure(data=figure["data"], layout=figure["layout"])


def test_the_waterfall_goes_from_the_base_value_to_the_margin_exactly():
    figure = waterfall_figure(EXPLANATION)

    bars = figure["data"][0]
    assert bars["type"] == "waterfall"
    assert bars["y"] == [
        "Average member (base)",
        "Days since last purchase = 41",
        "Spend, last 365 days = 820",
        "Share of returns = 25 %",
        "Other features",
        "This member (model output)",
    ]
    assert bars["measure"] == ["absolute", "relative", "relative", "relative", "relative", "total"]
    base, *steps, total = bars["x"]
    assert (base, steps[:3], total) == (-1.2, [1.1, -0.3, 0.1], 0.4)
    assert steps[3] == pytest.approx(0.7, abs=1e-12)
    assert math.fsum([base, *steps]) == pytest.approx(0.4, abs=1e-12)
    assert bars["text"] == ["-1.20", "+1.10", "-0.30", "+0.10", "+0.70", "0.40"]
    _accepted_by_plotly(figure)


def test_a_stored_remainder_that_disagrees_with_the_margin_gives_way_to_the_margin():
    explanation = {**EXPLANATION, "remainder": 0.2}

    base, *steps, total = waterfall_figure(explanation)["data"][0]["x"]

    assert total == 0.4
    assert math.fsum([base, *steps]) == pytest.approx(0.4, abs=1e-12)


def test_without_a_margin_the_waterfall_ends_at_base_plus_steps():
    explanation = {key: value for key, value in EXPLANATION.items() if key != "margin"}

    base, *steps, total = waterfall_figure(explanation)["data"][0]["x"]

    assert steps[-1] == 0.7
    assert total == pytest.approx(-1.2 + 1.1 - 0.3 + 0.1 + 0.7, abs=1e-12)


def test_no_explanation_no_waterfall():
    assert waterfall_figure({}) is None
    assert waterfall_figure({"top": []}) is None
    assert figure_html(None, "waterfall-figure") == ""


def test_the_interval_figure_draws_the_point_and_its_interval_over_the_risk_bands():
    figure = interval_figure(score=0.45, low=0.3, high=0.6)

    point = figure["data"][0]
    assert point["x"] == [45.0]
    assert point["error_x"]["array"] == [pytest.approx(15.0)]
    assert point["error_x"]["arrayminus"] == [pytest.approx(15.0)]
    assert [(s["x0"], s["x1"]) for s in figure["layout"]["shapes"]] == [
        (0.0, 30.0),
        (30.0, 60.0),
        (60.0, 100.0),
    ]
    assert [a["text"] for a in figure["layout"]["annotations"]] == [
        "low risk",
        "medium risk",
        "high risk",
    ]
    _accepted_by_plotly(figure)


def test_an_interval_missing_its_ends_collapses_to_the_point():
    point = interval_figure(score=0.2, low=None, high=None)["data"][0]

    assert (point["error_x"]["array"], point["error_x"]["arrayminus"]) == ([0.0], [0.0])


def test_the_actions_figure_highlights_the_conformal_set_and_marks_the_pick():
    actions = (
        ActionProbability("bonus", "Bonus points", 0.6, "60 %", True, True),
        ActionProbability("email", "Win-back email", 0.3, "30 %", True, False),
        ActionProbability("none", "No action", 0.1, "10 %", False, False),
    )

    bars = actions_figure(actions)["data"][0]

    assert bars["y"] == ["★ Bonus points", "Win-back email", "No action"]
    assert bars["x"] == [60.0, 30.0, 10.0]
    assert bars["text"] == ["60 %  in set", "30 %  in set", "10 %"]
    assert bars["marker"]["color"] == ["#2952cc", "#2952cc", "#d0d5dd"]
    assert bars["marker"]["line"]["color"] == ["#1d2330", "white", "white"]
    _accepted_by_plotly(actions_figure(actions))
    assert actions_figure(()) is None


def test_the_workload_figure_has_a_line_per_route_and_the_error_on_a_second_axis():
    curve = WorkloadCurve(
        thresholds=(0.5, 0.9),
        auto=(10, 4),
        analyst=(3, 8),
        expert=(1, 2),
        expected_error_rate=(0.12, None),
    )

    figure = workload_figure(
        curve,
        chosen_threshold=0.9,
        route_labels=[("auto", "Auto"), ("analyst", "Analyst"), ("expert", "Expert")],
    )

    assert [(line["name"], line["y"]) for line in figure["data"]] == [
        ("Auto", [10, 4]),
        ("Analyst", [3, 8]),
        ("Expert", [1, 2]),
        ("Expected error among auto-approved (%)", [12.0, None]),
    ]
    assert figure["data"][3]["yaxis"] == "y2"
    assert figure["layout"]["shapes"][0]["x0"] == 0.9
    assert figure["layout"]["annotations"][0]["text"] == "chosen 0.90"
    _accepted_by_plotly(figure)


def test_figure_html_is_an_empty_div_and_its_spec_that_no_label_can_break_out_of():
    figure = interval_figure(score=0.5, low=0.4, high=0.6)
    figure["layout"]["annotations"][0]["text"] = "</script><script>alert(1)</script>"

    html = figure_html(figure, "interval-figure")

    assert html.startswith(
        '<div id="interval-figure" class="js-plotly-figure" '
        'data-figure="interval-figure-spec"></div>'
        '<script id="interval-figure-spec" type="application/json">'
    )
    spec = html.split('type="application/json">', 1)[1].removesuffix("</script>")
    assert "<" not in spec
    assert json.loads(spec) == figure
