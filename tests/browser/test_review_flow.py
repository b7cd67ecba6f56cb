"""An analyst works the queue in chromium: opens a member, reads the charts, decides, moves on."""

import pytest

from loyalty.services.users import create_demo_users
from reviews.models import Decision, Review
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.factories import EventFactory, MemberFactory, PredictionFactory
from tests.predictions.conftest import (  # noqa: F401  (fixtures that train a real model)
    active_churn_version,
    generated_members,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXPLANATION = {
    "base_value": -1.1,
    "margin": 0.35,
    "top": [
        {
            "feature": "days_since_last_purchase",
            "name": "Days since last purchase",
            "value": 47.0,
            "contribution": 0.92,
        },
        {
            "feature": "basket_trend_90",
            "name": "Basket trend, 90 days",
            "value": -0.6,
            "contribution": 0.48,
        },
        {
            "feature": "spend_365",
            "name": "Spend, last 365 days",
            "value": 1840.0,
            "contribution": -0.31,
        },
        {
            "feature": "support_contacts_90",
            "name": "Support contacts, 90 days",
            "value": 3.0,
            "contribution": 0.22,
        },
        {
            "feature": "top_channel_share_365",
            "name": "Share of main channel",
            "value": 0.82,
            "contribution": -0.08,
        },
    ],
    "remainder": 0.2,
}


def queue_in_order() -> list[Review]:
    seed_reason_codes()
    for i, score in enumerate((0.62, 0.48, 0.35, 0.22)):
        member = MemberFactory(tier=("gold", "silver")[i % 2], points_balance=3200 - 400 * i)
        EventFactory.create_batch(6, member=member)
        PredictionFactory(
            member=member,
            score=score,
            interval_low=score - 0.12,
            interval_high=score + 0.1,
            confidence=0.7 + i * 0.03,
            explanation=EXPLANATION,
            spend=1840.0 - 300 * i,
        )
    route_new_predictions(kind="churn")
    return list(Review.objects.filter(route="analyst").order_by("-priority", "pk"))


def test_an_analyst_overrides_a_call_and_lands_on_the_next_item(live_server, page, log_in, request):
    create_demo_users()
    reviews = queue_in_order()
    first, second = reviews[0], reviews[1]
    log_in(page, "analyst", "analyst-demo")

    page.goto(f"{live_server.url}/reviews/")
    assert page.locator("tr.queue-row").count() == len(reviews)
    page.screenshot(path=str(output_dir(request) / "queue.png"), full_page=True)

    page.get_by_role("link", name=first.member.external_id).click()
    page.wait_for_url(f"{live_server.url}/reviews/{first.pk}/")
    # Plotly drew the charts: SVG inside the containers, not just the divs.
    page.locator("#interval-chart .js-plotly-plot .main-svg").first.wait_for()
    page.locator("#waterfall-chart .js-plotly-plot .main-svg").first.wait_for()
    # base, five contributions, "Other features", the model output
    assert page.locator("#waterfall-chart g.point").count() == 8
    assert "Other features" in page.locator("#waterfall-chart").inner_text()
    page.screenshot(path=str(output_dir(request) / "member.png"), full_page=True)

    page.get_by_role("tab", name="Override").click()
    form = page.get_by_test_id("form-override")
    form.get_by_label("The right call").select_option("churn")
    form.get_by_label("Reason").select_option("recent-contact")
    form.get_by_role("button", name="Override").click()

    page.wait_for_url(f"{live_server.url}/reviews/{second.pk}/")
    assert "Overrode" in page.locator(".messages").inner_text()
    decision = Decision.objects.get(review=first)
    assert (decision.verdict, decision.churn_label, decision.reason.code) == (
        "override",
        True,
        "recent-contact",
    )
    page.goto(f"{live_server.url}/reviews/")
    assert page.locator(f"#review-row-{first.pk}").count() == 0
    assert page.locator("tr.queue-row").count() == len(reviews) - 1


def test_keyboard_j_then_a_approves_the_first_row(live_server, page, log_in, request):
    create_demo_users()
    reviews = queue_in_order()
    log_in(page, "analyst", "analyst-demo")
    page.goto(f"{live_server.url}/reviews/")
    page.locator("tr.queue-row").first.wait_for()

    page.keyboard.press("j")
    assert "selected" in page.locator("tr.queue-row").first.get_attribute("class")
    page.keyboard.press("a")

    page.locator(f"#review-row-{reviews[0].pk}").wait_for(state="detached")
    assert page.locator("tr.queue-row").count() == len(reviews) - 1
    assert "Approved" in page.locator("#queue-flash").inner_text()
    assert page.locator("#count-analyst").inner_text() == str(len(reviews) - 1)
    decision = Decision.objects.get(review=reviews[0])
    assert (decision.verdict, decision.reason.code) == ("approve", "model-correct")
    page.screenshot(path=str(output_dir(request) / "queue-after-approve.png"), full_page=True)


def test_keyboard_e_escalates_the_selected_row_with_a_comment(live_server, page, log_in):
    create_demo_users()
    reviews = queue_in_order()
    second = reviews[1]
    log_in(page, "analyst", "analyst-demo")
    page.goto(f"{live_server.url}/reviews/")
    page.locator("tr.queue-row").first.wait_for()

    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("e")
    dialog = page.locator("#escalate-dialog")
    dialog.wait_for()
    assert dialog.locator("[data-role=member]").inner_text() == (
        f"Member {second.member.external_id}"
    )
    dialog.locator("textarea").fill("Asked for a call back")
    dialog.get_by_role("button", name="Escalate").click()

    page.locator(f"#review-row-{second.pk}").wait_for(state="detached")
    second.refresh_from_db()
    assert (second.route, second.escalated_by.username, second.escalation_comment) == (
        "expert",
        "analyst",
        "Asked for a call back",
    )


def test_a_conflict_shows_a_clear_message_in_the_queue(live_server, page, log_in):
    from django.contrib.auth import get_user_model

    from reviews.services.decisions import override_prediction

    create_demo_users()
    reviews = queue_in_order()
    log_in(page, "analyst", "analyst-demo")
    page.goto(f"{live_server.url}/reviews/")
    # Someone else decides the first row while it is on this analyst's screen.
    override_prediction(
        review_id=reviews[0].pk,
        actor=get_user_model().objects.get(username="expert"),
        reason_code="wrong-churn-call",
        churn_label=True,
    )

    page.locator(f"#review-row-{reviews[0].pk} [data-action=approve]").click()

    flash = page.get_by_test_id("flash")
    flash.wait_for()
    assert flash.inner_text() == "This review was already decided (override) by expert."


RECENCY = "days_since_last_event"


def test_what_if_draws_the_recomputed_waterfall(
    live_server,
    page,
    log_in,
    active_churn_version,  # noqa: F811  (the imported fixture: a real trained model)
):
    from predictions.models import Prediction
    from predictions.services.explanations import explain_predictions
    from predictions.services.scoring.runs import score_chunk, start_scoring_run
    from tests.predictions.conftest import CUTOFF

    create_demo_users()
    seed_reason_codes()
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, member_limit=10, enqueue=False)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    route_new_predictions(kind="churn")
    # Every member page opened once: auto-approvals too have their explanation.
    explain_predictions(prediction_ids=Prediction.objects.values_list("pk", flat=True))
    review = next(
        review
        for review in Review.objects.select_related("prediction").order_by("pk")
        if RECENCY in [item["feature"] for item in review.prediction.explanation["top"][:8]]
    )
    log_in(page, "expert", "expert-demo")
    page.goto(f"{live_server.url}/reviews/{review.pk}/")
    page.locator("#waterfall-chart .js-plotly-plot .main-svg").first.wait_for()

    page.locator(f"input[name=f_{RECENCY}]").fill("400")
    page.get_by_role("button", name="Score again").click()

    result = page.get_by_test_id("what-if-result")
    result.wait_for()
    # The fragment's figure is drawn by static/js/figures.js when htmx swaps it in.
    result.locator(".js-plotly-plot .main-svg").first.wait_for()
    assert result.locator("g.point").count() >= 3
    assert "→ 400" in result.inner_text()
