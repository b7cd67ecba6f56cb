"""Queues that fit the team (reviews.services.capacity): a queue holds at most its policy's daily
capacity of items awaiting a decision; routing's lowest-priority overflow waits in a backlog,
neither auto-approved nor in the queue; it drains by priority as room frees; the admins are
told once per overflow episode; the pages say how much waits.

Every item here has the same confidence and member value, so its priority follows its churn
score alone: the scores name the items, and no test depends on database ids or row order."""

from dataclasses import replace
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from home.selectors import attention_for, capacity_health
from loyalty.models import AuditRecord
from reviews.exceptions import ReviewNotOpen
from reviews.models import Decision, EscalationPolicy, Notification, Review
from reviews.permissions import can_decide_review
from reviews.policy_settings import PolicySettings
from reviews.selectors.capacity import queue_loads
from reviews.selectors.policy import current_policy
from reviews.selectors.queue import overdue_analyst_items, pending_counts, pending_reviews_for
from reviews.services.capacity import WAITING_NOT_DECIDABLE, drain_backlog, hold_overflow
from reviews.services.decisions import approve_prediction, escalate_review
from reviews.services.policy import change_policy
from reviews.services.rerouting import reroute_undecided
from reviews.services.routing import route_new_predictions
from reviews.services.sla import escalate_overdue
from reviews.services.withdrawal import withdraw_pending_reviews
from reviews.tasks import drain_backlog_task
from tests.conftest import TEST_PASSWORD
from tests.factories import ModelVersionFactory, PredictionFactory
from tests.reviews.test_policy import _form
from tests.tokens import token_client

pytestmark = pytest.mark.django_db

# Routes follow from confidence alone: no audit sample, no risk band, equal member values.
UNLIMITED = PolicySettings(
    auto_approve_confidence=0.9,
    expert_confidence=0.5,
    expert_value_quantile=0.95,
    human_risk_low=None,
    human_risk_high=None,
    audit_sample_rate=0.0,
)
ANALYST_CONFIDENCE, EXPERT_CONFIDENCE = 0.8, 0.3
SLA = timedelta(hours=UNLIMITED.sla_hours)


def _policy(**capacities) -> EscalationPolicy:
    return change_policy(
        kind="churn",
        settings=replace(UNLIMITED, **capacities),
        actor=None,
        reason="capacity test policy",
    )


def _route(*scores: float, confidence: float = ANALYST_CONFIDENCE, member=None) -> dict:
    """Route one new churn prediction per score; {score: review}."""
    version = ModelVersionFactory()
    extra = {"member": member} if member is not None else {}
    predictions = {
        score: PredictionFactory(model_version=version, confidence=confidence, score=score, **extra)
        for score in scores
    }
    route_new_predictions(kind="churn")
    return {score: Review.objects.get(prediction=p) for score, p in predictions.items()}


def _queued(route: str = Review.Route.ANALYST) -> set[float]:
    return set(Review.objects.queued(route).values_list("prediction__score", flat=True))


def _waiting(route: str = Review.Route.ANALYST) -> set[float]:
    return set(Review.objects.backlogged(route).values_list("prediction__score", flat=True))


@pytest.fixture
def full_queue(reason_codes):
    """An analyst queue of capacity 2 given four items: 0.9 and 0.7 in it, 0.5 and 0.3 waiting."""
    _policy(analyst_daily_capacity=2)
    reviews = _route(0.9, 0.7, 0.5, 0.3)
    assert (_queued(), _waiting()) == ({0.9, 0.7}, {0.5, 0.3})
    return reviews


def _reloaded(review: Review) -> Review:
    return Review.objects.get(pk=review.pk)


# --- routing's overflow -----------------------------------------------------------------------


def test_without_a_capacity_routing_fills_the_queues_as_before(reason_codes):
    _policy()  # both capacities empty, the default
    before = timezone.now()

    reviews = _route(0.9, 0.7, 0.5, 0.3)

    assert _queued() == {0.9, 0.7, 0.5, 0.3} and _waiting() == set()
    for review in reviews.values():
        assert (review.state, review.in_backlog) == ("pending", False)
        assert review.due_at == review.routed_at + SLA and review.routed_at >= before
    assert hold_overflow(prediction_ids=[r.prediction_id for r in reviews.values()]) == []
    assert not Notification.objects.exists()


