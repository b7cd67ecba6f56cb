"""Consent to marketing (being contacted with offers), beside consent to profiling: changed only
through the audited member services (API, admin, import), announced when withdrawn without
touching reviews, exported, erased; and the contact rules' singleton admin page."""

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from django.urls import reverse

from loyalty import outbox
from loyalty.exceptions import PermissionDeniedError
from loyalty.models import AuditRecord, ContactRules, Member, OutboxEvent
from loyalty.services.erasure import erase_member
from loyalty.services.export import export_member
from loyalty.services.imports.members_and_events import import_members
from loyalty.services.imports.validation import ImportValidationError, RowError
from loyalty.services.members import create_member, set_consent, update_member
from loyalty.services.synthetic.members import (
    MARKETING_CONSENT_SHARE,
    MEMBERS_PER_CHUNK,
    SyntheticSpec,
    member_frames,
)
from reviews.models import Review
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db

MEMBERS_URL = "/api/members/"
BAD_YES_NO = "not a yes/no value (true/false, 1/0, yes/no)"


def _consents(external_id: str) -> tuple[bool, bool]:
    member = Member.objects.get(external_id=external_id)
    return member.consent_profiling, member.consent_marketing


def _consent_records(member: Member) -> list[dict]:
    records = AuditRecord.objects.filter(kind="consent_change", subject=f"member:{member.pk}")
    return [record.details for record in records.order_by("pk")]


def _withdrawals() -> list[tuple[int, dict]]:
    events = OutboxEvent.objects.filter(type=outbox.MEMBER_CONSENT_WITHDRAWN).order_by("pk")
    return [(event.member_id, event.data) for event in events]


def _row_counts() -> tuple[int, int, int]:
    return Member.objects.count(), AuditRecord.objects.count(), OutboxEvent.objects.count()


