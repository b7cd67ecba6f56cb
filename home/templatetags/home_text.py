"""The home page's sentences are plain text; a `backquoted` command in one shows as code."""

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

register = template.Library()

BACKQUOTED = re.compile(r"`([^`]+)`")


@register.filter
def with_code(text) -> str:
    """Escape `text`, showing each backquoted part as <code>."""
    parts = BACKQUOTED.split(str(text))  # odd indexes are the backquoted parts
    return mark_safe(  # each part is escaped in the join below
        "".join(
            f"<code>{escape(part)}</code>" if index % 2 else escape(part)
            for index, part in enumerate(parts)
        )
    )