def test_the_lowest_priority_overflow_waits_in_the_backlog(full_queue):
    waiting = _reloaded(full_queue[0.5])
    assert (waiting.route, waiting.state, waiting.in_backlog) == ("analyst", "pending", True)
    assert waiting.due_at is None and waiting.is_waiting
    # Neither auto-approved nor in the queue: no decision, no queue row, no count.
    assert not Decision.objects.filter(review__in=full_queue.values()).exists()
    page = pending_reviews_for(route=Review.Route.ANALYST)
    assert [row.review_id for row in page.rows] == [full_queue[0.9].pk, full_queue[0.7].pk]
    assert pending_counts()["analyst"] == 2
    kept = _reloaded(full_queue[0.7])
    assert kept.due_at == kept.routed_at + SLA


def test_each_queue_has_its_own_capacity(reason_codes):
    _policy(analyst_daily_capacity=1, expert_daily_capacity=2)

    _route(0.8, 0.6, confidence=ANALYST_CONFIDENCE)
    _route(0.9, 0.7, 0.5, confidence=EXPERT_CONFIDENCE)

    assert (_queued("analyst"), _waiting("analyst")) == ({0.8}, {0.6})
    assert (_queued("expert"), _waiting("expert")) == ({0.9, 0.7}, {0.5})


def test_an_item_in_the_queue_stays_there_and_a_new_one_waits_for_room(full_queue):
    before = {score: _reloaded(review).due_at for score, review in full_queue.items()}

    newcomer = _route(0.95)[0.95]  # higher priority than anything queued, but the queue is full

    assert (_queued(), _waiting()) == ({0.9, 0.7}, {0.95, 0.5, 0.3})
    assert _reloaded(newcomer).due_at is None
    assert _reloaded(full_queue[0.9]).due_at == before[0.9]


def test_lowering_the_capacity_pushes_nothing_back(full_queue):
    _policy(analyst_daily_capacity=1)

    _route(0.1)
    drain_backlog()

    assert (_queued(), _waiting()) == ({0.9, 0.7}, {0.5, 0.3, 0.1})


def test_room_goes_to_the_highest_priority_new_or_waiting(full_queue, make_user):
    analyst = make_user("analyst")
    approve_prediction(
        review_id=full_queue[0.9].pk, actor=analyst, reason_code="model-correct"
    )  # one place free; the drain it queues on commit never runs in this test

    _route(0.6, 0.4)

    # 0.6 outranks every waiting item; 0.5 (waiting) would have outranked 0.4 (new).
    assert (_queued(), _waiting()) == ({0.7, 0.6}, {0.5, 0.4, 0.3})
    approve_prediction(review_id=full_queue[0.7].pk, actor=analyst, reason_code="model-correct")

    _route(0.45)

    assert (_queued(), _waiting()) == ({0.6, 0.5}, {0.45, 0.4, 0.3})


def test_a_case_counts_against_the_churn_policy_s_capacity(case_versions):
    from tests.reviews.test_cases import _analyst_case

    for kind, capacity in (("next_action", 5), ("churn", 1)):
        change_policy(
            kind=kind,
            settings=replace(
                PolicySettings.of(current_policy(kind)), analyst_daily_capacity=capacity
            ),
            actor=None,
            reason="one case at a time, whatever the next-action queue holds",
        )

    first = _analyst_case(case_versions, score=0.4)
    second = _analyst_case(case_versions, score=0.3)

    assert (first.is_case, _reloaded(first).in_backlog) == (True, False)
    assert (second.is_case, _reloaded(second).in_backlog) == (True, True)


# --- draining ---------------------------------------------------------------------------------


