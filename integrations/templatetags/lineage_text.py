"""The lineage page shows a JSON document: its times as people read them, nested values as JSON."""

import json
from datetime import UTC

from django import template
from django.utils.dateparse import parse_datetime

register = template.Library()


@register.filter
def when(value) -> str:
    """An ISO 8601 time of the document as `2026-01-01 09:30:00 UTC`; anything else as it is."""
    moment = parse_datetime(value) if isinstance(value, str) else None
    if moment is None:
        return "—" if value is None else str(value)
    if moment.utcoffset() is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@register.filter
def as_json(value) -> str:
    """A nested value as indented JSON (escaped by the template like any text)."""
    return json.dumps(value, indent=2, sort_keys=True)
