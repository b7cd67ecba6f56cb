"""Marking a member attribute as protected, and unmarking it: the fairness reports and the
daily check then measure (or stop measuring) it beside age band and region. Done by the people
who set the fairness limits (admins), on the Fairness page or in the admin, and audited as a
`config_change` with before and after values, like any change made in the admin."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from learning.models import ProtectedAttribute
from loyalty.exceptions import require_permission
from loyalty.services.config_audit import record_config_change, snapshot

# The people who set the fairness limits decide what they are judged on.
MARK_PERMISSION = "learning.change_fairnesslimits"


def default_label(key: str) -> str:
    """How a report names an attribute marked without a label ("home_ownership" → "Home
    ownership")."""
    return key.replace("_", " ").strip().capitalize()


@transaction.atomic
def mark_protected_attribute(
    *, key: str, actor: AbstractBaseUser | None, label: str = ""
) -> ProtectedAttribute:
    """Mark `key` (a key of the members' attributes) as protected. Marking a key already
    marked returns the existing mark unchanged (a double submit is harmless)."""
    require_permission(actor, MARK_PERMISSION)
    existing = ProtectedAttribute.objects.filter(key=key).first()
    if existing is not None:
        return existing
    marked = ProtectedAttribute(
        key=key, label=label.strip() or default_label(key), created_by=actor
    )
    marked.full_clean(validate_unique=False)
    try:
        with transaction.atomic():
            marked.save()
    except IntegrityError:  # a concurrent mark of the same key won the race
        return ProtectedAttribute.objects.get(key=key)
    record_config_change(actor=actor, before=None, after=snapshot(marked))
    return marked


@transaction.atomic
def unmark_protected_attribute(*, key: str, actor: AbstractBaseUser | None) -> bool:
    """Stop judging `key`; False when it was not marked (nothing changes, nothing audited)."""
    require_permission(actor, MARK_PERMISSION)
    marked = ProtectedAttribute.objects.select_for_update().filter(key=key).first()
    if marked is None:
        return False
    before = snapshot(marked)
    marked.delete()
    record_config_change(actor=actor, before=before, after=None)
    return True
