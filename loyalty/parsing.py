"""Reading ids and counts out of request text: ASCII digits only.

`str.isdigit()` accepts superscripts and other scripts' digits ("²", "٣") that `int()` then
refuses or reads differently; an id is never anything but plain ASCII digits.
"""

import re

_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")  # 18 digits always fit a 64-bit primary key


def parse_id(text: object) -> int | None:
    """The positive integer `text` spells in ASCII digits, or None for anything else."""
    if not isinstance(text, str) or _ASCII_DIGITS.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value > 0 else None