def test_a_decision_queues_a_drain_and_the_drain_admits_the_highest_waiting(
    full_queue, make_user, django_capture_on_commit_callbacks, monkeypatch
):
    drains = []
    monkeypatch.setattr(drain_backlog_task, "delay", lambda **kwargs: drains.append(kwargs))
    with django_capture_on_commit_callbacks(execute=True):
        approve_prediction(
            review_id=full_queue[0.9].pk, actor=make_user("analyst"), reason_code="model-correct"
        )
    assert drains == [{"kind": "churn", "route": "analyst"}]
    before = timezone.now()

    entered = drain_backlog()

    after = timezone.now()
    assert entered == {("churn", "analyst"): 1}
    assert (_queued(), _waiting()) == ({0.7, 0.5}, {0.3})
    admitted = _reloaded(full_queue[0.5])
    assert before <= admitted.routed_at <= after
    assert admitted.due_at == admitted.routed_at + SLA  # its SLA clock starts in the queue
    assert drain_backlog() == {}  # the queue is full again: nothing more moves


def test_an_escalation_frees_analyst_room_for_the_backlog(full_queue, make_user):
    escalate_review(
        review_id=full_queue[0.7].pk, actor=make_user("analyst"), reason_code="needs-expert"
    )

    drain_backlog()

    assert (_queued(), _waiting()) == ({0.9, 0.5}, {0.3})


def test_lifting_the_capacity_drains_the_whole_backlog(full_queue):
    _policy()

    assert drain_backlog() == {("churn", "analyst"): 2}
    assert (_queued(), _waiting()) == ({0.9, 0.7, 0.5, 0.3}, set())


def test_the_drain_task_is_on_beat_and_does_the_drain(full_queue):
    entry = settings.CELERY_BEAT_SCHEDULE["drain-backlog"]
    assert (entry["task"], entry["schedule"]) == (drain_backlog_task.name, 5 * 60.0)
    _policy(analyst_daily_capacity=3)

    assert drain_backlog_task.run(kind="churn", route="analyst") == 1
    assert drain_backlog_task.run() == 0
    assert (_queued(), _waiting()) == ({0.9, 0.7, 0.5}, {0.3})


# --- what a waiting item is (and is not) ------------------------------------------------------


@pytest.mark.parametrize("role", ["analyst", "expert"])
def test_nobody_decides_a_waiting_item(full_queue, make_user, role):
    person = make_user(role)
    waiting = _reloaded(full_queue[0.5])

    with pytest.raises(ReviewNotOpen) as approving:
        approve_prediction(review_id=waiting.pk, actor=person, reason_code="model-correct")
    with pytest.raises(ReviewNotOpen) as escalating:
        escalate_review(review_id=waiting.pk, actor=person, reason_code="needs-expert")

    assert approving.value.message == escalating.value.message == WAITING_NOT_DECIDABLE
    assert not can_decide_review(person, waiting)
    assert not Decision.objects.filter(review=waiting).exists()
    assert _reloaded(waiting).route == "analyst" and _reloaded(waiting).is_waiting


def test_the_api_answers_409_for_a_waiting_item_and_lists_it_as_waiting(full_queue, make_user):
    client = token_client(make_user("analyst"))
    waiting = full_queue[0.5]

    response = client.post(
        f"/api/reviews/{waiting.pk}/approve/", {"reason_code": "model-correct"}, format="json"
    )

    assert response.status_code == 409
    assert WAITING_NOT_DECIDABLE in response.content.decode()
    assert not Decision.objects.filter(review=waiting).exists()
    listed = client.get("/api/reviews/", {"route": "analyst", "in_backlog": "true"}).json()
    assert {item["id"] for item in listed["results"]} == {
        full_queue[0.5].pk,
        full_queue[0.3].pk,
    }
    assert all(item["in_backlog"] and item["due_at"] is None for item in listed["results"])


def test_the_member_page_says_the_item_waits_and_offers_no_decision(full_queue, client, make_user):
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    page = client.get(reverse("reviews:review", args=[full_queue[0.5].pk])).content.decode()

    assert "Waiting in the backlog" in page
    assert 'data-testid="decide"' not in page


