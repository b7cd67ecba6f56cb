"""The home page: each role's queues and the items nearest their SLA, the admins' system health,
and the program's counts. Selectors take `now` so that every wait reads exactly."""

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from home.selectors import (
    Link,
    QueueCount,
    WaitingItem,
    attention_for,
    system_health,
)
from integrations.models import Delivery, WebhookEndpoint
from integrations.services.endpoints import create_endpoint
from learning.models import RetrainingRun
from loyalty.models import Member, OutboxEvent, WorkerHeartbeat
from predictions.models import ScoringRun
from reviews.models import AutomationPause, Review
from reviews.policy_settings import PolicySettings
from reviews.selectors.policy import current_policy
from reviews.services.policy import change_policy
from reviews.services.routing import awaiting_routing, route_new_predictions
from tests.conftest import TEST_PASSWORD
from tests.factories import EventFactory, MemberFactory, ModelVersionFactory, PredictionFactory

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 3, 1, tzinfo=UTC)


def _page(client, user) -> str:
    client.login(username=user.username, password=TEST_PASSWORD)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def _link(review: Review) -> str:
    return f'href="{reverse("reviews:review", args=[review.pk])}"'


def _another_analyst_review(version) -> Review:
    prediction = PredictionFactory(model_version=version, confidence=0.8, score=0.3)
    route_new_predictions(kind="churn")
    review = Review.objects.get(prediction=prediction)
    assert review.route == Review.Route.ANALYST
    return review


def _health(**kwargs) -> dict:
    return {item.key: item for item in system_health(now=NOW, **kwargs)}


# --- pages and roles ---------------------------------------------------------------------------


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get(reverse("home"))

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/"


@pytest.mark.parametrize("role", ["analyst", "expert", "admin"])
def test_each_role_sees_the_program_counts(client, make_user, role):
    user = make_user(role)
    MemberFactory.create_batch(2)
    MemberFactory(consent_profiling=False)
    EventFactory.create_batch(3)  # three more members, consenting

    client.login(username=user.username, password=TEST_PASSWORD)
    response = client.get(reverse("home"))

    assert response.status_code == 200
    overview = response.context["overview"]
    assert (overview.members, overview.consenting_members, overview.events) == (6, 5, 3)
    assert response.context["current_role"] == role


def test_only_admins_see_the_audit_trail(client, make_user):
    assert "Recent audit records" not in _page(client, make_user("analyst"))
    assert "Recent audit records" in _page(client, make_user("admin"))


def test_an_analyst_sees_their_queue_nearest_the_sla_first_and_no_expert_item(
    client, make_user, routed
):
    analyst = make_user("analyst")
    later = routed["analyst"]
    overdue = _another_analyst_review(later.prediction.model_version)
    erased = _another_analyst_review(later.prediction.model_version)
    Review.objects.filter(pk=later.pk).update(due_at=NOW + timedelta(hours=5))
    Review.objects.filter(pk=overdue.pk).update(due_at=NOW - timedelta(hours=2))
    Review.objects.filter(pk=erased.pk).update(due_at=NOW - timedelta(hours=10))
    Member.objects.filter(pk=erased.member_id).update(erased_at=NOW)

    attention = attention_for(analyst, now=NOW)

    assert attention.queues == (
        QueueCount(
            route="analyst", label="analyst queue", count=2, count_label="2", url="/reviews/"
        ),
    )
    assert attention.nearest_sla == (
        WaitingItem(
            review_id=overdue.pk,
            member=overdue.member.external_id,
            kind_label="Churn risk",
            when="overdue by 2 h",
            is_overdue=True,
            url=f"/reviews/{overdue.pk}/",
        ),
        WaitingItem(
            review_id=later.pk,
            member=later.member.external_id,
            kind_label="Churn risk",
            when="due in 5 h",
            is_overdue=False,
            url=f"/reviews/{later.pk}/",
        ),
    )
    assert attention.oldest_escalated == ()
    page = _page(client, analyst)
    assert 'data-testid="attention-queues"' in page
    assert 'data-testid="sla-analyst"' in page
    assert _link(overdue) in page and _link(later) in page
    assert _link(routed["expert"]) not in page and _link(erased) not in page
    assert 'data-testid="sla-expert"' not in page
    assert 'data-testid="system-health"' not in page


