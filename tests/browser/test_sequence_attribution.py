"""An expert reads an ensemble prediction in chromium: the tree SHAP waterfall with the
behavior-sequence step, and the events the sequence model's occlusion picked, marked on the
timeline."""

import pytest

from loyalty.services.users import create_demo_users
from predictions.services.scoring.runs import score_chunk, start_scoring_run
from predictions.services.scoring.settings import set_scoring_model
from reviews.models import Review
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.conftest import output_dir
from tests.predictions.conftest import (  # noqa: F401  (fixtures that train a real model)
    CUTOFF,
    ensemble_version,
    generated_members,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_member_page_shows_the_sequence_share_and_its_events(
    live_server,
    page,
    log_in,
    request,
    ensemble_version,  # noqa: F811
):
    create_demo_users()
    seed_reason_codes()
    set_scoring_model(kind="churn", model="ensemble", actor=None)
    run = start_scoring_run(kind="churn", cutoff=CUTOFF, enqueue=False)
    for chunk_id in run.chunks.values_list("pk", flat=True):
        score_chunk(chunk_id=chunk_id)
    route_new_predictions(kind="churn")
    # The member whose sequence share is largest: the page a reader of this screenshot wants.
    reviews = Review.objects.select_related("prediction")
    review = max(
        (r for r in reviews if r.prediction.explanation.get("sequence_events")),
        key=lambda r: max(
            abs(e["attribution"]) for e in r.prediction.explanation["sequence_events"]
        ),
    )
    events = review.prediction.explanation["sequence_events"]

    log_in(page, "expert", "expert-demo")
    page.goto(f"{live_server.url}/reviews/{review.pk}/")
    page.locator("#waterfall-chart .js-plotly-plot .main-svg").first.wait_for()

    assert (
        "Behavior sequence (sequence model's share)"
        in page.locator("#waterfall-chart").inner_text()
    )
    marked = page.get_by_test_id("sequence-event")
    assert marked.count() == len(events)
    shown = sorted(
        float(text.split()[-1]) for text in marked.locator(".sequence-flag").all_inner_texts()
    )
    assert shown == pytest.approx(sorted(round(e["attribution"], 3) for e in events), abs=1e-9)
    assert page.get_by_test_id("sequence-legend").is_visible()
    # What-if offers the member's feature values only: the sequence share is not one.
    what_if = page.get_by_test_id("what-if-form").inner_text()
    assert "Behavior sequence" not in what_if
    page.get_by_test_id("timeline").scroll_into_view_if_needed()
    page.screenshot(path=str(output_dir(request) / "member-ensemble.png"), full_page=True)
