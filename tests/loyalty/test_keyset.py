"""Keyset pagination: cursors round-trip exactly, bad ones are refused, and pages walk every
order through ties on the ordering values without skipping or repeating a row."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import Q

from loyalty.keyset import (
    Cursor,
    InvalidCursor,
    after,
    decode_cursor,
    encode_cursor,
    keyset_page,
    ordering_key,
    reversed_ordering,
)
from loyalty.models import Event, Member
from tests.factories import EventFactory, MemberFactory

MOMENT = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)


def token(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


def walk(queryset, ordering, size):
    """Every page from the first, following the cursor of each page's last row."""
    pages, cursor = [], None
    while True:
        page = keyset_page(queryset, ordering=ordering, cursor=cursor, size=size)
        pages.append([row.pk for row in page.rows])
        if not page.has_more:
            return pages
        key = ordering_key(page.rows[-1], ordering)
        cursor = decode_cursor(
            encode_cursor(Cursor(key=key)), model=queryset.model, ordering=ordering
        )


def chunks(ids, size):
    return [ids[start : start + size] for start in range(0, len(ids), size)]


# --- cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "ordering", "key"),
    [
        (Member, ("id",), (7,)),
        (Member, ("-points_balance", "id"), (-40, 12)),
        (Member, ("external_id", "pk"), ("H-ü 1", 3)),
        (Event, ("occurred_at", "id"), (MOMENT, 5)),
        (Event, ("-dwell_seconds", "id"), (0.1 + 0.2, 9)),
    ],
)
@pytest.mark.parametrize("backwards", [False, True])
def test_a_cursor_round_trips_exactly(model, ordering, key, backwards):
    cursor = Cursor(key=key, backwards=backwards)

    text = encode_cursor(cursor)

    assert decode_cursor(text, model=model, ordering=ordering) == cursor
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=")


def test_a_cursor_keeps_the_payload_that_links_already_handed_out_carry():
    handed_out = token({"k": [0.5, 7], "r": False})

    cursor = decode_cursor(handed_out, model=Event, ordering=("-dwell_seconds", "id"))

    assert cursor == Cursor(key=(0.5, 7), backwards=False)
    assert encode_cursor(cursor) == base64.urlsafe_b64encode(b'{"k":[0.5,7],"r":false}').decode()


def test_a_datetime_cursor_is_timezone_aware_and_exact_to_the_microsecond():
    text = encode_cursor(Cursor(key=(MOMENT, 1)))

    (moment, _) = decode_cursor(text, model=Event, ordering=("occurred_at", "id")).key

    assert moment == MOMENT
    assert moment.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not-a-cursor",
        "ünïcode",
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
        token([[1], False]),
        token({"k": [1]}),
        token({"r": False}),
        token({"k": [1], "r": "no"}),
        token({"k": 1, "r": False}),
        token({"k": [1, 2], "r": False}),
        token({"k": [], "r": False}),
        token({"k": ["abc"], "r": False}),
        token({"k": [None], "r": False}),
        token({"k": [True], "r": False}),
        token({"k": [[1]], "r": False}),
        token({"k": [{"id": 1}], "r": False}),
        token({"k": [1.5e400], "r": False}),
        base64.urlsafe_b64encode(b"[" * 100_000).decode(),
    ],
)
def test_a_garbage_or_tampered_cursor_is_refused(text):
    with pytest.raises(InvalidCursor):
        decode_cursor(text, model=Member, ordering=("id",))


@pytest.mark.parametrize(
    ("ordering", "key"),
    [
        (("-dwell_seconds", "id"), ["NaN", 1]),
        (("-dwell_seconds", "id"), ["Infinity", 1]),
        (("occurred_at", "id"), ["2025-03-01T10:00:00", 1]),  # naive: no zone offset
        (("occurred_at", "id"), ["2025-02-30T10:00:00+00:00", 1]),
        (("occurred_at", "id"), [20250301, 1]),
        (("occurred_at", "id"), ["2025-03-01T10:00:00+00:00", "x"]),
    ],
)
def test_a_cursor_value_that_its_field_cannot_hold_is_refused(ordering, key):
    with pytest.raises(InvalidCursor):
        decode_cursor(token({"k": key, "r": False}), model=Event, ordering=ordering)


def test_a_value_no_cursor_can_hold_is_a_programming_error():
    with pytest.raises(TypeError):
        encode_cursor(Cursor(key=(object(),)))