def test_no_sla_clock_runs_for_a_waiting_item(full_queue):
    # Even a due time left on it (as a re-routing before capacities might have) is ignored.
    Review.objects.filter(pk=full_queue[0.5].pk).update(due_at=timezone.now() - SLA)
    later = timezone.now() + 2 * SLA

    assert set(overdue_analyst_items(now=later).values_list("prediction__score", flat=True)) == {
        0.9,
        0.7,
    }
    assert escalate_overdue(now=later).escalated == 2
    assert (_queued("expert"), _waiting("analyst")) == ({0.9, 0.7}, {0.5, 0.3})


def test_a_newer_prediction_supersedes_a_waiting_item(full_queue):
    waiting = full_queue[0.3]

    rescored = _route(0.2, member=waiting.member)[0.2]

    assert _reloaded(waiting).state == Review.State.SUPERSEDED
    assert _reloaded(rescored).is_waiting  # the re-score waits in its turn
    assert _waiting() == {0.5, 0.2}


def test_a_withdrawal_withdraws_a_waiting_item(full_queue):
    waiting = full_queue[0.5]

    withdrawn = withdraw_pending_reviews(member_ids=[waiting.member_id], why="consent withdrawn")

    assert withdrawn == 1
    assert _reloaded(waiting).state == Review.State.WITHDRAWN
    assert _waiting() == {0.3}


def test_rerouting_keeps_a_waiting_item_waiting_unless_it_is_now_auto_approved(full_queue):
    # A new expert threshold moves nobody: the waiting items stay waiting, with no due time.
    _policy(analyst_daily_capacity=2, expert_confidence=0.2)
    reroute_undecided(kind="churn")
    assert _waiting() == {0.5, 0.3}
    assert _reloaded(full_queue[0.5]).due_at is None

    _policy(analyst_daily_capacity=2, auto_approve_confidence=0.75, expert_confidence=0.2)
    reroute_undecided(kind="churn")

    everything = _reloaded(full_queue[0.5])
    assert (everything.state, everything.in_backlog) == ("auto_approved", False)
    assert _waiting() == set()


# --- telling the admins ------------------------------------------------------------------------


def test_admins_are_told_once_per_overflow_episode(reason_codes, make_user):
    admin, analyst = make_user("admin"), make_user("analyst")
    _policy(analyst_daily_capacity=1)

    _route(0.9, 0.7)
    _route(0.5)  # the backlog exists already: no second notification

    note = Notification.objects.get()
    assert note.recipient == admin
    assert note.subject == "Routing sent items to the backlog: a queue is at capacity"
    assert note.body.startswith(
        "Churn risk, analyst queue: 1 item beyond its capacity of 1 a day. They wait in the "
        "backlog, neither auto-approved nor in the queue"
    )
    assert note.link == reverse("reviews:policy", args=["churn"])
    assert not Notification.objects.filter(recipient=analyst).exists()

    _policy()
    drain_backlog()  # the episode ends with an empty backlog
    _policy(analyst_daily_capacity=3)
    _route(0.4)

    assert Notification.objects.filter(recipient=admin).count() == 2


# --- the pages ---------------------------------------------------------------------------------


def test_the_queue_page_says_how_much_waits(full_queue, client, make_user):
    client.login(username=make_user("analyst").username, password=TEST_PASSWORD)

    page = client.get(reverse("reviews:queue")).content.decode()

    assert (
        "2 more items wait in the backlog (capacity 2 a day, churn risk policy): they enter "
        "the queue by priority as items here are decided." in page
    )
    assert full_queue[0.5].member.external_id not in page
    assert full_queue[0.9].member.external_id in page


def test_the_expert_queue_page_says_nothing_when_nothing_waits(full_queue, client, make_user):
    client.login(username=make_user("expert").username, password=TEST_PASSWORD)

    page = client.get(reverse("reviews:expert_queue")).content.decode()

    assert 'data-testid="queue-backlog"' not in page


