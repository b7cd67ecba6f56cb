"""What every page may show about the workflow: open auto-approval pauses (a banner) and the
user's unread notifications (a count in the nav). Lazy: a page that shows neither queries
nothing."""

from django.utils.functional import SimpleLazyObject


def workflow(request) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def pauses():
        from reviews.selectors.pauses import open_pauses

        return open_pauses()

    def unread():
        from reviews.selectors.notifications import unread_count

        return unread_count(user)

    return {
        "automation_pauses": SimpleLazyObject(pauses),
        "unread_notifications": SimpleLazyObject(unread),
    }
