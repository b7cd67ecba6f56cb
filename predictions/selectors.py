"""Reads for the prediction engine: the program's data as the DataFrames predictions.ml takes."""

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
from django.conf import settings
from django.db import connection
from django.db.models import Min

from loyalty.models import Event, Member
from loyalty.query_frames import arrow_table_by_copy
from loyalty.selectors import scorable_members
from predictions.ml import frames, row_budget
from predictions.ml.features import MAX_LOOKBACK_DAYS, PreparedEvents, prepare_events
from predictions.models import ScoringRun

# What build_features reads: quantity and product_id feed no feature, so scoring skips them.
FEATURE_EVENT_COLUMNS = [
    column for column in frames.EVENT_COLUMNS if column not in ("quantity", "product_id")
]
# The kind travels as text, like the other string columns.
EVENT_TEXT_COLUMNS = ("kind", *frames.EVENT_STRINGS)
NS_PER_MICROSECOND = 1000


def events_frame(
    *,
    before: datetime | None = None,
    since: datetime | None = None,
    member_id_range: tuple[int, int] | None = None,
    member_ids: Sequence[int] | None = None,
    columns: Sequence[str] = frames.EVENT_COLUMNS,
    only_profiled: bool = False,
    order_by: str = "",
) -> pd.DataFrame:
    """Events as the ML contract wants them: optionally only those strictly before `before`,
    at or after `since`, of members whose id lies in an inclusive range (a scoring chunk), of
    the listed members, and (`only_profiled`) of members who may be profiled, filtered in SQL
    by `loyalty.selectors.scorable_members` itself.

    Columns are `columns` (a subset of frames.EVENT_COLUMNS, in that order): member_id int64,
    occurred_at datetime64[ns, UTC], strings with '' for empty, floats with NaN for empty.
    Rows come in the order the database returns them, the same on every path, or in
    `order_by` (SQL, e.g. STORED_ORDER) when given.
    """
    unknown = set(columns) - set(frames.EVENT_COLUMNS)
    if unknown or "member_id" not in columns or "occurred_at" not in columns:
        raise ValueError(f"columns must be EVENT_COLUMNS with member_id and occurred_at: {columns}")
    columns = [column for column in frames.EVENT_COLUMNS if column in columns]
    where, params = [], []
    if before is not None:
        where.append("occurred_at < %s")
        params.append(before)
    if since is not None:
        where.append("occurred_at >= %s")
        params.append(since)
    if member_id_range is not None:
        where.append("member_id BETWEEN %s AND %s")
        params.extend(member_id_range)
    if only_profiled:
        profiled_sql, profiled_params = (
            scorable_members().values("pk").query.get_compiler(connection=connection).as_sql()
        )
        where.append(f"member_id IN ({profiled_sql})")
        params.extend(profiled_params)
    read = _events_by_copy if connection.vendor == "postgresql" else _events_by_cursor
    frame = read(columns=columns, where=where, params=params, order_by=order_by)
    if member_ids is not None:
        # Filtered here, not in SQL: the query (and so the row order) stays the range scan.
        frame = frame[frame["member_id"].isin(member_ids)].reset_index(drop=True)
    return frame


def _events_by_cursor(
    *, columns: list[str], where: list[str], params: list, order_by: str = ""
) -> pd.DataFrame:
    sql = f"SELECT {', '.join(columns)} FROM loyalty_event"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order_by:
        sql += f" ORDER BY {order_by}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["member_id"] = frame["member_id"].astype(np.int64)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True).dt.as_unit("ns")
    for column in frames.EVENT_FLOATS:
        if column in frame.columns:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in EVENT_TEXT_COLUMNS:
        if column in frame.columns:
            frame[column] = frame[column].fillna("").astype(str)
    return frame


def _events_by_copy(
    *, columns: list[str], where: list[str], params: list, order_by: str = ""
) -> pd.DataFrame:
    """PostgreSQL: COPY ... TO STDOUT as CSV, parsed by pyarrow with fixed types.

    Times travel as integer microseconds since the epoch (exact, unlike a float epoch, and
    cheaper to parse than text). Numeric amounts travel as their decimal text, which pyarrow
    parses to the nearest double, as float(Decimal) did on the cursor path.
    """
    selected = [
        "(EXTRACT(EPOCH FROM occurred_at) * 1000000)::bigint" if column == "occurred_at" else column
        for column in columns
    ]
    sql = f"SELECT {', '.join(selected)} FROM loyalty_event"
    if where:
        sql += " WHERE " + " AND ".join(where)
    if order_by:
        sql += f" ORDER BY {order_by}"
    types = dict.fromkeys(columns, "int64")  # member_id, and occurred_at in microseconds
    types |= {column: "string" for column in columns if column in EVENT_TEXT_COLUMNS}
    types |= {column: "float64" for column in columns if column in frames.EVENT_FLOATS}
    table = arrow_table_by_copy(sql=sql, params=params, types=types, strings_can_be_null=False)
    return _typed_arrow_events(table)


