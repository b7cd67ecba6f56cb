"""CSV and DataFrame import of members and events: exact results, all-or-nothing rejection."""

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from loyalty.exceptions import PermissionDeniedError
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.erasure import erase_member, lift_tombstone
from loyalty.services.imports import checks, validation
from loyalty.services.imports.members_and_events import import_events, import_members
from loyalty.services.imports.validation import ImportValidationError, RowError
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _naive_times_are_utc(settings):
    """These files write UTC times without an offset; the import must be told so (the rules
    for naive times are tested in test_import_real_data.py)."""
    settings.LOYALTY_IMPORT_TIMEZONE = "UTC"


MEMBER_HEADER = "external_id,joined_at,tier,points_balance,consent_profiling,age_band,region"
EVENT_HEADER = (
    "member_external_id,occurred_at,kind,amount,quantity,category,channel,session_id,"
    "dwell_seconds,product_id"
)
MEMBERS_CSV = f"""{MEMBER_HEADER}
M1,2024-01-15, Gold ,1200,yes,35-44,north
M2,2024-02-01T23:30:00-05:00,,0,,,
M3,,Diamond,-5,FALSE,18-24,south
"""


def write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def row_counts() -> tuple[int, int, int]:
    return Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()


def rejected(call) -> ImportValidationError:
    with pytest.raises(ImportValidationError) as caught:
        call()
    return caught.value


# --- members ---------------------------------------------------------------------------------


def test_member_file_is_imported_exactly(tmp_path):
    path = write(tmp_path, MEMBERS_CSV, "members.csv")

    result = import_members(source=path)

    assert (result.rows_read, result.created, result.updated, result.unchanged) == (3, 3, 0, 0)
    assert result.source == "members.csv"
    rows = list(
        Member.objects.order_by("external_id").values_list(
            "external_id",
            "joined_on",
            "tier",
            "points_balance",
            "consent_profiling",
            "consent_changed_at",
            "age_band",
            "region",
            "erased_at",
        )
    )
    assert rows == [
        ("M1", date(2024, 1, 15), "gold", 1200, True, None, "35-44", "north", None),
        # 23:30 at UTC-5 is 04:30 UTC the next day.
        ("M2", date(2024, 2, 2), "", 0, False, None, "", "", None),
        ("M3", None, "diamond", -5, False, None, "18-24", "south", None),
    ]
    audit = AuditRecord.objects.get()
    assert (audit.kind, audit.subject, audit.actor, audit.actor_name) == (
        "import",
        "members:members.csv",
        None,
        "",
    )
    assert audit.details == {
        "kind": "members",
        "source": "members.csv",
        "rows_read": 3,
        "created": 3,
        "updated": 0,
        "unchanged": 0,
    }


def test_reimporting_a_member_file_changes_nothing(tmp_path):
    path = write(tmp_path, MEMBERS_CSV)
    import_members(source=path)
    before = list(Member.objects.order_by("pk").values())

    result = import_members(source=path)

    assert (result.rows_read, result.created, result.updated, result.unchanged) == (3, 0, 0, 3)
    assert list(Member.objects.order_by("pk").values()) == before
    assert AuditRecord.objects.filter(kind="import").count() == 2
    assert AuditRecord.objects.filter(kind="consent_change").count() == 0


def test_changed_members_are_updated_and_the_rest_left_alone(tmp_path):
    import_members(source=write(tmp_path, MEMBERS_CSV))
    before = {m.external_id: m.updated_at for m in Member.objects.all()}
    changed = MEMBERS_CSV.replace("M1,2024-01-15, Gold ,1200", "M1,2024-01-15,platinum,1300")

    result = import_members(source=write(tmp_path, changed, "changed.csv"))

    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    m1 = Member.objects.get(external_id="M1")
    assert (m1.tier, m1.points_balance) == ("platinum", 1300)
    assert m1.updated_at > before["M1"]
    assert Member.objects.get(external_id="M2").updated_at == before["M2"]
    assert Member.objects.get(external_id="M3").updated_at == before["M3"]


