"""Bulk import of members and events: validate the whole source first, then write all or nothing.

Sources are CSV files or pandas DataFrames (one, or an iterable of chunks) with the same
columns. Timestamps are ISO 8601; one with an offset is converted to UTC, one without is read in
the zone the import is given (`naive_timezone`, else the LOYALTY_IMPORT_TIMEZONE setting) and
refused when there is none; all are stored timezone-aware. A `joined_at` that carries a time
becomes the UTC date of that moment. Validated chunks wait on disk; writing goes through a
staging table (`loyalty.services.imports.staging`), one INSERT ... SELECT per chunk, skipping events
whose natural key is already stored, all in one transaction. With `rejects_path`, rows with
errors are set aside in that file (`loyalty.services.imports.rejects`) and the others written.
"""

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from loyalty.exceptions import ConflictError, require_permission
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.audit import record_audit
from loyalty.services.erasure import StandingTombstones
from loyalty.services.imports.checks import (
    FROM_NEGATIVE_PURCHASE,
    RepeatedEventKeys,
    RepeatedIds,
    read_negative_purchases_as_returns,
    report_future_events,
    report_refused_external_ids,
    report_unknown_members,
)
from loyalty.services.imports.member_attributes import ATTRIBUTES, AttributeColumns
from loyalty.services.imports.member_upsert import MEMBER_FIELDS, MEMBER_STAGE, upsert_members
from loyalty.services.imports.rejects import RejectedRows, with_reasons
from loyalty.services.imports.results import EVENTS, MEMBERS, ImportResult
from loyalty.services.imports.staging import StageColumns, load_staging_table, staging_table
from loyalty.services.imports.timestamps import time_zone_named
from loyalty.services.imports.validation import (
    LINE,
    Chunk,
    ChunkSpill,
    ColumnKind,
    ColumnSpec,
    ErrorCollector,
    ExtraColumns,
    ImportSource,
    ImportValidationError,
    read_chunks,
    source_label,
    validate_chunk,
)

VALIDATE_PHASE = "validate"
WRITE_PHASE = "write"
# Called as progress(phase, rows_done_since_last_call, total_rows_or_None).
ProgressCallback = Callable[[str, int, int | None], None]


def _max_length(model: type, field: str) -> int:
    return model._meta.get_field(field).max_length


_AMOUNT = Event._meta.get_field("amount")

MEMBER_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        "external_id", ColumnKind.TEXT, required=True, max_length=_max_length(Member, "external_id")
    ),
    ColumnSpec("joined_at", ColumnKind.DATE),
    # Tiers are free text; the configured ladder ranks them and unlisted ones rank lowest.
    ColumnSpec("tier", ColumnKind.TEXT, max_length=_max_length(Member, "tier"), lowercase=True),
    ColumnSpec("points_balance", ColumnKind.INTEGER),
    ColumnSpec("consent_profiling", ColumnKind.BOOLEAN),
    ColumnSpec("consent_marketing", ColumnKind.BOOLEAN),
    ColumnSpec("age_band", ColumnKind.TEXT, max_length=_max_length(Member, "age_band")),
    ColumnSpec("region", ColumnKind.TEXT, max_length=_max_length(Member, "region")),
)

EVENT_COLUMNS: tuple[ColumnSpec, ...] = (
    ColumnSpec(
        "member_external_id",
        ColumnKind.TEXT,
        required=True,
        max_length=_max_length(Member, "external_id"),
    ),
    ColumnSpec("occurred_at", ColumnKind.DATETIME, required=True),
    ColumnSpec("kind", ColumnKind.CHOICE, required=True, choices=frozenset(Event.Kind.values)),
    ColumnSpec(
        "amount",
        ColumnKind.DECIMAL,
        max_digits=_AMOUNT.max_digits,
        decimal_places=_AMOUNT.decimal_places,
    ),
    ColumnSpec("quantity", ColumnKind.FLOAT),
    ColumnSpec("category", ColumnKind.TEXT, max_length=_max_length(Event, "category")),
    ColumnSpec("channel", ColumnKind.TEXT, max_length=_max_length(Event, "channel")),
    ColumnSpec("session_id", ColumnKind.TEXT, max_length=_max_length(Event, "session_id")),
    ColumnSpec("dwell_seconds", ColumnKind.FLOAT, minimum=0),
    ColumnSpec("product_id", ColumnKind.TEXT, max_length=_max_length(Event, "product_id")),
)

