"""Write side of behavioral events pushed through the API: batch ingest with per-item errors."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from loyalty.exceptions import EventBatchTooLargeError, require_permission
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.audit import record_audit
from loyalty.services.erasure import erased_external_ids
from loyalty.services.imports.checks import (
    FUTURE_EVENT,
    FUTURE_TOLERANCE,
    NEGATIVE_NOT_PURCHASE,
    OPPOSITE_SIGNS,
)

# One request stays well under a second of work and a few hundred kilobytes of JSON; bigger
# loads go through the CSV import.
EVENT_BATCH_LIMIT = 1000

ERASED_MEMBER_MESSAGE = "This member was erased; it takes no new events."

NAIVE_DATETIME_MESSAGE = (
    "Give a time zone offset, e.g. 2025-01-31T14:05:00Z or 2025-01-31T15:05:00+01:00; "
    "a time without one is ambiguous."
)


@dataclass(frozen=True)
class EventInput:
    """One event as a client sent it, with its position in the batch."""

    index: int
    member_external_id: str
    occurred_at: datetime
    kind: str
    amount: Decimal | None = None
    quantity: float | None = None
    category: str = ""
    channel: str = ""
    session_id: str = ""
    dwell_seconds: float | None = None
    product_id: str = ""


@dataclass(frozen=True)
class ItemError:
    """Why the item at `index` was not stored: field name -> messages."""

    index: int
    errors: dict[str, list[str]]


@dataclass(frozen=True)
class EventBatchResult:
    received: int
    created: int
    duplicates: int
    errors: tuple[ItemError, ...] = field(default=())

    @property
    def rejected(self) -> int:
        return len(self.errors)


@transaction.atomic
def record_event_batch(
    *,
    events: Sequence[EventInput],
    actor: AbstractBaseUser | None,
    rejected: Sequence[ItemError] = (),
) -> EventBatchResult:
    """Store the valid events of one batch; every other item gets its own error.

    `rejected` carries items the caller's own validation already refused, so that the result
    accounts for every item sent. An event whose natural key (member, occurred_at, kind,
    session_id, product_id) is already stored, or repeated earlier in the batch, counts as a
    duplicate and is not stored twice. Naive datetimes are refused: the API cannot know their
    zone. The import's rules hold here too: an event more than a day in the future is refused,
    and a negative purchase is stored as a return (README, "Data in").
    """
    require_permission(actor, "loyalty.add_event")
    received = len(events) + len(rejected)
    if received > EVENT_BATCH_LIMIT:
        raise EventBatchTooLargeError(
            f"A batch holds at most {EVENT_BATCH_LIMIT} events; this one has {received}.",
            limit=EVENT_BATCH_LIMIT,
            received=received,
        )

    # Locking the members (in pk order, so two batches cannot deadlock) makes the duplicate
    # count exact under concurrent batches and keeps events from landing on a member that is
    # being erased at the same moment.
    members = {
        member.external_id: member
        for member in Member.objects.select_for_update()
        .filter(external_id__in={item.member_external_id for item in events})
        .order_by("pk")
    }
    # An erased member's row carries a placeholder id: its former id is known only to its
    # tombstone, and answers as erased rather than as unknown.
    erased = erased_external_ids({item.member_external_id for item in events} - members.keys())
    errors = list(rejected)
    candidates: dict[tuple, Event] = {}
    duplicates = 0
    for item in events:
        if item.member_external_id in erased:
            errors.append(
                ItemError(index=item.index, errors={"member_external_id": [ERASED_MEMBER_MESSAGE]})
            )
            continue
        event, item_errors = _build_event(item, members.get(item.member_external_id))
        if item_errors:
            errors.append(ItemError(index=item.index, errors=item_errors))
            continue
        key = (event.member_id, event.occurred_at, event.kind, event.session_id, event.product_id)
        if key in candidates:
            duplicates += 1
            continue
        candidates[key] = event

    stored = set(
        Event.objects.filter(
            member_id__in={key[0] for key in candidates},
            occurred_at__in={key[1] for key in candidates},
        ).values_list("member_id", "occurred_at", "kind", "session_id", "product_id")
    )
    new_events = [event for key, event in candidates.items() if key not in stored]
    duplicates += len(candidates) - len(new_events)
    # ignore_conflicts still guards the natural key against writers that do not lock members.
    Event.objects.bulk_create(new_events, ignore_conflicts=True)
    # The members' scores are due for a refresh (`predictions.services.scoring.freshness`).
    Member.objects.filter(pk__in={event.member_id for event in new_events}).update(
        inputs_changed_at=timezone.now()
    )

    result = EventBatchResult(
        received=received,
        created=len(new_events),
        duplicates=duplicates,
        errors=tuple(sorted(errors, key=lambda error: error.index)),
    )
    if result.created:
        record_audit(
            kind=AuditRecord.Kind.IMPORT,
            actor=actor,
            subject="events:api",
            details={
                "source": "api",
                "received": result.received,
                "created": result.created,
                "duplicates": result.duplicates,
                "rejected": result.rejected,
            },
        )
    return result


def _signed(item: EventInput) -> tuple[str, Decimal | None, float | None, dict]:
    """The import's rule for signs (`imports.checks.read_negative_purchases_as_returns`), for
    one item: a purchase negative in amount or quantity is a return of the absolute values;
    opposite signs, and negative values on any other kind, are refused."""
    amount, quantity = item.amount, item.quantity
    negative = (amount is not None and amount < 0) or (quantity is not None and quantity < 0)
    if not negative:
        return item.kind, amount, quantity, {}
    if item.kind != Event.Kind.PURCHASE:
        fields = [
            name for name, value in (("amount", amount), ("quantity", quantity))
            if value is not None and value < 0
        ]  # fmt: skip
        return item.kind, amount, quantity, {name: [NEGATIVE_NOT_PURCHASE] for name in fields}
    if (amount is not None and amount > 0) or (quantity is not None and quantity > 0):
        return item.kind, amount, quantity, {"amount": [OPPOSITE_SIGNS]}
    return (
        Event.Kind.RETURN,
        abs(amount) if amount is not None else None,
        abs(quantity) if quantity is not None else None,
        {},
    )


def _build_event(
    item: EventInput, member: Member | None
) -> tuple[Event | None, dict[str, list[str]]]:
    if member is None:
        return None, {
            "member_external_id": [f"No member has external id {item.member_external_id!r}."]
        }
    if member.is_erased:
        return None, {"member_external_id": [ERASED_MEMBER_MESSAGE]}
    if timezone.is_naive(item.occurred_at):
        return None, {"occurred_at": [NAIVE_DATETIME_MESSAGE]}
    if item.occurred_at > timezone.now() + FUTURE_TOLERANCE:
        return None, {"occurred_at": [f"more than a day from now: {FUTURE_EVENT}"]}
    kind, amount, quantity, sign_errors = _signed(item)
    if sign_errors:
        return None, sign_errors
    event = Event(
        member=member,
        occurred_at=item.occurred_at,
        kind=kind,
        amount=amount,
        quantity=quantity,
        category=item.category,
        channel=item.channel,
        session_id=item.session_id,
        dwell_seconds=item.dwell_seconds,
        product_id=item.product_id,
    )
    try:
        # Field checks only: the member was looked up above and the natural key is the
        # database's job (a query per item for either would cost more than the insert).
        event.full_clean(exclude=["member"], validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        return None, error.message_dict
    return event, {}