def test_consent_change_on_reimport_is_stamped_and_audited(tmp_path):
    import_members(source=write(tmp_path, MEMBERS_CSV))
    withdrawn = MEMBERS_CSV.replace("1200,yes", "1200,no")

    result = import_members(source=write(tmp_path, withdrawn, "withdrawn.csv"))

    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    m1 = Member.objects.get(external_id="M1")
    assert m1.consent_profiling is False
    assert m1.consent_changed_at == m1.updated_at
    assert Member.objects.get(external_id="M2").consent_changed_at is None
    audit = AuditRecord.objects.get(kind="consent_change")
    # By pk, never by external id: erasure could not take the id out of the trail.
    assert (audit.subject, audit.details) == (
        f"member:{m1.pk}",
        {
            "member_id": m1.pk,
            "consent": "profiling",
            "consent_profiling": False,
            "changed_at": m1.consent_changed_at.isoformat(),
            "source": "import:withdrawn.csv",
        },
    )


def test_a_column_left_out_keeps_the_stored_values(tmp_path):
    MemberFactory(external_id="M1", region="north", age_band="35-44", tier="silver")

    result = import_members(source=write(tmp_path, "external_id,tier\nM1,gold\nM9,\n"))

    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    m1 = Member.objects.get(external_id="M1")
    assert (m1.tier, m1.region, m1.age_band) == ("gold", "north", "35-44")
    m9 = Member.objects.get(external_id="M9")
    assert (m9.tier, m9.region, m9.points_balance, m9.consent_profiling, m9.joined_on) == (
        "",
        "",
        0,
        False,
        None,
    )


def test_the_acting_user_is_recorded_and_needs_the_permissions(tmp_path, make_user):
    path = write(tmp_path, MEMBERS_CSV)
    analyst = make_user("analyst")
    integrator = make_user("integrator")
    counts = row_counts()

    with pytest.raises(PermissionDeniedError):
        import_members(source=path, actor=analyst)
    assert row_counts() == counts

    import_members(source=path, actor=integrator)
    audit = AuditRecord.objects.get(kind="import")
    assert (audit.actor, audit.actor_name) == (integrator, "integrator-user")


MEMBER_REJECTIONS = [
    pytest.param(
        # Any other column is a member attribute (test_member_attributes.py), unless its
        # header makes no attribute key.
        f"{MEMBER_HEADER},%%\nM1,,,,,,,blue\n",
        [
            RowError(
                1,
                "%%",
                "%%",
                "unknown column, and its name does not make a member attribute key (lowercase "
                "letters, digits and underscores, 1 to 32 characters once lowercased and each "
                "run of other characters made one underscore); known columns: external_id, "
                "joined_at, tier, points_balance, consent_profiling, consent_marketing, "
                "age_band, region",
            )
        ],
        id="unknown column",
    ),
    pytest.param(
        "joined_at,tier\n2024-01-01,gold\n",
        [RowError(1, "external_id", "", "required column is missing")],
        id="missing required column",
    ),
    pytest.param(
        f"{MEMBER_HEADER}\nM1,2024-01-01,,,,,\nM2,yesterday,,,,,\nM3,2024-02-30,,,,,\n",
        [
            RowError(3, "joined_at", "yesterday", "not an ISO 8601 date"),
            RowError(4, "joined_at", "2024-02-30", "not an ISO 8601 date"),
        ],
        id="bad date",
    ),
    pytest.param(
        f"{MEMBER_HEADER}\nM1,,,12.5,,,\nM2,,,lots,,,\nM3,,,99999999999,,,\nM4,,,,maybe,,\n",
        [
            RowError(2, "points_balance", "12.5", "not a whole number"),
            RowError(3, "points_balance", "lots", "not a whole number"),
            RowError(4, "points_balance", "99999999999", "outside -2147483648..2147483647"),
            RowError(
                5,
                "consent_profiling",
                "maybe",
                "not a yes/no value (true/false, 1/0, yes/no)",
            ),
        ],
        id="bad number and boolean",
    ),
    pytest.param(
        f"{MEMBER_HEADER}\n{'x' * 65},,,,,,\nM2,,{'t' * 33},,,,\n",
        [
            RowError(2, "external_id", "x" * 65, "longer than 64 characters"),
            RowError(3, "tier", "t" * 33, "longer than 32 characters"),
        ],
        id="over-long values",
    ),
    pytest.param(
        f"{MEMBER_HEADER}\nM1,,,,,,\n,,gold,,,,\nM1,,,,,,\n",
        [
            RowError(3, "external_id", "", "a value is required"),
            RowError(4, "external_id", "M1", "external id given more than once (first on line 2)"),
        ],
        id="missing and repeated external id",
    ),
    pytest.param(
        f"{MEMBER_HEADER}\nerased-7,,,,,,\n",
        [
            RowError(
                2,
                "external_id",
                "erased-7",
                "ids starting with 'erased-' are reserved for erased members",
            )
        ],
        id="reserved id",
    ),
]


