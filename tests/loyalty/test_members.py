"""Member services: create, update, consent changes and the scorable-members selector."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from loyalty.exceptions import MemberErasedError, MemberExistsError, PermissionDeniedError
from loyalty.models import AuditRecord, Member
from loyalty.selectors import scorable_members
from loyalty.services.members import create_member, set_consent, update_member
from tests.factories import MemberFactory

pytestmark = pytest.mark.django_db


def _member_audit(member: Member) -> list[tuple[str, dict]]:
    """The member's audit trail, oldest first."""
    return [
        (record.kind, record.details)
        for record in AuditRecord.objects.filter(subject=f"member:{member.pk}").order_by("pk")
    ]


def test_create_member_stores_fields_and_audits_creation_and_consent(make_user):
    admin = make_user("admin")

    member = create_member(
        external_id="H-1001",
        actor=admin,
        joined_on=date(2023, 5, 2),
        tier="gold",
        points_balance=250,
        consent_profiling=True,
        age_band="25-34",
        region="west",
    )

    member.refresh_from_db()
    assert (member.external_id, member.tier, member.points_balance) == ("H-1001", "gold", 250)
    assert (member.age_band, member.region, member.joined_on) == ("25-34", "west", date(2023, 5, 2))
    assert member.consent_profiling is True
    assert member.consent_changed_at is not None
    audit = _member_audit(member)
    assert audit == [
        ("member_change", {"member_id": member.pk, "change": "create"}),
        (
            "consent_change",
            {
                "member_id": member.pk,
                "consent": "profiling",
                "consent_profiling": True,
                "changed_at": member.consent_changed_at.isoformat(),
            },
        ),
    ]
    assert set(
        AuditRecord.objects.filter(kind="consent_change").values_list("actor", flat=True)
    ) == {admin.pk}


def test_create_member_without_consent_writes_no_consent_record(make_user):
    member = create_member(external_id="H-1002", actor=make_user("integrator"))

    assert member.consent_profiling is False
    assert member.consent_changed_at is None
    assert [kind for kind, _ in _member_audit(member)] == ["member_change"]


def test_create_member_twice_is_a_conflict_and_changes_nothing(make_user):
    admin = make_user("admin")
    MemberFactory(external_id="H-1003", tier="silver")
    audit_before = AuditRecord.objects.count()

    with pytest.raises(MemberExistsError):
        create_member(external_id="H-1003", actor=admin, tier="gold")

    assert Member.objects.count() == 1
    assert Member.objects.get().tier == "silver"
    assert AuditRecord.objects.count() == audit_before


def test_create_member_refuses_the_erased_placeholder_prefix(make_user):
    admin = make_user("admin")
    audit_before = AuditRecord.objects.count()

    with pytest.raises(ValidationError) as raised:
        create_member(external_id="erased-7", actor=admin)

    assert list(raised.value.message_dict) == ["external_id"]
    assert Member.objects.count() == 0
    assert AuditRecord.objects.count() == audit_before


def test_analyst_may_not_create_or_change_members(make_user):
    analyst = make_user("analyst")
    member = MemberFactory(tier="silver")
    audit_before = AuditRecord.objects.count()

    with pytest.raises(PermissionDeniedError):
        create_member(external_id="H-1004", actor=analyst)
    with pytest.raises(PermissionDeniedError):
        update_member(member=member, actor=analyst, data={"tier": "gold"})
    with pytest.raises(PermissionDeniedError):
        set_consent(member=member, consent=False, actor=analyst)

    member.refresh_from_db()
    assert (Member.objects.count(), member.tier, member.consent_profiling) == (1, "silver", True)
    assert AuditRecord.objects.count() == audit_before


def test_withdrawing_consent_is_audited_and_member_leaves_scorable_members(make_user):
    admin = make_user("admin")
    member = MemberFactory(consent_profiling=True)
    other = MemberFactory(consent_profiling=True)
    assert set(scorable_members()) == {member, other}

    updated = set_consent(member=member, consent=False, actor=admin)

    member.refresh_from_db()
    assert member.consent_profiling is False
    assert member.consent_changed_at == updated.consent_changed_at
    assert member.consent_changed_at is not None
    record = AuditRecord.objects.get(kind="consent_change", subject=f"member:{member.pk}")
    assert record.actor == admin
    assert record.actor_name == admin.username
    assert record.details == {
        "member_id": member.pk,
        "consent": "profiling",
        "consent_profiling": False,
        "changed_at": member.consent_changed_at.isoformat(),
    }
    assert list(scorable_members()) == [other]


def test_setting_the_same_consent_again_writes_nothing(make_user):
    admin = make_user("admin")
    changed_at = timezone.now().replace(microsecond=0)
    member = MemberFactory(consent_profiling=True, consent_changed_at=changed_at)
    audit_before = AuditRecord.objects.count()

    set_consent(member=member, consent=True, actor=admin)

    member.refresh_from_db()
    assert member.consent_changed_at == changed_at
    assert AuditRecord.objects.count() == audit_before


