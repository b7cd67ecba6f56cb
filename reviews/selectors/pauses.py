"""Automation pauses in force: routing reads one kind's, every queue page's banner all."""

from loyalty import shared_cache
from reviews.models import AutomationPause

PAUSES_KEY = "automation:open-pauses"


def open_pause(kind: str) -> AutomationPause | None:
    """The pause of `kind` in force, read from the database (routing decides by it)."""
    return AutomationPause.objects.open().filter(kind=kind).first()


def open_pauses() -> list[AutomationPause]:
    """Every open pause (the banner on every queue page reads this; from the shared cache when
    there is one: pausing and resuming forget it)."""
    return shared_cache.remembered(
        PAUSES_KEY,
        lambda: list(AutomationPause.objects.open().order_by("kind")),
    )
