"""Timestamps of an import source: a time with an offset keeps it, a time without one is read in
the zone the import names (or refused when it names none), and all are stored as UTC."""

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from loyalty.exceptions import DomainError

# Django keeps microseconds; anything finer would not survive a round trip through the database
# and would make the same event look new on the next import.
TIMESTAMP_RESOLUTION = "us"
BAD_TIMESTAMP = "not an ISO 8601 date/time"
BAD_DATE = "not an ISO 8601 date"
NAIVE_TIMESTAMP = (
    "no time zone: give the offset (e.g. 2025-01-31T14:05:00+01:00, or Z for UTC), or name the "
    "zone of times without one with --timezone (or the LOYALTY_IMPORT_TIMEZONE setting)"
)

# A time of day followed by Z or an offset. pandas parses naive values that follow an aware one
# with that value's offset, so aware and naive values are parsed in separate calls.
_AWARE_TIMESTAMP = r"(?i)[T ]\d.*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
_TIME_OF_DAY = r"[T ]\d"

# (rows, reason) for each way a column's values were bad.
Problems = list[tuple[pd.Series, str]]


class UnknownTimeZoneError(DomainError):
    """The zone named for times without an offset is not an IANA time zone."""


def time_zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone called `name` (e.g. Europe/Paris), None for none."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise UnknownTimeZoneError(
            f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York).",
            zone=name,
        ) from error


def parse_timestamps(
    cells: pd.Series, empty: pd.Series, *, zone: ZoneInfo | None, dates: bool
) -> tuple[pd.Series, Problems]:
    """UTC timestamps (NaT where bad) and what was wrong with the bad ones.

    A value with an offset (or Z) is converted to UTC. A value without one is a wall-clock time
    in `zone`: refused when there is no zone, and when the zone's clocks skip it or pass it
    twice (daylight saving time), since either reading would be a guess. For a date column
    (`dates`), a value without a time of day is a calendar date and needs no zone.
    """
    utc = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[ns, UTC]")
    wall = pd.Series(pd.NaT, index=cells.index, dtype="datetime64[ns]")
    if pd.api.types.is_datetime64_any_dtype(cells):
        if cells.dt.tz is not None:
            return _floored(cells.dt.tz_convert("UTC")), []
        wall[:] = cells.astype("datetime64[ns]")
        naive = wall.notna()
        # A typed date column holds dates as midnights.
        calendar = naive & (wall == wall.dt.normalize()) if dates else naive & False
        unparsable = pd.Series(False, index=cells.index)
    else:
        text = cells.fillna("")
        aware = _contains(text, _AWARE_TIMESTAMP)
        naive = ~aware & ~empty
        if aware.any():
            utc[aware] = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce")
        if naive.any():
            # Parsed as if UTC, then stripped of the zone: the wall-clock time as written.
            parsed = pd.to_datetime(text[naive], format="ISO8601", utc=True, errors="coerce")
            wall[naive] = parsed.dt.tz_localize(None)
        unparsable = ~empty & utc.isna() & wall.isna()
        naive &= ~unparsable
        calendar = naive & ~_contains(text, _TIME_OF_DAY) if dates else naive & False
    problems: Problems = [(unparsable, BAD_DATE if dates else BAD_TIMESTAMP)]
    utc[calendar] = wall[calendar].dt.tz_localize("UTC")
    local = naive & ~calendar
    if zone is None:
        problems.append((local, NAIVE_TIMESTAMP))
    elif local.any():
        placed, skipped, doubled = _localized(wall[local], zone)
        utc[local] = placed
        problems += [
            (
                _spread(skipped, cells.index),
                f"this local time does not exist in {zone.key}: the clocks skip it (daylight "
                "saving time); give the time with its offset",
            ),
            (
                _spread(doubled, cells.index),
                f"this local time happens twice in {zone.key} (the clocks go back); give the "
                "time with its offset to say which",
            ),
        ]
    return _floored(utc), problems


def _localized(wall: pd.Series, zone: ZoneInfo) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Wall-clock times in `zone` as UTC, and which of them the zone skips or passes twice."""
    placed = wall.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    failed = placed.isna()
    if not failed.any():
        return placed.dt.tz_convert("UTC"), failed, failed
    # Resolving every ambiguous time one way leaves only the skipped ones missing.
    standard = np.zeros(len(wall), dtype=bool)
    skipped = wall.dt.tz_localize(zone, ambiguous=standard, nonexistent="NaT").isna()
    return placed.dt.tz_convert("UTC"), skipped, failed & ~skipped


def _spread(mask: pd.Series, index: pd.Index) -> pd.Series:
    """A mask over some rows as a mask over all of them."""
    return mask.reindex(index, fill_value=False).astype(bool)


def _floored(stamps: pd.Series) -> pd.Series:
    return stamps.dt.floor(TIMESTAMP_RESOLUTION)


def _contains(text: pd.Series, pattern: str) -> pd.Series:
    found = text.str.contains(pattern, regex=True)
    return pd.Series(found.to_numpy(dtype=bool, na_value=False), index=text.index)
