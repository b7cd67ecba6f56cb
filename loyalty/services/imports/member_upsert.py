"""Writing a members import's staged chunk into place: one UPDATE of the members that changed
and one INSERT of the new ones, set-based, with each consent change audited before the update
(`loyalty.services.imports.members_and_events` validates and stages the rows)."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from loyalty.models import AuditRecord, Member
from loyalty.services.audit import record_audit
from loyalty.services.imports.member_attributes import (
    ATTRIBUTES,
    changed_sql,
    created_sql,
    merged_sql,
)
from loyalty.services.members import (
    CONSENT_FIELDS,
    announce_consent_withdrawal,
    consent_audit_details,
)

MEMBER_STAGE = "loyalty_member_import"
# Model column and default for each optional import column (absent from a source or empty).
MEMBER_FIELDS = {
    "joined_at": ("joined_on", None),
    "tier": ("tier", ""),
    "points_balance": ("points_balance", 0),
    "consent_profiling": ("consent_profiling", False),
    "consent_marketing": ("consent_marketing", False),
    "age_band": ("age_band", ""),
    "region": ("region", ""),
}


def upsert_members(
    *,
    cursor,
    fields: list[str],
    now,
    source_name: str,
    actor: AbstractBaseUser | None,
    attributes: bool = False,
) -> tuple[int, int]:
    """Update the changed and insert the new members of the staged chunk: (created, updated);
    `attributes`: the stage holds attribute patches (`imports.member_attributes`)."""
    table = Member._meta.db_table
    columns = [MEMBER_FIELDS[field][0] for field in fields]
    stamp = connection.ops.adapt_datetimefield_value(now)
    distinct = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"

    consents = {consent: field for consent, field in CONSENT_FIELDS.items() if field in columns}
    # Read before the update below, which makes the stored consents equal the staged ones.
    withdrawn = {
        consent: _audit_consent_changes(
            cursor=cursor,
            field=field,
            consent=consent,
            now=now,
            source_name=source_name,
            actor=actor,
        )
        for consent, field in consents.items()
    }

    updated = 0
    if columns or attributes:
        # A changed member's scores are due for a refresh (its tier, say, is a feature).
        assignments = [f"{column} = s.{column}" for column in columns]
        patch = ("m.attributes", f"s.{ATTRIBUTES}")
        if attributes:
            assignments.append(f"{ATTRIBUTES} = {merged_sql(*patch)}")
        assignments += ["updated_at = %s", "inputs_changed_at = %s"]
        params: list[object] = [stamp, stamp]
        if consents:
            consent_changed = " OR ".join(f"m.{field} <> s.{field}" for field in consents.values())
            assignments.append(
                f"consent_changed_at = CASE WHEN {consent_changed} "
                "THEN %s ELSE m.consent_changed_at END"
            )
            params.append(stamp)
        changed = " OR ".join(
            [f"m.{column} {distinct} s.{column}" for column in columns]
            + ([changed_sql(*patch)] if attributes else [])
        )
        cursor.execute(
            f"UPDATE {table} AS m SET {', '.join(assignments)} FROM {MEMBER_STAGE} AS s "
            f"WHERE m.external_id = s.external_id AND ({changed})",
            params,
        )
        updated = cursor.rowcount
    for consent, member_ids in withdrawn.items():
        if member_ids:
            # In the import's transaction, as set_consent does (profiling: their reviews leave
            # the queues), after the update so that the event carries the new change time.
            announce_consent_withdrawal(member_ids=member_ids, consent=consent)

    defaults = {column: default for column, default in MEMBER_FIELDS.values()}
    insert_columns = ["external_id", *defaults, "created_at", "updated_at"]
    selected = ["s.external_id"]
    params = []
    for column, default in defaults.items():
        if column in columns:
            selected.append(f"s.{column}")
        else:
            selected.append("%s")
            params.append(default)
    selected += ["%s", "%s"]
    params += [stamp, stamp]
    if attributes:
        insert_columns.append(ATTRIBUTES)
        selected.append(created_sql(f"s.{ATTRIBUTES}"))
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(insert_columns)}) SELECT {', '.join(selected)} "
        f"FROM {MEMBER_STAGE} s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} m WHERE m.external_id = s.external_id)",
        params,
    )
    return cursor.rowcount, updated


def _audit_consent_changes(
    *,
    cursor,
    consent: Member.Consent,
    field: str,
    now,
    source_name: str,
    actor: AbstractBaseUser | None,
) -> list[int]:
    """Audit each staged member whose `consent` changes, before the update writes it; the
    members who withdraw it."""
    cursor.execute(
        f"SELECT m.id, s.{field} FROM {MEMBER_STAGE} s "
        f"JOIN {Member._meta.db_table} m ON m.external_id = s.external_id "
        f"WHERE m.{field} <> s.{field} ORDER BY m.id"
    )
    withdrawn = []
    for member_id, granted in cursor.fetchall():
        record_audit(
            kind=AuditRecord.Kind.CONSENT_CHANGE,
            actor=actor,
            # By pk, never by external id: erasure could not take the id out of the trail.
            subject=f"member:{member_id}",
            details={
                **consent_audit_details(
                    member_id=member_id, consent=consent, granted=granted, changed_at=now
                ),
                "source": f"import:{source_name}",
            },
        )
        if not granted:
            withdrawn.append(member_id)
    return withdrawn
