"""Streamed CSV exports: a queue as its filters show it, decisions in a date range. Rows are
read a page at a time and written as they come (flat memory at any size). A cell that a
spreadsheet would run as a formula (starting with =, +, -, @, a tab or a carriage return) is
prefixed with a single quote."""

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time

from django.http import StreamingHttpResponse
from django.utils import timezone

from integrations.services.feed import decision_item, decision_pages, visible_decisions
from reviews.selectors.queue import QueueFilters, pending_reviews_for
from reviews.services.decision_events import DECISION_RELATIONS

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PAGE = 500
QUEUE_COLUMNS = (
    "review_id",
    "member",
    "kind",
    "call",
    "call_detail",
    "risk_band",
    "confidence",
    "value",
    "segment",
    "cluster",
    "reason",
    "waiting",
    "is_overdue",
    "escalation",
    "escalated_by",
    "proposal",
)
DECISION_COLUMNS = (
    "sequence",
    "decision_id",
    "decided_at",
    "member_external_id",
    "kind",
    "verdict",
    "churn_call",
    "action_code",
    "score",
    "model_version",
    "reason_code",
    "decided_as",
    "held_out",
    "announced",
    "review_id",
)


def safe_cell(value) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write returns the line: csv.writer into a generator."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([safe_cell(value) for value in row])


def queue_rows(*, route: str, filters: QueueFilters) -> Iterator[tuple]:
    """Every pending review of the queue under the filters, in the queue's order."""
    cursor = None
    while True:
        page = pending_reviews_for(route=route, filters=filters, after=cursor, limit=PAGE)
        for row in page.rows:
            yield tuple(getattr(row, column) for column in QUEUE_COLUMNS)
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def decision_rows(user, *, start: datetime, end: datetime) -> Iterator[tuple]:
    """The decisions `user` may read made in [start, end), in feed order, as the feed shows
    them to that user."""
    decisions = visible_decisions(user)
    now = timezone.now()
    decisions = decisions.filter(decided_at__gte=start, decided_at__lt=end).select_related(
        *DECISION_RELATIONS
    )
    for page in decision_pages(decisions, size=PAGE):
        for decision in page:
            data = decision_item(user, decision, now=now)
            yield tuple(data[column] for column in DECISION_COLUMNS)


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """Midnight of each day in the current time zone: [start, end)."""
    zone = timezone.get_current_timezone()
    return (
        datetime.combine(start, time.min, tzinfo=zone),
        datetime.combine(end, time.min, tzinfo=zone),
    )


def streamed_file(lines: Iterable[str], *, content_type: str, filename: str):
    """A download written as `lines` come: nothing is held in memory."""
    response = StreamingHttpResponse(lines, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def pretty_body(delivery) -> str:
    """The body a delivery sends, indented, for the delivery page."""
    from integrations.services.delivery import message_body

    return json.dumps(json.loads(message_body(delivery.event)), indent=2, sort_keys=True)
