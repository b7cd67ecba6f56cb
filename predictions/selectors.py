"""Reads for the prediction engine: the program's data as the DataFrames predictions.ml takes."""

from datetime import datetime

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection

from loyalty.models import Member

EVENT_COLUMNS = [
    "member_id",
    "occurred_at",
    "kind",
    "amount",
    "quantity",
    "category",
    "channel",
    "session_id",
    "dwell_seconds",
    "product_id",
]
MEMBER_COLUMNS = ["member_id", "joined_on", "tier", "points_balance", "tier_rank"]


def events_frame(
    *,
    before: datetime | None = None,
    member_id_range: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Events as the ML contract wants them, optionally only those strictly before `before`
    and of members whose id lies in an inclusive range (a scoring chunk)."""
    where, params = [], []
    if before is not None:
        where.append("occurred_at < %s")
        params.append(before)
    if member_id_range is not None:
        where.append("member_id BETWEEN %s AND %s")
        params.extend(member_id_range)
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM loyalty_event"
    if where:
        sql += " WHERE " + " AND ".join(where)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    frame = pd.DataFrame.from_records(rows, columns=EVENT_COLUMNS)
    return _typed_events(frame)


def _typed_events(frame: pd.DataFrame) -> pd.DataFrame:
    frame["member_id"] = frame["member_id"].astype(np.int64)
    frame["occurred_at"] = pd.to_datetime(frame["occurred_at"], utc=True)
    for column in ("amount", "quantity", "dwell_seconds"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    for column in ("kind", "category", "channel", "session_id", "product_id"):
        frame[column] = frame[column].fillna("").astype(str)
    return frame


def members_frame(*, member_ids: list[int] | None = None) -> pd.DataFrame:
    """Members as the ML contract wants them. Fairness-audit fields are never read here."""
    queryset = Member.objects.all()
    if member_ids is not None:
        queryset = queryset.filter(pk__in=member_ids)
    rows = list(queryset.values_list("id", "joined_on", "tier", "points_balance"))
    frame = pd.DataFrame.from_records(rows, columns=MEMBER_COLUMNS[:-1])
    ladder = {tier: rank for rank, tier in enumerate(settings.LOYALTY_TIER_LADDER)}
    frame["member_id"] = frame["member_id"].astype(np.int64)
    frame["joined_on"] = pd.to_datetime(frame["joined_on"])
    frame["tier"] = frame["tier"].fillna("").astype(str)
    frame["points_balance"] = frame["points_balance"].astype(float)
    frame["tier_rank"] = frame["tier"].map(ladder).fillna(-1).astype(int)
    return frame
