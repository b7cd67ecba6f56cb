"""An erased member cannot silently come back: its tombstone refuses its former external id
(create, events batch here; the CSV imports in test_imports, the API in test_api) until an
admin lifts it; and the migration that gave older erasures their tombstones and named members
by pk in the trail."""

import hashlib
from datetime import UTC, date, datetime
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from loyalty.exceptions import (
    DomainError,
    MemberErasedError,
    NotFoundError,
    PermissionDeniedError,
)
from loyalty.models import AuditRecord, ErasureTombstone, Event, Member
from loyalty.services.erasure import (
    erase_member,
    erase_member_by_external_id,
    lift_tombstone,
    tombstone_digest,
)
from loyalty.services.events import EventInput, record_event_batch
from loyalty.services.members import create_member
from tests.factories import EventFactory, MemberFactory

pytestmark = pytest.mark.django_db


def _counts() -> tuple[int, int, int, int]:
    return (
        Member.objects.count(),
        Event.objects.count(),
        AuditRecord.objects.count(),
        ErasureTombstone.objects.count(),
    )


@pytest.fixture
def admin(make_user):
    return make_user("admin")


@pytest.fixture
def erased(admin):
    """H-42, erased: its row now says erased-<pk>; only the tombstone knows the former id."""
    member = MemberFactory(external_id="H-42")
    EventFactory.create_batch(2, member=member)
    erase_member(member_id=member.pk, actor=admin)
    member.refresh_from_db()
    return member


# --- the digest -------------------------------------------------------------------------------


def test_the_digest_is_keyed_so_a_guessable_id_cannot_be_found_by_trying(settings):
    bare = hashlib.sha256(b"H-42").hexdigest()
    digest = tombstone_digest("H-42")

    settings.ERASURE_TOMBSTONE_KEY = "another-key"

    assert len(digest) == 64
    assert digest != bare
    assert tombstone_digest("H-42") != digest
    assert tombstone_digest("H-43") != tombstone_digest("H-42")


# --- refused on the way in --------------------------------------------------------------------


def test_creating_an_erased_id_is_a_conflict_and_changes_nothing(erased, admin):
    counts = _counts()

    with pytest.raises(MemberErasedError, match="This member was erased") as caught:
        create_member(external_id="H-42", actor=admin, tier="gold")

    assert caught.value.status == 409
    assert _counts() == counts
    assert not Member.objects.filter(external_id="H-42").exists()


def test_the_admin_add_form_refuses_an_erased_id_and_changes_nothing(client, admin, erased):
    client.force_login(admin)
    counts = _counts()

    response = client.post(
        reverse("admin:loyalty_member_add"),
        {
            "external_id": "H-42",
            "tier": "gold",
            "points_balance": "0",
            "age_band": "",
            "region": "",
        },
    )

    assert response.status_code == 200  # the form again, with its error
    assert "This member was erased; its external id is refused" in response.content.decode()
    assert _counts() == counts


def test_the_events_batch_refuses_an_erased_id_item_by_item(erased, make_user):
    MemberFactory(external_id="H-1")
    at = datetime(2025, 3, 1, 10, tzinfo=UTC)

    result = record_event_batch(
        events=[
            EventInput(index=0, member_external_id="H-42", occurred_at=at, kind="view"),
            EventInput(index=1, member_external_id="H-1", occurred_at=at, kind="view"),
        ],
        actor=make_user("integrator"),
    )

    assert (result.received, result.created, result.rejected) == (2, 1, 1)
    assert result.errors[0].index == 0
    assert result.errors[0].errors == {
        "member_external_id": ["This member was erased; it takes no new events."]
    }
    assert list(Event.objects.values_list("member__external_id", flat=True)) == ["H-1"]


# --- lifting ------------------------------------------------------------------------------------