def test_scorable_members_excludes_erased_and_non_consenting_members():
    scorable = MemberFactory(consent_profiling=True)
    MemberFactory(consent_profiling=False)
    MemberFactory(consent_profiling=True, erased_at=timezone.now())

    assert list(scorable_members()) == [scorable]


def test_update_member_changes_fields_and_hands_consent_to_set_consent(make_user):
    integrator = make_user("integrator")
    member = MemberFactory(tier="silver", points_balance=1200, region="north")

    updated = update_member(
        member=member,
        actor=integrator,
        data={
            "tier": "gold",
            "points_balance": 1200,
            "region": "south",
            "consent_profiling": False,
        },
    )

    member.refresh_from_db()
    assert (member.tier, member.points_balance, member.region) == ("gold", 1200, "south")
    assert member.consent_profiling is False
    assert updated.consent_profiling is False
    assert _member_audit(member) == [
        (
            "member_change",
            {"member_id": member.pk, "change": "update", "fields": ["region", "tier"]},
        ),
        (
            "consent_change",
            {
                "member_id": member.pk,
                "consent": "profiling",
                "consent_profiling": False,
                "changed_at": member.consent_changed_at.isoformat(),
            },
        ),
    ]


def test_update_member_with_unchanged_values_writes_nothing(make_user):
    admin = make_user("admin")
    member = MemberFactory(tier="silver", consent_profiling=True)
    audit_before = AuditRecord.objects.count()

    update_member(member=member, actor=admin, data={"tier": "silver", "consent_profiling": True})

    assert AuditRecord.objects.count() == audit_before


def test_update_member_refuses_an_erased_member(make_user):
    admin = make_user("admin")
    member = MemberFactory(
        external_id="erased-1", tier="", age_band="", region="", erased_at=timezone.now()
    )
    audit_before = AuditRecord.objects.count()

    with pytest.raises(MemberErasedError):
        update_member(member=member, actor=admin, data={"tier": "gold"})
    with pytest.raises(MemberErasedError):
        set_consent(member=member, consent=True, actor=None)

    member.refresh_from_db()
    assert (member.tier, member.consent_profiling) == ("", True)
    assert AuditRecord.objects.count() == audit_before


def test_update_member_refuses_fields_that_are_not_editable(make_user):
    member = MemberFactory(external_id="H-1")

    with pytest.raises(ValueError, match="external_id"):
        update_member(member=member, actor=None, data={"external_id": "H-2"})

    member.refresh_from_db()
    assert member.external_id == "H-1"


def test_withdrawing_consent_in_the_admin_goes_through_the_service(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    member = MemberFactory(consent_profiling=True, consent_marketing=True, tier="silver")
    form = {
        "joined_on": "2024-01-15",
        "tier": "silver",
        "points_balance": "1200",
        # consent_profiling left out: an unticked checkbox
        "consent_marketing": "on",
        "age_band": "35-44",
        "region": "north",
    }

    response = client.post(reverse("admin:loyalty_member_change", args=[member.pk]), form)

    assert response.status_code == 302
    member.refresh_from_db()
    assert member.consent_profiling is False
    record = AuditRecord.objects.get(kind="consent_change", subject=f"member:{member.pk}")
    assert record.actor == admin
    assert not AuditRecord.objects.filter(kind="member_change").exists()


def test_adding_a_member_in_the_admin_goes_through_the_service(client, make_user):
    admin = make_user("admin")
    client.force_login(admin)
    form = {
        "external_id": "H-77",
        "joined_on": "2024-01-15",
        "tier": "gold",
        "points_balance": "10",
        "consent_profiling": "on",
        "age_band": "",
        "region": "",
    }

    response = client.post(reverse("admin:loyalty_member_add"), form)

    assert response.status_code == 302
    member = Member.objects.get()
    assert (member.external_id, member.tier, member.consent_profiling) == ("H-77", "gold", True)
    assert _member_audit(member) == [
        ("member_change", {"member_id": member.pk, "change": "create"}),
        (
            "consent_change",
            {
                "member_id": member.pk,
                "consent": "profiling",
                "consent_profiling": True,
                "changed_at": member.consent_changed_at.isoformat(),
            },
        ),
    ]


def test_an_erased_member_is_read_only_in_the_admin(client, make_user):
    client.force_login(make_user("admin"))
    member = MemberFactory(external_id="erased-1", erased_at=timezone.now(), tier="")

    response = client.post(
        reverse("admin:loyalty_member_change", args=[member.pk]), {"tier": "gold"}
    )

    assert response.status_code == 403
    member.refresh_from_db()
    assert member.tier == ""
