"""Erasure: the service, its idempotency, the management command and the admin action."""

import hashlib
from io import StringIO

import pytest
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse

from loyalty.exceptions import MemberNotFoundError, PermissionDeniedError
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.erasure import erase_member, erase_member_by_external_id, member_erased
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db

SHA256_OF_H42 = hashlib.sha256(b"H-42").hexdigest()


@pytest.fixture
def member_with_events():
    member = MemberFactory(
        external_id="H-42", tier="gold", points_balance=900, age_band="35-44", region="north"
    )
    EventFactory.create_batch(3, member=member)
    return member


def _counts() -> tuple[int, int, int]:
    return Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()


def test_erasure_deletes_events_blanks_personal_fields_and_records_a_hash(
    make_user, member_with_events
):
    admin = make_user("admin")
    bystander = EventFactory()  # another member's event stays
    member = member_with_events

    result = erase_member(member_id=member.pk, actor=admin)

    member.refresh_from_db()
    assert result.member_id == member.pk
    assert result.events_deleted == 3
    assert result.already_erased is False
    assert result.former_external_id_sha256 == SHA256_OF_H42
    assert member.external_id == f"erased-{member.pk}" == result.external_id
    assert (member.age_band, member.region, member.tier) == ("", "", "")
    assert (member.joined_on, member.points_balance) == (None, 0)
    assert (member.consent_profiling, member.consent_changed_at) == (False, None)
    assert member.erased_at == result.erased_at
    assert member.erased_at is not None
    assert list(Event.objects.all()) == [bystander]
    record = AuditRecord.objects.get(kind="erasure")
    assert record.pk == result.audit_record_id
    assert record.actor == admin
    assert record.subject == f"member:{member.pk}"
    assert record.details == {
        "member_id": member.pk,
        "events_deleted": 3,
        "external_id_sha256": SHA256_OF_H42,
    }
    assert "H-42" not in str(record.details)


def test_second_erasure_is_harmless_and_returns_the_first_result(make_user, member_with_events):
    admin = make_user("admin")
    first = erase_member(member_id=member_with_events.pk, actor=admin)
    counts_after_first = _counts()

    second = erase_member(member_id=member_with_events.pk, actor=admin)

    assert _counts() == counts_after_first
    assert second.already_erased is True
    assert (second.events_deleted, second.audit_record_id) == (3, first.audit_record_id)
    assert second.former_external_id_sha256 == SHA256_OF_H42
    assert second.erased_at == first.erased_at
    assert AuditRecord.objects.filter(kind="erasure").count() == 1


def test_erasing_again_by_the_former_external_id_finds_the_erased_member(
    make_user, member_with_events
):
    admin = make_user("admin")
    erase_member_by_external_id(external_id="H-42", actor=admin)
    counts_after_first = _counts()

    again = erase_member_by_external_id(external_id="H-42", actor=admin)

    assert again.already_erased is True
    assert again.member_id == member_with_events.pk
    assert _counts() == counts_after_first


def test_erasing_an_unknown_external_id_raises_not_found(make_user):
    with pytest.raises(MemberNotFoundError):
        erase_member_by_external_id(external_id="nobody", actor=make_user("admin"))


def test_analyst_may_not_erase_and_nothing_changes(make_user, member_with_events):
    analyst = make_user("analyst")
    counts_before = _counts()

    with pytest.raises(PermissionDeniedError):
        erase_member(member_id=member_with_events.pk, actor=analyst)

    member_with_events.refresh_from_db()
    assert _counts() == counts_before
    assert (member_with_events.external_id, member_with_events.erased_at) == ("H-42", None)


def test_erasure_tells_higher_layers_inside_the_transaction(member_with_events):
    seen: list[int] = []

    def receiver(sender, member_id, **kwargs):
        # Still before the commit: the events are gone, the member not yet blanked.
        seen.append(member_id)
        assert not Event.objects.filter(member_id=member_id).exists()

    member_erased.connect(receiver)
    try:
        erase_member(member_id=member_with_events.pk, actor=None)
    finally:
        member_erased.disconnect(receiver)

    assert seen == [member_with_events.pk]


def test_command_erases_once_and_reports_the_second_run(make_user, member_with_events):
    admin = make_user("admin", username="dpo")
    out = StringIO()

    call_command("erase_member", "H-42", "--actor", "dpo", stdout=out)

    member_with_events.refresh_from_db()
    record = AuditRecord.objects.get(kind="erasure")
    assert member_with_events.is_erased
    assert record.actor == admin
    assert (
        f"Erased member {member_with_events.pk} (now erased-{member_with_events.pk}): "
        f"3 event(s) deleted, audit record {record.pk}, former id sha256 {SHA256_OF_H42}."
    ) in out.getvalue()
    counts_after_first = _counts()

    again = StringIO()
    call_command("erase_member", "H-42", stdout=again)

    assert "was already erased" in again.getvalue()
    assert _counts() == counts_after_first


def test_command_without_actor_records_the_system(member_with_events):
    call_command("erase_member", "H-42", stdout=StringIO())

    record = AuditRecord.objects.get(kind="erasure")
    assert (record.actor, record.actor_name) == (None, "")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["nobody"], "No member has external id 'nobody'."),
        (["H-42", "--actor", "ghost"], "No user named 'ghost'."),
        (["H-42", "--actor", "analyst-user"], "analyst-user lacks the permission"),
    ],
)
def test_command_refuses_bad_input_and_changes_nothing(
    make_user, member_with_events, arguments, message
):
    make_user("analyst")
    counts_before = _counts()

    with pytest.raises(CommandError, match=message):
        call_command("erase_member", *arguments, stdout=StringIO())

    assert _counts() == counts_before


def test_admin_action_erases_selected_members(client, make_user, member_with_events):
    admin = make_user("admin")
    client.force_login(admin)
    untouched = MemberFactory(external_id="H-43")

    response = client.post(
        reverse("admin:loyalty_member_changelist"),
        {"action": "erase_selected", "_selected_action": [member_with_events.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "Erased 1 member(s) and deleted 3 event(s)." in response.content.decode()
    member_with_events.refresh_from_db()
    untouched.refresh_from_db()
    assert member_with_events.is_erased
    assert not untouched.is_erased
    assert AuditRecord.objects.get(kind="erasure").actor == admin


def test_admin_action_is_offered_only_to_users_who_may_erase(client, django_user_model):
    staff_without_erase = django_user_model.objects.create_user(username="clerk", is_staff=True)
    staff_without_erase.user_permissions.add(
        Permission.objects.get(codename="view_member"),
        Permission.objects.get(codename="change_member"),
    )
    client.force_login(staff_without_erase)

    response = client.get(reverse("admin:loyalty_member_changelist"))

    assert response.status_code == 200
    assert "erase_selected" not in response.content.decode()