def test_a_lifted_tombstone_lets_the_id_come_back_as_a_new_member(erased, admin):

    tombstone = lift_tombstone(external_id="H-42", actor=admin, reason="rejoined in person")
    returned = create_member(external_id="H-42", actor=admin, joined_on=date(2026, 3, 1))

    tombstone.refresh_from_db()
    assert (tombstone.lifted_by, tombstone.lift_reason) == (admin, "rejoined in person")
    assert tombstone.lifted_at is not None
    assert returned.pk != erased.pk
    erased.refresh_from_db()
    assert (erased.external_id, erased.is_erased) == (f"erased-{erased.pk}", True)
    record = AuditRecord.objects.get(kind="tombstone_lift")
    assert (record.actor, record.subject) == (admin, f"member:{erased.pk}")
    assert record.details == {
        "tombstone_id": tombstone.pk,
        "member_id": erased.pk,
        "reason": "rejoined in person",
    }


def test_lifting_again_changes_nothing(erased, admin):
    first = lift_tombstone(external_id="H-42", actor=admin, reason="rejoined")
    counts = _counts()

    again = lift_tombstone(external_id="H-42", actor=admin, reason="rejoined, really")

    assert again.pk == first.pk
    again.refresh_from_db()
    assert (again.lift_reason, again.lifted_at) == ("rejoined", first.lifted_at)
    assert _counts() == counts


def test_the_returned_member_can_be_erased_again_with_a_tombstone_of_its_own(erased, admin):
    lift_tombstone(external_id="H-42", actor=admin, reason="rejoined")
    returned = create_member(external_id="H-42", actor=admin)

    erase_member(member_id=returned.pk, actor=admin)

    standing = ErasureTombstone.objects.standing().get()
    assert (standing.member_id, standing.digest) == (returned.pk, tombstone_digest("H-42"))
    assert ErasureTombstone.objects.filter(digest=tombstone_digest("H-42")).count() == 2
    # A retried erasure of the id finds the latest member under it.
    assert erase_member_by_external_id(external_id="H-42", actor=admin).member_id == returned.pk


@pytest.mark.parametrize(
    ("external_id", "reason", "role", "error", "message"),
    [
        ("H-42", "rejoined", "analyst", PermissionDeniedError, "lacks the permission"),
        ("H-42", "  ", "admin", DomainError, "a reason is required"),
        ("nobody", "rejoined", "admin", NotFoundError, "No erased member had this external id"),
    ],
)
def test_lifting_is_refused_without_permission_reason_or_tombstone(
    erased, admin, make_user, external_id, reason, role, error, message
):
    actor = admin if role == "admin" else make_user(role)
    counts = _counts()

    with pytest.raises(error, match=message):
        lift_tombstone(external_id=external_id, actor=actor, reason=reason)

    assert _counts() == counts
    assert ErasureTombstone.objects.get().lifted_at is None


def test_command_lifts_a_tombstone_by_id(erased, admin):
    out = StringIO()

    call_command(
        "lift_tombstone", "H-42", "--reason", "rejoined", "--actor", "admin-user", stdout=out
    )

    tombstone = ErasureTombstone.objects.get()
    assert (tombstone.lifted_by, tombstone.lift_reason) == (admin, "rejoined")
    assert f"The tombstone of member {erased.pk} is lifted" in out.getvalue()


def test_command_refuses_an_id_that_was_never_erased(erased):
    counts = _counts()

    with pytest.raises(CommandError, match="No erased member had this external id."):
        call_command("lift_tombstone", "H-43", "--reason", "rejoined", stdout=StringIO())

    assert _counts() == counts


def test_admin_lists_digests_and_lifts_selected_tombstones_with_a_reason(client, admin, erased):
    client.force_login(admin)
    tombstone = ErasureTombstone.objects.get()
    url = reverse("admin:loyalty_erasuretombstone_changelist")

    page = client.get(url).content.decode()
    response = client.post(
        url,
        {"action": "lift_selected", "_selected_action": [tombstone.pk], "reason": "rejoined"},
        follow=True,
    )

    assert tombstone.digest in page
    assert "H-42" not in page
    assert "Lifted 1 tombstone(s)." in response.content.decode()
    tombstone.refresh_from_db()
    assert (tombstone.lifted_by, tombstone.lift_reason) == (admin, "rejoined")


def test_admin_action_without_a_reason_lifts_nothing(client, admin, erased):
    client.force_login(admin)
    tombstone = ErasureTombstone.objects.get()
    counts = _counts()

    response = client.post(
        reverse("admin:loyalty_erasuretombstone_changelist"),
        {"action": "lift_selected", "_selected_action": [tombstone.pk], "reason": ""},
        follow=True,
    )

    assert "a reason is required" in response.content.decode()
    assert _counts() == counts
    tombstone.refresh_from_db()
    assert tombstone.lifted_at is None