def _write(tmp_path: Path, text: str, name: str = "members.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the member services ---------------------------------------------------------------------


def test_creating_a_member_with_marketing_consent_audits_each_consent(make_user):
    admin = make_user("admin")

    member = create_member(
        external_id="H-1", actor=admin, consent_profiling=True, consent_marketing=True
    )

    member.refresh_from_db()
    assert (member.consent_profiling, member.consent_marketing) == (True, True)
    changed_at = member.consent_changed_at.isoformat()
    assert _consent_records(member) == [
        {
            "member_id": member.pk,
            "consent": "profiling",
            "consent_profiling": True,
            "changed_at": changed_at,
        },
        {
            "member_id": member.pk,
            "consent": "marketing",
            "consent_marketing": True,
            "changed_at": changed_at,
        },
    ]


def test_marketing_consent_alone_is_stamped_and_audited_alone(make_user):
    member = create_member(external_id="H-2", actor=make_user("admin"), consent_marketing=True)

    member.refresh_from_db()
    assert (member.consent_profiling, member.consent_marketing) == (False, True)
    assert member.consent_changed_at is not None
    assert [details["consent"] for details in _consent_records(member)] == ["marketing"]


def test_withdrawing_marketing_consent_is_audited_and_emits_the_event(make_user):
    admin = make_user("admin")
    member = MemberFactory(external_id="H-3", consent_profiling=True, consent_marketing=True)

    updated = set_consent(member=member, consent=False, actor=admin, kind=Member.Consent.MARKETING)

    member.refresh_from_db()
    assert (member.consent_profiling, member.consent_marketing) == (True, False)
    assert member.consent_changed_at == updated.consent_changed_at
    assert member.consent_changed_at is not None
    record = AuditRecord.objects.get(kind="consent_change", subject=f"member:{member.pk}")
    assert (record.actor, record.details) == (
        admin,
        {
            "member_id": member.pk,
            "consent": "marketing",
            "consent_marketing": False,
            "changed_at": member.consent_changed_at.isoformat(),
        },
    )
    assert _withdrawals() == [
        (
            member.pk,
            {
                "member_external_id": "H-3",
                "consent": "marketing",
                "withdrawn_at": member.consent_changed_at.isoformat(),
            },
        )
    ]


def test_withdrawing_profiling_consent_names_it_in_the_event():
    member = MemberFactory(external_id="H-4", consent_profiling=True, consent_marketing=True)

    set_consent(member=member, consent=False, actor=None)

    member.refresh_from_db()
    assert (member.consent_profiling, member.consent_marketing) == (False, True)
    assert _withdrawals() == [
        (
            member.pk,
            {
                "member_external_id": "H-4",
                "consent": "profiling",
                "withdrawn_at": member.consent_changed_at.isoformat(),
            },
        )
    ]


def test_granting_or_repeating_marketing_consent_emits_nothing():
    member = MemberFactory(consent_marketing=False)

    # The same value again: nothing is written, nothing is withdrawn.
    set_consent(member=member, consent=False, actor=None, kind=Member.Consent.MARKETING)
    set_consent(member=member, consent=True, actor=None, kind=Member.Consent.MARKETING)

    assert [details["consent_marketing"] for details in _consent_records(member)] == [True]
    assert _withdrawals() == []


def test_withdrawing_marketing_consent_leaves_pending_reviews_in_the_queue(routed):
    before = {review.pk: review.state for review in Review.objects.all()}
    member = routed["analyst"].member
    Member.objects.filter(pk=member.pk).update(consent_marketing=True)

    set_consent(member=member, consent=False, actor=None, kind=Member.Consent.MARKETING)

    assert {review.pk: review.state for review in Review.objects.all()} == before
    assert before[routed["analyst"].pk] == "pending"
    assert [data["consent"] for _, data in _withdrawals()] == ["marketing"]


def test_update_member_hands_each_consent_to_set_consent(make_user):
    integrator = make_user("integrator")
    member = MemberFactory(tier="silver", consent_profiling=True, consent_marketing=True)

    update_member(
        member=member,
        actor=integrator,
        data={"tier": "gold", "consent_profiling": True, "consent_marketing": False},
    )

    member.refresh_from_db()
    assert (member.tier, member.consent_profiling, member.consent_marketing) == (
        "gold",
        True,
        False,
    )
    records = AuditRecord.objects.filter(subject=f"member:{member.pk}").order_by("pk")
    assert [(record.kind, record.details.get("consent")) for record in records] == [
        ("member_change", None),
        ("consent_change", "marketing"),
    ]
    assert records.first().details["fields"] == ["tier"]


def test_an_analyst_may_not_change_marketing_consent(make_user):
    analyst = make_user("analyst")
    member = MemberFactory(consent_profiling=True, consent_marketing=True)
    counts = _row_counts()

    with pytest.raises(PermissionDeniedError):
        set_consent(member=member, consent=False, actor=analyst, kind=Member.Consent.MARKETING)

    assert _consents(member.external_id) == (True, True)
    assert _row_counts() == counts


# --- the CSV import ---------------------------------------------------------------------------


def test_an_import_with_the_column_sets_marketing_consent(tmp_path):
    source = _write(
        tmp_path,
        "external_id,consent_profiling,consent_marketing\nM1,yes,yes\nM2,yes,0\nM3,no,\nM4,,TRUE\n",
    )

    result = import_members(source=source)

    assert (result.created, result.updated, result.unchanged) == (4, 0, 0)
    assert {external_id: _consents(external_id) for external_id in ("M1", "M2", "M3", "M4")} == {
        "M1": (True, True),
        "M2": (True, False),
        "M3": (False, False),
        "M4": (False, True),
    }


def test_an_import_without_the_column_keeps_stored_consent_and_defaults_new_members(tmp_path):
    MemberFactory(external_id="M1", tier="silver", consent_profiling=True, consent_marketing=True)

    result = import_members(source=_write(tmp_path, "external_id,tier\nM1,gold\nM9,gold\n"))

    assert (result.created, result.updated, result.unchanged) == (1, 1, 0)
    assert (_consents("M1"), _consents("M9")) == ((True, True), (False, False))
    assert not AuditRecord.objects.filter(kind="consent_change").exists()
    assert _withdrawals() == []


def test_a_bad_marketing_value_is_named_and_nothing_is_imported(tmp_path):
    MemberFactory(external_id="M1", consent_profiling=True, consent_marketing=True)
    counts = _row_counts()
    source = _write(tmp_path, "external_id,consent_marketing\nM1,no\nM2,maybe\nM3,yes\n")

    with pytest.raises(ImportValidationError) as raised:
        import_members(source=source)

    assert list(raised.value.errors) == [RowError(3, "consent_marketing", "maybe", BAD_YES_NO)]
    assert _row_counts() == counts
    assert _consents("M1") == (True, True)


def test_a_bad_marketing_value_with_skip_invalid_rejects_only_that_row(tmp_path):
    source = _write(tmp_path, "external_id,consent_marketing\nM2,maybe\nM3,yes\n")
    rejects = tmp_path / "members.rejected.csv"

    result = import_members(source=source, rejects_path=rejects)

    assert (result.created, result.rejected) == (1, 1)
    assert sorted(Member.objects.values_list("external_id", "consent_marketing")) == [("M3", True)]
    assert rejects.read_text(encoding="utf-8").splitlines() == [
        "external_id,consent_marketing,line,column,reason",
        f'M2,maybe,2,consent_marketing,"{BAD_YES_NO}"',
    ]


def test_an_import_that_withdraws_marketing_consent_audits_and_announces_it(routed, tmp_path):
    analyst_review = routed["analyst"]
    Member.objects.filter(pk=analyst_review.member_id).update(
        external_id="M-analyst", consent_marketing=True
    )
    Member.objects.filter(pk=routed["expert"].member_id).update(
        external_id="M-expert", consent_marketing=False
    )
    before = {review.pk: review.state for review in Review.objects.all()}
    source = _write(
        tmp_path,
        "external_id,consent_marketing\nM-analyst,no\nM-expert,yes\n",
        "marketing.csv",
    )

    result = import_members(source=source)

    assert (result.created, result.updated, result.unchanged) == (0, 2, 0)
    member = Member.objects.get(external_id="M-analyst")
    assert (member.consent_profiling, member.consent_marketing) == (True, False)
    assert member.consent_changed_at == member.updated_at
    assert _consents("M-expert") == (True, True)
    records = {
        details["member_id"]: details
        for details in AuditRecord.objects.filter(kind="consent_change").values_list(
            "details", flat=True
        )
    }
    assert records[member.pk] == {
        "member_id": member.pk,
        "consent": "marketing",
        "consent_marketing": False,
        "changed_at": member.consent_changed_at.isoformat(),
        "source": "import:marketing.csv",
    }
    assert len(records) == 2
    assert _withdrawals() == [
        (
            member.pk,
            {
                "member_external_id": "M-analyst",
                "consent": "marketing",
                "withdrawn_at": member.consent_changed_at.isoformat(),
            },
        )
    ]
    assert {review.pk: review.state for review in Review.objects.all()} == before


def test_an_import_that_withdraws_profiling_consent_names_it_in_the_event(tmp_path):
    MemberFactory(external_id="M1", consent_profiling=True, consent_marketing=True)

    import_members(source=_write(tmp_path, "external_id,consent_profiling\nM1,no\n"))

    member = Member.objects.get(external_id="M1")
    assert (member.consent_profiling, member.consent_marketing) == (False, True)
    assert _withdrawals() == [
        (
            member.pk,
            {
                "member_external_id": "M1",
                "consent": "profiling",
                "withdrawn_at": member.consent_changed_at.isoformat(),
            },
        )
    ]


# --- the API ----------------------------------------------------------------------------------


def test_the_api_creates_reads_and_changes_marketing_consent(client_as):
    client = client_as("integrator")

    created = client.post(
        MEMBERS_URL, {"external_id": "H-9", "consent_marketing": True}, format="json"
    )
    read = client.get(f"{MEMBERS_URL}H-9/")
    changed = client.patch(f"{MEMBERS_URL}H-9/", {"consent_marketing": False}, format="json")

    assert created.status_code == 201
    assert (created.json()["consent_profiling"], created.json()["consent_marketing"]) == (
        False,
        True,
    )
    assert read.json()["consent_marketing"] is True
    assert changed.status_code == 200
    assert changed.json()["consent_marketing"] is False
    member = Member.objects.get(external_id="H-9")
    assert (member.consent_profiling, member.consent_marketing) == (False, False)
    records = AuditRecord.objects.filter(kind="consent_change", actor=client.user)
    assert sorted(
        (details["consent"], details["consent_marketing"])
        for details in records.values_list("details", flat=True)
    ) == [("marketing", False), ("marketing", True)]
    assert [data["consent"] for _, data in _withdrawals()] == ["marketing"]


def test_a_member_created_without_marketing_consent_has_none(client_as):
    client = client_as("admin")

    response = client.post(MEMBERS_URL, {"external_id": "H-10"}, format="json")

    assert response.status_code == 201
    assert response.json()["consent_marketing"] is False
    assert _consents("H-10") == (False, False)


def test_a_bad_marketing_value_in_the_api_is_400_and_changes_nothing(client_as):
    client = client_as("admin")
    MemberFactory(external_id="H-1", consent_profiling=True, consent_marketing=True)
    counts = _row_counts()

    response = client.patch(f"{MEMBERS_URL}H-1/", {"consent_marketing": "perhaps"}, format="json")

    assert response.status_code == 400
    assert list(response.json()) == ["consent_marketing"]
    assert _consents("H-1") == (True, True)
    assert _row_counts() == counts


def test_the_member_list_filters_by_marketing_consent(client_as):
    client = client_as("analyst")
    MemberFactory(external_id="G-yes", tier="gold", consent_marketing=True)
    MemberFactory(external_id="G-no", tier="gold", consent_marketing=False)
    MemberFactory(external_id="S-yes", tier="silver", consent_marketing=True)

    consenting = client.get(MEMBERS_URL, {"consent_marketing": "true"}).json()["results"]
    refusing = client.get(MEMBERS_URL, {"consent_marketing": "false"}).json()["results"]
    gold_yes = client.get(MEMBERS_URL, {"tier": "gold", "consent_marketing": "true"}).json()

    assert sorted(row["external_id"] for row in consenting) == ["G-yes", "S-yes"]
    assert sorted(row["external_id"] for row in refusing) == ["G-no"]
    assert [row["external_id"] for row in gold_yes["results"]] == ["G-yes"]


# --- export and erasure -----------------------------------------------------------------------


def test_the_export_holds_marketing_consent_and_its_audit_record(make_user):
    admin = make_user("admin")
    member = create_member(external_id="H-42", actor=admin, consent_marketing=True)

    document = export_member(member_id=member.pk, actor=admin)

    member.refresh_from_db()
    assert (document["member"]["consent_profiling"], document["member"]["consent_marketing"]) == (
        False,
        True,
    )
    assert [
        record["details"]
        for record in document["audit_records"]
        if record["kind"] == "consent_change"
    ] == [
        {
            "member_id": member.pk,
            "consent": "marketing",
            "consent_marketing": True,
            "changed_at": member.consent_changed_at.isoformat(),
        }
    ]


def test_erasure_clears_marketing_consent_without_announcing_a_withdrawal():
    member = MemberFactory(external_id="H-42", consent_profiling=True, consent_marketing=True)

    erase_member(member_id=member.pk, actor=None)

    member.refresh_from_db()
    assert (member.consent_profiling, member.consent_marketing) == (False, False)
    assert member.consent_changed_at is None
    # Downstream systems hear of the erasure itself, which erases every consent with it.
    assert _withdrawals() == []
    assert OutboxEvent.objects.filter(type=outbox.MEMBER_ERASED).count() == 1


# --- synthetic members ------------------------------------------------------------------------


def test_synthetic_members_consent_to_marketing_only_with_profiling_and_per_seed():
    spec = SyntheticSpec(
        seed=5, members=MEMBERS_PER_CHUNK, start=date(2025, 1, 1), days=365, horizon_days=90
    )

    first = pd.concat(member_frames(spec), ignore_index=True)
    again = pd.concat(member_frames(spec), ignore_index=True)

    assert first["consent_marketing"].tolist() == again["consent_marketing"].tolist()
    profiled = first[first["consent_profiling"]]
    assert not first.loc[~first["consent_profiling"], "consent_marketing"].any()
    # 9,000 draws: three standard errors of the share are under 0.01.
    assert abs(profiled["consent_marketing"].mean() - MARKETING_CONSENT_SHARE) < 0.01


# --- the contact rules' admin page ------------------------------------------------------------


def test_the_contact_rules_page_shows_the_one_row_and_changes_it_audited(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    ContactRules.objects.all().delete()

    listed = client.get(reverse("admin:loyalty_contactrules_changelist"))
    rules = ContactRules.objects.get()
    add = client.get(reverse("admin:loyalty_contactrules_add"))
    delete = client.post(
        reverse("admin:loyalty_contactrules_delete", args=[rules.pk]), {"post": "yes"}
    )
    changed = client.post(
        reverse("admin:loyalty_contactrules_change", args=[rules.pk]),
        {"frequency_cap_actions": "3", "frequency_cap_days": "14", "budget_period_days": "30"},
    )

    assert listed.status_code == 200
    assert (add.status_code, delete.status_code, changed.status_code) == (403, 403, 302)
    rules.refresh_from_db()
    assert (rules.frequency_cap_actions, rules.frequency_cap_days, rules.budget_period_days) == (
        3,
        14,
        30,
    )
    assert ContactRules.objects.count() == 1
    record = AuditRecord.objects.get(kind="config_change")
    assert (record.actor, record.subject) == (admin, f"loyalty.contactrules:{rules.pk}")
    assert record.details == {
        "change": "change",
        "model": "loyalty.contactrules",
        "before": {"frequency_cap_actions": 2, "frequency_cap_days": 30},
        "after": {"frequency_cap_actions": 3, "frequency_cap_days": 14},
    }


def test_a_bad_contact_rule_is_refused_on_the_form_and_changes_nothing(client, make_user):
    client.force_login(make_user("admin"))
    client.get(reverse("admin:loyalty_contactrules_changelist"))
    rules = ContactRules.objects.get()

    response = client.post(
        reverse("admin:loyalty_contactrules_change", args=[rules.pk]),
        {"frequency_cap_actions": "0", "frequency_cap_days": "30", "budget_period_days": "30"},
    )

    assert response.status_code == 200
    assert "frequency_cap_actions" in response.context["adminform"].form.errors
    rules.refresh_from_db()
    assert rules.frequency_cap_actions == 2
    assert not AuditRecord.objects.filter(kind="config_change").exists()


def test_other_roles_do_not_reach_the_contact_rules_page(client, make_user):
    client.force_login(make_user("analyst"))

    response = client.get(reverse("admin:loyalty_contactrules_changelist"))

    assert response.status_code == 302  # to the admin login: not staff


def test_the_member_admin_lists_and_edits_marketing_consent(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    member = MemberFactory(external_id="H-5", consent_profiling=True, consent_marketing=True)
    form = {
        "joined_on": "2024-01-15",
        "tier": "silver",
        "points_balance": "1200",
        "consent_profiling": "on",
        # consent_marketing left out: an unticked checkbox
        "age_band": "35-44",
        "region": "north",
    }

    listed = client.get(
        reverse("admin:loyalty_member_changelist"), {"consent_marketing__exact": "1"}
    )
    changed = client.post(reverse("admin:loyalty_member_change", args=[member.pk]), form)

    assert listed.status_code == 200
    assert [row.external_id for row in listed.context["cl"].result_list] == ["H-5"]
    assert changed.status_code == 302
    assert _consents("H-5") == (True, False)
    record = AuditRecord.objects.get(kind="consent_change")
    assert (record.actor, record.details["consent"]) == (admin, "marketing")
