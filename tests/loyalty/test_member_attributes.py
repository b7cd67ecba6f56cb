"""Member attributes kept for fairness audits (`Member.attributes`): a members file's further
columns, the Complete Journey's demographics, the API (admins and integrators only), erasure
and the member's export."""

from pathlib import Path

import pandas as pd
import pytest
from django.core.exceptions import ValidationError

from loyalty.member_attributes import attribute_key
from loyalty.models import AuditRecord, Member
from loyalty.selectors import member_attribute_counts
from loyalty.services.erasure import erase_member
from loyalty.services.export import export_member
from loyalty.services.imports.members_and_events import import_members
from loyalty.services.imports.validation import ImportValidationError, RowError
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

MEMBERS_URL = "/api/members/"
HEADER = "external_id,tier,Income Band, home ownership "
MEMBERS_CSV = f"""{HEADER}
M1,gold,50-74K,Homeowner
M2,silver, Under 15K ,
M3,,,
"""


@pytest.fixture(autouse=True)
def _naive_times_are_utc(settings):
    settings.LOYALTY_IMPORT_TIMEZONE = "UTC"


def write(tmp_path: Path, text: str, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def attributes() -> dict[str, dict]:
    return dict(Member.objects.values_list("external_id", "attributes"))


def rejected(call) -> ImportValidationError:
    with pytest.raises(ImportValidationError) as caught:
        call()
    return caught.value


# --- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Income Band", "income_band"),
        (" home ownership ", "home_ownership"),
        ("Household-Size (people)", "household_size_people"),
        ("Größe", "groe"),  # accents and letters without an ASCII form dropped
        ("%%", ""),
    ],
)
def test_a_header_becomes_a_slug_key(header, key):
    assert attribute_key(header) == key


def test_the_model_refuses_attributes_that_are_not_short_text_by_slug():
    member = MemberFactory.build(external_id="M9")

    for bad in ({"Income": "x"}, {"income": "x" * 65}, {"income": 3}, ["income"]):
        member.attributes = bad
        with pytest.raises(ValidationError):
            member.full_clean()
    member.attributes = {"income": "x" * 64}
    member.full_clean()


# --- import ----------------------------------------------------------------------------------


def test_further_columns_of_a_members_file_become_attributes(tmp_path):
    result = import_members(source=write(tmp_path, MEMBERS_CSV))

    assert (result.created, result.updated, result.unchanged) == (3, 0, 0)
    assert attributes() == {
        "M1": {"income_band": "50-74K", "home_ownership": "Homeowner"},
        "M2": {"income_band": "Under 15K"},  # stripped; the empty cell dropped
        "M3": {},
    }
    assert Member.objects.get(external_id="M1").tier == "gold"
    assert member_attribute_counts() == {"home_ownership": 1, "income_band": 2}


def test_a_file_without_further_columns_gives_new_members_no_attributes(tmp_path):
    import_members(source=write(tmp_path, "external_id,tier\nM1,gold\n"))

    assert attributes() == {"M1": {}}


def test_a_reimport_updates_the_attributes_it_names_and_keeps_the_others(tmp_path):
    import_members(source=write(tmp_path, MEMBERS_CSV))
    update = "external_id,income_band,kids\nM1,75-99K,2\nM2,,0\nM3,,\n"

    result = import_members(source=write(tmp_path, update, "update.csv"))

    assert (result.created, result.updated, result.unchanged) == (0, 2, 1)
    assert attributes() == {
        "M1": {"income_band": "75-99K", "home_ownership": "Homeowner", "kids": "2"},
        "M2": {"kids": "0"},  # an empty cell removes the attribute
        "M3": {},
    }
    again = import_members(source=write(tmp_path, update, "update.csv"))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)


def test_a_dataframe_source_stores_its_further_columns_as_text():
    frame = pd.DataFrame(
        {"external_id": ["D1", "D2"], "household_size": [2, None], "marital_status": ["A", ""]}
    )

    import_members(source=frame)

    assert attributes() == {"D1": {"household_size": "2.0", "marital_status": "A"}, "D2": {}}


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(
            "%%",
            "unknown column, and its name does not make a member attribute key (lowercase "
            "letters, digits and underscores, 1 to 32 characters once lowercased and each run "
            "of other characters made one underscore); known columns: external_id, joined_at, "
            "tier, points_balance, consent_profiling, consent_marketing, age_band, region",
            id="no key",
        ),
        pytest.param(
            "x" * 33,
            "unknown column, and its name does not make a member attribute key (lowercase "
            "letters, digits and underscores, 1 to 32 characters once lowercased and each run "
            "of other characters made one underscore); known columns: external_id, joined_at, "
            "tier, points_balance, consent_profiling, consent_marketing, age_band, region",
            id="key too long",
        ),
        pytest.param(
            "Region",
            "names the known column 'region': write its header as region exactly",
            id="a known column's name",
        ),
        pytest.param(
            "Income band",
            "names the same member attribute 'income_band' as column 'income_band'",
            id="the same key twice",
        ),
    ],
)
def test_a_bad_attribute_header_refuses_the_file_and_changes_nothing(tmp_path, header, reason):
    MemberFactory(external_id="M1", attributes={"income_band": "kept"})
    audits = AuditRecord.objects.count()
    text = f"external_id,income_band,{header}\nM1,new,x\nM2,new,y\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert error.errors == (RowError(1, header, header, reason),)
    assert attributes() == {"M1": {"income_band": "kept"}}
    assert AuditRecord.objects.count() == audits