def _typed_arrow_events(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    micros = frame["occurred_at"].to_numpy(dtype="int64")
    frame["occurred_at"] = pd.DatetimeIndex(
        (micros * NS_PER_MICROSECOND).view("datetime64[ns]"), tz="UTC"
    )
    for column in EVENT_TEXT_COLUMNS:
        if column in frame.columns and frame[column].dtype != object:
            frame[column] = frame[column].astype(object)
    return frame


def feature_events(*, cutoff: datetime, member_ids: Sequence[int]) -> PreparedEvents:
    """What build_features needs to score these members at `cutoff`, prepared once.

    Features look back at most MAX_LOOKBACK_DAYS, except that tenure and the observed span use
    each member's first event ever. Without events older than the window (a year or two of
    data) this filters exactly as before. With older events, only the window is loaded and
    the first events come from one aggregate query; the features are then the same, bit for
    bit, as from all events whenever the rows come in the same relative order
    (tests/predictions/test_scoring.py checks it). Sums over events at one instant round by
    order, and the database returns rows in its plan's order, on either path.
    """
    events, first_ns = feature_event_frame(cutoff=cutoff, member_ids=member_ids)
    prepared = prepare_events(events)
    if first_ns is None:
        return prepared
    return dataclasses.replace(prepared, first_ns=first_ns)


# Each member's events by time, ties in the order they were stored. Without an ORDER BY the
# rows come in the order of the plan the database picks (a range scan through the natural-key
# index, a full scan, an id list), and events at one instant enter the sequence model in the
# order they come.
STORED_ORDER = "member_id, occurred_at, id"


def feature_event_frame(
    *,
    cutoff: datetime,
    member_ids: Sequence[int],
    in_stored_order: bool = False,
    scattered: bool = False,
) -> tuple[pd.DataFrame, pd.Series | None]:
    """The events frame behind `feature_events` (the lookback window of these members before
    `cutoff`, or all their events when none is older), and each member's first event time
    when the window left older events out (None otherwise). The sequence model encodes the
    same frame: its sequences look back no further than the features do.

    `in_stored_order`: each member's events in STORED_ORDER, whatever plan the database
    picks: what the sequence model is given (the features depend on the order only through
    float rounding). `scattered`: the members are spread over the id range (those routed to
    people, the one being opened) rather than a scoring chunk's slice of it: only their
    events are read (an id list, not a range scan), in STORED_ORDER."""
    window_start = cutoff - timedelta(days=MAX_LOOKBACK_DAYS)
    # One probe of the occurred_at index: is there anything older than any window?
    oldest = Event.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first()
    windowed = oldest is not None and oldest < window_start
    since = window_start if windowed else None
    if scattered or is_scattered(member_ids):
        events = _scattered_events(before=cutoff, since=since, member_ids=member_ids)
    else:
        order_by = STORED_ORDER if in_stored_order else ""
        events = events_frame(
            before=cutoff, since=since, order_by=order_by, **_chunk_filter(member_ids)
        )
    return events, first_event_times(before=cutoff, member_ids=member_ids) if windowed else None


# A chunk whose ids span more than this many times their number is read by its id list: a
# refresh's chunk (the changed members, spread over every id) would otherwise make its range
# scan read nearly the whole program's events to keep a few of them.
SCATTERED_SPAN = 4


def is_scattered(member_ids: Sequence[int]) -> bool:
    """Whether reading these members' events by an id range would read mostly others'."""
    if not len(member_ids):
        return False
    span = max(member_ids) - min(member_ids) + 1
    return span > SCATTERED_SPAN * len(member_ids)


def _scattered_events(
    *, before: datetime, since: datetime | None, member_ids: Sequence[int]
) -> pd.DataFrame:
    ids = sorted(member_ids)
    where, params = ["occurred_at < %s"], [before]
    if since is not None:
        where.append("occurred_at >= %s")
        params.append(since)
    if not ids:
        where.append("1 = 0")
    elif connection.vendor == "postgresql":
        where.append("member_id = ANY(%s)")
        params.append(ids)
    else:
        where.append(f"member_id IN ({', '.join(['%s'] * len(ids))})")
        params.extend(ids)
    read = _events_by_copy if connection.vendor == "postgresql" else _events_by_cursor
    return read(columns=FEATURE_EVENT_COLUMNS, where=where, params=params, order_by=STORED_ORDER)


def _chunk_filter(member_ids: Sequence[int]) -> dict:
    ids = sorted(member_ids)
    member_id_range = (ids[0], ids[-1]) if ids else (0, -1)
    return {"member_id_range": member_id_range, "member_ids": ids, "columns": FEATURE_EVENT_COLUMNS}


def first_event_times(*, before: datetime, member_ids: Sequence[int]) -> pd.Series:
    """Each member's first event strictly before `before`, in nanoseconds since the epoch,
    indexed by member_id: what `PreparedEvents.first_ns` holds. Members without one are absent."""
    ids = sorted(member_ids)
    if not ids:
        return pd.Series([], dtype="int64", index=pd.Index([], dtype="int64", name="member_id"))
    rows = (
        Event.objects.filter(occurred_at__lt=before, member_id__in=ids)
        .values("member_id")
        .annotate(first=Min("occurred_at"))
        .values_list("member_id", "first")
    )
    pairs = sorted(rows)
    index = pd.Index(np.array([pk for pk, _ in pairs], dtype="int64"), name="member_id")
    stamps = pd.to_datetime([first for _, first in pairs], utc=True).as_unit("ns")
    return pd.Series(stamps.asi8, index=index, name="t_ns")


# Kept members' ids per range read (profiling_frames): one range of the program's events in
# memory at a time beside the kept ones.
PROFILING_READ_IDS = 20_000


def profiling_frames(
    *, before: datetime | None = None, max_members: int | None = -1, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events, members) of the members who may be profiled: what training, the gate's
    out-of-time evaluation and the calibration monitor read, so that a member who withdrew
    consent or was erased is neither trained on nor scored for a report.

    Memory follows a member budget, not the program: beyond `max_members`
    (LOYALTY_TRAINING_MAX_MEMBERS by default; None: no budget) the members with the lowest
    stable hash of (id, seed) are kept (`predictions.ml.row_budget`: reproducible, a larger
    budget keeps a superset) and only their events are read, range by range."""
    if max_members == -1:
        max_members = settings.LOYALTY_TRAINING_MAX_MEMBERS
    members = members_frame(only_profiled=True)
    if max_members is None or len(members) <= max_members:
        return events_frame(before=before, only_profiled=True), members
    ids = members["member_id"].to_numpy()
    kept = np.sort(ids[row_budget.within_budget(ids, budget=max_members, seed=seed)])
    members = members[members["member_id"].isin(kept)].reset_index(drop=True)
    parts = [
        events_frame(
            before=before,
            only_profiled=True,
            member_id_range=(int(chunk[0]), int(chunk[-1])),
            member_ids=chunk,
        )
        for chunk in np.array_split(kept, max(1, -(-len(kept) // PROFILING_READ_IDS)))
    ]
    return pd.concat(parts, ignore_index=True), members


def members_frame(
    *, member_ids: list[int] | None = None, only_profiled: bool = False
) -> pd.DataFrame:
    """Members as the ML contract wants them. Fairness-audit fields are never read here."""
    queryset = scorable_members() if only_profiled else Member.objects.all()
    if member_ids is not None:
        queryset = queryset.filter(pk__in=member_ids)
    rows = list(queryset.values_list("id", "joined_on", "tier", "points_balance"))
    frame = pd.DataFrame.from_records(rows, columns=list(frames.MEMBER_COLUMNS[:-1]))
    frame["member_id"] = frame["member_id"].astype(np.int64)
    frame["joined_on"] = pd.to_datetime(frame["joined_on"])
    frame["tier"] = frame["tier"].fillna("").astype(str)
    frame["points_balance"] = frame["points_balance"].astype(float)
    frame["tier_rank"] = frames.tier_ranks(frame["tier"], settings.LOYALTY_TIER_LADDER)
    return frame


def population_value_points() -> list[float]:
    """The value points of the latest finished full scoring run that stored them
    (`ScoringRun.value_points`); [] before any has."""
    runs = (
        ScoringRun.objects.filter(scope=ScoringRun.Scope.FULL, status=ScoringRun.Status.DONE)
        .order_by("-finished_at", "-pk")
        .values_list("value_points", flat=True)
    )
    return next((points for points in runs[:20] if points), [])
