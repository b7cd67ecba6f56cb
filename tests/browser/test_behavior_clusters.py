"""Segments and behavioral clusters in chromium: an analyst reads each member's RFM segment
and cluster in the queue, narrows the queue to one cluster, and finds it on the member page."""

from dataclasses import replace

import pytest
from playwright.sync_api import expect

from loyalty.services.users import create_demo_users
from predictions.ml.clusters import fit_clusters
from predictions.models import ModelVersion
from reviews.models import Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.reason_codes import seed_reason_codes
from reviews.services.routing import route_new_predictions
from tests.clusters import planted_population
from tests.conftest import output_dir
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _queue() -> tuple[ModelVersion, dict[str, Review]]:
    """Three members for the analysts: a champion in cluster 1, two at risk in cluster 3."""
    seed_reason_codes()
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn",
        settings=replace(
            settings,
            auto_approve_confidence=0.99,
            expert_confidence=0.1,
            expert_value_quantile=0.999,
            blind_share=0.0,
            audit_sample_rate=0.0,
            human_risk_low=None,
            human_risk_high=None,
        ),
        actor=None,
        reason="everything to the analysts",
    )
    clustering = fit_clusters(planted_population()[0])
    version = ModelVersionFactory(
        status=ModelVersion.Status.ACTIVE, metrics={"behavior_clusters": clustering.to_json()}
    )
    made = {}
    for name, segment, cluster in (
        ("champion", "champions", 1),
        ("slipping", "at_risk", 3),
        ("fading", "at_risk", 3),
    ):
        member = MemberFactory(external_id=f"M-{name}")
        EventFactory.create_batch(3, member=member)
        made[name] = PredictionFactory(
            member=member,
            model_version=version,
            rfm_segment=segment,
            behavior_cluster=cluster,
            confidence=0.7,
        )
    route_new_predictions(kind="churn")
    return version, {name: Review.objects.get(prediction=p) for name, p in made.items()}


def test_an_analyst_filters_the_queue_by_cluster_and_reads_it_on_the_member_page(
    live_server, page, log_in, request
):
    create_demo_users()
    version, reviews = _queue()
    log_in(page, "analyst", "analyst-demo")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/reviews/")
    champion = page.locator(f"#review-row-{reviews['champion'].pk}")
    expect(champion.get_by_test_id("rfm-segment")).to_have_text("Champions")
    expect(champion.get_by_test_id("behavior-cluster")).to_contain_text("Cluster 1: ")
    page.screenshot(path=str(output_dir(request) / "queue-with-clusters.png"), full_page=True)

    options = page.get_by_test_id("cluster-filter").locator("option")
    expect(options.filter(has_text=f"v{version.pk} · Cluster 3: ")).to_have_count(1)
    page.get_by_test_id("cluster-filter").select_option(f"{version.pk}-3")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_url(f"**/reviews/?**cluster={version.pk}-3**")
    rows = page.locator("tr.queue-row")
    expect(rows).to_have_count(2)
    expect(rows.get_by_test_id("behavior-cluster")).to_have_count(2)
    expect(page.locator(f"#review-row-{reviews['champion'].pk}")).to_have_count(0)
    page.screenshot(path=str(output_dir(request) / "queue-filtered-by-cluster.png"), full_page=True)

    page.locator(f"#review-row-{reviews['slipping'].pk} a.member").click()
    page.wait_for_url(f"{live_server.url}/reviews/{reviews['slipping'].pk}/")
    facts = page.locator("dl")
    expect(facts).to_contain_text("RFM segment")
    expect(facts).to_contain_text("At risk")
    expect(facts).to_contain_text("Behavior cluster")
    expect(facts).to_contain_text("Cluster 3: ")
    page.screenshot(path=str(output_dir(request) / "member-with-cluster.png"), full_page=True)
    assert errors == []