def test_an_expert_sees_both_queues_and_the_longest_waiting_expert_items(client, make_user, routed):
    expert = make_user("expert")
    Review.objects.filter(pk=routed["expert"].pk).update(routed_at=NOW - timedelta(hours=3))

    attention = attention_for(expert, now=NOW)

    assert [(queue.route, queue.count, queue.url) for queue in attention.queues] == [
        ("analyst", 1, "/reviews/"),
        ("expert", 1, "/reviews/expert/"),
    ]
    assert attention.oldest_escalated == (
        WaitingItem(
            review_id=routed["expert"].pk,
            member=routed["expert"].member.external_id,
            kind_label="Churn risk",
            when="waiting 3 h",
            is_overdue=False,
            url=f"/reviews/{routed['expert'].pk}/",
        ),
    )
    assert [item.review_id for item in attention.nearest_sla] == [routed["analyst"].pk]
    page = _page(client, expert)
    assert _link(routed["expert"]) in page and _link(routed["analyst"]) in page
    assert 'href="/reviews/expert/"' in page
    assert 'data-testid="system-health"' not in page


def test_an_admin_reads_both_queues_without_a_link_to_queues_they_may_not_work(make_user, routed):
    attention = attention_for(make_user("admin"), now=NOW)

    assert [(queue.route, queue.count, queue.url) for queue in attention.queues] == [
        ("analyst", 1, ""),
        ("expert", 1, ""),
    ]
    assert [item.review_id for item in attention.oldest_escalated] == [routed["expert"].pk]


def test_an_integrator_sees_no_queue_and_no_health(client, make_user, routed):
    integrator = make_user("integrator")

    assert attention_for(integrator, now=NOW).queues == ()
    page = _page(client, integrator)
    assert 'data-testid="attention-queues"' not in page
    assert 'data-testid="system-health"' not in page


def test_an_admin_sees_every_health_item_with_its_link(client, make_user):
    page = _page(client, make_user("admin"))

    for key in ("worker", "scoring", "retraining", "outbox", "pause", "routing"):
        assert f'data-testid="health-{key}"' in page
    assert "start one: <code>make run</code> starts a worker and beat" in page
    assert f'href="{reverse("learning:loop")}"' in page
    assert f'href="{reverse("integrations:webhooks")}"' in page


# --- system health -----------------------------------------------------------------------------


def test_worker_heartbeat_never_stale_and_fresh():
    never = _health()["worker"]
    assert (never.level, never.word, never.sentences) == (
        "bad",
        "never",
        ("No worker has reported yet (start one: `make run` starts a worker and beat).",),
    )
    assert never.links == (Link("Periodic tasks", "/admin/django_celery_beat/periodictask/"),)

    beat = WorkerHeartbeat.objects.create(hostname="worker-1")
    WorkerHeartbeat.objects.filter(pk=beat.pk).update(beat_at=NOW - timedelta(minutes=10))
    stale = _health()["worker"]
    assert (stale.level, stale.word, stale.sentences) == (
        "warn",
        "stale",
        (
            "The last heartbeat was 10 min ago: the worker or beat has stopped "
            "(`make run` starts both).",
        ),
    )

    WorkerHeartbeat.objects.filter(pk=beat.pk).update(beat_at=NOW - timedelta(seconds=30))
    fresh = _health()["worker"]
    assert (fresh.level, fresh.word, fresh.sentences) == (
        "ok",
        "fresh",
        ("A worker reported less than a minute ago.",),
    )


