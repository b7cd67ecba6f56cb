"""Checks of an import source that look past one cell: external ids an erasure refuses, an id
given twice in one source, and events of members that are unknown or erased."""

import json

import numpy as np
import pandas as pd
from django.db import connection

from loyalty.models import Member
from loyalty.services.erasure import (
    ERASED_EXTERNAL_ID_PREFIX,
    StandingTombstones,
    erased_external_ids,
)
from loyalty.services.imports.validation import LINE, ErrorCollector

# External ids of members found active, remembered across chunks of one events import (about
# 100 bytes each: at most ~50 MB).
KNOWN_MEMBER_CACHE = 500_000
_ACTIVE, _ERASED, _UNKNOWN = "active", "erased", "unknown"


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
