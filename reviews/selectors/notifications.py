"""A person's notifications: the newest ones, and the unread count in every page's nav."""

from loyalty import shared_cache
from reviews.models import Notification

NOTIFICATIONS_SHOWN = 100


def unread_count_key(user_id: int) -> str:
    """The shared-cache key of a user's unread count (what writes to notifications forget)."""
    return f"notifications:unread:{user_id}"


def unread_count(user) -> int:
    """The count in the nav of every page: from the shared cache when there is one."""
    return shared_cache.remembered(
        unread_count_key(user.pk),
        lambda: Notification.objects.filter(recipient=user, read_at__isnull=True).count(),
    )


def recent_notifications(user, *, limit: int = NOTIFICATIONS_SHOWN) -> list[Notification]:
    """The user's notifications, newest first (the model's order)."""
    return list(Notification.objects.filter(recipient=user)[:limit])