def test_the_last_scoring_run_of_each_kind_a_failure_first():
    version = ModelVersionFactory()
    done = ScoringRun.objects.create(
        model_version=version,
        cutoff=CUTOFF,
        chunk_size=100,
        status=ScoringRun.Status.DONE,
        members_total=300,
        members_scored=300,
        finished_at=NOW - timedelta(days=1),
    )
    failed = ScoringRun.objects.create(
        model_version=version,
        cutoff=CUTOFF,
        chunk_size=100,
        status=ScoringRun.Status.FAILED,
        members_total=300,
        members_scored=120,
        error="Worker lost while scoring chunk 2\nTraceback (most recent call last): ...",
        finished_at=NOW - timedelta(hours=2),
    )
    ScoringRun.objects.filter(pk=done.pk).update(created_at=NOW - timedelta(days=1, hours=1))
    ScoringRun.objects.filter(pk=failed.pk).update(created_at=NOW - timedelta(hours=3))

    scoring = _health()["scoring"]

    assert (scoring.level, scoring.word, scoring.sentences) == (
        "bad",
        "failed",
        (
            "Churn risk: failed 2 h ago (120 of 300 members): Worker lost while scoring chunk 2",
            "Next best action: not scored yet.",
        ),
    )
    assert scoring.links == (Link("Scoring runs", "/admin/predictions/scoringrun/"),)


def test_the_last_retraining_run_of_each_kind_and_its_verdict():
    RetrainingRun.objects.create(
        kind="churn",
        trigger=RetrainingRun.Trigger.SCHEDULE,
        status=RetrainingRun.Status.SUCCEEDED,
        verdict=RetrainingRun.Verdict.AWAITING_APPROVAL,
        started_at=NOW - timedelta(hours=2),
        finished_at=NOW - timedelta(hours=1),
    )

    waiting = _health()["retraining"]
    assert (waiting.level, waiting.word, waiting.sentences) == (
        "warn",
        "awaiting approval",
        (
            "Churn risk: finished 1 h ago; passed the gate, waiting for an admin.",
            "Next best action: not retrained yet.",
        ),
    )
    assert waiting.links == (Link("Learning loop", reverse("learning:loop")),)

    RetrainingRun.objects.create(
        kind="next_action",
        trigger=RetrainingRun.Trigger.MANUAL,
        status=RetrainingRun.Status.FAILED,
        error="Too few labeled examples: 12",
        finished_at=NOW - timedelta(minutes=30),
    )
    failed = _health()["retraining"]
    assert (failed.level, failed.word, failed.sentences[1]) == (
        "bad",
        "failed",
        "Next best action: failed 30 min ago: Too few labeled examples: 12",
    )


def test_an_open_automation_pause_links_to_its_kinds_policy():
    assert _health()["pause"].level == "ok"
    pause = AutomationPause.objects.create(
        kind="churn", reason="calibration error 0.14 is above 0.10"
    )
    AutomationPause.objects.filter(pk=pause.pk).update(paused_at=NOW - timedelta(hours=3))

    paused = _health()["pause"]

    assert (paused.level, paused.word, paused.sentences) == (
        "warn",
        "paused",
        (
            "Churn risk: paused for 3 h: calibration error 0.14 is above 0.10. "
            "Every new prediction goes to people.",
        ),
    )
    assert paused.links == (
        Link("Churn risk thresholds", reverse("reviews:policy", args=["churn"])),
    )


def _pending_delivery(endpoint, *, waited: timedelta, status=Delivery.Status.PENDING) -> Delivery:
    event = OutboxEvent.objects.create(
        event_id=uuid.uuid4(), type="decision.created", data={}, created_at=NOW
    )
    delivery = Delivery.objects.create(event=event, endpoint=endpoint, status=status)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=NOW - waited)
    return delivery


