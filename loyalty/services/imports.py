"""Bulk import of members and events: validate the whole source first, then write all or nothing.

Sources are CSV files or pandas DataFrames (one, or an iterable of chunks) with the same
columns. Timestamps are ISO 8601; a timestamp without an offset is taken as UTC, one with an
offset is converted to UTC, and all are stored timezone-aware. A `joined_at` that carries a time
becomes the UTC date of that moment.

Writing goes through a temporary staging table: PostgreSQL fills it with COPY, SQLite with one
executemany, and a single INSERT ... SELECT per chunk moves the rows into place, skipping events
whose natural key is already stored. Everything is written in one transaction.
"""

import io
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from loyalty.exceptions import ConflictError, require_permission
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.audit import record_audit
from loyalty.services.csv_validation import (
    LINE,
    ChunkSpill,
    ColumnKind,
    ColumnSpec,
    ErrorCollector,
    ImportSource,
    ImportValidationError,
    RowError,
    read_chunks,
    source_label,
    validate_chunk,
)
from loyalty.services.erasure import (
    ERASED_EXTERNAL_ID_PREFIX,
    StandingTombstones,
    erased_external_ids,
)
from loyalty.signals_consent import consent_withdrawn

__all__ = [
    "EVENT_COLUMNS",
    "MEMBER_COLUMNS",
    "ImportResult",
    "ImportSource",
    "ImportValidationError",
    "RowError",
    "import_events",
    "import_members",
]

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

# Model column and default for each optional import column (absent from a source or empty).
_MEMBER_FIELDS = {
    "joined_at": ("joined_on", None),
    "tier": ("tier", ""),
    "points_balance": ("points_balance", 0),
    "consent_profiling": ("consent_profiling", False),
    "age_band": ("age_band", ""),
    "region": ("region", ""),
}
_EVENT_DEFAULTS = {
    "amount": np.nan,
    "quantity": np.nan,
    "category": "",
    "channel": "",
    "session_id": "",
    "dwell_seconds": np.nan,
    "product_id": "",
}
# External ids of members found active, remembered across chunks of one events import (about
# 100 bytes each: at most ~50 MB).
KNOWN_MEMBER_CACHE = 500_000
_ACTIVE, _ERASED, _UNKNOWN = "active", "erased", "unknown"
_SUBJECT_LENGTH = AuditRecord._meta.get_field("subject").max_length
_MEMBER_STAGE = "loyalty_member_import"
_EVENT_STAGE = "loyalty_event_import"


@dataclass(frozen=True)
class ImportResult:
    """What one import did. For events, `unchanged` counts rows whose natural key was already
    stored or appeared earlier in the same source; `updated` is always 0."""

    kind: str
    source: str
    rows_read: int
    created: int
    updated: int
    unchanged: int
    validate_seconds: float
    write_seconds: float

    def summary(self) -> str:
        return (
            f"{self.kind} from {self.source}: {self.rows_read:,} rows read, "
            f"{self.created:,} created, {self.updated:,} updated, {self.unchanged:,} unchanged "
            f"(validated in {self.validate_seconds:.1f} s, written in {self.write_seconds:.1f} s)"
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "source": self.source,
            "rows_read": self.rows_read,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
        }


