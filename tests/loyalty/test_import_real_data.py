"""The CSV import on what real systems send: four-decimal amounts, negative purchases, times
without a zone, future dates, an event given twice, and skipping invalid rows on request."""

import csv
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from loyalty.exceptions import ConflictError
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.imports import members_and_events, validation
from loyalty.services.imports.members_and_events import import_events, import_members
from loyalty.services.imports.timestamps import NAIVE_TIMESTAMP, UnknownTimeZoneError
from loyalty.services.imports.validation import RowError
from tests.factories import MemberFactory
from tests.loyalty.test_imports import EVENT_HEADER, MEMBER_HEADER, rejected, row_counts, write

pytestmark = pytest.mark.django_db

TOO_PRECISE = "more than 4 decimal places: amounts are stored exactly, never rounded"
NEGATIVE = (
    "negative: only a purchase may be negative (it is then read as a return); give every "
    "other kind, return included, a positive value"
)
OPPOSITE_SIGNS = (
    "amount and quantity have opposite signs: a purchase is positive in both, one read as a "
    "return negative in both"
)
FUTURE = (
    "more than a day after the import ran: events from the future are refused (check the "
    "sender's clock, year and time zone)"
)
PARIS_SKIPPED = (
    "this local time does not exist in Europe/Paris: the clocks skip it (daylight saving "
    "time); give the time with its offset"
)
PARIS_TWICE = (
    "this local time happens twice in Europe/Paris (the clocks go back); give the time with "
    "its offset to say which"
)
UNKNOWN_MEMBER = "unknown member; import members first"


def repeated(first_line: int) -> str:
    return (
        "same member_external_id, occurred_at, kind, session_id and product_id (the event's "
        f"natural key) as line {first_line}: a file may give each event once"
    )


def events_csv(*rows: str) -> str:
    return EVENT_HEADER + "\n" + "".join(f"{row}\n" for row in rows)


def stored(*fields: str) -> list[tuple]:
    return list(Event.objects.order_by("occurred_at", "session_id").values_list(*fields))


@pytest.fixture
def m1():
    return MemberFactory(external_id="M1")


# --- amounts ---------------------------------------------------------------------------------


def test_amounts_with_up_to_four_decimals_are_stored_exactly(tmp_path, m1):
    amounts = ["0.001", "12.345", "0.0125", "99999999999.9999", "2.500000", "1.5e-3"]
    rows = [f"M1,2025-01-01T00:00:0{n}Z,purchase,{a},1,,,B{n},," for n, a in enumerate(amounts)]

    result = import_events(source=write(tmp_path, events_csv(*rows)))

    assert (result.rows_read, result.created) == (6, 6)
    assert [
        str(amount)
        for amount in Event.objects.order_by("session_id").values_list("amount", flat=True)
    ] == ["0.0010", "12.3450", "0.0125", "99999999999.9999", "2.5000", "0.0015"]


def test_an_amount_with_five_decimals_is_refused_not_rounded(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-01T00:00:00Z,purchase,0.00001,1,,,B1,,",
        "M1,2025-01-01T00:00:01Z,purchase,123456789.12345,1,,,B2,,",
        "M1,2025-01-01T00:00:02Z,purchase,1.5e-5,1,,,B3,,",
        "M1,2025-01-01T00:00:03Z,purchase,100000000000,1,,,B4,,",
    )
    counts = row_counts()

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(2, "amount", "0.00001", TOO_PRECISE),
        RowError(3, "amount", "123456789.12345", TOO_PRECISE),
        RowError(4, "amount", "1.5e-5", TOO_PRECISE),
        RowError(
            5, "amount", "100000000000", "too large: at most 11 digits before the decimal point"
        ),
    ]
    assert row_counts() == counts


def test_float_amounts_from_a_dataframe_are_read_as_their_decimal(m1):
    frame = pd.DataFrame(
        {
            "member_external_id": ["M1", "M1"],
            "occurred_at": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 11:00"], utc=True),
            "kind": "purchase",
            # 0.1 + 0.2 is 0.30000000000000004 in floating point: noise, not a fifth decimal.
            "amount": [0.1 + 0.2, 1.00001],
            "session_id": ["B1", "B2"],
        }
    )

    error = rejected(lambda: import_events(source=frame))
    result = import_events(source=frame.iloc[:1])

    assert list(error.errors) == [RowError(3, "amount", "1.00001", TOO_PRECISE)]
    assert result.created == 1
    assert stored("amount") == [(Decimal("0.3000"),)]


