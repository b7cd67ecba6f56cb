"""Reading the project's import CSVs (events.csv, members.csv) into the engine's input frames.

Used by the command line, so that the engine can be run and benchmarked without a database.
External ids become int member ids in members-file order; members that appear only in the
events file are appended after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import frames
from .contracts import InvalidInputError

# The events frame's columns, with the member's external id in place of the member id.
EVENTS_CSV_COLUMNS = ("member_external_id", *frames.EVENT_COLUMNS[1:])
MEMBERS_CSV_COLUMNS = (
    "external_id",
    "joined_at",
    "tier",
    "points_balance",
    "consent_profiling",
    "age_band",
    "region",
)


def read_project_csvs(
    *,
    events_path: str | Path,
    members_path: str | Path,
    tier_ladder: Sequence[str] = frames.DEFAULT_TIER_LADDER,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Index]:
    """(events, members, external ids by member_id) from the two import files."""
    raw_members = pd.read_csv(members_path, dtype={"external_id": str}, keep_default_na=False)
    if "external_id" not in raw_members.columns:
        raise InvalidInputError(
            frame="members.csv", field="external_id", reason="column is missing"
        )
    raw_events = pd.read_csv(
        events_path,
        dtype={"member_external_id": str, "kind": str} | dict.fromkeys(frames.EVENT_STRINGS, str),
        keep_default_na=False,
        na_values={column: [""] for column in frames.EVENT_FLOATS},
    )
    for column in EVENTS_CSV_COLUMNS[: len(frames.EVENT_REQUIRED)]:
        if column not in raw_events.columns:
            raise InvalidInputError(frame="events.csv", field=column, reason="column is missing")
    known = pd.Index(raw_members["external_id"])
    extra = pd.Index(raw_events["member_external_id"].unique()).difference(known)
    external_ids = known.append(extra)
    member_ids = pd.Series(np.arange(len(external_ids), dtype="int64"), index=external_ids)
    roster = raw_members.set_index("external_id").reindex(external_ids)

    def column(name: str) -> pd.Series:
        """The column with blanks (and members missing from the file) as NaN."""
        if name not in roster.columns:
            return pd.Series(np.nan, index=roster.index, dtype=object)
        return roster[name].astype(object).where(roster[name].astype(str) != "", np.nan)

    joined = pd.to_datetime(column("joined_at"), errors="coerce", utc=True)
    tiers = column("tier").fillna("").astype(str)
    members = pd.DataFrame(
        {
            "member_id": member_ids.to_numpy(),
            "joined_on": joined.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]"),
            "tier": tiers.to_numpy(),
            "points_balance": pd.to_numeric(column("points_balance"), errors="coerce")
            .fillna(0)
            .to_numpy(dtype="float64"),
            "tier_rank": frames.tier_ranks(tiers, tier_ladder),
        }
    )
    events = raw_events.drop(columns=["member_external_id"]).copy()
    events.insert(0, "member_id", member_ids.loc[raw_events["member_external_id"]].to_numpy())
    return frames.normalize_events(events), members, external_ids