def test_an_over_long_attribute_value_is_a_row_error_and_nothing_is_written(tmp_path):
    MemberFactory(external_id="M1", attributes={"income": "kept"})
    long_value = "y" * 65
    text = f"external_id,income\nM1,new\nM2,{long_value}\n,orphan\n"

    error = rejected(lambda: import_members(source=write(tmp_path, text)))

    assert error.errors == (
        RowError(3, "income", long_value, "longer than 64 characters"),
        # A row with an attribute but no id is no blank row: its id is missing.
        RowError(4, "external_id", "", "a value is required"),
    )
    assert attributes() == {"M1": {"income": "kept"}}


def test_skipping_invalid_rows_imports_the_others_with_their_attributes(tmp_path):
    text = f"external_id,income\nM1,high\nM2,{'y' * 65}\nM3,low\n"
    rejects = tmp_path / "members.csv.rejected.csv"

    result = import_members(source=write(tmp_path, text), rejects_path=rejects)

    assert (result.created, result.rejected) == (2, 1)
    assert attributes() == {"M1": {"income": "high"}, "M3": {"income": "low"}}
    rejected_rows = pd.read_csv(rejects, dtype=str)
    assert rejected_rows.to_dict("records") == [
        {
            "external_id": "M2",
            "income": "y" * 65,
            "line": "3",
            "column": "income",
            "reason": "longer than 64 characters",
        }
    ]


def test_the_complete_journey_loader_keeps_the_demographics_as_attributes():
    from django.core.management import call_command

    call_command("load_complete_journey", "--households", "2")

    assert Member.objects.get(external_id="cj-1").attributes == {
        "income": "35-49K",
        "home_ownership": "Homeowner",
        "marital_status": "Married",
        "household_size": "2",
        "household_comp": "2 Adults No Kids",
        "kids_count": "0",
    }
    assert Member.objects.get(external_id="cj-2").attributes == {}  # no demographics


# --- erasure and export ----------------------------------------------------------------------


def test_erasure_blanks_the_attributes(make_user):
    member = MemberFactory(external_id="H-1", attributes={"income": "50-74K"})

    erase_member(member_id=member.pk, actor=make_user("admin"))

    member.refresh_from_db()
    assert (member.attributes, member.is_erased) == ({}, True)
    assert member_attribute_counts() == {}


def test_the_member_s_export_includes_the_attributes(make_user):
    member = MemberFactory(external_id="H-1", attributes={"income": "50-74K", "kids": "2"})

    document = export_member(member_id=member.pk, actor=make_user("admin"))

    assert document["member"]["attributes"] == {"income": "50-74K", "kids": "2"}


# --- API -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "shown"), [("analyst", False), ("expert", False),
                                             ("admin", True), ("integrator", True)])  # fmt: skip
def test_only_those_who_may_change_members_see_the_attributes(client_as, role, shown):
    MemberFactory(external_id="H-1", attributes={"income": "VALUE-XYZ"})
    client = client_as(role)

    detail = client.get(f"{MEMBERS_URL}H-1/")
    listed = client.get(MEMBERS_URL)

    assert detail.status_code == listed.status_code == 200
    for response in (detail, listed):
        assert ("VALUE-XYZ" in response.content.decode()) is shown
    if shown:
        assert detail.json()["attributes"] == {"income": "VALUE-XYZ"}
    else:
        assert "attributes" not in detail.json()


def test_an_integrator_creates_and_replaces_attributes(client_as):
    client = client_as("integrator")

    created = client.post(
        MEMBERS_URL,
        {"external_id": "H-2", "attributes": {"income": " 50-74K ", "kids": ""}},
        format="json",
    )
    patched = client.patch(f"{MEMBERS_URL}H-2/", {"attributes": {"tenure": "owner"}}, format="json")
    put = client.put(
        f"{MEMBERS_URL}H-2/",
        {"joined_on": None, "tier": "", "points_balance": 0, "consent_profiling": False,
         "age_band": "", "region": ""},
        format="json",
    )  # fmt: skip

    assert (created.status_code, patched.status_code, put.status_code) == (201, 200, 200)
    assert created.json()["attributes"] == {"income": "50-74K"}
    assert patched.json()["attributes"] == {"tenure": "owner"}
    assert put.json()["attributes"] == {"tenure": "owner"}  # left out of a PUT: kept
    assert Member.objects.get(external_id="H-2").attributes == {"tenure": "owner"}


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        (
            {"Income Band": "x"},
            {
                "Income Band": [
                    "not an attribute key (lowercase letters, digits and underscores, 1 to 32 "
                    "characters)"
                ]
            },
        ),
        ({"income": "y" * 65}, {"income": ["Ensure this field has no more than 64 characters."]}),
        ({"income": ["a"]}, {"income": ["Not a valid string."]}),
        (["income"], ['Expected a dictionary of items but got type "list".']),
    ],
)
def test_bad_attributes_are_a_clear_400_and_change_nothing(client_as, given, errors):
    client = client_as("admin")
    MemberFactory(external_id="H-1", attributes={"income": "kept"})
    members = Member.objects.count()

    created = client.post(MEMBERS_URL, {"external_id": "H-3", "attributes": given}, format="json")
    patched = client.patch(f"{MEMBERS_URL}H-1/", {"attributes": given}, format="json")

    assert (created.status_code, patched.status_code) == (400, 400)
    assert created.json()["attributes"] == patched.json()["attributes"] == errors
    assert Member.objects.count() == members
    assert Member.objects.get(external_id="H-1").attributes == {"income": "kept"}