# --- negative purchases ----------------------------------------------------------------------


def test_a_negative_purchase_is_stored_as_a_return_and_counted(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-01T10:00:00Z,purchase,12.50,2,,store,B1,,P1",
        "M1,2025-01-01T10:05:00Z,purchase,-12.50,-2,,store,B1,,P1",
        "M1,2025-01-01T10:06:00Z,purchase,-0.99,,,store,B1,,P2",
        "M1,2025-01-01T10:07:00Z,purchase,,-1,,store,B1,,P3",
        "M1,2025-01-01T10:08:00Z,return,4.00,1,,store,B1,,P4",
    )

    result = import_events(source=write(tmp_path, text, "events.csv"))

    assert (result.created, result.negative_purchases_as_returns) == (5, 3)
    assert stored("kind", "amount", "quantity", "product_id") == [
        ("purchase", Decimal("12.50"), 2.0, "P1"),
        ("return", Decimal("12.50"), 2.0, "P1"),
        ("return", Decimal("0.99"), None, "P2"),
        ("return", None, 1.0, "P3"),
        ("return", Decimal("4.00"), 1.0, "P4"),
    ]
    assert "; 3 purchases with a negative amount or quantity read as returns" in result.summary()
    audit = AuditRecord.objects.get(kind="import")
    assert audit.details["negative_purchases_as_returns"] == 3


def test_negative_values_that_are_not_a_return_are_refused(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-01T10:00:00Z,purchase,-5.00,2,,,B1,,P1",
        "M1,2025-01-01T10:01:00Z,return,-5.00,,,,B1,,P2",
        "M1,2025-01-01T10:02:00Z,view,,-1,,,S1,,",
    )
    counts = row_counts()

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(2, "amount", "-5.0", OPPOSITE_SIGNS),
        RowError(3, "amount", "-5.0", NEGATIVE),
        RowError(4, "quantity", "-1.0", NEGATIVE),
    ]
    assert row_counts() == counts


# --- times without a zone --------------------------------------------------------------------


def test_a_time_without_an_offset_is_refused_when_no_zone_is_named(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-15T10:00:00Z,view,,,,,S1,,",
        "M1,2025-01-15T10:00:00,view,,,,,S2,,",
        "M1,2025-01-15,view,,,,,S3,,",
    )
    counts = row_counts()

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(3, "occurred_at", "2025-01-15T10:00:00", NAIVE_TIMESTAMP),
        RowError(4, "occurred_at", "2025-01-15", NAIVE_TIMESTAMP),
    ]
    assert "--timezone" in NAIVE_TIMESTAMP and "LOYALTY_IMPORT_TIMEZONE" in NAIVE_TIMESTAMP
    assert row_counts() == counts


def test_naive_times_in_a_dataframe_are_refused_too(m1):
    frame = pd.DataFrame(
        {
            "member_external_id": ["M1"],
            "occurred_at": pd.to_datetime(["2025-01-15 10:00"]),
            "kind": ["view"],
        }
    )

    error = rejected(lambda: import_events(source=frame))

    assert [(e.line, e.column, e.reason) for e in error.errors] == [
        (2, "occurred_at", NAIVE_TIMESTAMP)
    ]


def test_the_timezone_option_places_naive_times_with_daylight_saving(tmp_path, m1, capsys):
    path = write(
        tmp_path,
        events_csv(
            "M1,2025-01-15T10:00:00,view,,,,,winter,,",
            "M1,2025-07-15T10:00:00,view,,,,,summer,,",
            "M1,2025-07-15T10:00:00+05:30,view,,,,,offset,,",
            "M1,2025-07-16,view,,,,,midnight,,",
        ),
        "events.csv",
    )

    call_command("import_events", str(path), "--timezone", "Europe/Paris")

    assert stored("session_id", "occurred_at") == [
        ("winter", datetime(2025, 1, 15, 9, tzinfo=UTC)),  # CET, UTC+1
        ("offset", datetime(2025, 7, 15, 4, 30, tzinfo=UTC)),  # its own offset wins
        ("summer", datetime(2025, 7, 15, 8, tzinfo=UTC)),  # CEST, UTC+2
        ("midnight", datetime(2025, 7, 15, 22, tzinfo=UTC)),
    ]
    assert "4 rows read, 4 created" in capsys.readouterr().out


