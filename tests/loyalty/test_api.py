"""The REST API: roles, members, event batches, erasure, and the OpenAPI schema."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.urls import reverse

from loyalty.models import AuditRecord, Event, Member
from loyalty.services.erasure import erase_member, tombstone_digest
from loyalty.services.events import EVENT_BATCH_LIMIT
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db

MEMBERS_URL = "/api/members/"
BATCH_URL = "/api/events/batch/"


def _counts() -> tuple[int, int, int]:
    return Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()


def _event(member_external_id: str = "H-1", **fields) -> dict:
    return {
        "member_external_id": member_external_id,
        "occurred_at": "2025-03-01T10:00:00Z",
        "kind": "purchase",
        "amount": "19.99",
        "quantity": 2,
        "category": "GROCERY",
        "channel": "store",
        "session_id": "S1",
        "product_id": "P1",
        **fields,
    }


def _detail(external_id: str, suffix: str = "") -> str:
    return f"{MEMBERS_URL}{external_id}/{suffix}"


# --- authentication and roles ---------------------------------------------------------------


def test_anonymous_request_gets_401_with_token_challenge(api_client):
    response = api_client.get(MEMBERS_URL)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_invalid_token_gets_401(api_client):
    api_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert api_client.get(MEMBERS_URL).status_code == 401


@pytest.mark.parametrize("role", ["analyst", "expert"])
def test_read_only_roles_can_read_but_not_write(client_as, role):
    client = client_as(role)
    member = MemberFactory(external_id="H-1", tier="silver")
    counts_before = _counts()

    listed = client.get(MEMBERS_URL)
    detail = client.get(_detail("H-1"))
    events = client.get(_detail("H-1", "events/"))
    created = client.post(MEMBERS_URL, {"external_id": "H-2"}, format="json")
    patched = client.patch(_detail("H-1"), {"tier": "gold"}, format="json")
    put = client.put(_detail("H-1"), {"tier": "gold"}, format="json")
    batch = client.post(BATCH_URL, [_event()], format="json")
    erased = client.post(_detail("H-1", "erase/"))

    assert (listed.status_code, detail.status_code, events.status_code) == (200, 200, 200)
    assert [created.status_code, patched.status_code, put.status_code] == [403, 403, 403]
    assert [batch.status_code, erased.status_code] == [403, 403]
    member.refresh_from_db()
    assert member.tier == "silver"
    assert _counts() == counts_before


def test_read_only_roles_do_not_see_fairness_attributes(client_as):
    client = client_as("analyst")
    MemberFactory(external_id="H-1", age_band="35-44", region="north")

    body = client.get(_detail("H-1")).json()

    assert "age_band" not in body
    assert "region" not in body
    assert body["external_id"] == "H-1"


def test_admin_creates_a_member_and_sees_every_field(client_as):
    client = client_as("admin")

    response = client.post(
        MEMBERS_URL,
        {
            "external_id": "H-9",
            "joined_on": "2024-02-01",
            "tier": "gold",
            "points_balance": 300,
            "consent_profiling": True,
            "age_band": "25-34",
            "region": "west",
        },
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    member = Member.objects.get(external_id="H-9")
    assert {key: body[key] for key in ("external_id", "joined_on", "tier", "points_balance")} == {
        "external_id": "H-9",
        "joined_on": "2024-02-01",
        "tier": "gold",
        "points_balance": 300,
    }
    assert (body["age_band"], body["region"]) == ("25-34", "west")
    assert (body["consent_profiling"], body["is_erased"]) == (True, False)
    assert (member.tier, member.consent_profiling) == ("gold", True)
    consent = AuditRecord.objects.get(kind="consent_change")
    assert consent.actor == client.user


def test_creating_an_existing_member_is_409_and_changes_nothing(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1", tier="silver")
    counts_before = _counts()

    response = client.post(MEMBERS_URL, {"external_id": "H-1", "tier": "gold"}, format="json")

    assert response.status_code == 409
    assert response.json()["detail"] == "A member with external id 'H-1' already exists."
    assert Member.objects.get().tier == "silver"
    assert _counts() == counts_before


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tier": "gold"}, "external_id"),
        ({"external_id": "H-1", "points_balance": "lots"}, "points_balance"),
        ({"external_id": "H-1", "joined_on": "yesterday"}, "joined_on"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"external_id": "erased-3"}, "external_id"),
    ],
)
def test_invalid_member_is_400_naming_the_field_and_changes_nothing(client_as, payload, field):
    client = client_as("admin")
    counts_before = _counts()

    response = client.post(MEMBERS_URL, payload, format="json")

    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert _counts() == counts_before


def test_integrator_patches_a_member_and_consent_withdrawal_is_audited(client_as):
    client = client_as("integrator")
    member = MemberFactory(external_id="H-1", tier="silver", consent_profiling=True)

    response = client.patch(
        _detail("H-1"), {"tier": "gold", "consent_profiling": False}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["tier"], response.json()["consent_profiling"]) == ("gold", False)
    member.refresh_from_db()
    assert (member.tier, member.consent_profiling) == ("gold", False)
    assert AuditRecord.objects.filter(kind="consent_change", actor=client.user).count() == 1


def test_put_needs_every_field(client_as):
    client = client_as("admin")
    MemberFactory(external_id="H-1", tier="silver")
    full = {
        "joined_on": None,
        "tier": "bronze",
        "points_balance": 0,
        "consent_profiling": True,
        "consent_marketing": True,
        "age_band": "",
        "region": "",
    }

    partial = client.put(_detail("H-1"), {"tier": "gold"}, format="json")
    replaced = client.put(_detail("H-1"), full, format="json")

    assert partial.status_code == 400
    assert set(partial.json()) == {
        "joined_on",
        "points_balance",
        "consent_profiling",
        "age_band",
        "region",
    }
    assert replaced.status_code == 200
    member = Member.objects.get()
    assert (member.tier, member.joined_on, member.points_balance, member.region) == (
        "bronze",
        None,
        0,
        "",
    )
    assert (member.consent_profiling, member.consent_marketing) == (True, True)


def test_a_put_written_before_marketing_consent_existed_leaves_it_as_it_is(client_as):
    client = client_as("admin")
    MemberFactory(external_id="H-1", consent_marketing=True)
    older_client = {
        "joined_on": None,
        "tier": "bronze",
        "points_balance": 0,
        "consent_profiling": True,
        "age_band": "",
        "region": "",
    }

    response = client.put(_detail("H-1"), older_client, format="json")

    assert response.status_code == 200
    assert Member.objects.get().consent_marketing is True


def test_an_erased_member_cannot_be_updated(client_as):
    client = client_as("admin")
    MemberFactory(external_id="H-1", tier="gold")
    client.post(_detail("H-1", "erase/"))
    counts_before = _counts()

    response = client.patch(_detail(f"erased-{Member.objects.get().pk}"), {"tier": "gold"})

    assert response.status_code == 409
    assert "erased" in response.json()["detail"]
    assert Member.objects.get().tier == ""
    assert _counts() == counts_before


def test_unknown_member_is_404(client_as):
    client = client_as("admin")

    assert client.get(_detail("nobody")).status_code == 404
    assert client.patch(_detail("nobody"), {"tier": "gold"}, format="json").status_code == 404
    assert client.get(_detail("nobody", "events/")).status_code == 404
    assert client.post(_detail("nobody", "erase/")).status_code == 404


# --- list filters and pagination ------------------------------------------------------------


def test_member_list_filters_by_tier_and_consent(client_as):
    client = client_as("analyst")
    MemberFactory(external_id="G-yes", tier="gold", consent_profiling=True)
    MemberFactory(external_id="G-no", tier="gold", consent_profiling=False)
    MemberFactory(external_id="S-yes", tier="silver", consent_profiling=True)

    gold = client.get(MEMBERS_URL, {"tier": "gold"}).json()["results"]
    consenting = client.get(MEMBERS_URL, {"consent_profiling": "true"}).json()["results"]
    both = client.get(MEMBERS_URL, {"tier": "gold", "consent_profiling": "false"}).json()

    assert [row["external_id"] for row in gold] == ["G-yes", "G-no"]
    assert [row["external_id"] for row in consenting] == ["G-yes", "S-yes"]
    assert [row["external_id"] for row in both["results"]] == ["G-no"]


def test_member_list_filters_erased_members(client_as):
    client = client_as("admin")
    MemberFactory(external_id="H-1")
    MemberFactory(external_id="H-2")
    client.post(_detail("H-2", "erase/"))

    erased = client.get(MEMBERS_URL, {"erased": "true"}).json()["results"]
    kept = client.get(MEMBERS_URL, {"erased": "false"}).json()["results"]

    assert [row["is_erased"] for row in erased] == [True]
    assert [row["external_id"] for row in kept] == ["H-1"]


def test_member_list_pages_with_a_cursor(client_as):
    client = client_as("analyst")
    for number in range(5):
        MemberFactory(external_id=f"H-{number}")

    first = client.get(MEMBERS_URL, {"page_size": 2}).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()

    pages = [first, second, third]
    assert [[row["external_id"] for row in page["results"]] for page in pages] == [
        ["H-0", "H-1"],
        ["H-2", "H-3"],
        ["H-4"],
    ]
    assert third["next"] is None


def test_member_events_page_exactly_through_events_at_the_same_moment(client_as):
    client = client_as("analyst")
    member = MemberFactory(external_id="H-1")
    moment = datetime(2025, 3, 1, 10, 0, 0, 250000, tzinfo=UTC)
    events = [EventFactory(member=member, occurred_at=moment) for _ in range(4)]
    events.insert(0, EventFactory(member=member, occurred_at=datetime(2025, 1, 1, tzinfo=UTC)))

    pages, url = [], f"{_detail('H-1', 'events/')}?page_size=2"
    while url:
        body = client.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        url = body["next"]
    first = client.get(_detail("H-1", "events/"), {"page_size": 2}).json()
    back = client.get(client.get(first["next"]).json()["previous"]).json()

    ids = [event.pk for event in events]
    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert [row["id"] for row in back["results"]] == ids[0:2]
    assert back["previous"] is None


@pytest.mark.parametrize("suffix", ["", "H-1/events/"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "eyJrIjpbIngiXSwiciI6ZmFsc2V9"}, "cursor"),  # {"k":["x"],"r":false}
        ({"page_size": 0}, "page_size"),
        ({"page_size": 1001}, "page_size"),
    ],
)
def test_bad_cursor_or_page_size_is_400_naming_the_parameter(client_as, suffix, query, field):
    client = client_as("analyst")
    MemberFactory(external_id="H-1")

    response = client.get(f"{MEMBERS_URL}{suffix}", query)

    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_member_events_are_listed_oldest_first(client_as):
    client = client_as("analyst")
    member = MemberFactory(external_id="H-1")
    late = EventFactory(member=member, occurred_at=datetime(2025, 5, 1, tzinfo=UTC))
    early = EventFactory(member=member, occurred_at=datetime(2025, 1, 1, tzinfo=UTC))
    EventFactory()  # someone else's

    response = client.get(_detail("H-1", "events/"))

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [early.pk, late.pk]
    assert rows[0]["occurred_at"] == "2025-01-01T00:00:00Z"
    assert rows[0]["amount"] == "12.5000"


# --- event batches --------------------------------------------------------------------------


def test_integrator_posts_a_batch_and_every_event_is_stored(client_as):
    client = client_as("integrator")
    member = MemberFactory(external_id="H-1")
    items = [_event(session_id="S1"), _event(session_id="S2", occurred_at="2025-03-01T11:00Z")]

    response = client.post(BATCH_URL, {"events": items}, format="json")

    assert response.status_code == 200
    assert response.json() == {
        "received": 2,
        "created": 2,
        "duplicates": 0,
        "rejected": 0,
        "errors": [],
    }
    stored = Event.objects.get(session_id="S1")
    assert stored.member == member
    assert stored.occurred_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    assert (stored.kind, stored.amount, stored.quantity) == ("purchase", Decimal("19.99"), 2.0)
    assert (stored.category, stored.channel, stored.product_id) == ("GROCERY", "store", "P1")
    import_record = AuditRecord.objects.get(kind="import")
    assert import_record.actor == client.user
    assert import_record.details == {
        "source": "api",
        "received": 2,
        "created": 2,
        "duplicates": 0,
        "rejected": 0,
    }


def test_batch_with_good_and_bad_items_stores_the_good_and_names_each_bad_one(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    MemberFactory(external_id="H-2")
    items = [
        _event("H-1", session_id="A"),  # 0 good
        _event("H-404", session_id="B"),  # 1 unknown member
        _event("H-1", session_id="C", occurred_at="2025-03-01T10:00:00"),  # 2 naive time
        _event("H-2", session_id="D"),  # 3 good
        _event("H-1", kind="teleport", dwell_seconds=-1),  # 4 two bad fields
        "not an event",  # 5
        _event("H-2", session_id="E", amount="1.23456"),  # 6 too many decimals
        _event("H-2", session_id="F", occurred_at="2025-03-01T12:00:00+02:00"),  # 7 good
    ]

    response = client.post(BATCH_URL, items, format="json")

    assert response.status_code == 207
    body = response.json()
    assert (body["received"], body["created"], body["duplicates"], body["rejected"]) == (
        8,
        3,
        0,
        5,
    )
    assert [error["index"] for error in body["errors"]] == [1, 2, 4, 5, 6]
    errors = {error["index"]: error["errors"] for error in body["errors"]}
    assert errors[1] == {"member_external_id": ["No member has external id 'H-404'."]}
    assert list(errors[2]) == ["occurred_at"]
    assert "time zone offset" in errors[2]["occurred_at"][0]
    assert set(errors[4]) == {"kind", "dwell_seconds"}
    assert errors[5] == {"non_field_errors": ["Expected a JSON object."]}
    assert list(errors[6]) == ["amount"]
    assert sorted(Event.objects.values_list("session_id", flat=True)) == ["A", "D", "F"]
    assert Event.objects.get(session_id="F").occurred_at == datetime(2025, 3, 1, 10, 0, tzinfo=UTC)


def test_batch_of_only_bad_items_stores_nothing_and_writes_no_audit(client_as):
    client = client_as("integrator")
    counts_before = _counts()

    response = client.post(BATCH_URL, [_event("H-404")], format="json")

    assert response.status_code == 207
    assert (response.json()["created"], response.json()["rejected"]) == (0, 1)
    assert _counts() == counts_before


def test_batch_over_the_limit_is_refused_whole(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    items = [_event(session_id=f"S{number}") for number in range(EVENT_BATCH_LIMIT + 1)]
    counts_before = _counts()

    response = client.post(BATCH_URL, {"events": items}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "events": [
            "A batch holds at most 1000 events; this one has 1001. "
            "Split it into smaller batches; nothing was stored."
        ]
    }
    assert _counts() == counts_before


def test_batch_at_the_limit_is_stored(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    items = [_event(session_id=f"S{number}") for number in range(EVENT_BATCH_LIMIT)]

    response = client.post(BATCH_URL, items, format="json")

    assert response.status_code == 200
    assert response.json()["created"] == EVENT_BATCH_LIMIT
    assert Event.objects.count() == EVENT_BATCH_LIMIT


@pytest.mark.parametrize("payload", [[], {"events": []}, {"events": "x"}, {"items": []}, "x"])
def test_unusable_batch_is_400_and_stores_nothing(client_as, payload):
    client = client_as("integrator")
    counts_before = _counts()

    response = client.post(BATCH_URL, payload, format="json")

    assert response.status_code == 400
    assert _counts() == counts_before


def test_duplicates_in_a_batch_and_on_repost_are_stored_once(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    same_instant_other_offset = _event(occurred_at="2025-03-01T11:00:00+01:00")
    items = [_event(), _event(), same_instant_other_offset, _event(session_id="S2")]

    first = client.post(BATCH_URL, items, format="json")
    again = client.post(BATCH_URL, items, format="json")

    assert first.status_code == again.status_code == 200
    assert (first.json()["created"], first.json()["duplicates"]) == (2, 2)
    assert (again.json()["created"], again.json()["duplicates"]) == (0, 4)
    assert Event.objects.count() == 2
    assert AuditRecord.objects.filter(kind="import").count() == 1


def test_null_and_empty_text_fields_are_the_same_natural_key(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")

    response = client.post(
        BATCH_URL,
        [_event(session_id=None, product_id=None), _event(session_id="", product_id="")],
        format="json",
    )

    assert (response.json()["created"], response.json()["duplicates"]) == (1, 1)
    assert Event.objects.get().session_id == ""


def test_events_for_an_erased_member_are_refused(client_as):
    client = client_as("integrator")
    member = MemberFactory(external_id="H-1")
    erase_member(member_id=member.pk, actor=None)

    response = client.post(BATCH_URL, [_event(f"erased-{member.pk}")], format="json")

    assert response.status_code == 207
    assert response.json()["errors"] == [
        {
            "index": 0,
            "errors": {"member_external_id": ["This member was erased; it takes no new events."]},
        }
    ]
    assert Event.objects.count() == 0


# --- erasure --------------------------------------------------------------------------------


def test_admin_erases_a_member_through_the_api_and_a_retry_is_harmless(client_as):
    client = client_as("admin")
    member = MemberFactory(external_id="H-1", age_band="35-44", region="north")
    EventFactory.create_batch(2, member=member)

    first = client.post(_detail("H-1", "erase/"))
    counts_after_first = _counts()
    again = client.post(_detail("H-1", "erase/"))

    assert first.status_code == 200
    body = first.json()
    assert body["member_id"] == member.pk
    assert body["external_id"] == f"erased-{member.pk}"
    assert (body["events_deleted"], body["already_erased"]) == (2, False)
    assert body["tombstone_digest"] == tombstone_digest("H-1")
    assert again.json()["tombstone_digest"] == tombstone_digest("H-1")
    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert _counts() == counts_after_first
    assert Event.objects.count() == 0
    member.refresh_from_db()
    assert (member.age_band, member.region, member.is_erased) == ("", "", True)


def test_an_erased_members_former_id_cannot_be_created_again(client_as):
    client = client_as("integrator")
    member = MemberFactory(external_id="H-1")
    erase_member(member_id=member.pk, actor=None)
    counts = _counts()

    response = client.post(MEMBERS_URL, {"external_id": "H-1", "tier": "gold"}, format="json")

    assert response.status_code == 409
    assert response.json() == {
        "detail": "This member was erased; its external id is refused until an admin lifts "
        "the erasure's tombstone (manage.py lift_tombstone).",
        "external_id": "H-1",
    }
    assert _counts() == counts


def test_events_for_an_erased_members_former_id_are_refused_as_erased(client_as):
    client = client_as("integrator")
    erase_member(member_id=MemberFactory(external_id="H-1").pk, actor=None)
    MemberFactory(external_id="H-2")

    response = client.post(BATCH_URL, [_event("H-1"), _event("H-2")], format="json")

    assert response.status_code == 207
    assert response.json()["errors"] == [
        {
            "index": 0,
            "errors": {"member_external_id": ["This member was erased; it takes no new events."]},
        }
    ]
    assert list(Event.objects.values_list("member__external_id", flat=True)) == ["H-2"]


def test_integrator_may_not_erase(client_as):
    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    counts_before = _counts()

    response = client.post(_detail("H-1", "erase/"))

    assert response.status_code == 403
    assert _counts() == counts_before
    assert Member.objects.get().erased_at is None


def test_anonymous_may_not_erase(api_client):
    MemberFactory(external_id="H-1")

    response = api_client.post(_detail("H-1", "erase/"))

    assert response.status_code == 401
    assert Member.objects.get().erased_at is None


# --- schema and docs ------------------------------------------------------------------------


def test_schema_generates_and_validates_with_no_warnings(tmp_path):
    target = tmp_path / "schema.yml"

    # --fail-on-warn raises on any generator warning or error; --validate checks OpenAPI 3.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))

    text = target.read_text()
    for path in (
        "/api/members/:",
        "/api/members/{external_id}/:",
        "/api/members/{external_id}/events/:",
        "/api/members/{external_id}/erase/:",
        "/api/members/{external_id}/export/:",
        "/api/events/batch/:",
    ):
        assert path in text


def test_schema_endpoint_serves_the_schema(client):
    response = client.get(reverse("api-schema"))

    assert response.status_code == 200
    assert b"events_batch_create" in response.content


def test_swagger_ui_is_served_from_local_static_files(client):
    response = client.get(reverse("api-docs"))

    html = response.content.decode()
    assert response.status_code == 200
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    for cdn in ("cdn.jsdelivr", "unpkg", "cdnjs", "googleapis"):
        assert cdn not in html


def test_the_batch_applies_the_imports_rules_for_signs_and_future_dates(client_as):
    """The same rules as the CSV import (README, "Data in"), in the same words."""
    from datetime import timedelta

    from django.utils import timezone

    from loyalty.services.imports.checks import NEGATIVE_NOT_PURCHASE, OPPOSITE_SIGNS

    client = client_as("integrator")
    MemberFactory(external_id="H-1")
    soon = (timezone.now() + timedelta(hours=12)).isoformat()
    later = (timezone.now() + timedelta(days=3)).isoformat()
    items = [
        _event(session_id="refund", amount="-19.99", quantity=-2),  # 0 a return
        _event(session_id="mixed", amount="-19.99", quantity=2),  # 1 opposite signs
        _event(session_id="neg-return", kind="return", amount="-5.00", quantity=1),  # 2
        _event(session_id="soon", occurred_at=soon),  # 3 within a day: a clock skew
        _event(session_id="future", occurred_at=later),  # 4 from the future
    ]

    response = client.post(BATCH_URL, items, format="json")

    assert response.status_code == 207
    errors = {error["index"]: error["errors"] for error in response.json()["errors"]}
    assert errors == {
        1: {"amount": [OPPOSITE_SIGNS]},
        2: {"amount": [NEGATIVE_NOT_PURCHASE]},
        4: {"occurred_at": [errors[4]["occurred_at"][0]]},
    }
    assert "events from the future are refused" in errors[4]["occurred_at"][0]
    refund = Event.objects.get(session_id="refund")
    assert (refund.kind, refund.amount, refund.quantity) == ("return", Decimal("19.99"), 2)
    assert sorted(Event.objects.values_list("session_id", flat=True)) == ["refund", "soon"]
