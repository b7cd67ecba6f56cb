"""The audit trail becomes append-only in the database, not only in the model's save().

1. `actor` keeps the user's id but is no longer a database foreign key, and deleting a user
   does nothing to it (it was SET NULL: deleting a user rewrote every record the user wrote).
   The record keeps the id and `actor_name`; a reader of a deleted user's record gets no user.
2. Triggers refuse every DELETE and every UPDATE of `loyalty_auditrecord`, on PostgreSQL (a
   plpgsql function raising restrict_violation) and on SQLite (RAISE(ABORT)), both surfacing
   as IntegrityError. One UPDATE passes: a *declared redaction*, which erasure needs
   (reviews/erasure.py). It may only take keys out of `details`, every key it takes out must be
   named in the record's `redacted_at_erasure` list, that list keeps every name it had and
   names nothing else, and nothing else in the row changes (time, actor, kind, subject, the
   values of the keys that stay). So the database lets personal data leave a record, says in
   the record that it left, and refuses anything that would add to, alter or hide a record.

The actor is altered before the triggers exist: SQLite alters a table by rebuilding it, which
drops the table's triggers. A later migration that rebuilds this table on SQLite must create
them again (tests/loyalty/test_append_only_audit.py fails if they are missing).

What the triggers do not stop: the database owner can drop them, and TRUNCATE (PostgreSQL)
skips row triggers. Both are schema-owner powers; `manage.py flush` uses them to empty the
database (loyalty/management/commands/flush.py does the same on SQLite). Run the app as a
role that does not own the tables where that matters.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

TABLE = "loyalty_auditrecord"
REDACTED_KEY = "redacted_at_erasure"

POSTGRESQL_FORWARD = f"""
CREATE OR REPLACE FUNCTION loyalty_auditrecord_append_only() RETURNS trigger
LANGUAGE plpgsql AS $body$
DECLARE
    old_list jsonb;
    new_list jsonb;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit records are append-only: DELETE of {TABLE} refused'
            USING ERRCODE = 'restrict_violation';
    END IF;
    old_list := COALESCE(OLD.details -> '{REDACTED_KEY}', '[]'::jsonb);
    new_list := COALESCE(NEW.details -> '{REDACTED_KEY}', '[]'::jsonb);
    IF NEW.id IS DISTINCT FROM OLD.id
        OR NEW.occurred_at IS DISTINCT FROM OLD.occurred_at
        OR NEW.actor_id IS DISTINCT FROM OLD.actor_id
        OR NEW.actor_name IS DISTINCT FROM OLD.actor_name
        OR NEW.kind IS DISTINCT FROM OLD.kind
        OR NEW.subject IS DISTINCT FROM OLD.subject
        OR jsonb_typeof(NEW.details) IS DISTINCT FROM 'object'
        OR jsonb_typeof(new_list) IS DISTINCT FROM 'array'
        -- a key that stays keeps its value; no key is added
        OR EXISTS (
            SELECT 1 FROM jsonb_each(NEW.details) AS kept
            WHERE kept.key <> '{REDACTED_KEY}'
              AND (NOT OLD.details ? kept.key OR OLD.details -> kept.key <> kept.value))
        -- a key taken out is named in the list
        OR EXISTS (
            SELECT 1 FROM jsonb_each(OLD.details) AS gone
            WHERE gone.key <> '{REDACTED_KEY}'
              AND NOT NEW.details ? gone.key
              AND NOT new_list @> jsonb_build_array(gone.key))
        -- the list keeps every name it had
        OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(old_list) AS named
            WHERE NOT new_list @> jsonb_build_array(named.value))
        -- and names nothing that was not taken out
        OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(new_list) AS named
            WHERE NOT old_list @> jsonb_build_array(named.value)
              AND NOT (jsonb_typeof(named.value) = 'string'
                       AND OLD.details ? (named.value #>> '{{}}')
                       AND NOT NEW.details ? (named.value #>> '{{}}')))
    THEN
        RAISE EXCEPTION 'audit records are append-only: UPDATE of {TABLE} refused'
            USING DETAIL = 'Only a redaction that takes keys out of details and names them in '
                           '{REDACTED_KEY} may change a row.',
            ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END;
$body$;
CREATE TRIGGER loyalty_auditrecord_no_delete BEFORE DELETE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION loyalty_auditrecord_append_only();
CREATE TRIGGER loyalty_auditrecord_no_update BEFORE UPDATE ON {TABLE}
    FOR EACH ROW EXECUTE FUNCTION loyalty_auditrecord_append_only();
"""

POSTGRESQL_REVERSE = f"""
DROP TRIGGER IF EXISTS loyalty_auditrecord_no_update ON {TABLE};
DROP TRIGGER IF EXISTS loyalty_auditrecord_no_delete ON {TABLE};
DROP FUNCTION IF EXISTS loyalty_auditrecord_append_only();
"""

# SQLite's JSON functions read `details` (JSON text). json_each(X, path) is empty when the
# path is missing, so a record without the list compares as an empty list.
SQLITE_FORWARD = [
    f"""
CREATE TRIGGER loyalty_auditrecord_no_delete BEFORE DELETE ON {TABLE}
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: DELETE of {TABLE} refused');
END
""",
    f"""
CREATE TRIGGER loyalty_auditrecord_no_update BEFORE UPDATE ON {TABLE}
WHEN NOT (
    NEW.id IS OLD.id
    AND NEW.occurred_at IS OLD.occurred_at
    AND NEW.actor_id IS OLD.actor_id
    AND NEW.actor_name IS OLD.actor_name
    AND NEW.kind IS OLD.kind
    AND NEW.subject IS OLD.subject
    AND json_valid(NEW.details)
    AND json_type(NEW.details) = 'object'
    AND COALESCE(json_type(NEW.details, '$.{REDACTED_KEY}'), 'array') = 'array'
    -- a key that stays keeps its value; no key is added
    AND NOT EXISTS (
        SELECT 1 FROM json_each(NEW.details) AS kept
        WHERE kept.key <> '{REDACTED_KEY}'
          AND NOT EXISTS (
              SELECT 1 FROM json_each(OLD.details) AS was
              WHERE was.key = kept.key AND was.type = kept.type AND was.value IS kept.value))
    -- a key taken out is named in the list
    AND NOT EXISTS (
        SELECT 1 FROM json_each(OLD.details) AS gone
        WHERE gone.key <> '{REDACTED_KEY}'
          AND NOT EXISTS (SELECT 1 FROM json_each(NEW.details) AS kept WHERE kept.key = gone.key)
          AND NOT EXISTS (
              SELECT 1 FROM json_each(NEW.details, '$.{REDACTED_KEY}') AS named
              WHERE named.type = 'text' AND named.value = gone.key))
    -- the list keeps every name it had
    AND NOT EXISTS (
        SELECT 1 FROM json_each(OLD.details, '$.{REDACTED_KEY}') AS had
        WHERE NOT EXISTS (
            SELECT 1 FROM json_each(NEW.details, '$.{REDACTED_KEY}') AS named
            WHERE named.type = had.type AND named.value IS had.value))
    -- and names nothing that was not taken out
    AND NOT EXISTS (
        SELECT 1 FROM json_each(NEW.details, '$.{REDACTED_KEY}') AS named
        WHERE NOT EXISTS (
            SELECT 1 FROM json_each(OLD.details, '$.{REDACTED_KEY}') AS had
            WHERE had.type = named.type AND had.value IS named.value)
          AND NOT (
              named.type = 'text'
              AND EXISTS (SELECT 1 FROM json_each(OLD.details) AS was WHERE was.key = named.value)
              AND NOT EXISTS (
                  SELECT 1 FROM json_each(NEW.details) AS kept WHERE kept.key = named.value)))
)
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only: UPDATE of {TABLE} refused');
END
""",
]

SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS loyalty_auditrecord_no_update",
    "DROP TRIGGER IF EXISTS loyalty_auditrecord_no_delete",
]


def _run(schema_editor, postgresql: list[str], sqlite: list[str]) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = postgresql
    elif vendor == "sqlite":
        statements = sqlite
    else:
        raise NotImplementedError(f"No append-only audit trigger for {vendor}.")
    for statement in statements:
        # params=None: the SQL holds '%' signs that are not placeholders.
        schema_editor.execute(statement, params=None)


def install_triggers(apps, schema_editor) -> None:
    _run(schema_editor, [POSTGRESQL_FORWARD], SQLITE_FORWARD)


def remove_triggers(apps, schema_editor) -> None:
    _run(schema_editor, [POSTGRESQL_REVERSE], SQLITE_REVERSE)


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0010_control_groups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditrecord",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                null=True,
                on_delete=django.db.models.deletion.DO_NOTHING,
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.RunPython(install_triggers, remove_triggers),
    ]
