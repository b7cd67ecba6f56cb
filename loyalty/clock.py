"""The scoring clock: the one "now" that scoring, training, outcomes and freshness read.

It is the end of the data: now, unless the imported events stop earlier (a demo, a historical
import, a feed that has not delivered for days), and then the midnight (UTC) after the last
event. Features see the events strictly before it, an outcome is recorded once a prediction's
horizon has passed it, and a score is stale once the clock has moved on N days from the
cutoff it was made at (`predictions.services.scoring.freshness`). Reading the clock from the
data, not the wall, keeps a historical data set from looking like every member churned
yesterday, and a stalled feed from looking like everyone stopped buying.
"""

from datetime import datetime, timedelta

from django.utils import timezone

from loyalty.models import Event


def scoring_clock() -> datetime:
    """Now, or the midnight after the last event when the data stop before now."""
    now = timezone.now()
    last = Event.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first()
    if last is None:
        return now
    return min(now, midnight_after(last))


def midnight_after(moment: datetime) -> datetime:
    return (moment + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
