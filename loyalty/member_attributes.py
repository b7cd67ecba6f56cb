"""The rule for a member's further attributes (`Member.attributes`, kept for fairness audits
only): what a key may be, how a column header becomes one, what a value may hold. The import,
the API, the model's validation and the fairness audit's marking all ask here."""

import re
import unicodedata
from collections.abc import Mapping

from django.core.exceptions import ValidationError

# Keys name a few coarse attributes (income_band, home_ownership): short slugs.
MAX_KEY_LENGTH = 32
# Values are bands and categories ("50-74K", "Probable Renter"), never free text about a person.
MAX_VALUE_LENGTH = 64
KEY_PATTERN = re.compile(rf"[a-z0-9_]{{1,{MAX_KEY_LENGTH}}}")
KEY_RULE = f"lowercase letters, digits and underscores, 1 to {MAX_KEY_LENGTH} characters"
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def attribute_key(header: str) -> str:
    """A column header as an attribute key: accents dropped, lowercase, every run of other
    characters one underscore, none at either end ("Income Band" → "income_band"). Empty when
    nothing is left; may be longer than a key may be (`key_error` says so)."""
    ascii_text = unicodedata.normalize("NFKD", str(header)).encode("ascii", "ignore").decode()
    return _NOT_SLUG.sub("_", ascii_text.lower()).strip("_")


def key_error(key: object) -> str | None:
    """Why `key` cannot be an attribute key; None when it can."""
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        return f"not an attribute key ({KEY_RULE})"
    return None


def value_error(value: object) -> str | None:
    """Why `value` cannot be an attribute value; None when it can (text up to the length)."""
    if not isinstance(value, str):
        return "an attribute value must be text"
    if len(value) > MAX_VALUE_LENGTH:
        return f"longer than {MAX_VALUE_LENGTH} characters"
    return None


def attributes_errors(attributes: object) -> list[str]:
    """Everything wrong with a whole attributes value (a mapping of key to short text)."""
    if not isinstance(attributes, Mapping):
        return ["attributes must be an object of attribute key to text"]
    errors = []
    for key, value in attributes.items():
        reason = key_error(key) or value_error(value)
        if reason:
            errors.append(f"{str(key)[: MAX_KEY_LENGTH + 8]!r}: {reason}")
    return errors


def validate_attributes(attributes: object) -> None:
    """The model field's validator."""
    errors = attributes_errors(attributes)
    if errors:
        raise ValidationError(errors)


def validate_attribute_key(key: object) -> None:
    reason = key_error(key)
    if reason:
        raise ValidationError(reason)