_EVENT_DEFAULTS = {
    "amount": np.nan,
    "quantity": np.nan,
    "category": "",
    "channel": "",
    "session_id": "",
    "dwell_seconds": np.nan,
    "product_id": "",
}
_SUBJECT_LENGTH = AuditRecord._meta.get_field("subject").max_length
_EVENT_STAGE = "loyalty_event_import"
_EVENT_STAGE_COLUMNS: StageColumns = (
    ("member_external_id", ColumnKind.TEXT),
    ("occurred_at", ColumnKind.DATETIME),
    ("kind", ColumnKind.TEXT),
    ("amount", ColumnKind.DECIMAL),
    ("quantity", ColumnKind.FLOAT),
    ("category", ColumnKind.TEXT),
    ("channel", ColumnKind.TEXT),
    ("session_id", ColumnKind.TEXT),
    ("dwell_seconds", ColumnKind.FLOAT),
    ("product_id", ColumnKind.TEXT),
)


def import_members(
    *,
    source: ImportSource,
    source_name: str | None = None,
    actor: AbstractBaseUser | None = None,
    progress: ProgressCallback | None = None,
    naive_timezone: str | None = None,
    rejects_path: Path | None = None,
) -> ImportResult:
    """Create or update members by external id; a file imported twice changes nothing.

    A column missing from the source leaves that field of existing members as it is (new
    members get the default); an empty cell sets the field to empty. Any other column is a
    member attribute (`imports.member_attributes`: the attributes it names are set, an empty
    cell removes one, others stay as they are). Consent changes set
    `consent_changed_at` and are audited one by one. Raises ImportValidationError, with
    nothing written, when any row is bad: unknown or missing columns, bad dates or numbers,
    over-long values, a header that makes no attribute key, an external id given twice, or one
    that a standing erasure tombstone
    refuses (the member was erased). With `rejects_path`, such rows are written there instead
    and the others imported (see `_run_import`).
    """
    require_permission(actor, "loyalty.add_member")
    require_permission(actor, "loyalty.change_member")
    name = source_name or source_label(source)
    return _run_import(
        _MemberImport(source_name=name, actor=actor),
        source=source,
        source_name=name,
        actor=actor,
        progress=progress,
        naive_timezone=naive_timezone,
        rejects_path=rejects_path,
    )


def import_events(
    *,
    source: ImportSource,
    source_name: str | None = None,
    actor: AbstractBaseUser | None = None,
    progress: ProgressCallback | None = None,
    naive_timezone: str | None = None,
    rejects_path: Path | None = None,
) -> ImportResult:
    """Add events, skipping those whose natural key (member, occurred_at, kind, session_id,
    product_id) is already stored, so that a source imported twice changes nothing.

    Every event's member must already exist (import members first) and not be erased. A
    purchase with a negative amount or quantity is stored as a return with positive values.
    Refused: a natural key given twice in the source, an event dated more than a day after the
    import started, and every bad cell. Raises ImportValidationError, with nothing written,
    when any row is bad; with `rejects_path`, such rows are written there instead and the
    others imported (see `_run_import`).
    """
    require_permission(actor, "loyalty.add_event")
    name = source_name or source_label(source)
    return _run_import(
        _EventImport(),
        source=source,
        source_name=name,
        actor=actor,
        progress=progress,
        naive_timezone=naive_timezone,
        rejects_path=rejects_path,
    )


# --- the run every import shares ---------------------------------------------------------------


