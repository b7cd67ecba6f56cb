"""The audit log as the page shows it: keyset pages of records, newest first, and each
record's details as lines a person reads."""

from dataclasses import dataclass

from loyalty import keyset
from loyalty.models import AuditRecord

AUDIT_PAGE_SIZE = 100
AUDIT_ORDER = ("-occurred_at", "-id")


@dataclass(frozen=True)
class AuditRow:
    record: AuditRecord
    details: list[tuple[str, str]]


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    next_cursor: str  # "" on the last page
    cursor_is_valid: bool = True


def audit_records_page(records, *, after: str = "", size: int = AUDIT_PAGE_SIZE) -> AuditPage:
    """One page of `records` (filtered) newest first, after the record that the `after` cursor
    names (the last row of the page before). A cursor that does not decode gives the first
    page, flagged invalid."""
    cursor = None
    if after:
        try:
            cursor = keyset.decode_cursor(after, model=AuditRecord, ordering=AUDIT_ORDER)
        except keyset.InvalidCursor:
            cursor = None
    page = keyset.keyset_page(records, ordering=AUDIT_ORDER, cursor=cursor, size=size)
    next_cursor = ""
    if page.has_more:
        boundary = keyset.ordering_key(page.rows[-1], AUDIT_ORDER)
        next_cursor = keyset.encode_cursor(keyset.Cursor(key=boundary))
    rows = [AuditRow(record=record, details=detail_lines(record.details)) for record in page.rows]
    return AuditPage(
        rows=rows,
        next_cursor=next_cursor,
        cursor_is_valid=not after or cursor is not None,
    )


def detail_lines(details: dict | None) -> list[tuple[str, str]]:
    """Audit details as (key, value) lines a person reads: a before/after pair becomes one
    'old → new' line per changed field; nested values are flattened with dotted keys."""
    details = dict(details or {})
    lines: list[tuple[str, str]] = []
    before, after = details.get("before"), details.get("after")
    if isinstance(before, dict) and isinstance(after, dict):
        del details["before"], details["after"]
        for key in list(dict.fromkeys([*before, *after])):
            if before.get(key) != after.get(key):
                lines.append((key, f"{_readable(before.get(key))} → {_readable(after.get(key))}"))
        if not lines:
            lines.append(("changes", "none"))
    for key, value in details.items():
        lines.extend(_flatten(key, value))
    return lines


def _flatten(key: str, value) -> list[tuple[str, str]]:
    if isinstance(value, dict) and value:
        return [line for name, inner in value.items() for line in _flatten(f"{key}.{name}", inner)]
    return [(key, _readable(value))]


def _readable(value) -> str:
    if value is None or value == {} or value == []:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{name}: {_readable(inner)}" for name, inner in value.items())
    if isinstance(value, list):
        return ", ".join(_readable(item) for item in value)
    return str(value)