@pytest.mark.parametrize(("text", "errors"), MEMBER_REJECTIONS)
def test_a_bad_member_file_is_rejected_whole_and_changes_nothing(tmp_path, text, errors):
    MemberFactory(external_id="M1", tier="silver")
    counts = row_counts()
    stored = list(Member.objects.values())

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert list(error.errors) == errors
    assert error.error_count == len(errors)
    assert row_counts() == counts
    assert list(Member.objects.values()) == stored


def test_error_messages_name_line_column_value_and_reason(tmp_path):
    error = rejected(
        lambda: import_members(source=write(tmp_path, f"{MEMBER_HEADER}\nM1,soon,,,,,\n"))
    )

    assert error.message == "data.csv: 1 error, nothing was imported."
    assert error.describe() == ["line 2, column 'joined_at', value 'soon': not an ISO 8601 date"]


def test_only_the_first_50_errors_are_listed_and_the_rest_counted(tmp_path):
    rows = "".join(f"M{n},not-a-date,,,,,\n" for n in range(60))

    error = rejected(lambda: import_members(source=write(tmp_path, MEMBER_HEADER + "\n" + rows)))

    assert error.error_count == 60
    assert [e.line for e in error.errors] == list(range(2, 52))
    assert error.describe()[-1] == "... and 10 more errors"
    assert len(error.describe()) == 51
    assert row_counts() == (0, 0, 0)


def test_an_error_in_a_late_chunk_writes_nothing_from_earlier_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    rows = "".join(f"M{n},2024-01-01,,,,,\n" for n in range(5)) + "M5,never,,,,,\n"

    error = rejected(lambda: import_members(source=write(tmp_path, MEMBER_HEADER + "\n" + rows)))

    assert list(error.errors) == [RowError(7, "joined_at", "never", "not an ISO 8601 date")]
    assert row_counts() == (0, 0, 0)


def test_blank_lines_are_skipped_without_shifting_line_numbers(tmp_path):
    text = f"{MEMBER_HEADER}\nM1,,,,,,\n\nM2,,,x,,,\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert list(error.errors) == [RowError(4, "points_balance", "x", "not a whole number")]


def test_a_row_with_too_many_fields_is_reported(tmp_path):
    text = f"{MEMBER_HEADER}\nM1,,,,,,\nM2,,,,,,,extra\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(3, "", "", "not readable as CSV: Expected 7 fields in line 3, saw 8")
    ]
    assert row_counts() == (0, 0, 0)


def test_an_empty_file_is_rejected(tmp_path):
    error = rejected(lambda: import_members(source=write(tmp_path, "")))

    assert list(error.errors) == [
        RowError(1, "", "", "the file is empty; a header line is expected")
    ]


# --- events ----------------------------------------------------------------------------------

EVENTS_CSV = f"""{EVENT_HEADER}
M1,2025-01-01T10:00:00,purchase,12.50,2,GROCERY,store,B1,,P1
M1,2025-01-01T10:00:00+02:00,View,,,,web,S1,3.5,
M2,2025-01-02 08:00:00.123456Z,purchase,3,1,,app,B2,,P2
M2,2025-01-03,login,,,,app,S2,0,
"""


def test_event_file_is_imported_exactly_with_utc_timestamps(tmp_path):
    m1 = MemberFactory(external_id="M1")
    m2 = MemberFactory(external_id="M2")

    result = import_events(source=write(tmp_path, EVENTS_CSV, "events.csv"))

    assert (result.rows_read, result.created, result.updated, result.unchanged) == (4, 4, 0, 0)
    rows = list(
        Event.objects.order_by("member_id", "occurred_at").values_list(
            "member_id",
            "occurred_at",
            "kind",
            "amount",
            "quantity",
            "category",
            "channel",
            "session_id",
            "dwell_seconds",
            "product_id",
        )
    )
    assert rows == [
        # +02:00 is converted to UTC; a time without an offset is in the zone set (UTC here).
        (m1.pk, datetime(2025, 1, 1, 8, tzinfo=UTC), "view", None, None, "", "web", "S1", 3.5, ""),
        (
            m1.pk,
            datetime(2025, 1, 1, 10, tzinfo=UTC),
            "purchase",
            Decimal("12.50"),
            2.0,
            "GROCERY",
            "store",
            "B1",
            None,
            "P1",
        ),
        (
            m2.pk,
            datetime(2025, 1, 2, 8, 0, 0, 123456, tzinfo=UTC),
            "purchase",
            Decimal("3.00"),
            1.0,
            "",
            "app",
            "B2",
            None,
            "P2",
        ),
        (m2.pk, datetime(2025, 1, 3, tzinfo=UTC), "login", None, None, "", "app", "S2", 0.0, ""),
    ]
    assert all(
        stamp.tzinfo is not None for stamp in Event.objects.values_list("occurred_at", flat=True)
    )
    audit = AuditRecord.objects.get()
    assert (audit.subject, audit.details["created"], audit.details["unchanged"]) == (
        "events:events.csv",
        4,
        0,
    )


