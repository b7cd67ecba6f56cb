"""Keyset pagination of every API list: `loyalty.keyset` behind DRF's pagination interface.

DRF's CursorPagination keys on the first ordering field only and steps over ties with an
offset, so a page boundary inside a run of equal values costs an OFFSET scan and can skip or
repeat rows when one is inserted into that run. Here the cursor holds every ordering field.
"""

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from loyalty.keyset import (
    Cursor,
    InvalidCursor,
    decode_cursor,
    encode_cursor,
    keyset_page,
    ordering_key,
)

# A page an integrator can ask for in one request without tying up a worker.
MAX_PAGE_SIZE = 1000
INVALID_CURSOR = "Invalid cursor: pass back the `next` or `previous` link unchanged."


class KeysetPagination(BasePagination):
    """Pages through `ordering` (field names, `-` for descending; the last field unique and
    every field non-null). Clients pass back the `next` and `previous` links and never build
    cursors themselves; a cursor or page size they did make up answers 400."""

    ordering: tuple[str, ...] = ("id",)
    page_size = api_settings.PAGE_SIZE or 100
    max_page_size = MAX_PAGE_SIZE
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: QuerySet, request, view=None) -> list:
        self.request = request
        size = self._page_size(request)
        cursor = self._cursor(request, queryset.model)
        page = keyset_page(queryset, ordering=self.ordering, cursor=cursor, size=size)
        rows = page.rows
        backwards = cursor is not None and cursor.backwards
        # Coming from a cursor means rows exist on the side we came from.
        has_next = page.has_more if not backwards else True
        has_previous = page.has_more if backwards else cursor is not None
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

    def _cursor(self, request, model) -> Cursor | None:
        token = request.query_params.get(self.cursor_query_param)
        if not token:
            return None
        try:
            return decode_cursor(token, model=model, ordering=self.ordering)
        except InvalidCursor as error:
            raise ValidationError({self.cursor_query_param: [INVALID_CURSOR]}) from error

    def _link(self, row, *, backwards: bool) -> str:
        cursor = Cursor(key=ordering_key(row, self.ordering), backwards=backwards)
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, encode_cursor(cursor))
