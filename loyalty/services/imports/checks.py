"""Checks of an import source that look past one cell: external ids an erasure refuses, an id
given twice in one source, events of members that are unknown or erased, negative purchases
(returns), events from the future, and an event given twice in one source."""

import json
import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from django.db import connection

from loyalty.models import Event, Member
from loyalty.services.erasure import (
    ERASED_EXTERNAL_ID_PREFIX,
    StandingTombstones,
    erased_external_ids,
)
from loyalty.services.imports.validation import LINE, Chunk, ErrorCollector, as_flags

# External ids of members found active, remembered across chunks of one events import (about
# 100 bytes each: at most ~50 MB).
KNOWN_MEMBER_CACHE = 500_000
_ACTIVE, _ERASED, _UNKNOWN = "active", "erased", "unknown"
# Clocks and zones of the systems that send events disagree by hours (UTC-12 to UTC+14), never
# by more than a day: a later event is a wrong clock, zone or year, not an early report.
FUTURE_TOLERANCE = timedelta(days=1)
# The rules' words, shared with the events batch API (loyalty.services.events), which applies
# the same rules to one item at a time.
FUTURE_EVENT = "events from the future are refused (check the sender's clock, year and time zone)"
OPPOSITE_SIGNS = (
    "amount and quantity have opposite signs: a purchase is positive in both, one read as a "
    "return negative in both"
)
NEGATIVE_NOT_PURCHASE = (
    "negative: only a purchase may be negative (it is then read as a return); give every other "
    "kind, return included, a positive value"
)
# Marks the rows of a purchase with a negative amount or quantity, read as a return.
FROM_NEGATIVE_PURCHASE = "_from_negative_purchase"
EVENT_KEY = ("member_external_id", "occurred_at", "kind", "session_id", "product_id")
# An event's natural key as two 64-bit hashes with independent keys (a false repeat needs both
# to collide: about n² / 2^129, nil for any file) and its line.
_KEY_RECORD = np.dtype([("first", "<u8"), ("second", "<u8"), ("line", "<i8")])
_HASH_KEYS = ("loyalty-events-1", "loyalty-events-2")  # 16 characters, as pandas wants
_HASH_MULTIPLIER = 0x9E3779B97F4A7C15  # odd: 2^64 / golden ratio
# Keys wait on disk in this many files, by their first hash's top bits, so that finding repeats
# holds one file in memory: 24 bytes per row / 256, about 10 MB for 100 M rows.
_KEY_BUCKET_BITS = 8


def report_refused_external_ids(
    parsed: pd.DataFrame, collector: ErrorCollector, tombstones: StandingTombstones
) -> None:
    """Ids that only erasure hands out, and ids of erased members (a standing tombstone)."""
    ids = parsed["external_id"]
    lines = parsed[LINE].to_numpy()
    reserved = ids.str.startswith(ERASED_EXTERNAL_ID_PREFIX, na=False)
    collector.add_cells(
        mask=reserved,
        lines=lines,
        values=ids,
        column="external_id",
        reason=f"ids starting with {ERASED_EXTERNAL_ID_PREFIX!r} are reserved for erased members",
    )
    collector.add_cells(
        mask=_refused_by_tombstones(ids, tombstones) & ~reserved,
        lines=lines,
        values=ids,
        column="external_id",
        reason="this member was erased; its data is not imported again unless an "
        "admin lifts the erasure's tombstone",
    )


class RepeatedIds:
    """The external ids of every chunk of one source: an id given twice is ambiguous (which
    row is the member?), and its later lines are reported once the whole source is read."""

    def __init__(self) -> None:
        self._ids: list[pd.Series] = []
        self._lines: list[np.ndarray] = []

    def add(self, parsed: pd.DataFrame) -> None:
        ids = parsed["external_id"]
        usable = ids.notna() & (ids != "")
        self._ids.append(ids[usable].astype("string[pyarrow]"))
        self._lines.append(parsed.loc[usable, LINE].to_numpy())

    def report(self, collector: ErrorCollector) -> None:
        """Report the repeats, then forget the ids: the write pass does not need them."""
        ids, lines = self._ids, self._lines
        self._ids, self._lines = [], []
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