def test_a_naive_time_after_one_with_an_offset_is_still_utc(tmp_path):
    # pandas alone parses such a column with the earlier value's offset.
    MemberFactory(external_id="M1")
    text = (
        f"{EVENT_HEADER}\n"
        "M1,2025-01-01T10:00:00+02:00,view,,,,,S1,,\n"
        "M1,2025-01-01T10:00:00,view,,,,,S2,,\n"
    )

    import_events(source=write(tmp_path, text))

    assert list(Event.objects.order_by("session_id").values_list("occurred_at", flat=True)) == [
        datetime(2025, 1, 1, 8, tzinfo=UTC),
        datetime(2025, 1, 1, 10, tzinfo=UTC),
    ]


def test_reimporting_an_event_file_changes_nothing(tmp_path):
    MemberFactory(external_id="M1")
    MemberFactory(external_id="M2")
    path = write(tmp_path, EVENTS_CSV)
    import_events(source=path)
    stored = list(Event.objects.order_by("pk").values())

    result = import_events(source=path)

    assert (result.rows_read, result.created, result.unchanged) == (4, 0, 4)
    assert list(Event.objects.order_by("pk").values()) == stored


def test_events_already_stored_are_skipped(tmp_path):
    member = MemberFactory(external_id="M1")
    EventFactory(
        member=member,
        occurred_at=datetime(2025, 1, 1, 10, tzinfo=UTC),
        kind="purchase",
        session_id="B1",
        product_id="P1",
    )
    text = (
        f"{EVENT_HEADER}\n"
        "M1,2025-01-01T10:00:00Z,purchase,1,1,,,B1,,P1\n"
        "M1,2025-01-01T11:00:00Z,purchase,1,1,,,B1,,P1\n"
    )

    result = import_events(source=write(tmp_path, text))

    assert (result.rows_read, result.created, result.unchanged) == (2, 1, 1)
    assert Event.objects.count() == 2


def test_events_can_come_from_dataframes_in_chunks():
    MemberFactory(external_id="M1")
    first = pd.DataFrame(
        {
            "member_external_id": ["M1", "M1"],
            "occurred_at": pd.to_datetime(["2025-01-01 10:00", "2025-01-01 11:00"]),
            "kind": ["purchase", "view"],
            "amount": [9.99, None],
            "session_id": ["B1", "S1"],
        }
    )
    second = first.assign(session_id=["B2", "S2"])

    result = import_events(source=iter([first, second]), source_name="frames")

    assert (result.source, result.rows_read, result.created) == ("frames", 4, 4)
    assert list(Event.objects.order_by("session_id").values_list("session_id", "amount")) == [
        ("B1", Decimal("9.99")),
        ("B2", Decimal("9.99")),
        ("S1", None),
        ("S2", None),
    ]


def test_errors_in_a_later_dataframe_carry_their_line_numbers():
    MemberFactory(external_id="M1")
    good = pd.DataFrame(
        {"member_external_id": ["M1"] * 3, "occurred_at": "2025-01-01", "kind": "view"}
    )
    good["session_id"] = ["a", "b", "c"]
    bad = good.assign(kind=["view", "teleport", "view"], session_id=["d", "e", "f"])
    counts = row_counts()

    error = rejected(lambda: import_events(source=[good, bad]))

    assert list(error.errors) == [
        RowError(
            6,
            "kind",
            "teleport",
            "unknown kind; expected one of: add_to_cart, campaign_received, click, "
            "coupon_redeemed, email_open, login, purchase, redemption, return, search, "
            "support_contact, view",
        )
    ]
    assert row_counts() == counts