# --- the condition after a cursor -------------------------------------------------------------


def test_after_bounds_the_first_field_then_breaks_ties_by_the_next():
    assert after(("id",), (4,)) == Q(id__gt=4)
    assert after(("-priority", "id"), (0.5, 4)) == Q(priority__lte=0.5) & (
        Q(priority__lt=0.5) | Q(id__gt=4)
    )
    assert after(("occurred_at", "-id"), (MOMENT, 4)) == Q(occurred_at__gte=MOMENT) & (
        Q(occurred_at__gt=MOMENT) | Q(id__lt=4)
    )
    assert after(("a", "-b", "c"), (1, 2, 3)) == Q(a__gte=1) & (
        Q(a__gt=1) | (Q(b__lte=2) & (Q(b__lt=2) | Q(c__gt=3)))
    )


def test_after_needs_one_value_per_field():
    with pytest.raises(ValueError):
        after(("-priority", "id"), (0.5,))


def test_reversed_ordering_flips_every_field():
    assert reversed_ordering(("-priority", "id")) == ("priority", "-id")


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_descending_break_ties_on_the_value_by_ascending_id():
    members = [MemberFactory(points_balance=points) for points in [5, 3, 5, 5, 1, 3, 5]]
    expected = [m.pk for m in sorted(members, key=lambda m: (-m.points_balance, m.pk))]

    pages = walk(Member.objects.all(), ("-points_balance", "id"), size=2)

    assert pages == chunks(expected, 2)


@pytest.mark.django_db
def test_pages_ascending_through_events_at_the_same_moment():
    member = MemberFactory()
    moments = [MOMENT, MOMENT, MOMENT - timedelta(hours=1), MOMENT, MOMENT + timedelta(hours=1)]
    events = [EventFactory(member=member, occurred_at=moment) for moment in moments]
    expected = [e.pk for e in sorted(events, key=lambda e: (e.occurred_at, e.pk))]

    pages = walk(Event.objects.all(), ("occurred_at", "id"), size=2)

    assert pages == chunks(expected, 2)


@pytest.mark.django_db
def test_pages_descending_on_every_field_newest_first():
    member = MemberFactory()
    events = [EventFactory(member=member, occurred_at=MOMENT) for _ in range(3)]
    events.append(EventFactory(member=member, occurred_at=MOMENT - timedelta(days=1)))
    expected = [e.pk for e in sorted(events, key=lambda e: (e.occurred_at, e.pk), reverse=True)]

    pages = walk(Event.objects.all(), ("-occurred_at", "-id"), size=3)

    assert pages == chunks(expected, 3)


@pytest.mark.django_db
def test_pages_of_equal_floats_continue_exactly():
    member = MemberFactory()
    events = [EventFactory(member=member, dwell_seconds=0.1 + 0.2) for _ in range(3)]
    events.append(EventFactory(member=member, dwell_seconds=0.3))
    expected = [e.pk for e in sorted(events, key=lambda e: (-e.dwell_seconds, e.pk))]

    pages = walk(Event.objects.all(), ("-dwell_seconds", "id"), size=1)

    assert pages == chunks(expected, 1)


@pytest.mark.django_db
def test_a_backwards_cursor_reads_the_page_before_in_the_ordering_order():
    members = [MemberFactory(points_balance=points) for points in [5, 5, 5, 5, 5]]
    ordering = ("-points_balance", "id")
    boundary = ordering_key(members[3], ordering)

    page = keyset_page(
        Member.objects.all(),
        ordering=ordering,
        cursor=Cursor(key=boundary, backwards=True),
        size=2,
    )

    assert [row.pk for row in page.rows] == [members[1].pk, members[2].pk]
    assert page.has_more is True


@pytest.mark.django_db
def test_a_page_of_values_dicts_reads_its_key_from_the_dict():
    members = [MemberFactory(points_balance=points) for points in [2, 9, 2]]
    ordering = ("-points_balance", "pk")
    rows = Member.objects.values("pk", "points_balance")

    first = keyset_page(rows, ordering=ordering, cursor=None, size=2)
    rest = keyset_page(
        rows, ordering=ordering, cursor=Cursor(key=ordering_key(first.rows[-1], ordering)), size=2
    )

    assert [row["pk"] for row in first.rows] == [members[1].pk, members[0].pk]
    assert [row["pk"] for row in rest.rows] == [members[2].pk]
    assert (first.has_more, rest.has_more) == (True, False)