def test_local_times_that_daylight_saving_skips_or_repeats_are_refused(tmp_path, m1):
    text = events_csv(
        "M1,2025-03-30T01:59:59,view,,,,,S1,,",
        "M1,2025-03-30T02:30:00,view,,,,,S2,,",
        "M1,2025-10-26T02:30:00,view,,,,,S3,,",
        "M1,2025-10-26T02:30:00+01:00,view,,,,,S4,,",
    )

    error = rejected(
        lambda: import_events(source=write(tmp_path, text), naive_timezone="Europe/Paris")
    )

    assert list(error.errors) == [
        RowError(3, "occurred_at", "2025-03-30T02:30:00", PARIS_SKIPPED),
        RowError(4, "occurred_at", "2025-10-26T02:30:00", PARIS_TWICE),
    ]
    assert row_counts()[1] == 0


def test_the_setting_names_the_zone_and_the_option_overrides_it(tmp_path, m1, settings):
    settings.LOYALTY_IMPORT_TIMEZONE = "America/New_York"
    first = write(tmp_path, events_csv("M1,2025-01-15T10:00:00,view,,,,,setting,,"), "a.csv")
    second = write(tmp_path, events_csv("M1,2025-01-15T10:00:00,view,,,,,option,,"), "b.csv")

    import_events(source=first)
    import_events(source=second, naive_timezone="Asia/Tokyo")

    assert stored("session_id", "occurred_at") == [
        ("option", datetime(2025, 1, 15, 1, tzinfo=UTC)),  # JST, UTC+9
        ("setting", datetime(2025, 1, 15, 15, tzinfo=UTC)),  # EST, UTC-5
    ]


def test_an_unknown_zone_is_refused_before_anything_is_read(tmp_path, m1):
    path = write(tmp_path, events_csv("M1,2025-01-15T10:00:00Z,view,,,,,S1,,"))

    with pytest.raises(UnknownTimeZoneError):
        import_events(source=path, naive_timezone="Mars/Olympus")
    with pytest.raises(CommandError, match="'Europe/Pariss' is not an IANA time zone"):
        call_command("import_events", str(path), "--timezone", "Europe/Pariss")

    assert row_counts() == (1, 0, 0)


def test_a_join_date_needs_no_zone_but_a_join_time_does(tmp_path):
    text = f"{MEMBER_HEADER}\nM1,2024-01-15,,,,,\nM2,2024-01-15T08:00:00,,,,,\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))
    import_members(source=write(tmp_path, text, "again.csv"), naive_timezone="Asia/Tokyo")

    assert list(error.errors) == [RowError(3, "joined_at", "2024-01-15T08:00:00", NAIVE_TIMESTAMP)]
    # 08:00 in Tokyo is 23:00 UTC the day before; a date stays the date it says.
    assert list(Member.objects.order_by("external_id").values_list("joined_on", flat=True)) == [
        date(2024, 1, 15),
        date(2024, 1, 14),
    ]


# --- future events ---------------------------------------------------------------------------