def test_admin_tombstones_are_read_only(client, admin, erased):
    client.force_login(admin)
    tombstone = ErasureTombstone.objects.get()

    add = client.get(reverse("admin:loyalty_erasuretombstone_add"))
    change = client.post(
        reverse("admin:loyalty_erasuretombstone_change", args=[tombstone.pk]),
        {"digest": "0" * 64, "erased_at": "2020-01-01 00:00:00"},
    )

    assert add.status_code == 403
    assert change.status_code == 403
    tombstone.refresh_from_db()
    assert tombstone.digest == tombstone_digest("H-42")


# --- the migration: older erasures get tombstones, the trail names members by pk ---------------

BEFORE = [("loyalty", "0005_audit_kinds_for_trust")]
AFTER = [("loyalty", "0007_audit_names_members_by_pk")]


@pytest.mark.django_db(transaction=True)
def test_migration_gives_older_erasures_tombstones_and_names_members_by_pk(migrator):
    old = migrator(BEFORE)
    OldMember = old.get_model("loyalty", "Member")
    OldAudit = old.get_model("loyalty", "AuditRecord")
    active = OldMember.objects.create(external_id="M1")
    numeric = OldMember.objects.create(external_id="7")  # an id that looks like a pk
    erased_at = datetime(2025, 6, 1, tzinfo=UTC)
    gone = OldMember.objects.create(external_id="placeholder", erased_at=erased_at)
    gone.external_id = f"erased-{gone.pk}"
    gone.save()

    def audit(kind, subject, details):
        return OldAudit.objects.create(kind=kind, subject=subject, details=details).pk

    source = {"consent_profiling": False, "source": "import:members.csv"}
    consent_active = audit("consent_change", "member:M1", source)
    consent_numeric = audit("consent_change", "member:7", source)
    consent_gone = audit("consent_change", "member:H-42", source)
    consent_unknown = audit("consent_change", "member:ghost", source)
    modern = audit("member_change", f"member:{active.pk}", {"member_id": active.pk})
    erasure = audit(
        "erasure",
        f"member:{gone.pk}",
        {
            "member_id": gone.pk,
            "events_deleted": 3,
            "external_id_sha256": hashlib.sha256(b"H-42").hexdigest(),
        },
    )
    stray = audit("import", "members:x.csv", {"rows_read": 1, "external_id": "M1"})

    new = migrator(AFTER)
    Audit = new.get_model("loyalty", "AuditRecord")
    Tombstone = new.get_model("loyalty", "ErasureTombstone")
    records = {
        pk: (subject, details)
        for pk, subject, details in Audit.objects.values_list("pk", "subject", "details")
    }

    digest = tombstone_digest("H-42")
    kept = {"consent_profiling": False, "source": "import:members.csv"}
    assert records[consent_active] == (f"member:{active.pk}", {"member_id": active.pk, **kept})
    assert records[consent_numeric] == (f"member:{numeric.pk}", {"member_id": numeric.pk, **kept})
    assert records[consent_gone] == (f"member:{gone.pk}", {"member_id": gone.pk, **kept})
    assert records[consent_unknown] == ("member:unknown", kept)
    assert records[modern] == (f"member:{active.pk}", {"member_id": active.pk})
    assert records[erasure] == (
        f"member:{gone.pk}",
        {"member_id": gone.pk, "events_deleted": 3, "tombstone_digest": digest},
    )
    assert records[stray] == ("members:x.csv", {"rows_read": 1})
    assert list(Tombstone.objects.values_list("digest", "member_id", "erased_at", "lifted_at")) == [
        (digest, gone.pk, erased_at, None)
    ]

    # The tombstone the migration wrote refuses the id exactly as one written by erasure.
    migrator(MigrationExecutor(connection).loader.graph.leaf_nodes())
    with pytest.raises(MemberErasedError):
        create_member(external_id="H-42", actor=None)
    assert not Member.objects.filter(external_id="H-42").exists()