def report_unknown_members(
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
    for state, reason in (
        (_UNKNOWN, "unknown member; import members first"),
        (_ERASED, "this member was erased; no events are imported for it"),
    ):
        collector.add_cells(
            mask=rows == state, lines=lines, values=ids, column="member_external_id", reason=reason
        )


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


def read_negative_purchases_as_returns(parsed: pd.DataFrame, collector: ErrorCollector) -> None:
    """A purchase with a negative amount or quantity is money going back: it becomes a return
    with the absolute amount and quantity, marked in FROM_NEGATIVE_PURCHASE so that the import
    can count them. Opposite signs in one row, and negative values on any other kind (a return
    included: its kind already says which way the money went), are refused."""
    amount, quantity = parsed["amount"], parsed["quantity"]
    purchase = as_flags(parsed["kind"] == Event.Kind.PURCHASE)
    negative = (amount < 0) | (quantity < 0)
    contradictory = purchase & negative & ((amount > 0) | (quantity > 0))
    lines = parsed[LINE].to_numpy()
    collector.add_cells(
        mask=contradictory,
        lines=lines,
        values=amount,
        column="amount",
        reason=OPPOSITE_SIGNS,
    )
    for column, values in (("amount", amount), ("quantity", quantity)):
        collector.add_cells(
            mask=(values < 0) & ~purchase,
            lines=lines,
            values=values,
            column=column,
            reason=NEGATIVE_NOT_PURCHASE,
        )
    returned = purchase & negative & ~contradictory
    parsed[FROM_NEGATIVE_PURCHASE] = returned
    if returned.any():
        parsed.loc[returned, "kind"] = Event.Kind.RETURN.value
        parsed.loc[returned, "amount"] = amount[returned].abs()
        parsed.loc[returned, "quantity"] = quantity[returned].abs()


def report_future_events(
    chunk: Chunk, parsed: pd.DataFrame, collector: ErrorCollector, *, started_at: datetime
) -> None:
    """Events dated more than FUTURE_TOLERANCE after the import started."""
    latest = pd.Timestamp(started_at + FUTURE_TOLERANCE)
    lines = parsed[LINE].to_numpy()
    collector.add_cells(
        mask=parsed["occurred_at"] > latest,
        lines=lines,
        values=chunk.given("occurred_at", lines),
        column="occurred_at",
        reason=f"more than a day after the import ran: {FUTURE_EVENT}",
    )


class RepeatedEventKeys:
    """The natural keys of every chunk of one events source. An event given twice is refused on
    its later lines, each naming the first: which of the two is right only the sender knows,
    and the database would silently keep one. Keys wait on disk, so memory stays flat."""

    def __init__(self) -> None:
        self._folder: tempfile.TemporaryDirectory | None = None

    def add(self, parsed: pd.DataFrame) -> None:
        usable = parsed["occurred_at"].notna() & as_flags(
            parsed["member_external_id"].notna()
            & (parsed["member_external_id"] != "")
            & parsed["kind"].notna()
        )
        if not usable.any():
            return
        keys = parsed.loc[usable, list(EVENT_KEY)]
        records = np.empty(len(keys), dtype=_KEY_RECORD)
        records["first"], records["second"] = _key_hashes(keys)
        records["line"] = parsed[LINE].to_numpy()[usable.to_numpy()]
        buckets = records["first"] >> np.uint64(64 - _KEY_BUCKET_BITS)
        order = np.argsort(buckets, kind="stable")
        records, buckets = records[order], buckets[order]
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="loyalty-import-keys-")
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        for part in np.split(records, starts[1:]):
            bucket = int(part["first"][0] >> np.uint64(64 - _KEY_BUCKET_BITS))
            with (Path(self._folder.name) / f"{bucket:03d}").open("ab") as handle:
                part.tofile(handle)

    def report(self, collector: ErrorCollector) -> None:
        """Report the repeats, one bucket at a time, then forget the keys."""
        if self._folder is None:
            return
        folder, self._folder = self._folder, None
        with folder:
            for path in sorted(Path(folder.name).iterdir()):
                _report_repeats(np.fromfile(path, dtype=_KEY_RECORD), collector)


def _key_hashes(keys: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit hashes of each row's key. A text column is hashed per distinct
    value (factorized by Arrow), several times faster than hashing every cell."""
    first = np.zeros(len(keys), dtype=np.uint64)
    second = np.zeros(len(keys), dtype=np.uint64)
    stamps = keys["occurred_at"].astype("datetime64[ns, UTC]").astype("int64").to_numpy()
    # Integers hash the same under any key (bijectively); the text columns tell the two apart.
    parts = [(pd.util.hash_array(stamps),) * 2]
    for column in EVENT_KEY:
        if column != "occurred_at":
            codes, distinct = pd.factorize(keys[column])
            values = np.asarray(distinct, dtype=object)
            parts.append(
                tuple(
                    pd.util.hash_array(values, hash_key=key, categorize=False)[codes]
                    for key in _HASH_KEYS
                )
            )
    with np.errstate(over="ignore"):
        for position, (for_first, for_second) in enumerate(parts):
            # XOR, then multiply by an odd number: each step keeps distinct keys distinct.
            multiplier = np.uint64(_HASH_MULTIPLIER + 2 * position)
            first = (first ^ for_first) * multiplier
            second = (second ^ for_second) * multiplier
    return first, second


def _report_repeats(records: np.ndarray, collector: ErrorCollector) -> None:
    records.sort(order=["first", "second", "line"])
    same_as_previous = np.r_[
        False,
        (records["first"][1:] == records["first"][:-1])
        & (records["second"][1:] == records["second"][:-1]),
    ]
    if not same_as_previous.any():
        return
    # Lines of one key are in file order, so a key's first line is where the key starts.
    starts = ~same_as_previous
    first_line = records["line"][np.flatnonzero(starts)][np.cumsum(starts) - 1]
    later = pd.Series(same_as_previous)
    collector.add_cells(
        mask=later,
        lines=records["line"],
        values=pd.Series("", index=later.index),
        column="",
        reason="same member_external_id, occurred_at, kind, session_id and product_id (the "
        "event's natural key) as line "
        + pd.Series(first_line).astype(str)
        + ": a file may give each event once",
    )
