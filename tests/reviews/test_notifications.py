"""Notifications: the in-app rows with the caller's transaction, the email only once it commits."""

import pytest
from django.conf import settings
from django.core import mail
from django.db import transaction

from reviews.models import Notification
from reviews.services.notifications import notify

pytestmark = pytest.mark.django_db


class Refused(Exception):
    """The caller's change fails after it notified."""


@pytest.fixture
def recipients(make_user):
    return [
        make_user("admin", username="with-mail", email="admin@example.com"),
        make_user("admin", username="without-mail", email=""),
    ]


def test_the_email_leaves_after_commit_to_those_with_an_address(
    recipients, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            notes = notify(
                recipients=recipients, subject="Retraining done", body="passed", link="/loop/"
            )
            sent_inside = len(mail.outbox)

    assert sent_inside == 0
    assert len(callbacks) == 1
    assert [note.recipient.username for note in notes] == ["with-mail", "without-mail"]
    assert Notification.objects.filter(subject="Retraining done").count() == 2
    assert len(mail.outbox) == 1
    assert (mail.outbox[0].subject, mail.outbox[0].to) == ("Retraining done", ["admin@example.com"])
    assert mail.outbox[0].body == f"passed\n\n{settings.SITE_URL}/loop/"


def test_a_rolled_back_transaction_sends_no_email_and_leaves_no_notification(
    recipients, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Refused), transaction.atomic():
            notify(recipients=recipients, subject="Auto-approval paused", body="breach")
            raise Refused

    assert callbacks == []
    assert mail.outbox == []
    assert not Notification.objects.exists()


def test_a_mail_server_that_is_down_loses_no_notification(
    recipients, django_capture_on_commit_callbacks, monkeypatch
):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr("reviews.services.notifications.send_mail", refuse)

    with django_capture_on_commit_callbacks(execute=True):
        notify(recipients=recipients, subject="Run failed", body="why")

    assert mail.outbox == []
    assert Notification.objects.filter(subject="Run failed").count() == 2
