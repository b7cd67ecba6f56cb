"""Temporary staging tables that bulk writes fill fast, then move into place with one INSERT.

PostgreSQL fills a staging table with COPY and SQLite with one executemany; either way a single
INSERT ... SELECT per chunk then writes the rows, so that the database, not Python, joins them
to what is stored and skips what is already there.
"""

import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.db import connection

from loyalty.services.imports.validation import ColumnKind

StageColumns = Sequence[tuple[str, ColumnKind]]

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
