"""Keyset pagination of the review API: an opaque cursor holding the last row's sort key.

DRF's CursorPagination keys on the first ordering field only and steps over ties with an
offset, so a page boundary inside a run of equal priorities costs an OFFSET scan and can skip
or repeat rows when a review is inserted into that run. Here the cursor holds every ordering
field (the last one unique), and the next page is one range condition on the queue's index:
`(priority < p) OR (priority = p AND id > i)`.
"""

import base64
import binascii
import json
from functools import reduce
from operator import or_

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

# A page an integrator can ask for in one request without tying up a worker.
MAX_PAGE_SIZE = 1000
INVALID_CURSOR = "Invalid cursor: pass back the `next` or `previous` link unchanged."


class KeysetPagination(BasePagination):
    """Pages through `ordering` (field names, `-` for descending; the last field unique and
    every field non-null, with JSON-representable values: numbers or strings).

    The cursor is URL-safe base64 of `{"k": [values of the boundary row], "r": backwards}`;
    clients pass back the `next` and `previous` links and never build cursors themselves.
    """

    ordering: tuple[str, ...] = ("id",)
    page_size = api_settings.PAGE_SIZE or 100
    max_page_size = MAX_PAGE_SIZE
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.request = request
        size = self._page_size(request)
        key, backwards = self._decode(request)
        order = [_flip(field) for field in self.ordering] if backwards else list(self.ordering)
        if key is not None:
            queryset = queryset.filter(_after(order, key))
        rows = list(queryset.order_by(*order)[: size + 1])
        has_more = len(rows) > size
        rows = rows[:size]
        if backwards:
            rows.reverse()
        # Coming from a cursor means rows exist on the side we came from.
        has_next = (not backwards and has_more) or (backwards and key is not None)
        has_previous = (backwards and has_more) or (not backwards and key is not None)
        self.next_link = self._link(rows[-1], backwards=False) if has_next and rows else None
        self.previous_link = self._link(rows[0], backwards=True) if has_previous and rows else None
        return rows

    def get_paginated_response(self, data) -> Response:
        return Response({"next": self.next_link, "previous": self.previous_link, "results": data})

    def get_paginated_response_schema(self, schema: dict) -> dict:
        link = {"type": "string", "nullable": True, "format": "uri"}
        return {
            "type": "object",
            "required": ["next", "previous", "results"],
            "properties": {
                "next": {**link, "description": "The next page; null on the last page."},
                "previous": {**link, "description": "The previous page; null on the first."},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view) -> list[dict]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Opaque cursor from a `next` or `previous` link.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Items per page, {self.page_size} unless given, at most "
                f"{self.max_page_size}.",
                "schema": {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
            },
        ]

    def _page_size(self, request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise ValidationError(
                {self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]}
            )
        return size

    def _decode(self, request) -> tuple[list | None, bool]:
        raw = request.query_params.get(self.cursor_query_param)
        if not raw:
            return None, False
        try:
            payload = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")))
            key, backwards = payload["k"], payload["r"]
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError) as error:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from error
        if (
            not isinstance(key, list)
            or len(key) != len(self.ordering)
            or not isinstance(backwards, bool)
            or not all(isinstance(value, int | float | str) for value in key)
        ):
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]})
        return key, backwards

    def _encode(self, key: list, *, backwards: bool) -> str:
        payload = json.dumps({"k": key, "r": backwards}, separators=(",", ":"))
        token = base64.urlsafe_b64encode(payload.encode()).decode("ascii")
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, token)

    def _link(self, row, *, backwards: bool) -> str:
        key = [getattr(row, field.lstrip("-")) for field in self.ordering]
        return self._encode(key, backwards=backwards)


def _flip(field: str) -> str:
    return field[1:] if field.startswith("-") else f"-{field}"


def _after(order: list[str], key: list) -> Q:
    """Rows strictly after `key` in `order`: a tuple comparison spelled as ORs of ANDs."""
    conditions = []
    for position, field in enumerate(order):
        name = field.lstrip("-")
        lookup = "lt" if field.startswith("-") else "gt"
        equal = {other.lstrip("-"): key[index] for index, other in enumerate(order[:position])}
        conditions.append(Q(**equal, **{f"{name}__{lookup}": key[position]}))
    return reduce(or_, conditions)


class ReviewKeysetPagination(KeysetPagination):
    """The queue's order: highest priority first, then oldest id."""

    ordering = ("-priority", "id")


class DecisionKeysetPagination(KeysetPagination):
    """Oldest decision first, so that an integrator resumes from its last `next` link."""

    ordering = ("id",)