EVENT_REJECTIONS = [
    pytest.param(
        "member_external_id,occurred_at,kind,referrer\nM1,2025-01-01,view,x\n",
        [
            RowError(
                1,
                "referrer",
                "referrer",
                "unknown column; expected columns: member_external_id, occurred_at, kind, "
                "amount, quantity, category, channel, session_id, dwell_seconds, product_id",
            )
        ],
        id="unknown column",
    ),
    pytest.param(
        "member_external_id,kind\nM1,view\n",
        [RowError(1, "occurred_at", "", "required column is missing")],
        id="missing required column",
    ),
    pytest.param(
        f"{EVENT_HEADER}\nM1,2025-13-01,view,,,,,,,\nM1,,view,,,,,,,\n",
        [
            RowError(2, "occurred_at", "2025-13-01", "not an ISO 8601 date/time"),
            RowError(3, "occurred_at", "", "a value is required"),
        ],
        id="bad date",
    ),
    pytest.param(
        f"{EVENT_HEADER}\n"
        "M1,2025-01-01,purchase,ten,,,,B1,,\n"
        "M1,2025-01-01,purchase,1.23456,x,,,B2,-1,\n"
        "M1,2025-01-01,purchase,1e13,,,,B3,inf,\n",
        [
            RowError(2, "amount", "ten", "not a number"),
            RowError(
                3,
                "amount",
                "1.23456",
                "more than 4 decimal places: amounts are stored exactly, never rounded",
            ),
            RowError(3, "quantity", "x", "not a number"),
            RowError(3, "dwell_seconds", "-1", "must not be negative"),
            RowError(4, "amount", "1e13", "too large: at most 11 digits before the decimal point"),
            RowError(4, "dwell_seconds", "inf", "not a number"),
        ],
        id="bad numbers",
    ),
    pytest.param(
        f"{EVENT_HEADER}\nM1,2025-01-01,teleport,,,,,,,\nM1,2025-01-01,,,,,,,,\n",
        [
            RowError(
                2,
                "kind",
                "teleport",
                "unknown kind; expected one of: add_to_cart, campaign_received, click, "
                "coupon_redeemed, email_open, login, purchase, redemption, return, search, "
                "support_contact, view",
            ),
            RowError(3, "kind", "", "a value is required"),
        ],
        id="unknown kind",
    ),
    pytest.param(
        f"{EVENT_HEADER}\nM1,2025-01-01,view,,,,,,,\nNOBODY,2025-01-01,view,,,,,,,\n",
        [RowError(3, "member_external_id", "NOBODY", "unknown member; import members first")],
        id="unknown member",
    ),
    pytest.param(
        f"{EVENT_HEADER}\nM1,2025-01-01,view,,,,,{'s' * 65},,\n",
        [RowError(2, "session_id", "s" * 65, "longer than 64 characters")],
        id="over-long value",
    ),
]


@pytest.mark.parametrize(("text", "errors"), EVENT_REJECTIONS)
def test_a_bad_event_file_is_rejected_whole_and_changes_nothing(tmp_path, text, errors):
    member = MemberFactory(external_id="M1")
    EventFactory(member=member)
    counts = row_counts()

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == errors
    assert error.error_count == len(errors)
    assert row_counts() == counts


def test_events_of_an_erased_member_are_rejected(tmp_path):
    MemberFactory(external_id="erased-41", erased_at=datetime(2025, 1, 1, tzinfo=UTC))
    counts = row_counts()
    text = f"{EVENT_HEADER}\nerased-41,2025-02-01,view,,,,,,,\n"

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(
            2,
            "member_external_id",
            "erased-41",
            "this member was erased; no events are imported for it",
        )
    ]
    assert row_counts() == counts


@pytest.fixture
def erased_h42():
    """H-42, erased: its row now says erased-<pk>; only its tombstone knows the former id."""
    member = MemberFactory(external_id="H-42")
    erase_member(member_id=member.pk, actor=None)
    return member


def test_events_of_an_erased_members_former_id_are_rejected_as_erased(tmp_path, erased_h42):
    MemberFactory(external_id="H-1")
    counts = row_counts()
    text = (
        f"{EVENT_HEADER}\nH-1,2025-02-01,view,,,,,,,\nH-42,2025-02-01,view,,,,,,,\n"
        "H-99,2025-02-01,view,,,,,,,\n"
    )

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(
            3, "member_external_id", "H-42", "this member was erased; no events are imported for it"
        ),
        RowError(4, "member_external_id", "H-99", "unknown member; import members first"),
    ]
    assert row_counts() == counts


