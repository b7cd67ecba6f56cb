"""The outbox: what other systems hear of, written with the change it announces.

Any layer calls `emit()` inside the transaction of its change; the row commits or rolls back
with it, so an announced change always happened and a change never goes unannounced (a broker
that is down loses nothing: the sweep in `integrations` finds the row). After the commit,
`outbox_committed` tells whoever delivers (the `integrations` app) without this layer
importing it. Delivery is at least once; receivers deduplicate by the event's id.
"""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from loyalty.models import OutboxEvent

# Sent after the commit of a transaction that emitted events, with `event_ids` (outbox pks).
outbox_committed = Signal()

# Every event type, with what it means: the one list the outbox, the endpoints' subscriptions
# and the OpenAPI document read.
DECISION_CREATED = "decision.created"
DECISION_HELD_OUT = "decision.held_out"
REVIEW_ESCALATED = "review.escalated"
MEMBER_ERASED = "member.erased"
MEMBER_CONSENT_WITHDRAWN = "member.consent_withdrawn"
MODEL_PROMOTED = "model.promoted"
AUTOMATION_PAUSED = "automation.paused"
AUTOMATION_RESUMED = "automation.resumed"

EVENT_TYPES: dict[str, str] = {
    DECISION_CREATED: "A decision was made (by a person or by the policy) and is to be acted on.",
    DECISION_HELD_OUT: "A decision was made but its member is held out: record it, do nothing.",
    REVIEW_ESCALATED: "An analyst sent a review to the experts.",
    MEMBER_ERASED: "A member's personal data was erased: erase it downstream too.",
    MEMBER_CONSENT_WITHDRAWN: "A member withdrew a consent: profiling or marketing.",
    MODEL_PROMOTED: "A model version now serves a prediction kind.",
    AUTOMATION_PAUSED: "Auto-approval of a prediction kind was paused: people decide everything.",
    AUTOMATION_RESUMED: "Auto-approval of a prediction kind was resumed.",
}


@dataclass(frozen=True)
class Emission:
    """One event to emit: its type, its data and the member it is about, if any."""

    type: str
    data: Mapping[str, Any]
    member_id: int | None = None


def emit(type: str, data: Mapping[str, Any], *, member_id: int | None = None) -> OutboxEvent:
    """Write one event in the caller's transaction (see `emit_many`)."""
    return emit_many([Emission(type=type, data=data, member_id=member_id)])[0]


def emit_many(emissions: Iterable[Emission]) -> list[OutboxEvent]:
    """Write the events in the caller's transaction, in one insert. Refuses an unknown type
    (a typo would otherwise reach no subscriber, silently)."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("emit() belongs inside the transaction of the change it announces")
    now = timezone.now()
    rows = []
    for emission in emissions:
        if emission.type not in EVENT_TYPES:
            raise ValueError(f"Unknown outbox event type {emission.type!r}.")
        rows.append(
            OutboxEvent(
                event_id=uuid.uuid4(),
                type=emission.type,
                data=dict(emission.data),
                member_id=emission.member_id,
                created_at=now,
            )
        )
    if not rows:
        return []
    events = OutboxEvent.objects.bulk_create(rows)
    if events[0].pk is None:  # backends that return no ids: read them back by event id
        ids = dict(
            OutboxEvent.objects.filter(event_id__in=[e.event_id for e in events]).values_list(
                "event_id", "pk"
            )
        )
        for event in events:
            event.pk = ids[event.event_id]
    event_ids = [event.pk for event in events]
    transaction.on_commit(
        lambda: outbox_committed.send(sender=OutboxEvent, event_ids=event_ids), robust=True
    )
    return events


MEMBER_KEY = "member_external_id"


def redact_member(member_id: int, *, placeholder: str, exclude_pk: int | None = None) -> int:
    """Replace the member's external id in every event about them with `placeholder` (the
    erasure's), in the caller's transaction; the number of events changed. `exclude_pk` keeps
    one event as it is (the `member.erased` event, which must name the member until it has been
    delivered)."""
    events = OutboxEvent.objects.filter(member_id=member_id, redacted_at__isnull=True)
    if exclude_pk is not None:
        events = events.exclude(pk=exclude_pk)
    now = timezone.now()
    changed = []
    for event in events.only("pk", "data"):
        if MEMBER_KEY in event.data:
            event.data[MEMBER_KEY] = placeholder
        event.redacted_at = now
        changed.append(event)
    OutboxEvent.objects.bulk_update(changed, ["data", "redacted_at"], batch_size=500)
    return len(changed)
