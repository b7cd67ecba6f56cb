"""The audit trail is append-only in the database: UPDATE and DELETE are refused by triggers on
PostgreSQL and SQLite alike, through the ORM and through raw SQL; the one change let through is
a redaction that says what it took out; deleting a user leaves the user's records as they were.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit

TABLE = AuditRecord._meta.db_table
DETAILS = {"verdict": "override", "reason": "recent-contact", "action": "bonus", "comment": "x"}


@pytest.fixture
def record(db) -> AuditRecord:
    return record_audit(kind="decision", actor=None, subject="review:7", details=DETAILS)


def _stored(record: AuditRecord) -> tuple:
    return AuditRecord.objects.filter(pk=record.pk).values_list(
        "occurred_at", "actor_id", "actor_name", "kind", "subject", "details"
    )[0]


def _refused(statement) -> str:
    """Run a write that the database must refuse; the test's transaction goes on."""
    with pytest.raises(IntegrityError) as refusal, transaction.atomic():
        statement()
    return str(refusal.value)


@pytest.mark.parametrize(
    "change",
    [
        {"subject": "review:8"},
        {"kind": "import"},
        {"actor_name": "someone-else"},
        {"details": {**DETAILS, "verdict": "approve"}},
        {"details": {}},
    ],
    ids=["subject", "kind", "actor_name", "a detail's value", "every detail, undeclared"],
)
def test_an_orm_update_is_refused_and_changes_nothing(record, change):
    before = _stored(record)

    message = _refused(lambda: AuditRecord.objects.filter(pk=record.pk).update(**change))

    assert "audit records are append-only: UPDATE" in message
    assert _stored(record) == before


def test_an_orm_delete_is_refused_and_deletes_nothing(record):
    message = _refused(lambda: AuditRecord.objects.filter(pk=record.pk).delete())

    assert "audit records are append-only: DELETE" in message
    assert AuditRecord.objects.filter(pk=record.pk).count() == 1


@pytest.mark.parametrize(
    ("sql", "verb"),
    [
        (f"UPDATE {TABLE} SET subject = 'review:8' WHERE id = %s", "UPDATE"),
        (f"UPDATE {TABLE} SET occurred_at = occurred_at WHERE id = %s", None),
        (f"DELETE FROM {TABLE} WHERE id = %s", "DELETE"),
    ],
    ids=["update", "no-op update", "delete"],
)
def test_raw_sql_is_refused_too(record, sql, verb):
    before = _stored(record)

    def run():
        with connection.cursor() as cursor:
            cursor.execute(sql, [record.pk])

    if verb is None:  # writing a row unchanged rewrites nothing: nothing to refuse
        run()
    else:
        assert f"audit records are append-only: {verb}" in _refused(run)
    assert _stored(record) == before


def test_deleting_every_row_is_refused(record):
    _refused(lambda: AuditRecord.objects.all().delete())

    assert AuditRecord.objects.count() == 1


def test_a_declared_redaction_takes_details_out_and_nothing_else(record):
    redacted = {
        "verdict": "override",
        "reason": "recent-contact",
        "redacted_at_erasure": ["action", "comment"],
    }

    before = _stored(record)

    AuditRecord.objects.filter(pk=record.pk).update(details=redacted)

    assert _stored(record) == (*before[:5], redacted)
    # A second redaction keeps the first one's names and adds its own.
    again = {"verdict": "override", "redacted_at_erasure": ["action", "comment", "reason"]}
    AuditRecord.objects.filter(pk=record.pk).update(details=again)
    assert _stored(record)[5] == again


@pytest.mark.parametrize(
    "details",
    [
        # takes "comment" out without saying so
        {"verdict": "override", "reason": "recent-contact", "redacted_at_erasure": ["action"]},
        # says it took "reason" out, but "reason" is still there
        {**DETAILS, "redacted_at_erasure": ["reason"]},
        # names a key the record never had
        {"verdict": "override", "reason": "x", "redacted_at_erasure": ["action", "comment"]},
        # adds a key
        {"verdict": "override", "redacted_at_erasure": ["action", "comment", "reason"], "n": 1},
        # the list is not a list
        {"verdict": "override", "redacted_at_erasure": "action,comment,reason"},
    ],
    ids=["undeclared", "declared but kept", "altered value", "added key", "not a list"],
)
def test_a_redaction_that_hides_or_alters_anything_is_refused(record, details):
    before = _stored(record)

    _refused(lambda: AuditRecord.objects.filter(pk=record.pk).update(details=details))

    assert _stored(record) == before


def test_a_later_redaction_may_not_drop_an_earlier_declaration(record):
    first = {"verdict": "override", "reason": "recent-contact", "redacted_at_erasure": ["action"]}
    with pytest.raises(IntegrityError), transaction.atomic():  # "comment" undeclared
        AuditRecord.objects.filter(pk=record.pk).update(details=first)
    declared = {**first, "redacted_at_erasure": ["action", "comment"]}
    AuditRecord.objects.filter(pk=record.pk).update(details=declared)

    forgetting = {"verdict": "override", "redacted_at_erasure": ["reason"]}
    _refused(lambda: AuditRecord.objects.filter(pk=record.pk).update(details=forgetting))

    assert _stored(record)[5] == declared


def test_deleting_a_user_keeps_their_records_id_and_name(db):
    user = get_user_model().objects.create_user(username="leaver", password="x")
    written = record_audit(kind="policy_change", actor=user, subject="policy:churn:v2")
    user_pk = user.pk

    user.delete()

    kept = AuditRecord.objects.select_related("actor").get(pk=written.pk)
    assert (kept.actor_id, kept.actor_name, kept.subject) == (user_pk, "leaver", "policy:churn:v2")
    assert kept.actor is None  # no such user any more; the name is what the pages show
    assert not get_user_model().objects.filter(pk=user_pk).exists()


@pytest.mark.django_db(transaction=True)
def test_flush_empties_the_trail_and_leaves_its_triggers_in_place():
    record_audit(kind="import", actor=None, subject="file:a.csv")

    call_command("flush", interactive=False, verbosity=0)

    assert AuditRecord.objects.count() == 0
    again = record_audit(kind="import", actor=None, subject="file:b.csv")
    _refused(lambda: AuditRecord.objects.filter(pk=again.pk).delete())
    _refused(lambda: AuditRecord.objects.filter(pk=again.pk).update(subject="file:c.csv"))
    assert list(AuditRecord.objects.values_list("subject", flat=True)) == ["file:b.csv"]
