"""Analyst items past their SLA move to the experts, exactly those, and the experts are told."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from loyalty.models import AuditRecord
from reviews.models import Notification, Review
from reviews.services.decisions import approve_prediction
from reviews.services.routing import route_new_predictions
from reviews.services.sla import escalate_overdue
from tests.factories import PredictionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def analyst_items(reason_codes):
    """Four analyst items routed now (SLA 48 h by the default policy)."""
    for _ in range(4):
        PredictionFactory(confidence=0.8, score=0.3)
    route_new_predictions(kind="churn")
    items = list(Review.objects.filter(route="analyst").order_by("pk"))
    assert len(items) == 4
    return items


def test_only_overdue_pending_analyst_items_escalate(analyst_items, make_user):
    overdue, decided, fresh, almost = analyst_items
    now = timezone.now()
    Review.objects.filter(pk__in=[overdue.pk, decided.pk]).update(due_at=now - timedelta(hours=1))
    Review.objects.filter(pk=almost.pk).update(due_at=now + timedelta(minutes=1))
    approve_prediction(
        review_id=decided.pk, actor=make_user("analyst"), reason_code="model-correct"
    )

    result = escalate_overdue(now=now)

    assert result.escalated == 1
    routes = dict(Review.objects.values_list("pk", "route"))
    assert routes == {
        overdue.pk: "expert",
        decided.pk: "analyst",
        fresh.pk: "analyst",
        almost.pk: "analyst",
    }
    moved = Review.objects.get(pk=overdue.pk)
    assert moved.escalated_at == now and moved.state == "pending"
    assert "past the 48 h SLA" in moved.route_reason
    assert AuditRecord.objects.filter(kind="escalation", subject="sla").count() == 1


def test_a_second_run_escalates_nothing_more(analyst_items):
    now = timezone.now()
    Review.objects.update(due_at=now - timedelta(hours=2))

    first = escalate_overdue(now=now)
    second = escalate_overdue(now=now)

    assert (first.escalated, second.escalated) == (4, 0)
    assert not Review.objects.filter(route="analyst").exists()


def test_experts_get_a_notification_and_an_email_analysts_do_not(
    analyst_items, make_user, django_capture_on_commit_callbacks
):
    expert = make_user("expert")
    expert.email = "expert@example.com"
    expert.save()
    analyst = make_user("analyst")
    Review.objects.update(due_at=timezone.now() - timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):  # the email leaves on commit
        result = escalate_overdue()

    assert result.notified == 1
    note = Notification.objects.get()
    assert note.recipient == expert and note.read_at is None
    assert note.subject == "4 analyst items passed the SLA"
    assert note.link == "/reviews/expert/"
    assert not Notification.objects.filter(recipient=analyst).exists()
    assert [message.to for message in mail.outbox] == [["expert@example.com"]]
    assert "/reviews/expert/" in mail.outbox[0].body


def test_nothing_overdue_notifies_nobody(analyst_items, make_user):
    make_user("expert")

    assert escalate_overdue().escalated == 0
    assert not Notification.objects.exists()
    assert mail.outbox == []


def test_an_expert_reads_the_notification_and_marks_it_read(analyst_items, make_user, client):
    from django.urls import reverse

    from tests.conftest import TEST_PASSWORD

    expert = make_user("expert")
    Review.objects.update(due_at=timezone.now() - timedelta(hours=1))
    escalate_overdue()
    client.login(username=expert.username, password=TEST_PASSWORD)

    queue = client.get(reverse("reviews:expert_queue"))
    page = client.get(reverse("reviews:notifications"))
    client.post(reverse("reviews:mark_all_read"))
    after = client.get(reverse("reviews:expert_queue"))

    assert b'data-testid="unread-count">1<' in queue.content
    assert b"4 analyst items passed the SLA" in page.content
    assert b'href="/reviews/expert/"' in page.content
    assert b'data-testid="unread-count"' not in after.content
    assert Notification.objects.get().read_at is not None
