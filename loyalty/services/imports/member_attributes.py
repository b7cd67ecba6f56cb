"""A members file's further columns: every column that is not a known one is a member
attribute (`Member.attributes`, kept for fairness audits only), keyed by its header as a slug
(`loyalty.member_attributes.attribute_key`: "Income Band" → "income_band").

A header that gives no usable key (nothing left, too long, a known column's name, the same key
as another column) refuses the file like an unknown column would; a value longer than
`MAX_VALUE_LENGTH` is a row error like any over-long cell. Values are stripped text; an empty
cell removes the key (as an empty cell empties any other field), and keys the file does not
name stay as they are: a re-import updates the attributes it names and nothing else. The
staged column holds, per row, a JSON merge patch (RFC 7396: a key to its value, or to null to
remove it) that the database applies in the import's one UPDATE and INSERT.
"""

import json
from collections.abc import Iterable

import numpy as np
import pandas as pd
from django.db import connection

from loyalty.member_attributes import KEY_RULE, MAX_KEY_LENGTH, MAX_VALUE_LENGTH, attribute_key
from loyalty.services.imports.validation import LINE, TEXT_DTYPE, Chunk, ErrorCollector, as_flags

# The staging table's column (and the member's): one merge patch per row.
ATTRIBUTES = "attributes"
# Parsed attribute columns, named by their key, travel to the write pass beside the known ones.
_PREFIX = "attribute:"


class AttributeColumns:
    """The attribute columns of one members source, found in its header."""

    def __init__(self, known: Iterable[str]) -> None:
        self.known = tuple(known)
        self.keys: dict[str, str] = {}  # header → key, in header order

    def refusal(self, column: str) -> str | None:
        """Why a column that is not a known one cannot be an attribute; None when it is one
        (it is then remembered)."""
        key = attribute_key(column)
        if not key or len(key) > MAX_KEY_LENGTH:
            return (
                f"unknown column, and its name does not make a member attribute key ({KEY_RULE}"
                f" once lowercased and each run of other characters made one underscore); "
                f"known columns: {', '.join(self.known)}"
            )
        if key in self.known:
            return f"names the known column {key!r}: write its header as {key} exactly"
        taken = next((header for header, other in self.keys.items() if other == key), None)
        if taken is not None:
            return f"names the same member attribute {key!r} as column {taken!r}"
        self.keys[column] = key
        return None

    def parse(self, chunk: Chunk, parsed: pd.DataFrame, collector: ErrorCollector) -> None:
        """Add the chunk's attribute values to `parsed` (stripped text; None where empty or
        too long, which is reported)."""
        lines = parsed[LINE].to_numpy()
        for header, key in self.keys.items():
            cells = chunk.given(header, lines).astype(TEXT_DTYPE).str.strip()
            cells = cells.reset_index(drop=True)
            too_long = as_flags(cells.str.len() > MAX_VALUE_LENGTH)
            collector.add_cells(
                mask=too_long,
                lines=lines,
                values=cells,
                column=header,
                reason=f"longer than {MAX_VALUE_LENGTH} characters",
            )
            keep = ~too_long & as_flags(cells.notna() & (cells != ""))
            values = cells.astype(object).to_numpy()
            parsed[_PREFIX + key] = np.where(keep.to_numpy(), values, None)

    def patches(self, frame: pd.DataFrame) -> list[str]:
        """Per row of a parsed frame: the JSON merge patch of its attributes."""
        keys = list(self.keys.values())
        columns = [_values(frame[_PREFIX + key]) for key in keys]
        return [
            json.dumps(dict(zip(keys, row, strict=True)), ensure_ascii=False)
            for row in zip(*columns, strict=True)
        ]


def _values(column: pd.Series) -> list:
    """Text or None (parquet may hand back NaN or pd.NA for a missing value)."""
    return [value if isinstance(value, str) else None for value in column.tolist()]


def merged_sql(stored: str, patch: str) -> str:
    """SQL of the stored attributes with the staged patch applied."""
    if connection.vendor == "postgresql":
        # All values are text: the only nulls are the patch's removals.
        return f"jsonb_strip_nulls({stored} || CAST({patch} AS jsonb))"
    return f"json_patch({stored}, {patch})"


def changed_sql(stored: str, patch: str) -> str:
    """SQL: the patch changes the stored attributes (compared as JSON, not as spelled)."""
    if connection.vendor == "postgresql":
        return f"{stored} IS DISTINCT FROM {merged_sql(stored, patch)}"
    return f"json({stored}) IS NOT {merged_sql(stored, patch)}"


def created_sql(patch: str) -> str:
    """SQL of a new member's attributes: the patch without its removals."""
    if connection.vendor == "postgresql":
        return f"jsonb_strip_nulls(CAST({patch} AS jsonb))"
    return f"json_patch('{{}}', {patch})"
