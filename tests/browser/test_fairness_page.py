"""The Fairness page in chromium: an expert opens it from the menu and sees the region's bias
flagged, the charts drawn, and rates on too few items said to be too small; then the next
action's page, where one region is offered the discount and the other's emails are changed;
an analyst has no menu entry and is refused the page."""

import pytest
from playwright.sync_api import expect

from learning.models import FairnessLimits, ProtectedAttribute
from loyalty.models import Member
from tests.conftest import TEST_PASSWORD, output_dir
from tests.learning.test_fairness import people, planted_decisions  # noqa: F401  (fixtures)
from tests.learning.test_fairness_actions import planted_action_decisions  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_expert_sees_the_planted_bias_per_group(
    live_server,
    page,
    log_in,
    request,
    planted_decisions,  # noqa: F811
):
    # Groups of 4 decisions are compared; each has 2 churners and 2 stayers: too few for the
    # true and false positive rates.
    # The seeded row is gone after any transactional test's flush: create it then.
    FairnessLimits.objects.update_or_create(kind="churn", defaults={"min_group_size": 3})
    log_in(page, "eve", TEST_PASSWORD)

    page.get_by_role("link", name="Fairness").click()

    expect(page.get_by_role("heading", name="Fairness", level=1)).to_be_visible()
    expect(page.get_by_test_id("decisions")).to_have_text("8")
    breaches = page.get_by_test_id("breaches")
    expect(breaches).to_contain_text(
        "Region, Model: Demographic parity (share called churn) difference 1.000 above the "
        "limit 0.100"
    )
    expect(breaches).not_to_contain_text("Age band")
    region = page.get_by_test_id("fairness-region")
    # Plotly drew the share called churn and calibration; the error rates rest on 2 churners
    # and 2 stayers per group and the overrides on 2 people's decisions, fewer than 3: the page
    # says so instead of drawing them.
    expect(region.locator(".js-plotly-plot")).to_have_count(2)
    expect(region.get_by_test_id("chart-missing")).to_have_text(
        [
            "No chart of error rates (no group with enough churners or stayers among its "
            "outcomes).",
            "No chart of overrides (no group with enough people's decisions).",
        ]
    )
    west = region.get_by_test_id("group-west")
    expect(west.locator("td").nth(2)).to_contain_text("100.0 % (51.0–100.0)")
    # TPR and FPR of the model and the final decisions, and the three override rates.
    expect(west.get_by_test_id("too-small")).to_have_count(7)
    parity = region.get_by_test_id("disparity-model-demographic_parity")
    expect(parity.get_by_test_id("breach")).to_be_visible()
    # Newcombe: 1 − √((1 − 0.510)² + 0.490²), from the Wilson bounds of 4/4 and 0/4.
    expect(parity.get_by_test_id("difference")).to_have_text("+100.0 points (+30.7 to +100.0)")
    ages = page.get_by_test_id("fairness-age_band")
    expect(ages.get_by_test_id("breach")).to_have_count(0)
    page.screenshot(path=str(output_dir(request) / "fairness.png"), full_page=True)


def test_an_expert_sees_the_next_action_s_shares_per_group(
    live_server,
    page,
    log_in,
    request,
    planted_action_decisions,  # noqa: F811
):
    log_in(page, "eve", TEST_PASSWORD)
    page.get_by_role("link", name="Fairness").click()

    page.get_by_test_id("fairness-kinds").get_by_role("link", name="Next best action").click()

    expect(page.get_by_test_id("decisions")).to_have_text("8")
    expect(page.get_by_test_id("not-applicable")).to_contain_text("equalized odds")
    breaches = page.get_by_test_id("breaches")
    expect(breaches).to_contain_text(
        "Region, Model: Demographic parity (share offered personal_discount) difference 1.000 "
        "above the limit 0.100"
    )
    expect(breaches).to_contain_text(
        "Region, People's overrides: Override rate difference 1.000 above the limit 0.100"
    )
    expect(breaches).not_to_contain_text("Age band")
    region = page.get_by_test_id("fairness-region")
    # The model's and the final decisions' shares, and people's changes of the action.
    expect(region.locator(".js-plotly-plot")).to_have_count(3)
    west = region.get_by_test_id("group-west")
    # Group, n, then model and final per action in code order: no_action, personal_discount.
    expect(west.locator("td").nth(4)).to_contain_text("100.0 % (51.0–100.0)")
    parity = region.get_by_test_id("disparity-model-demographic_parity-personal_discount")
    expect(parity.get_by_test_id("breach")).to_be_visible()
    expect(parity.get_by_test_id("difference")).to_have_text("+100.0 points (+30.7 to +100.0)")
    page.screenshot(path=str(output_dir(request) / "fairness-next-action.png"), full_page=True)


def test_an_analyst_has_no_fairness_page(live_server, page, log_in, planted_decisions):  # noqa: F811
    log_in(page, "ann", TEST_PASSWORD)

    expect(page.get_by_role("link", name="Fairness")).to_have_count(0)
    response = page.goto(f"{live_server.url}/reviews/manage/loop/fairness/")

    assert response.status == 403
    expect(page.get_by_text("west")).to_have_count(0)


def test_an_admin_marks_an_attribute_protected_and_the_page_judges_it(
    live_server,
    page,
    log_in,
    request,
    planted_decisions,  # noqa: F811
):
    # The west's members (all called churn) have a high income, the east's a low one.
    for member in Member.objects.filter(external_id__startswith="M-"):
        income = "high" if member.external_id.startswith("M-w") else "low"
        Member.objects.filter(pk=member.pk).update(attributes={"income": income})
    FairnessLimits.objects.update_or_create(kind="churn", defaults={"min_group_size": 3})
    log_in(page, "boss", TEST_PASSWORD)
    page.goto(f"{live_server.url}/reviews/manage/loop/fairness/")
    expect(page.get_by_test_id("no-marked-attributes")).to_be_visible()
    expect(page.get_by_test_id("fairness-income")).to_have_count(0)

    form = page.get_by_test_id("mark-attribute-form")
    form.locator("select").select_option("income")
    form.locator("input[type=text]").fill("Income band")
    form.get_by_role("button", name="Mark as protected").click()

    expect(page.get_by_test_id("marked-income")).to_contain_text("Income band")
    income = page.get_by_test_id("fairness-income")
    expect(income).to_contain_text("Income band")
    expect(income.get_by_test_id("group-high")).to_be_visible()
    expect(income.get_by_test_id("group-low")).to_be_visible()
    # Income lines up with the region here: the same planted bias, judged and flagged.
    expect(page.get_by_test_id("breaches")).to_contain_text(
        "Income band, Model: Demographic parity (share called churn) difference 1.000"
    )
    page.screenshot(path=str(output_dir(request) / "fairness-income-marked.png"), full_page=True)
    assert ProtectedAttribute.objects.get().label == "Income band"
