"""What the loyalty commands share: the acting user by name, and errors as CommandError."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from loyalty.exceptions import ConflictError
from loyalty.management.support import command_errors, user_named
from loyalty.models import AuditRecord, ErasureTombstone, Event, Member
from loyalty.services.imports.validation import ImportValidationError, RowError


def test_a_domain_error_becomes_its_message():
    with pytest.raises(CommandError) as caught, command_errors():
        raise ConflictError("Seed 9 was generated with another window.", seed=9)

    assert str(caught.value) == "Seed 9 was generated with another window."


def test_an_import_error_lists_its_rows_after_the_summary():
    error = ImportValidationError(
        source="members.csv",
        errors=(RowError(line=3, column="tier", value="x" * 3, reason="too long"),),
        error_count=2,
    )

    with pytest.raises(CommandError) as caught, command_errors():
        raise error

    assert str(caught.value).splitlines() == [
        "members.csv: 2 errors, nothing was imported.",
        "line 3, column 'tier', value 'xxx': too long",
        "... and 1 more errors",
    ]


def test_other_errors_pass_through_unless_named():
    with pytest.raises(ValueError), command_errors():
        raise ValueError("a bug")
    with pytest.raises(CommandError, match="^out of range$"), command_errors(ValueError):
        raise ValueError("out of range")


@pytest.mark.django_db
def test_no_name_is_the_system_and_an_unknown_name_is_refused(make_user):
    admin = make_user("admin", username="dpo")

    assert user_named(None) is None
    assert user_named("") is None
    assert user_named("dpo") == admin
    with pytest.raises(CommandError, match="^No user named 'ghost'.$"):
        user_named("ghost")


@pytest.mark.django_db
def test_generate_members_refuses_arguments_out_of_range_and_writes_nothing():
    with pytest.raises(CommandError, match="members must be positive"):
        call_command("generate_members", "--members", "0", "--seed", "4")

    assert (Member.objects.count(), Event.objects.count(), AuditRecord.objects.count()) == (0, 0, 0)


@pytest.mark.django_db
def test_lift_tombstone_refuses_an_unknown_actor_and_changes_nothing():
    with pytest.raises(CommandError, match="^No user named 'ghost'.$"):
        call_command(
            "lift_tombstone", "H-1", "--reason", "rejoined", "--actor", "ghost", stdout=StringIO()
        )

    assert (ErasureTombstone.objects.count(), AuditRecord.objects.count()) == (0, 0)
