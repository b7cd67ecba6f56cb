"""Change marks: every write of a member's scoring inputs marks the member, so that the daily
refresh (`predictions.services.scoring.freshness`) finds whom to re-score without a scan."""

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from loyalty.clock import midnight_after, scoring_clock
from loyalty.models import Member
from loyalty.services.erasure import erase_member
from loyalty.services.imports.members_and_events import import_events, import_members
from loyalty.services.members import set_consent, update_member
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db

BATCH_URL = "/api/events/batch/"
EVENT_HEADER = (
    "member_external_id,occurred_at,kind,amount,quantity,category,channel,session_id,"
    "dwell_seconds,product_id"
)


@pytest.fixture(autouse=True)
def _naive_times_are_utc(settings):
    settings.LOYALTY_IMPORT_TIMEZONE = "UTC"


def _marked() -> set[str]:
    return set(
        Member.objects.filter(inputs_changed_at__isnull=False).values_list("external_id", flat=True)
    )


def _write(tmp_path: Path, text: str, name: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _event(member: str, session: str) -> dict:
    return {
        "member_external_id": member,
        "occurred_at": "2025-03-01T10:00:00Z",
        "kind": "purchase",
        "amount": "19.99",
        "session_id": session,
    }


def test_a_batch_posted_to_the_api_marks_the_members_it_adds_events_to(client_as):
    client = client_as("integrator")
    for external_id in ("H-1", "H-2", "H-3"):
        MemberFactory(external_id=external_id)

    first = client.post(BATCH_URL, {"events": [_event("H-1", "S1")]}, format="json")

    assert first.status_code == 200
    assert _marked() == {"H-1"}
    # A batch of duplicates only adds nothing and marks no one.
    Member.objects.update(inputs_changed_at=None)
    again = client.post(BATCH_URL, {"events": [_event("H-1", "S1")]}, format="json")
    assert (again.json()["duplicates"], _marked()) == (1, set())


def test_an_event_import_marks_its_members(tmp_path):
    for external_id in ("M1", "M2", "M3"):
        MemberFactory(external_id=external_id)
    csv = f"{EVENT_HEADER}\nM1,2025-03-01T10:00:00,purchase,5,1,,,S1,,\n"
    csv += "M2,2025-03-02T10:00:00,purchase,7.25,1,,,S2,,\n"

    import_events(source=_write(tmp_path, csv, "events.csv"))

    assert _marked() == {"M1", "M2"}
    # The same file again stores nothing new, and marks nothing.
    Member.objects.update(inputs_changed_at=None)
    import_events(source=_write(tmp_path, csv, "events.csv"))
    assert _marked() == set()


def test_a_member_import_marks_the_members_it_changes(tmp_path):
    MemberFactory(external_id="M1", tier="silver")
    MemberFactory(external_id="M2", tier="gold")
    csv = "external_id,tier\nM1,gold\nM2,gold\n"

    import_members(source=_write(tmp_path, csv, "members.csv"))

    assert _marked() == {"M1"}


def test_an_update_a_consent_and_an_erasure_each_mark_the_member():
    tiered, consenting, erased, untouched = (
        MemberFactory(tier="silver", consent_profiling=False) for _ in range(4)
    )

    update_member(member=tiered, actor=None, data={"tier": "gold"})
    set_consent(member=consenting, consent=True, actor=None)
    erase_member(member_id=erased.pk, actor=None)
    update_member(member=untouched, actor=None, data={"tier": "silver"})  # no change

    assert set(
        Member.objects.filter(inputs_changed_at__isnull=False).values_list("pk", flat=True)
    ) == {tiered.pk, consenting.pk, erased.pk}


# --- the scoring clock ----------------------------------------------------------------------


def test_the_clock_is_the_midnight_after_the_last_event_when_the_data_stop_in_the_past():
    EventFactory(occurred_at=datetime(2024, 5, 3, 17, 45, tzinfo=UTC))

    assert scoring_clock() == datetime(2024, 5, 4, tzinfo=UTC)


def test_the_clock_is_now_while_the_data_are_live(settings):
    before = datetime.now(UTC)
    EventFactory(occurred_at=before)

    clock = scoring_clock()

    # The midnight after the last event is later than now: the clock does not run ahead.
    assert before <= clock <= datetime.now(UTC) < midnight_after(before)


def test_the_clock_is_now_without_any_data():
    before = datetime.now(UTC)

    assert before <= scoring_clock() <= datetime.now(UTC)


def test_midnight_after_keeps_the_zone():
    assert midnight_after(datetime(2024, 12, 31, 0, 0, tzinfo=UTC)) == datetime(
        2025, 1, 1, tzinfo=UTC
    )
    assert date(2025, 1, 1) == midnight_after(datetime(2024, 12, 31, 23, 59, tzinfo=UTC)).date()