def import_members(
    *,
    source: ImportSource,
    source_name: str | None = None,
    actor: AbstractBaseUser | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Create or update members by external id; a file imported twice changes nothing.

    A column missing from the source leaves that field of existing members as it is (new
    members get the default); an empty cell sets the field to empty. Consent changes set
    `consent_changed_at` and are audited one by one. Raises ImportValidationError, with
    nothing written, when any row is bad: unknown or missing columns, bad dates or numbers,
    over-long values, an external id given twice, or one that a standing erasure tombstone
    refuses (the member was erased).
    """
    require_permission(actor, "loyalty.add_member")
    require_permission(actor, "loyalty.change_member")
    name = source_name or source_label(source)
    report = progress or _no_progress
    started = time.perf_counter()
    collector = ErrorCollector(MEMBER_COLUMNS)
    tombstones = StandingTombstones()
    seen_ids: list[pd.Series] = []
    seen_lines: list[np.ndarray] = []
    present: tuple[str, ...] = ()
    with ChunkSpill() as spill:
        for chunk in read_chunks(source=source, specs=MEMBER_COLUMNS, collector=collector):
            present = chunk.columns
            parsed = validate_chunk(chunk=chunk, specs=MEMBER_COLUMNS, collector=collector)
            ids = parsed["external_id"]
            lines = parsed[LINE].to_numpy()
            reserved = ids.str.startswith(ERASED_EXTERNAL_ID_PREFIX, na=False)
            collector.add_cells(
                mask=reserved,
                lines=lines,
                values=ids,
                column="external_id",
                reason=f"ids starting with {ERASED_EXTERNAL_ID_PREFIX!r} are reserved for "
                "erased members",
            )
            collector.add_cells(
                mask=_refused_by_tombstones(ids, tombstones) & ~reserved,
                lines=lines,
                values=ids,
                column="external_id",
                reason="this member was erased; its data is not imported again unless an "
                "admin lifts the erasure's tombstone",
            )
            usable = ids.notna() & (ids != "")
            seen_ids.append(ids[usable].astype("string[pyarrow]"))
            seen_lines.append(parsed.loc[usable, LINE].to_numpy())
            _park(spill, parsed, collector)
            report(VALIDATE_PHASE, len(parsed), None)
        _report_repeated_ids(seen_ids, seen_lines, collector)
        del seen_ids, seen_lines
        if collector.count:
            raise ImportValidationError(
                source=name, errors=collector.errors, error_count=collector.count
            )
        validated = time.perf_counter()

        created = updated = 0
        with transaction.atomic(), connection.cursor() as cursor:
            now = timezone.now()
            fields = [field for field in _MEMBER_FIELDS if field in present]
            stage_columns = [("external_id", ColumnKind.TEXT)] + [
                (_MEMBER_FIELDS[field][0], _spec(MEMBER_COLUMNS, field).kind) for field in fields
            ]
            with staging_table(cursor=cursor, table=_MEMBER_STAGE, columns=stage_columns):
                for frame in spill:
                    frame = _member_stage_frame(frame, fields)
                    load_staging_table(
                        cursor=cursor, table=_MEMBER_STAGE, columns=stage_columns, frame=frame
                    )
                    rows_updated, rows_created = _upsert_members(
                        cursor=cursor, fields=fields, now=now, source_name=name, actor=actor
                    )
                    updated += rows_updated
                    created += rows_created
                    report(WRITE_PHASE, len(frame), spill.rows)
            result = ImportResult(
                kind="members",
                source=name,
                rows_read=spill.rows,
                created=created,
                updated=updated,
                unchanged=spill.rows - created - updated,
                validate_seconds=validated - started,
                write_seconds=time.perf_counter() - validated,
            )
            _audit_import(result, actor)
    return result


def import_events(
    *,
    source: ImportSource,
    source_name: str | None = None,
    actor: AbstractBaseUser | None = None,
    progress: ProgressCallback | None = None,
) -> ImportResult:
    """Add events, skipping those whose natural key (member, occurred_at, kind, session_id,
    product_id) is already stored, so that a source imported twice changes nothing.

    Every event's member must already exist (import members first) and not be erased. Raises
    ImportValidationError, with nothing written, when any row is bad.
    """
    require_permission(actor, "loyalty.add_event")
    name = source_name or source_label(source)
    report = progress or _no_progress
    started = time.perf_counter()
    collector = ErrorCollector(EVENT_COLUMNS)
    known_active: set[str] = set()
    with ChunkSpill() as spill:
        for chunk in read_chunks(source=source, specs=EVENT_COLUMNS, collector=collector):
            parsed = validate_chunk(chunk=chunk, specs=EVENT_COLUMNS, collector=collector)
            _report_unknown_members(parsed, collector, known_active)
            _park(spill, _with_event_defaults(parsed), collector)
            report(VALIDATE_PHASE, len(parsed), None)
        if collector.count:
            raise ImportValidationError(
                source=name, errors=collector.errors, error_count=collector.count
            )
        validated = time.perf_counter()

        created = 0
        with transaction.atomic(), connection.cursor() as cursor:
            with staging_table(cursor=cursor, table=_EVENT_STAGE, columns=_EVENT_STAGE_COLUMNS):
                for frame in spill:
                    load_staging_table(
                        cursor=cursor,
                        table=_EVENT_STAGE,
                        columns=_EVENT_STAGE_COLUMNS,
                        frame=frame,
                    )
                    created += _insert_staged_events(cursor=cursor)
                    report(WRITE_PHASE, len(frame), spill.rows)
            result = ImportResult(
                kind="events",
                source=name,
                rows_read=spill.rows,
                created=created,
                updated=0,
                unchanged=spill.rows - created,
                validate_seconds=validated - started,
                write_seconds=time.perf_counter() - validated,
            )
            _audit_import(result, actor)
    return result


# --- validation helpers ------------------------------------------------------------------------


def _no_progress(phase: str, rows: int, total: int | None) -> None:
    return None


def _spec(specs: tuple[ColumnSpec, ...], name: str) -> ColumnSpec:
    return next(spec for spec in specs if spec.name == name)


def _park(spill: ChunkSpill, parsed: pd.DataFrame, collector: ErrorCollector) -> None:
    """Keep a validated chunk for the write pass while the source is still clean."""
    if collector.count:
        spill.discard()
    else:
        spill.add(parsed.drop(columns=[LINE]))


def _refused_by_tombstones(ids: pd.Series, tombstones: StandingTombstones) -> pd.Series:
    """Which rows carry the external id of an erased member (a standing tombstone)."""
    if not tombstones:
        return pd.Series(False, index=ids.index)
    # One digest per distinct id, spread back onto the rows.
    codes, uniques = pd.factorize(ids)
    refused = np.array(
        [bool(value) and tombstones.refuses(value) for value in uniques.tolist()] + [False]
    )
    return pd.Series(refused[codes], index=ids.index)


def _report_repeated_ids(
    ids: list[pd.Series], lines: list[np.ndarray], collector: ErrorCollector
) -> None:
    """An external id given twice is ambiguous: which row is the member?"""
    if not ids:
        return
    all_ids = pd.concat(ids, ignore_index=True)
    all_lines = pd.Series(np.concatenate(lines), index=all_ids.index)
    repeated = all_ids.duplicated(keep=False)
    if not repeated.any():
        return
    repeated_ids, repeated_lines = all_ids[repeated], all_lines[repeated]
    first_line = repeated_lines.groupby(repeated_ids.to_numpy()).transform("min")
    later = (repeated_lines != first_line).reset_index(drop=True)
    reasons = "external id given more than once (first on line " + first_line.astype(str) + ")"
    collector.add_cells(
        mask=later,
        lines=repeated_lines.to_numpy(),
        values=repeated_ids.reset_index(drop=True),
        column="external_id",
        reason=reasons.reset_index(drop=True),
    )


def _report_unknown_members(
    parsed: pd.DataFrame, collector: ErrorCollector, known_active: set[str]
) -> None:
    """Every event must point at a stored member that is not erased.

    `known_active` remembers members already seen across chunks, so that most chunks need no
    query at all; it is bounded, so memory stays flat however many members there are.
    """
    ids = parsed["member_external_id"]
    # Work on the distinct ids of the chunk, then spread the verdicts back onto its rows.
    codes, uniques = pd.factorize(ids)
    distinct = [value for value in uniques.tolist() if value]
    if not distinct:
        return
    cached = known_active.intersection(distinct)
    states = _member_states(sorted(set(distinct) - cached))
    # An erased member's row carries a placeholder id: its former id is known only to its
    # tombstone, and is reported as erased rather than as unknown.
    unknown = [value for value in distinct if value not in cached and value not in states]
    states.update(dict.fromkeys(erased_external_ids(unknown), _ERASED))
    if len(known_active) + len(states) > KNOWN_MEMBER_CACHE:
        known_active.clear()
    known_active.update(key for key, state in states.items() if state == _ACTIVE)
    states.update(dict.fromkeys(cached, _ACTIVE))
    verdict = np.array(
        [states.get(value, _UNKNOWN) if value else _ACTIVE for value in uniques.tolist()]
        + [_ACTIVE]  # code -1: a missing id, already reported as required
    )
    rows = pd.Series(verdict[codes], index=ids.index)
    lines = parsed[LINE].to_numpy()
    collector.add_cells(
        mask=rows == _UNKNOWN,
        lines=lines,
        values=ids,
        column="member_external_id",
        reason="unknown member; import members first",
    )
    collector.add_cells(
        mask=rows == _ERASED,
        lines=lines,
        values=ids,
        column="member_external_id",
        reason="this member was erased; no events are imported for it",
    )


def _member_states(external_ids: list[str]) -> dict[str, str]:
    """'active' or 'erased' for each of these external ids that is stored, in one query."""
    if not external_ids:
        return {}
    table = Member._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT external_id, erased_at IS NOT NULL FROM {table} "
                "WHERE external_id = ANY(%s)",
                [external_ids],
            )
        else:
            # One JSON parameter instead of one per id: SQLite limits the number of parameters.
            cursor.execute(
                f"SELECT external_id, erased_at IS NOT NULL FROM {table} "
                "WHERE external_id IN (SELECT value FROM json_each(%s))",
                [json.dumps(external_ids)],
            )
        return {external_id: _ERASED if erased else _ACTIVE for external_id, erased in cursor}


def _with_event_defaults(parsed: pd.DataFrame) -> pd.DataFrame:
    for column, default in _EVENT_DEFAULTS.items():
        if column not in parsed:
            parsed[column] = default
        elif isinstance(default, str):
            parsed[column] = parsed[column].fillna(default)
    return parsed


# --- writing -----------------------------------------------------------------------------------

StageColumns = Sequence[tuple[str, ColumnKind]]

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
_POSTGRES_TYPES = {
    ColumnKind.TEXT: "text",
    ColumnKind.CHOICE: "text",
    ColumnKind.DATETIME: "timestamptz",
    ColumnKind.DATE: "date",
    ColumnKind.INTEGER: "bigint",
    ColumnKind.DECIMAL: "numeric",
    ColumnKind.FLOAT: "double precision",
    ColumnKind.BOOLEAN: "boolean",
}
# SQLite columns hold what Django itself would store: text timestamps and dates, 0/1 booleans.
_SQLITE_TYPES = {
    ColumnKind.TEXT: "text",
    ColumnKind.CHOICE: "text",
    ColumnKind.DATETIME: "text",
    ColumnKind.DATE: "text",
    ColumnKind.INTEGER: "integer",
    ColumnKind.DECIMAL: "real",
    ColumnKind.FLOAT: "real",
    ColumnKind.BOOLEAN: "integer",
}


@contextmanager
def staging_table(*, cursor, table: str, columns: StageColumns) -> Iterator[str]:
    """A temporary table for one import, dropped when the block ends (or rolled back with it)."""
    types = _POSTGRES_TYPES if connection.vendor == "postgresql" else _SQLITE_TYPES
    definition = ", ".join(f"{name} {types[kind]}" for name, kind in columns)
    cursor.execute(f"DROP TABLE IF EXISTS {table}")
    cursor.execute(f"CREATE TEMPORARY TABLE {table} ({definition})")
    yield table
    cursor.execute(f"DROP TABLE IF EXISTS {table}")


def load_staging_table(*, cursor, table: str, columns: StageColumns, frame: pd.DataFrame) -> None:
    """Replace the staging table's rows with `frame`'s (COPY on PostgreSQL)."""
    names = [name for name, _ in columns]
    if connection.vendor == "postgresql":
        cursor.execute(f"TRUNCATE {table}")
        # Arrow's CSV writer is several times faster than DataFrame.to_csv.
        rows = pa.Table.from_pandas(_postgres_values(frame, columns), preserve_index=False)
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(rows, sink, pa_csv.WriteOptions(include_header=False))
        buffer = io.BytesIO(sink.getvalue().to_pybytes())
        text_columns = [name for name, kind in columns if kind == ColumnKind.TEXT]
        # FORCE_NOT_NULL: an empty text cell is the empty string, never NULL.
        force = f", FORCE_NOT_NULL ({', '.join(text_columns)})" if text_columns else ""
        cursor.copy_expert(
            f"COPY {table} ({', '.join(names)}) FROM STDIN WITH (FORMAT csv{force})", buffer
        )
    else:
        cursor.execute(f"DELETE FROM {table}")
        placeholders = ", ".join(["%s"] * len(names))
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({placeholders})",
            _sqlite_rows(frame, columns),
        )


def _postgres_values(frame: pd.DataFrame, columns: StageColumns) -> pd.DataFrame:
    values = {}
    for name, kind in columns:
        column = frame[name]
        if kind == ColumnKind.DATE:
            column = _date_text(column)
        values[name] = column
    return pd.DataFrame(values)


def _sqlite_rows(frame: pd.DataFrame, columns: StageColumns) -> Iterator[tuple]:
    lists = []
    for name, kind in columns:
        column = frame[name]
        if kind == ColumnKind.DATETIME:
            column = _django_sqlite_timestamps(column)
        elif kind == ColumnKind.DATE:
            column = _date_text(column)
        elif kind == ColumnKind.BOOLEAN:
            column = column.astype(int)
        # tolist() gives Python scalars, which sqlite3 binds (it cannot bind numpy integers).
        values = column.tolist()
        if pd.api.types.is_float_dtype(column):
            values = [None if math.isnan(value) else value for value in values]
        lists.append(values)
    return zip(*lists, strict=True)


def _django_sqlite_timestamps(stamps: pd.Series) -> pd.Series:
    """UTC timestamps as Django writes them to SQLite (`str(datetime)` of the naive UTC value),
    so that the natural key matches rows Django itself wrote."""
    values = stamps.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = pd.Series(np.datetime_as_string(values, unit="us"), index=stamps.index)
    text = text.str.replace("T", " ", regex=False).str.removesuffix(".000000")
    return text.where(stamps.notna(), None)


def _date_text(stamps: pd.Series) -> pd.Series:
    if not pd.api.types.is_datetime64_any_dtype(stamps):
        return stamps
    values = stamps.dt.tz_localize(None) if stamps.dt.tz is not None else stamps
    text = pd.Series(
        np.datetime_as_string(values.to_numpy(dtype="datetime64[D]"), unit="D"),
        index=stamps.index,
    )
    return text.where(stamps.notna(), None)


def _member_stage_frame(frame: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    staged = pd.DataFrame({"external_id": frame["external_id"]})
    for field in fields:
        column, default = _MEMBER_FIELDS[field]
        values = frame[field]
        if default is not None:
            values = values.fillna(default)
        if field == "points_balance":
            values = values.astype("int64")
        staged[column] = values
    return staged


def _upsert_members(
    *,
    cursor,
    fields: list[str],
    now,
    source_name: str,
    actor: AbstractBaseUser | None,
) -> tuple[int, int]:
    """Update the changed and insert the new members of the staged chunk: (updated, created)."""
    table = Member._meta.db_table
    columns = [_MEMBER_FIELDS[field][0] for field in fields]
    stamp = connection.ops.adapt_datetimefield_value(now)
    distinct = "IS DISTINCT FROM" if connection.vendor == "postgresql" else "IS NOT"

    if "consent_profiling" in columns:
        cursor.execute(
            f"SELECT m.id, s.consent_profiling FROM {_MEMBER_STAGE} s "
            f"JOIN {table} m ON m.external_id = s.external_id "
            "WHERE m.consent_profiling <> s.consent_profiling ORDER BY m.id"
        )
        withdrawn = []
        for member_id, consent in cursor.fetchall():
            record_audit(
                kind=AuditRecord.Kind.CONSENT_CHANGE,
                actor=actor,
                # By pk, never by external id: erasure could not take the id out of the trail.
                subject=f"member:{member_id}",
                details={
                    "member_id": member_id,
                    "consent_profiling": bool(consent),
                    "changed_at": now.isoformat(),
                    "source": f"import:{source_name}",
                },
            )
            if not consent:
                withdrawn.append(member_id)
        if withdrawn:
            # In the import's transaction, as set_consent does: their reviews leave the queues.
            consent_withdrawn.send(sender=Member, member_ids=withdrawn)

    updated = 0
    if columns:
        assignments = [f"{column} = s.{column}" for column in columns] + ["updated_at = %s"]
        params: list[object] = [stamp]
        if "consent_profiling" in columns:
            assignments.append(
                "consent_changed_at = CASE WHEN m.consent_profiling <> s.consent_profiling "
                "THEN %s ELSE m.consent_changed_at END"
            )
            params.append(stamp)
        changed = " OR ".join(f"m.{column} {distinct} s.{column}" for column in columns)
        cursor.execute(
            f"UPDATE {table} AS m SET {', '.join(assignments)} FROM {_MEMBER_STAGE} AS s "
            f"WHERE m.external_id = s.external_id AND ({changed})",
            params,
        )
        updated = cursor.rowcount

    defaults = {column: default for column, default in _MEMBER_FIELDS.values()}
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
    cursor.execute(
        f"INSERT INTO {table} ({', '.join(insert_columns)}) SELECT {', '.join(selected)} "
        f"FROM {_MEMBER_STAGE} s WHERE NOT EXISTS "
        f"(SELECT 1 FROM {table} m WHERE m.external_id = s.external_id)",
        params,
    )
    return updated, cursor.rowcount


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


def _audit_import(result: ImportResult, actor: AbstractBaseUser | None) -> None:
    record_audit(
        kind=AuditRecord.Kind.IMPORT,
        actor=actor,
        subject=f"{result.kind}:{result.source}"[:_SUBJECT_LENGTH],
        details=result.as_dict(),
    )
