"""Telling people what needs them: an in-app notification, and an email where they have one.

Email goes through Django's email backend (console in development, SMTP in production via
EMAIL_* settings) after the transaction commits; a failing mail server never loses the in-app
notification.
"""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from loyalty import shared_cache
from reviews.models import Notification
from reviews.selectors.notifications import unread_count_key

logger = logging.getLogger(__name__)


def users_with_permission(codename: str) -> QuerySet:
    """Active users who hold `app_label.codename` through a group or directly."""
    app_label, name = codename.split(".")
    users = get_user_model().objects.filter(is_active=True)
    by_group = users.filter(
        groups__permissions__codename=name, groups__permissions__content_type__app_label=app_label
    )
    direct = users.filter(
        user_permissions__codename=name, user_permissions__content_type__app_label=app_label
    )
    return (by_group | direct).distinct()


def notify(*, recipients, subject: str, body: str = "", link: str = "") -> list[Notification]:
    """One notification per recipient, and one email to those with an address once the
    caller's transaction commits: a rolled-back change tells nobody, and a slow mail server
    holds no row locks."""
    recipients = list(recipients)
    notes = Notification.objects.bulk_create(
        Notification(recipient=user, subject=subject, body=body, link=link) for user in recipients
    )
    shared_cache.forget(*(unread_count_key(user.pk) for user in recipients))
    addresses = [user.email for user in recipients if user.email]
    if addresses:
        text = f"{body}\n\n{settings.SITE_URL}{link}" if link else body
        transaction.on_commit(lambda: _email(subject, text, addresses), robust=True)
    return notes


def _email(subject: str, text: str, addresses: list[str]) -> None:
    try:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, addresses)
    except OSError:  # SMTP down: the in-app notifications stand
        logger.exception("could not email %d recipients about %r", len(addresses), subject)


def mark_all_read(user) -> int:
    marked = Notification.objects.filter(recipient=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    shared_cache.forget(unread_count_key(user.pk))
    return marked
