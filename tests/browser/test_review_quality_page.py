"""The Review quality page in chromium: an expert opens it from the menu and sees every
reviewer's figures drawn, sorts the disagreements by outcome; an analyst sees only their own."""

import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD, output_dir
from tests.learning.test_blind_agreement import answered  # noqa: F401  (a fixture)
from tests.learning.test_review_quality import people, scored  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_expert_reads_everyone_s_figures_and_sorts_the_disagreements(
    live_server,
    page,
    log_in,
    request,
    scored,  # noqa: F811
):
    log_in(page, "eve", TEST_PASSWORD)

    page.get_by_role("link", name="Review quality").click()

    expect(page.get_by_role("heading", name="Review quality", level=1)).to_be_visible()
    expect(page.get_by_test_id("quality-overall")).to_contain_text("7 decisions scored")
    # Plotly drew accuracy per reviewer and override precision by month; balanced accuracy
    # needs churners and stayers among a reviewer's items, which no reviewer has here, and
    # the page says so instead of drawing it.
    expect(page.locator("[data-testid=quality-charts] .js-plotly-plot")).to_have_count(2)
    expect(page.get_by_test_id("chart-missing")).to_have_text(
        "No chart of balanced accuracy per reviewer (it needs churners and stayers among a "
        "reviewer's items)."
    )
    reviewers = page.get_by_test_id("quality-by-1").get_by_test_id("quality-row")
    expect(reviewers).to_have_count(3)
    page.screenshot(path=str(output_dir(request) / "review-quality.png"), full_page=True)

    page.get_by_test_id("sort--outcome").click()  # stayed first

    outcomes = page.get_by_test_id("disagreement").get_by_test_id("outcome")
    expect(outcomes).to_have_count(3)
    expect(outcomes.first).to_have_text("stayed")
    assert page.url.endswith("?sort=-outcome#disagreements")


def test_an_analyst_sees_only_their_own_figures(live_server, page, log_in, scored):  # noqa: F811
    log_in(page, "ann", TEST_PASSWORD)

    page.goto(f"{live_server.url}/reviews/manage/loop/quality/")

    expect(page.get_by_test_id("quality-overall")).to_contain_text("3 decisions scored")
    rows = page.get_by_test_id("quality-by-1").get_by_test_id("quality-row")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("ann")
    expect(page.get_by_text("bob")).to_have_count(0)


def test_the_blind_section_draws_shown_vs_blind_agreement(
    live_server,
    page,
    log_in,
    request,
    answered,  # noqa: F811
):
    log_in(page, "eve", TEST_PASSWORD)

    page.goto(f"{live_server.url}/reviews/manage/loop/quality/#blind")

    section = page.get_by_test_id("blind-agreement")
    expect(
        section.get_by_role("heading", name="Blind review: agreement shown vs blind")
    ).to_be_visible()
    # Plotly drew the chart: ann and eve have blind answers (bob has none, so no point of his).
    expect(section.locator(".js-plotly-plot")).to_have_count(1)
    expect(section.get_by_test_id("blind-row-ann").get_by_test_id("gap")).to_have_text(
        "+20.0 points (-31.0 to +60.4)"
    )
    expect(section.get_by_test_id("rubber-stamp")).to_have_count(0)
    section.screenshot(path=str(output_dir(request) / "review-quality-blind.png"))