class _ImportPlan(Protocol):
    """What one kind of import checks beyond the columns, and how its staged rows are written."""

    kind: str
    specs: tuple[ColumnSpec, ...]
    stage: str
    negative_purchases_as_returns: int
    extra_columns: ExtraColumns | None  # None: a column not in `specs` refuses the source

    @property
    def stage_columns(self) -> StageColumns: ...

    def check(self, chunk: Chunk, parsed: pd.DataFrame, collector: ErrorCollector) -> pd.DataFrame:
        """Report what is wrong beyond single cells; returns the frame to keep for writing."""

    def finish_checks(self, collector: ErrorCollector) -> None:
        """Report what only the whole source shows."""

    def staged(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A kept frame as the staging table's columns."""

    def write_staged(self, *, cursor, now) -> tuple[int, int]:
        """Move the staged rows into place: (created, updated)."""


def _run_import(
    plan: _ImportPlan,
    *,
    source: ImportSource,
    source_name: str,
    actor: AbstractBaseUser | None,
    progress: ProgressCallback | None,
    naive_timezone: str | None,
    rejects_path: Path | None,
) -> ImportResult:
    """Check the whole source, keeping its chunks on disk; then write them all in one
    transaction and audit the import.

    All or nothing: any bad row refuses the source. With `rejects_path`, a bad row is written
    to that file with its line and reasons instead, and the good rows are imported; a source
    whose header or CSV structure is bad is still refused whole. The rejects file is complete
    once the import has committed, and absent if it failed.
    """
    zone = time_zone_named(naive_timezone or settings.LOYALTY_IMPORT_TIMEZONE)
    skipping = rejects_path is not None
    report = progress or _no_progress
    started = time.perf_counter()
    collector = ErrorCollector(plan.specs, keep_rows=skipping)
    given_columns = tuple(spec.name for spec in plan.specs)
    with ChunkSpill() as spill:
        chunks = read_chunks(
            source=source, specs=plan.specs, collector=collector, extra_columns=plan.extra_columns
        )
        for chunk in chunks:
            parsed = validate_chunk(chunk=chunk, specs=plan.specs, collector=collector, zone=zone)
            checked = plan.check(chunk, parsed, collector)
            if skipping:
                given_columns = chunk.columns
                spill.add(with_reasons(checked, chunk, collector.take_rows()))
            else:
                _park(spill, checked, collector)
            report(VALIDATE_PHASE, len(parsed), None)
        plan.finish_checks(collector)
        if collector.file_errors or (collector.count and not skipping):
            raise ImportValidationError(
                source=source_name, errors=collector.errors, error_count=collector.count
            )
        # Errors only the whole source shows (a repeated key), for rows already parked.
        late = collector.take_rows()
        validated = time.perf_counter()

        rejected = RejectedRows(path=rejects_path, columns=given_columns) if skipping else None
        with rejected or nullcontext():
            with transaction.atomic():
                created, updated = _write_parked(
                    plan, spill, rejected=rejected, late=late, report=report
                )
                rejected_rows = rejected.count if rejected is not None else 0
                result = ImportResult(
                    kind=plan.kind,
                    source=source_name,
                    rows_read=spill.rows,
                    created=created,
                    updated=updated,
                    unchanged=spill.rows - rejected_rows - created - updated,
                    validate_seconds=validated - started,
                    write_seconds=time.perf_counter() - validated,
                    rejected=rejected_rows,
                    rejects_file=str(rejects_path) if skipping else None,
                    negative_purchases_as_returns=plan.negative_purchases_as_returns,
                )
                _audit_import(result, actor)
            if rejected is not None:
                # Committed: the rejects file is complete.
                rejected.keep()
    return result


def _write_parked(
    plan: _ImportPlan,
    spill: ChunkSpill,
    *,
    rejected: RejectedRows | None,
    late: pd.DataFrame,
    report: ProgressCallback,
) -> tuple[int, int]:
    """Stage and write every parked chunk, less the rows `rejected` sets aside: (created,
    updated). Runs in the import's transaction."""
    created = updated = 0
    with connection.cursor() as cursor:
        now = timezone.now()
        columns = plan.stage_columns
        with staging_table(cursor=cursor, table=plan.stage, columns=columns):
            for frame in spill:
                rows = len(frame)
                if rejected is not None:
                    frame = rejected.split(frame, late)
                if len(frame):
                    frame = plan.staged(frame)
                    load_staging_table(
                        cursor=cursor, table=plan.stage, columns=columns, frame=frame
                    )
                    rows_created, rows_updated = plan.write_staged(cursor=cursor, now=now)
                    created += rows_created
                    updated += rows_updated
                report(WRITE_PHASE, rows, spill.rows)
    return created, updated


def _no_progress(phase: str, rows: int, total: int | None) -> None:
    return None


def _park(spill: ChunkSpill, parsed: pd.DataFrame, collector: ErrorCollector) -> None:
    """Keep a validated chunk for the write pass while the source is still clean."""
    if collector.count:
        spill.discard()
    else:
        spill.add(parsed.drop(columns=[LINE]))


def _audit_import(result: ImportResult, actor: AbstractBaseUser | None) -> None:
    record_audit(
        kind=AuditRecord.Kind.IMPORT,
        actor=actor,
        subject=f"{result.kind}:{result.source}"[:_SUBJECT_LENGTH],
        details=result.as_dict(),
    )


# --- members ------------------------------------------------------------------------------------


class _MemberImport:
    kind = MEMBERS
    specs = MEMBER_COLUMNS
    stage = MEMBER_STAGE
    negative_purchases_as_returns = 0

    def __init__(self, *, source_name: str, actor: AbstractBaseUser | None) -> None:
        self.source_name = source_name
        self.actor = actor
        self.tombstones = StandingTombstones()
        self.repeated = RepeatedIds()
        self.present: tuple[str, ...] = ()
        self.attributes = AttributeColumns(spec.name for spec in MEMBER_COLUMNS)
        self.extra_columns = self.attributes.refusal

    @property
    def fields(self) -> list[str]:
        """The optional columns the source has: only those are written."""
        return [field for field in MEMBER_FIELDS if field in self.present]

    @property
    def stage_columns(self) -> StageColumns:
        attributes = [(ATTRIBUTES, ColumnKind.TEXT)] if self.attributes.keys else []
        return (
            [("external_id", ColumnKind.TEXT)]
            + [
                (MEMBER_FIELDS[field][0], _spec(MEMBER_COLUMNS, field).kind)
                for field in self.fields
            ]
            + attributes
        )

    def check(self, chunk: Chunk, parsed: pd.DataFrame, collector: ErrorCollector) -> pd.DataFrame:
        self.present = chunk.columns
        self.attributes.parse(chunk, parsed, collector)
        report_refused_external_ids(parsed, collector, self.tombstones)
        self.repeated.add(parsed)
        return parsed

    def finish_checks(self, collector: ErrorCollector) -> None:
        self.repeated.report(collector)

    def staged(self, frame: pd.DataFrame) -> pd.DataFrame:
        staged = _member_stage_frame(frame, self.fields)
        if self.attributes.keys:
            staged[ATTRIBUTES] = self.attributes.patches(frame)
        return staged

    def write_staged(self, *, cursor, now) -> tuple[int, int]:
        return upsert_members(
            cursor=cursor,
            fields=self.fields,
            now=now,
            source_name=self.source_name,
            actor=self.actor,
            attributes=bool(self.attributes.keys),
        )


def _spec(specs: tuple[ColumnSpec, ...], name: str) -> ColumnSpec:
    return next(spec for spec in specs if spec.name == name)


def _member_stage_frame(frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    staged = pd.DataFrame({"external_id": frame["external_id"]})
    for field in fields:
        column, default = MEMBER_FIELDS[field]
        values = frame[field]
        if default is not None:
            values = values.fillna(default)
        if field == "points_balance":
            values = values.astype("int64")
        staged[column] = values
    return staged


# --- events -------------------------------------------------------------------------------------


class _EventImport:
    kind = EVENTS
    specs = EVENT_COLUMNS
    stage = _EVENT_STAGE
    stage_columns = _EVENT_STAGE_COLUMNS
    extra_columns = None

    def __init__(self) -> None:
        self.known_active: set[str] = set()
        self.started_at = timezone.now()
        self.repeated = RepeatedEventKeys()
        self.negative_purchases_as_returns = 0

    def check(self, chunk: Chunk, parsed: pd.DataFrame, collector: ErrorCollector) -> pd.DataFrame:
        report_unknown_members(parsed, collector, self.known_active)
        parsed = _with_event_defaults(parsed)
        read_negative_purchases_as_returns(parsed, collector)
        report_future_events(chunk, parsed, collector, started_at=self.started_at)
        self.repeated.add(parsed)
        return parsed

    def finish_checks(self, collector: ErrorCollector) -> None:
        self.repeated.report(collector)

    def staged(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Counts the rows read as returns; the staging table takes the rest."""
        self.negative_purchases_as_returns += int(frame.pop(FROM_NEGATIVE_PURCHASE).sum())
        return frame

    def write_staged(self, *, cursor, now) -> tuple[int, int]:
        created = _insert_staged_events(cursor=cursor)
        if created:
            _mark_staged_members(cursor=cursor, now=now)
        return created, 0


def _with_event_defaults(parsed: pd.DataFrame) -> pd.DataFrame:
    for column, default in _EVENT_DEFAULTS.items():
        if column not in parsed:
            parsed[column] = default
        elif isinstance(default, str):
            parsed[column] = parsed[column].fillna(default)
    return parsed


def _mark_staged_members(*, cursor, now) -> None:
    """Mark the chunk's members: their scores are due for a refresh
    (`predictions.services.scoring.freshness`). A member whose staged events were all
    duplicates is marked too: one set-based UPDATE, and a refresh too many costs little."""
    members = Member._meta.db_table
    cursor.execute(
        f"UPDATE {members} SET inputs_changed_at = %s WHERE external_id IN "
        f"(SELECT member_external_id FROM {_EVENT_STAGE})",
        [connection.ops.adapt_datetimefield_value(now)],
    )


def _insert_staged_events(*, cursor) -> int:
    """Move the staged events into place; returns how many were new."""
    events, members = Event._meta.db_table, Member._meta.db_table
    # Validation saw every member; one erased or deleted since must not lose rows silently.
    cursor.execute(
        f"SELECT COUNT(*) FROM {_EVENT_STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {members} m "
        "WHERE m.external_id = s.member_external_id AND m.erased_at IS NULL)"
    )
    (missing,) = cursor.fetchone()
    if missing:
        raise ConflictError(
            f"{missing} events belong to members erased or deleted during the import; "
            "nothing was imported.",
            missing=missing,
        )
    fields = [name for name, _ in _EVENT_STAGE_COLUMNS[1:]]
    on_conflict = (
        "ON CONFLICT ON CONSTRAINT event_natural_key DO NOTHING"
        if connection.vendor == "postgresql"
        else "ON CONFLICT DO NOTHING"
    )
    cursor.execute(
        f"INSERT INTO {events} (member_id, {', '.join(fields)}) "
        f"SELECT m.id, {', '.join(f's.{field}' for field in fields)} FROM {_EVENT_STAGE} s "
        f"JOIN {members} m ON m.external_id = s.member_external_id "
        # The WHERE also resolves SQLite's parsing ambiguity between a join and ON CONFLICT;
        # rows in key order touch each index page once instead of at random.
        f"WHERE m.erased_at IS NULL ORDER BY m.id, s.occurred_at {on_conflict}"
    )
    return cursor.rowcount
