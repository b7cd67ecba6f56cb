"""Write side of members: creating them, changing their data, and their consent to profiling."""

from collections.abc import Mapping
from datetime import date
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.exceptions import MemberErasedError, MemberExistsError, require_permission
from loyalty.models import AuditRecord, Member
from loyalty.services.audit import record_audit
from loyalty.services.erasure import (
    ERASED_EXTERNAL_ID_PREFIX,
    ERASED_ID_MESSAGE,
    erased_external_ids,
)
from loyalty.signals import consent_withdrawn

# What a create or an update may set. The external id is the key integrators address a member
# by, so it never changes; consent goes through set_consent so that every change is audited.
MEMBER_EDITABLE_FIELDS = (
    "joined_on",
    "tier",
    "points_balance",
    "consent_profiling",
    "age_band",
    "region",
)


@transaction.atomic
def create_member(
    *,
    external_id: str,
    actor: AbstractBaseUser | None,
    joined_on: date | None = None,
    tier: str = "",
    points_balance: int = 0,
    consent_profiling: bool = False,
    age_band: str = "",
    region: str = "",
) -> Member:
    """Add one member. A second member with the same external id is a conflict, not a copy,
    and so is the id of an erased member while its tombstone stands (MemberErasedError)."""
    require_permission(actor, "loyalty.add_member")
    if external_id.startswith(ERASED_EXTERNAL_ID_PREFIX):
        raise ValidationError(
            {
                "external_id": [
                    f"External ids starting with {ERASED_EXTERNAL_ID_PREFIX!r} are reserved "
                    "for erased members."
                ]
            }
        )
    if erased_external_ids([external_id]):
        raise MemberErasedError(ERASED_ID_MESSAGE, external_id=external_id)
    member = Member(
        external_id=external_id,
        joined_on=joined_on,
        tier=tier,
        points_balance=points_balance,
        consent_profiling=consent_profiling,
        consent_changed_at=timezone.now() if consent_profiling else None,
        age_band=age_band,
        region=region,
    )
    # Uniqueness is answered below as a conflict (409), not as a field error.
    member.full_clean(validate_unique=False)
    if Member.objects.filter(external_id=external_id).exists():
        raise MemberExistsError(
            f"A member with external id {external_id!r} already exists.", external_id=external_id
        )
    try:
        with transaction.atomic():
            member.save()
    except IntegrityError as error:  # a concurrent create of the same id won the race
        raise MemberExistsError(
            f"A member with external id {external_id!r} already exists.", external_id=external_id
        ) from error
    # Audit details name fields, never personal values: the trail is append-only and erasure
    # could not remove them from it.
    record_audit(
        kind=AuditRecord.Kind.MEMBER_CHANGE,
        actor=actor,
        subject=f"member:{member.pk}",
        details={"member_id": member.pk, "change": "create"},
    )
    if consent_profiling:
        _audit_consent(member=member, actor=actor)
    return member


@transaction.atomic
def update_member(
    *, member: Member, actor: AbstractBaseUser | None, data: Mapping[str, Any]
) -> Member:
    """Change some of a member's fields; unchanged values write nothing.

    A consent change is handed to set_consent (audited on its own). An erased member cannot be
    changed: MemberErasedError.
    """
    unknown = set(data) - set(MEMBER_EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable on a member: {', '.join(sorted(unknown))}")
    require_permission(actor, "loyalty.change_member")
    locked = _lock_writable(member)
    changed = sorted(
        field
        for field, value in data.items()
        if field != "consent_profiling" and getattr(locked, field) != value
    )
    if changed:
        for field in changed:
            setattr(locked, field, data[field])
        locked.full_clean()
        locked.save(update_fields=[*changed, "updated_at"])
        record_audit(
            kind=AuditRecord.Kind.MEMBER_CHANGE,
            actor=actor,
            subject=f"member:{locked.pk}",
            details={"member_id": locked.pk, "change": "update", "fields": changed},
        )
    if "consent_profiling" in data:
        locked = set_consent(member=locked, consent=data["consent_profiling"], actor=actor)
    return locked


@transaction.atomic
def set_consent(*, member: Member, consent: bool, actor: AbstractBaseUser | None) -> Member:
    """Grant or withdraw consent to profiling; the same value again writes nothing.

    Withdrawal takes effect at once for scoring, training and what-if, which read
    selectors.scorable_members(), and announces `consent_withdrawn` in this transaction (the
    member's undecided reviews leave the queues).
    """
    require_permission(actor, "loyalty.change_member")
    locked = _lock_writable(member)
    if locked.consent_profiling == consent:
        return locked
    locked.consent_profiling = consent
    locked.consent_changed_at = timezone.now()
    locked.save(update_fields=["consent_profiling", "consent_changed_at", "updated_at"])
    _audit_consent(member=locked, actor=actor)
    if not consent:
        consent_withdrawn.send(sender=Member, member_ids=[locked.pk])
    return locked


def _lock_writable(member: Member) -> Member:
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if locked.is_erased:
        raise MemberErasedError(
            "This member's personal data was erased; it can no longer be changed.",
            member_id=locked.pk,
        )
    return locked


def _audit_consent(*, member: Member, actor: AbstractBaseUser | None) -> None:
    record_audit(
        kind=AuditRecord.Kind.CONSENT_CHANGE,
        actor=actor,
        subject=f"member:{member.pk}",
        details={
            "member_id": member.pk,
            "consent_profiling": member.consent_profiling,
            "changed_at": member.consent_changed_at.isoformat(),
        },
    )
