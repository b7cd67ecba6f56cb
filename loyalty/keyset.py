"""Keyset pagination, the one home of how a page of results is cut.

A page starts strictly after a boundary row, named by its values of every ordering field; the
last field is unique (the id), so ties on the others are broken by it and the order is total.
Unlike an offset, this costs one index range at any depth, and a row inserted ahead of the
boundary neither shifts nor repeats the next page. Cursors are opaque to clients: URL-safe
base64 of `{"k": [boundary values], "r": backwards}`.
"""

import base64
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from django.core.exceptions import ValidationError
from django.db.models import Field, Model, Q, QuerySet
from django.utils import timezone


class InvalidCursor(ValueError):
    """A cursor this server did not write: garbage, tampered, or for another ordering."""


@dataclass(frozen=True)
class Cursor:
    """The boundary row's values, one per ordering field. `backwards`: the page before it."""

    key: tuple
    backwards: bool = False


@dataclass(frozen=True)
class KeysetPage:
    """The rows of one page in the ordering's order; `has_more`: rows follow in the direction
    read (after the page going forwards, before it going backwards)."""

    rows: list
    has_more: bool


def keyset_page(
    queryset: QuerySet, *, ordering: Sequence[str], cursor: Cursor | None, size: int
) -> KeysetPage:
    """At most `size` rows of `queryset` in `ordering` (field names, `-` for descending), after
    the cursor's row, or before it for a backwards cursor. Reads one row more to learn whether
    more follow. Works as well on `.values()` querysets."""
    backwards = cursor is not None and cursor.backwards
    order = reversed_ordering(ordering) if backwards else tuple(ordering)
    if cursor is not None:
        queryset = queryset.filter(after(order, cursor.key))
    rows = list(queryset.order_by(*order)[: size + 1])
    has_more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    return KeysetPage(rows=rows, has_more=has_more)


def after(ordering: Sequence[str], key: Sequence) -> Q:
    """Rows strictly after `key` in `ordering`: the tuple comparison `(a, b) > (x, y)` spelled
    `a >= x AND (a > x OR b > y)` (nested likewise for more fields), so that the database
    bounds its index range on the first field instead of filtering every row."""
    if len(ordering) != len(key) or not ordering:
        raise ValueError(f"one key value per ordering field: {ordering}, {key}")
    *leading, (last_field, last_value) = zip(ordering, key, strict=True)
    condition = _compare(last_field, last_value, strict=True)
    for field, value in reversed(leading):
        condition = _compare(field, value, strict=False) & (
            _compare(field, value, strict=True) | condition
        )
    return condition


def reversed_ordering(ordering: Sequence[str]) -> tuple[str, ...]:
    """The same fields, each in the other direction: how a backwards page is read."""
    return tuple(field[1:] if field.startswith("-") else f"-{field}" for field in ordering)


def ordering_key(row: Model | dict, ordering: Sequence[str]) -> tuple:
    """A row's values of the ordering's fields: a model instance or a `.values()` dict."""
    names = [_name(field) for field in ordering]
    if isinstance(row, dict):
        return tuple(row[name] for name in names)
    return tuple(getattr(row, name) for name in names)


def encode_cursor(cursor: Cursor) -> str:
    """The opaque, URL-safe token of a cursor."""
    payload = {"k": [_plain(value) for value in cursor.key], "r": cursor.backwards}
    text = json.dumps(payload, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode("ascii")


def decode_cursor(token: str, *, model: type[Model], ordering: Sequence[str]) -> Cursor:
    """The cursor in `token`, its values typed by `model`'s ordering fields. Raises
    InvalidCursor for anything `encode_cursor` did not write for this ordering."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, TypeError, RecursionError) as error:
        # binascii.Error, UnicodeError and JSONDecodeError are all ValueErrors.
        raise InvalidCursor(token) from error
    if not isinstance(payload, dict):
        raise InvalidCursor(token)
    key, backwards = payload.get("k"), payload.get("r")
    if not isinstance(key, list) or len(key) != len(ordering) or not isinstance(backwards, bool):
        raise InvalidCursor(token)
    typed = tuple(
        _typed(_model_field(model, field), value)
        for field, value in zip(ordering, key, strict=True)
    )
    return Cursor(key=typed, backwards=backwards)


def _name(field: str) -> str:
    return field.removeprefix("-")


def _compare(field: str, value: object, *, strict: bool) -> Q:
    descending = field.startswith("-")
    lookup = ("lt" if descending else "gt") + ("" if strict else "e")
    return Q(**{f"{_name(field)}__{lookup}": value})


def _model_field(model: type[Model], field: str) -> Field:
    name = _name(field)
    return model._meta.pk if name == "pk" else model._meta.get_field(name)


def _plain(value: object) -> int | float | str:
    """A JSON value for an ordering value; `_typed` turns it back."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        return value
    raise TypeError(f"not an ordering value a cursor can hold: {value!r}")


def _typed(field: Field, value: object) -> object:
    """A cursor value as the field's Python value; InvalidCursor when it cannot be one."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidCursor(value)
    try:
        typed = field.to_python(value)
    except (ValidationError, TypeError, ValueError, ArithmeticError) as error:
        # ArithmeticError: int() of an infinite float, in an integer field.
        raise InvalidCursor(value) from error
    if (
        typed is None
        or (isinstance(typed, float) and not math.isfinite(typed))
        or (isinstance(typed, datetime) and timezone.is_naive(typed))
    ):
        raise InvalidCursor(value)
    return typed
