"""An admin tests new thresholds against the version in force in chromium: from the policy page
to the test page, starts the test, reads the readout, ends it by adopting the challenger."""

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from reviews.models import PolicyExperiment
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from tests.conftest import output_dir

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_starts_a_policy_test_reads_it_and_adopts_the_challenger(
    live_server, page, log_in, request
):
    create_demo_users()
    change_policy(
        kind="churn",
        settings=PolicySettings(audit_sample_rate=0.0, blind_share=0.0),
        actor=None,
        reason="Launch thresholds",
    )
    log_in(page, "admin", "admin-demo")

    page.goto(f"{live_server.url}/reviews/manage/policy/churn/")
    page.get_by_test_id("policy-test-link").get_by_role("link").click()
    expect(page.get_by_test_id("policy-test-start")).to_be_visible()
    expect(page.locator("#id_auto_approve_confidence")).to_have_value("0.9")
    page.fill("#id_auto_approve_confidence", "0.8")
    page.fill("#id_challenger_share", "0.3")
    page.fill("#id_days", "14")
    page.fill("#id_hypothesis", "Auto-approving from 0.8 sends fewer items to people.")
    page.get_by_role("button", name="Start the test").click()
    page.wait_for_load_state("networkidle")

    expect(page.locator(".messages li.success")).to_contain_text("started")
    expect(page.get_by_test_id("policy-test-state")).to_contain_text("Collecting")
    expect(page.get_by_test_id("policy-test-readout")).to_contain_text("Items to people")
    expect(page.get_by_test_id("readout-plan")).to_contain_text("no outcomes are known yet")
    page.screenshot(path=str(output_dir(request) / "policy-test-running.png"), full_page=True)
    test = PolicyExperiment.objects.get()
    assert (test.challenger.auto_approve_confidence, test.challenger_share) == (0.8, 0.3)

    page.goto(f"{live_server.url}/reviews/manage/policy/churn/")
    expect(page.get_by_test_id("policy-test-running")).to_contain_text("A policy test runs")
    expect(page.get_by_role("button", name="Save as version 3")).to_be_disabled()
    page.get_by_test_id("policy-test-running").get_by_role("link").click()

    page.get_by_label("Challenger").check()
    page.fill("#id_reason", "Fewer items, no more errors")
    page.get_by_role("button", name="End the test and adopt").click()
    page.wait_for_load_state("networkidle")

    expect(page.locator(".messages li.success")).to_contain_text("ended")
    expect(page.get_by_test_id("policy-test-start")).to_be_visible()
    page.screenshot(path=str(output_dir(request) / "policy-test-ended.png"), full_page=True)
    test.refresh_from_db()
    assert current_policy("churn") == test.adopted
    assert test.adopted.auto_approve_confidence == 0.8