def test_events_more_than_a_day_ahead_are_refused(tmp_path, m1):
    soon = (timezone.now() + timedelta(hours=23)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (timezone.now() + timedelta(days=1, hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = events_csv(
        f"M1,{soon},view,,,,,S1,,",
        f"M1,{later},view,,,,,S2,,",
        "M1,2200-01-01T00:00Z,view,,,,,S3,,",
    )

    error = rejected(lambda: import_events(source=write(tmp_path, text)))
    result = import_events(source=write(tmp_path, events_csv(f"M1,{soon},view,,,,,S1,,"), "ok.csv"))

    assert list(error.errors) == [
        RowError(3, "occurred_at", later, FUTURE),
        RowError(4, "occurred_at", "2200-01-01T00:00Z", FUTURE),
    ]
    assert result.created == 1


# --- an event given twice in one file --------------------------------------------------------


def test_an_event_given_twice_in_a_file_is_refused_naming_both_lines(tmp_path, monkeypatch, m1):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    MemberFactory(external_id="M2")
    text = events_csv(
        "M1,2025-01-01T10:00:00Z,purchase,5.00,1,,,B1,,P1",
        "M2,2025-01-01T10:00:00Z,purchase,5.00,1,,,B1,,P1",
        "M1,2025-01-01T10:00:00Z,purchase,5.00,1,,,B1,,P2",
        # Line 5 is line 2 at +01:00; line 6 differs from line 2 in its amount only.
        "M1,2025-01-01T11:00:00+01:00,purchase,5.00,1,,,B1,,P1",
        "M1,2025-01-01T10:00:00Z,PURCHASE,7.00,1,,,B1,,P1",
        "M2,2025-01-01T10:00:00Z,purchase,5.00,1,,,B1,,P1",
    )
    counts = row_counts()

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(5, "", "", repeated(2)),
        RowError(6, "", "", repeated(2)),
        RowError(7, "", "", repeated(3)),
    ]
    assert str(error.errors[0]) == f"line 5: {repeated(2)}"
    assert row_counts() == counts


def test_a_negative_purchase_and_its_return_in_one_file_are_the_same_event(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-01T10:00:00Z,return,5.00,1,,,B1,,P1",
        "M1,2025-01-01T10:00:00Z,purchase,-5.00,-1,,,B1,,P1",
    )

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [RowError(3, "", "", repeated(2))]


def test_importing_the_same_file_again_adds_nothing(tmp_path, m1):
    path = write(
        tmp_path,
        events_csv(
            "M1,2025-01-01T10:00:00Z,purchase,5.00,1,,,B1,,P1",
            "M1,2025-01-01T10:00:00Z,purchase,-5.00,-1,,,B1,,P2",
        ),
    )
    first = import_events(source=path)
    before = list(Event.objects.order_by("pk").values())

    again = import_events(source=path)

    assert (first.created, first.unchanged) == (2, 0)
    assert (again.rows_read, again.created, again.unchanged) == (2, 0, 2)
    assert list(Event.objects.order_by("pk").values()) == before


# --- categories and channels as given --------------------------------------------------------


def test_unknown_categories_and_channels_are_kept_as_given(tmp_path, m1):
    text = events_csv(
        'M1,2025-01-01T10:00:00Z,view,,,"Électroménager, Froid",Kiosk-7 (Gare),S1,,',
        "M1,2025-01-01T10:01:00Z,view,,,  GROCERY ,WeChat Mini-Program,S2,,",
    )

    import_events(source=write(tmp_path, text))

    assert stored("category", "channel") == [
        ("Électroménager, Froid", "Kiosk-7 (Gare)"),
        ("GROCERY", "WeChat Mini-Program"),  # surrounding spaces trimmed, nothing else
    ]


# --- all or nothing, or --skip-invalid -------------------------------------------------------

SKIP_INPUT = events_csv(
    "M1,2025-01-01T10:00:00Z,purchase,12.50,1,,,B1,,P1",
    "M1,2025-01-01T11:00:00Z,purchase,1.234567,1,,,B2,,P1",
    "NOBODY,2025-01-01T12:00:00Z,view,,,,,S1,,",
    "M1,2025-01-01T10:00:00Z,purchase,12.50,1,,,B1,,P1",
    "M1,2025-01-01T13:00:00,view,,,,,S2,-1,",
    "M1,2025-01-02T09:00:00+01:00,purchase,-3.5,-1,Toys,,B3,,P2",
)


def test_a_malformed_row_imports_nothing_in_all_or_nothing_mode(tmp_path, monkeypatch, m1):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    path = write(tmp_path, SKIP_INPUT, "events.csv")
    counts = row_counts()

    with pytest.raises(CommandError) as caught:
        call_command("import_events", str(path))

    assert str(caught.value).splitlines() == [
        "events.csv: 5 errors, nothing was imported.",
        f"line 3, column 'amount', value '1.234567': {TOO_PRECISE}",
        f"line 4, column 'member_external_id', value 'NOBODY': {UNKNOWN_MEMBER}",
        f"line 5: {repeated(2)}",
        f"line 6, column 'occurred_at', value '2025-01-01T13:00:00': {NAIVE_TIMESTAMP}",
        "line 6, column 'dwell_seconds', value '-1': must not be negative",
    ]
    assert row_counts() == counts
    assert not (tmp_path / "events.csv.rejected.csv").exists()


def test_skip_invalid_imports_the_valid_rows_and_writes_the_rest_beside_the_file(
    tmp_path, monkeypatch, m1, capsys
):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    path = write(tmp_path, SKIP_INPUT, "events.csv")

    call_command("import_events", str(path), "--skip-invalid")

    assert stored("session_id", "kind", "amount", "category") == [
        ("B1", "purchase", Decimal("12.50"), ""),
        ("B3", "return", Decimal("3.50"), "Toys"),
    ]
    rejects = tmp_path / "events.csv.rejected.csv"
    with rejects.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows == [
        [*EVENT_HEADER.split(","), "line", "column", "reason"],
        ["M1", "2025-01-01T11:00:00Z", "purchase", "1.234567", "1", "", "", "B2", "", "P1"]
        + ["3", "amount", TOO_PRECISE],
        ["NOBODY", "2025-01-01T12:00:00Z", "view", "", "", "", "", "S1", "", ""]
        + ["4", "member_external_id", UNKNOWN_MEMBER],
        ["M1", "2025-01-01T10:00:00Z", "purchase", "12.50", "1", "", "", "B1", "", "P1"]
        + ["5", "", repeated(2)],
        ["M1", "2025-01-01T13:00:00", "view", "", "", "", "", "S2", "-1", ""]
        + ["6", "occurred_at; dwell_seconds", f"{NAIVE_TIMESTAMP}; must not be negative"],
    ]
    out = capsys.readouterr().out
    assert "6 rows read, 2 created, 0 updated, 0 unchanged, 4 rejected" in out
    assert f"2 rows imported, 4 rejected; the rejected rows and why are in {rejects}" in out
    audit = AuditRecord.objects.get(kind="import")
    assert (audit.details["rejected"], audit.details["rejects_file"]) == (4, str(rejects))


def test_skip_invalid_without_bad_rows_writes_only_the_header(tmp_path, m1):
    path = write(tmp_path, events_csv("M1,2025-01-01T10:00:00Z,view,,,,,S1,,"), "events.csv")

    call_command("import_events", str(path), "--skip-invalid")

    assert (tmp_path / "events.csv.rejected.csv").read_text(encoding="utf-8").splitlines() == [
        f"{EVENT_HEADER},line,column,reason"
    ]
    assert row_counts()[1] == 1


def test_skip_invalid_still_refuses_a_file_that_is_not_valid_csv(tmp_path, m1):
    text = events_csv(
        "M1,2025-01-01T10:00:00Z,view,,,,,S1,,", "M1,2025-01-01T10:01:00Z,view,,,,,S2,,,extra"
    )
    path = write(tmp_path, text, "events.csv")
    counts = row_counts()

    with pytest.raises(CommandError, match="events.csv: 1 error, nothing was imported"):
        call_command("import_events", str(path), "--skip-invalid")

    assert row_counts() == counts
    assert not (tmp_path / "events.csv.rejected.csv").exists()


def test_skip_invalid_members_keeps_the_first_of_a_repeated_id(tmp_path):
    text = f"{MEMBER_HEADER}\nM1,2024-01-15,gold,,,,\nM2,soon,,,,,\nM1,,silver,,,,\n"
    path = write(tmp_path, text, "members.csv")

    call_command("import_members", str(path), "--skip-invalid")

    assert list(Member.objects.values_list("external_id", "tier")) == [("M1", "gold")]
    rejects = (tmp_path / "members.csv.rejected.csv").read_text(encoding="utf-8").splitlines()
    assert rejects == [
        f"{MEMBER_HEADER},line,column,reason",
        "M2,soon,,,,,,3,joined_at,not an ISO 8601 date",
        "M1,,silver,,,,,4,external_id,external id given more than once (first on line 2)",
    ]


def test_a_skip_invalid_import_that_fails_leaves_no_rejects_file(tmp_path, monkeypatch, m1):
    def members_gone(*, cursor):
        raise ConflictError("1 events belong to members erased or deleted during the import")

    monkeypatch.setattr(members_and_events, "_insert_staged_events", members_gone)
    path = write(tmp_path, SKIP_INPUT, "events.csv")
    counts = row_counts()

    with pytest.raises(CommandError, match="erased or deleted during the import"):
        call_command("import_events", str(path), "--skip-invalid")

    assert row_counts() == counts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.csv"]