def test_an_erased_members_former_id_cannot_come_back_through_the_member_import(
    tmp_path, erased_h42
):
    counts = row_counts()
    stored = list(Member.objects.values())
    text = f"{MEMBER_HEADER}\nH-1,,gold,,,,\nH-42,2024-01-15,gold,900,yes,35-44,north\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert list(error.errors) == [
        RowError(
            3,
            "external_id",
            "H-42",
            "this member was erased; its data is not imported again unless an admin lifts the "
            "erasure's tombstone",
        )
    ]
    assert row_counts() == counts
    assert list(Member.objects.values()) == stored


def test_an_erased_id_is_refused_in_any_chunk_and_imported_once_lifted(
    tmp_path, monkeypatch, erased_h42
):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    rows = "".join(f"H-{n},,,,,,\n" for n in range(1, 6))
    text = f"{MEMBER_HEADER}\n{rows}H-42,,,,,,\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))
    lift_tombstone(external_id="H-42", actor=None, reason="rejoined")
    result = import_members(source=write(tmp_path, text, "again.csv"))

    assert [(row.line, row.value) for row in error.errors] == [(7, "H-42")]
    assert result.created == 6
    assert Member.objects.get(external_id="H-42").pk != erased_h42.pk


def test_a_long_value_is_cut_in_the_error_message(tmp_path):
    MemberFactory(external_id="M1")
    text = f"{EVENT_HEADER}\nM1,2025-01-01,view,,,{'c' * 500},,,,\n"

    error = rejected(lambda: import_events(source=write(tmp_path, text)))

    (only,) = error.errors
    assert (only.line, only.column, only.reason) == (2, "category", "longer than 64 characters")
    assert only.value == "c" * 79 + "…"


def test_events_written_over_several_chunks_are_all_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 3)
    MemberFactory(external_id="M1")
    rows = "".join(f"M1,2025-01-01T00:00:{n:02d},view,,,,web,S,{n},\n" for n in range(10))

    result = import_events(source=write(tmp_path, EVENT_HEADER + "\n" + rows))

    assert (result.rows_read, result.created) == (10, 10)
    assert list(Event.objects.order_by("occurred_at").values_list("dwell_seconds", flat=True)) == [
        float(n) for n in range(10)
    ]


# --- commands --------------------------------------------------------------------------------


def test_import_commands_load_files_and_print_a_summary(tmp_path, capsys):
    members = write(tmp_path, MEMBERS_CSV, "members.csv")
    events = write(tmp_path, EVENTS_CSV.replace("M2", "M3"), "events.csv")

    call_command("import_members", str(members))
    call_command("import_events", str(events))

    out = capsys.readouterr().out
    assert "members from members.csv: 3 rows read, 3 created, 0 updated, 0 unchanged" in out
    assert "events from events.csv: 4 rows read, 4 created, 0 updated, 0 unchanged" in out
    assert row_counts() == (3, 4, 2)


def test_import_command_fails_on_a_bad_file_listing_every_error(tmp_path):
    path = write(tmp_path, f"{MEMBER_HEADER}\nM1,soon,,,,,\nM2,,,many,,,\n", "bad.csv")

    with pytest.raises(CommandError) as caught:
        call_command("import_members", str(path))

    assert str(caught.value).splitlines() == [
        "bad.csv: 2 errors, nothing was imported.",
        "line 2, column 'joined_at', value 'soon': not an ISO 8601 date",
        "line 3, column 'points_balance', value 'many': not a whole number",
    ]
    assert row_counts() == (0, 0, 0)


def test_event_command_fails_on_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_events", str(tmp_path / "missing.csv"))


def test_members_are_checked_right_across_chunks_whatever_is_remembered(tmp_path, monkeypatch):
    monkeypatch.setattr(validation, "CHUNK_ROWS", 2)
    monkeypatch.setattr(checks, "KNOWN_MEMBER_CACHE", 1)
    MemberFactory(external_id="M1")
    MemberFactory(external_id="M2")
    owners = ["M1", "M2", "M2", "M1", "M1", "NOBODY", "M2"]
    rows = "".join(
        f"{owner},2025-01-01T00:00:{n:02d},view,,,,,,,\n" for n, owner in enumerate(owners)
    )

    error = rejected(lambda: import_events(source=write(tmp_path, EVENT_HEADER + "\n" + rows)))

    assert list(error.errors) == [
        RowError(7, "member_external_id", "NOBODY", "unknown member; import members first")
    ]
