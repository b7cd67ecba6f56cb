"""Writing many predictions at once, skipping those already stored: the scoring write path.

PostgreSQL: the rows stream through COPY into a temporary staging table, then one
`INSERT ... SELECT ... ON CONFLICT ON CONSTRAINT one_prediction_per_cutoff DO NOTHING` moves
them over. JSON columns are serialized once, compactly (jsonb keeps values, not spacing), and
the COPY text is produced while PostgreSQL reads it, so that serializing here can overlap with
parsing into jsonb there when a core is free. SQLite: `bulk_create` with `ignore_conflicts`.
"""

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, models, transaction
from django.utils import timezone

from predictions.models import Prediction

# Every stored column but the id, by attribute name (foreign keys as *_id).
WRITE_FIELDS: tuple[models.Field, ...] = tuple(
    field for field in Prediction._meta.concrete_fields if not field.primary_key
)
WRITE_COLUMNS: tuple[str, ...] = tuple(field.attname for field in WRITE_FIELDS)
_COLUMN_SET = frozenset(WRITE_COLUMNS)
STAGING_TABLE = "prediction_staging"
UNIQUE_CONSTRAINT = "one_prediction_per_cutoff"
# COPY is fed in pieces of this size; big enough that the per-call cost vanishes.
COPY_BLOCK_BYTES = 1 << 16
SQLITE_BATCH_SIZE = 1000
# COPY text format: backslash escapes, \N for NULL.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_NULL = "\\N"


def write_predictions(*, rows: Iterable[Mapping[str, Any] | Prediction]) -> int:
    """Insert predictions, skipping any whose (member, model version, cutoff) is stored.

    `rows` are Prediction instances or mappings of WRITE_COLUMNS names (foreign keys as
    `member_id`, `model_version_id`, `recommended_action_id`); a column left out takes the
    field's default. `scored_at` is now, one value for the whole call, as `auto_now_add`
    would set it (COPY bypasses the field, so it is set here). Returns how many rows were
    inserted. All or nothing; inside the caller's transaction when there is one.
    """
    scored_at = timezone.now()
    values = [_row_values(row, scored_at) for row in rows]
    if not values:
        return 0
    if connection.vendor == "postgresql":
        return _copy_insert(values)
    return _bulk_create(values)


def _row_values(row: Mapping[str, Any] | Prediction, scored_at: datetime) -> dict[str, Any]:
    if isinstance(row, Prediction):
        values = {column: getattr(row, column) for column in WRITE_COLUMNS}
    else:
        values = dict(row)
        if values.keys() - _COLUMN_SET:
            raise ValueError(f"not Prediction columns: {sorted(values.keys() - _COLUMN_SET)}")
        if len(values) < len(WRITE_COLUMNS):
            for field in WRITE_FIELDS:
                if field.attname not in values:
                    values[field.attname] = field.get_default()
    values["scored_at"] = scored_at
    return values


def _bulk_create(values: list[dict[str, Any]]) -> int:
    instances = [Prediction(**row) for row in values]
    connection.ensure_connection()
    before = connection.connection.total_changes
    Prediction.objects.bulk_create(instances, batch_size=SQLITE_BATCH_SIZE, ignore_conflicts=True)
    # SQLite counts rows INSERT OR IGNORE inserted, not the ones it ignored.
    return connection.connection.total_changes - before


def _copy_insert(values: list[dict[str, Any]]) -> int:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(column) for column in WRITE_COLUMNS)
    target = quote(Prediction._meta.db_table)
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGING_TABLE} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {target} WITH NO DATA"
        )
        cursor.cursor.copy_expert(
            f"COPY {STAGING_TABLE} ({columns}) FROM STDIN",
            _CopyStream(_copy_lines(values)),
            COPY_BLOCK_BYTES,
        )
        cursor.execute(
            f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {STAGING_TABLE} "
            f"ON CONFLICT ON CONSTRAINT {UNIQUE_CONSTRAINT} DO NOTHING"
        )
        inserted = cursor.rowcount
        cursor.execute(f"DROP TABLE {STAGING_TABLE}")
    return inserted


def _copy_lines(values: Sequence[dict[str, Any]]) -> Iterator[str]:
    encoders = [_encoder(field) for field in WRITE_FIELDS]
    pairs = list(zip(WRITE_COLUMNS, encoders, strict=True))
    for row in values:
        yield "\t".join([encode(row[column]) for column, encode in pairs]) + "\n"


def _encoder(field: models.Field):
    if isinstance(field, models.JSONField):
        # The field's own encoder, compact. JSON escapes every control character, so only its
        # backslashes need doubling for COPY.
        encode_json = (field.encoder or json.JSONEncoder)(separators=(",", ":")).encode
        return lambda value: (
            _COPY_NULL if value is None else encode_json(value).replace("\\", "\\\\")
        )
    if isinstance(field, models.BinaryField):  # bytea's hex input, its backslash doubled
        return lambda value: _COPY_NULL if value is None else "\\\\x" + bytes(value).hex()
    if isinstance(field, models.FloatField):
        return lambda value: _COPY_NULL if value is None else repr(float(value))
    if isinstance(field, models.DateTimeField):
        return _cached_isoformat()
    if isinstance(field, models.ForeignKey | models.IntegerField):
        return lambda value: _COPY_NULL if value is None else str(int(value))
    return lambda value: _COPY_NULL if value is None else str(value).translate(_COPY_ESCAPES)


def _cached_isoformat():
    """A chunk shares one cutoff and one scored_at: format each distinct time once."""
    seen: dict[datetime, str] = {}

    def encode(value: datetime | None) -> str:
        if value is None:
            return _COPY_NULL
        text = seen.get(value)
        if text is None:
            if timezone.is_naive(value):
                raise ValueError(f"naive datetime {value!r}: predictions store aware times")
            text = seen[value] = value.isoformat()
        return text

    return encode


class _CopyStream:
    """A read-only file over an iterator of text lines, for `copy_expert`."""

    def __init__(self, lines: Iterator[str]):
        self._lines = lines

    def read(self, size: int = -1) -> bytes:
        # Whole lines, at least `size` characters of them: copy_expert sends whatever it gets
        # and stops at the first empty read.
        parts, length = [], 0
        for line in self._lines:
            parts.append(line)
            length += len(line)
            if 0 < size <= length:
                break
        return "".join(parts).encode()