def test_the_outbox_backlog_and_the_failing_endpoints():
    assert _health()["outbox"].sentences == ("Nothing waits to be delivered.",)
    failing = create_endpoint(actor=None, url="https://crm.example.com/hooks").endpoint
    disabled = create_endpoint(actor=None, url="https://bi.example.org/in").endpoint
    WebhookEndpoint.objects.filter(pk=failing.pk).update(failing_since=NOW - timedelta(minutes=90))
    WebhookEndpoint.objects.filter(pk=disabled.pk).update(
        is_enabled=False, disabled_reason="Gave up after 27 hours of failures"
    )
    _pending_delivery(failing, waited=timedelta(minutes=20))
    _pending_delivery(disabled, waited=timedelta(minutes=5))
    _pending_delivery(failing, waited=timedelta(days=1), status=Delivery.Status.DELIVERED)

    outbox = _health()["outbox"]

    assert (outbox.level, outbox.word, outbox.sentences) == (
        "bad",
        "failing",
        (
            "2 deliveries pending, the oldest for 20 min.",
            "crm.example.com has failed for 1 h.",
            "bi.example.org is disabled: Gave up after 27 hours of failures.",
        ),
    )
    assert outbox.links == (
        Link("Pending deliveries", reverse("integrations:deliveries") + "?status=pending"),
        Link("Webhooks", reverse("integrations:webhooks")),
    )


def _unrouted(kind: str, *, waited: timedelta, version=None):
    prediction = PredictionFactory(
        kind=kind,
        model_version=version or ModelVersionFactory(kind=kind),
        probabilities={"bonus_points": 1.0} if kind == "next_action" else None,
    )
    type(prediction).objects.filter(pk=prediction.pk).update(scored_at=NOW - waited)
    return prediction


def test_without_cases_an_unrouted_prediction_of_either_kind_waits():
    churn = _unrouted("churn", waited=timedelta(minutes=2))
    action = _unrouted("next_action", waited=timedelta(minutes=20))

    assert sorted(awaiting_routing().values_list("pk", flat=True)) == sorted([churn.pk, action.pk])
    routing = _health()["routing"]
    assert (routing.level, routing.word, routing.sentences) == (
        "warn",
        "behind",
        (
            "2 predictions wait to be routed, the oldest for 20 min "
            "(`manage.py route_predictions` routes them now).",
        ),
    )


def test_while_cases_are_in_force_only_churn_predictions_wait():
    versions = {
        kind: ModelVersionFactory(kind=kind, status="active") for kind in ("churn", "next_action")
    }
    churn = _unrouted("churn", waited=timedelta(minutes=2), version=versions["churn"])
    _unrouted("next_action", waited=timedelta(minutes=20), version=versions["next_action"])

    assert list(awaiting_routing()) == [churn]
    routing = _health()["routing"]
    assert (routing.level, routing.word, routing.sentences) == (
        "ok",
        "routing",
        (
            "1 prediction waits to be routed, the oldest for 2 min "
            "(`manage.py route_predictions` routes them now).",
        ),
    )


def test_reviews_awaiting_rerouting_after_a_policy_change(routed):
    settings = PolicySettings.of(current_policy("churn"))
    change_policy(
        kind="churn", settings=replace(settings, sla_hours=24), actor=None, reason="faster"
    )  # the re-routing task is queued on commit, which this test never reaches

    routing = _health()["routing"]

    assert routing.sentences == (
        "Every prediction has its review.",
        "Churn risk: 2 undecided reviews wait to be re-routed under the current policy.",
    )
    assert routing.links == (
        Link("Churn risk thresholds", reverse("reviews:policy", args=["churn"])),
    )


def test_a_finished_run_says_whether_it_refreshed_a_few_members_and_its_data_s_end():
    version = ModelVersionFactory()
    ScoringRun.objects.create(
        model_version=version,
        cutoff=CUTOFF,
        scope=ScoringRun.Scope.REFRESH,
        chunk_size=100,
        status=ScoringRun.Status.DONE,
        members_total=12,
        members_scored=12,
        finished_at=NOW - timedelta(hours=5),
    )

    scoring = _health()["scoring"]

    assert scoring.sentences[0] == (
        "Churn risk: refresh done 5 h ago, 12 of 12 members scored "
        f"on data before {CUTOFF:%Y-%m-%d}."
    )
