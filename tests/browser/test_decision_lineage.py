"""An admin follows a decision from the delivery log to its lineage in chromium, reads its
story (member, window, model, people, deliveries) under the Content-Security-Policy, and
downloads the auditors' export; an analyst asking for the same expert decision gets a 404."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import Delivery
from integrations.services.delivery import fan_out
from integrations.services.endpoints import create_endpoint
from loyalty.services.users import create_demo_users
from reviews.models import Review
from reviews.services.decisions import escalate_review, override_prediction
from reviews.services.openings import record_opening
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.browser.test_content_security_policy import PageWatch
from tests.browser.test_integrations_pages import RECEIVER
from tests.browser.test_review_flow import EXPLANATION
from tests.conftest import output_dir
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FINGERPRINT = "ab" * 32


def _escalated_and_overridden():
    """A churn item an analyst escalated and an expert overrode, its event delivered."""
    from django.contrib.auth import get_user_model

    users = {user.username: user for user in get_user_model().objects.all()}
    member = MemberFactory(external_id="M-LINEAGE-7")
    EventFactory.create_batch(4, member=member)
    version = ModelVersionFactory(
        data_fingerprint=FINGERPRINT, artifact_checksums={"churn.ubj": "cd" * 32}
    )
    prediction = PredictionFactory(
        member=member,
        model_version=version,
        confidence=0.7,
        score=0.48,
        explanation=EXPLANATION,
        cutoff=datetime(2025, 3, 1, tzinfo=UTC),
    )
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)
    Review.objects.filter(pk=review.pk).update(is_blind=False)  # a blind draw is by id
    create_endpoint(actor=None, url=RECEIVER)
    record_opening(review=review, user=users["analyst"])
    escalate_review(review_id=review.pk, actor=users["analyst"], reason_code="needs-expert")
    decision = override_prediction(
        review_id=review.pk,
        actor=users["expert"],
        reason_code="wrong-churn-call",
        churn_label=False,
    )
    fan_out()
    Delivery.objects.update(status=Delivery.Status.DELIVERED, attempts=1, last_status_code=200)
    return decision


def test_admin_reads_a_decisions_lineage_and_exports_it(live_server, page, log_in, request):
    create_demo_users()
    seed_reason_codes()
    decision = _escalated_and_overridden()
    watch = PageWatch(page, live_server, output_dir(request))

    log_in(page, "admin", "admin-demo")
    watch.open("/integrations/deliveries/")
    page.get_by_test_id("lineage-link").first.click()
    page.wait_for_load_state("networkidle")

    expect(
        page.get_by_role("heading", name=f"Decision {decision.pk}: the whole story")
    ).to_be_visible()
    expect(page.get_by_test_id("lineage-member")).to_have_text("M-LINEAGE-7")
    expect(page.get_by_test_id("lineage-window")).to_contain_text("4 events of the member")
    expect(page.get_by_test_id("lineage-model")).to_contain_text(FINGERPRINT)
    people = page.get_by_test_id("lineage-people").locator("tbody tr")
    expect(people).to_have_count(3)
    expect(people.nth(0)).to_contain_text("opened")
    expect(people.nth(1)).to_contain_text("escalated")
    expect(people.nth(2)).to_contain_text("expert")
    expect(page.get_by_test_id("lineage-rule")).to_contain_text("escalated by analyst")
    expect(page.get_by_test_id("lineage-events-out")).to_contain_text(RECEIVER)
    expect(page.get_by_test_id("lineage-explanation").locator("tbody tr")).to_have_count(6)
    watch.done("lineage")

    # The auditors' export, from the decision export page.
    watch.open("/integrations/export/decisions/")
    page.get_by_test_id("lineage-export-link").click()
    page.wait_for_load_state("networkidle")
    day = timezone.localdate(decision.decided_at)
    page.fill("#id_start", str(day))
    page.fill("#id_end", str(day + timedelta(days=1)))
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    lines = open(download.value.path()).read().splitlines()
    assert [json.loads(line)["decision_id"] for line in lines] == [decision.pk]
    watch.done("lineage-export")
    assert watch.console_errors == []
    page.get_by_role("button", name="Log out").click()

    # The analyst no longer sees the item an expert decided: as good as no such decision.
    log_in(page, "analyst", "analyst-demo")
    response = page.goto(f"{live_server.url}/integrations/decisions/{decision.pk}/lineage/")
    assert response is not None and response.status == 404