def test_the_home_page_shows_each_backlog_and_links_to_the_policy(full_queue, client, make_user):
    health = capacity_health()

    assert (health.level, health.word) == ("warn", "backlog")
    assert health.sentences == (
        "Churn risk, analyst queue: 2 items wait in the backlog (2 in the queue, capacity "
        "2 a day).",
    )
    assert [link.url for link in health.links] == [reverse("reviews:policy", args=["churn"])]
    analyst_queue = attention_for(make_user("analyst")).queues[0]
    assert (analyst_queue.count, analyst_queue.waiting) == (2, 2)
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    page = client.get(reverse("home")).content.decode()
    assert 'data-testid="health-capacity"' in page
    assert "+ 2 waiting in its backlog" in page


def test_the_home_page_says_no_queue_has_a_capacity(reason_codes):
    health = capacity_health()

    assert (health.level, health.word, health.sentences) == (
        "ok",
        "no limit",
        ("No queue has a daily capacity: routing puts every item for people in its queue.",),
    )


# --- the policy page ---------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, make_user):
    client.login(username=make_user("admin").username, password=TEST_PASSWORD)
    return client


def test_an_admin_sets_the_capacities_and_the_page_shows_the_backlog(full_queue, admin_client):
    data = _form(replace(UNLIMITED, analyst_daily_capacity=150), reason="team of three")

    response = admin_client.post(reverse("reviews:policy", args=["churn"]), data)

    assert response.status_code == 302
    policy = EscalationPolicy.objects.filter(kind="churn").order_by("-version").first()
    assert (policy.analyst_daily_capacity, policy.expert_daily_capacity) == (150, None)
    audit = AuditRecord.objects.filter(kind="policy_change").order_by("-pk").first()
    assert audit.details["before"]["analyst_daily_capacity"] == 2
    assert audit.details["after"]["analyst_daily_capacity"] == 150
    page = admin_client.get(reverse("reviews:policy", args=["churn"])).content.decode()
    assert "Analyst queue now: 2 in the queue (150 a day), <strong>2 waiting in the backlog" in page
    assert "analyst 150" in page  # the version history


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("0", "A capacity is at least 1 item a day; leave it empty for no limit."),
        ("-5", "A capacity is at least 1 item a day; leave it empty for no limit."),
        ("2.5", "Enter a whole number of items, at least 1, or leave it empty for no limit."),
        ("lots", "Enter a whole number of items, at least 1, or leave it empty for no limit."),
    ],
)
def test_the_policy_form_refuses_a_bad_capacity_and_changes_nothing(
    full_queue, admin_client, value, error
):
    versions, audits = EscalationPolicy.objects.count(), AuditRecord.objects.count()
    data = {**_form(UNLIMITED, reason="typo"), "expert_daily_capacity": value}

    response = admin_client.post(reverse("reviews:policy", args=["churn"]), data)

    assert response.status_code == 400
    assert response.context["form"].errors["expert_daily_capacity"] == [error]
    assert error in response.content.decode()
    assert (EscalationPolicy.objects.count(), AuditRecord.objects.count()) == (versions, audits)


@pytest.mark.parametrize("role", ["analyst", "expert"])
def test_only_an_admin_changes_a_capacity(full_queue, client, make_user, role):
    client.login(username=make_user(role).username, password=TEST_PASSWORD)
    versions = EscalationPolicy.objects.count()
    data = _form(replace(UNLIMITED, analyst_daily_capacity=500), reason="more room")

    response = client.post(reverse("reviews:policy", args=["churn"]), data)

    assert response.status_code == 403
    assert EscalationPolicy.objects.count() == versions
    assert [load.capacity for load in queue_loads(kinds=("churn",))] == [2, None]


# --- the worker ----------------------------------------------------------------------------------

WORKER_DEADLINE_S = 60


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_decision_lets_the_worker_admit_the_next_waiting_item(make_user, celery_worker):
    import time

    from reviews.services.reason_codes import seed_reason_codes

    seed_reason_codes()
    _policy(analyst_daily_capacity=2)
    reviews = _route(0.9, 0.7, 0.5, 0.3)

    approve_prediction(
        review_id=reviews[0.9].pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    deadline = time.monotonic() + WORKER_DEADLINE_S
    while _queued() != {0.7, 0.5} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (_queued(), _waiting()) == ({0.7, 0.5}, {0.3})
