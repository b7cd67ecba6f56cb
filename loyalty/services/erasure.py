"""Erasure of a member's personal data and events, provable afterwards without keeping the id."""

import hashlib
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from loyalty.exceptions import MemberNotFoundError, require_permission
from loyalty.models import AuditRecord, Event, Member
from loyalty.services.audit import record_audit

# An erased member keeps its row (aggregates stay consistent) under a placeholder id that says
# nothing about the person; create_member refuses ids with this prefix so none can collide.
ERASED_EXTERNAL_ID_PREFIX = "erased-"

# Sent inside the erasure's transaction with `member_id`, so that a higher layer (predictions,
# reviews) deletes what it derived from the member in the same commit, without this layer
# importing it.
member_erased = Signal()


@dataclass(frozen=True)
class ErasureResult:
    member_id: int
    external_id: str  # the placeholder now on the member row
    events_deleted: int
    former_external_id_sha256: str
    erased_at: datetime
    already_erased: bool
    audit_record_id: int | None


def external_id_digest(external_id: str) -> str:
    """SHA-256 of an external id: what the erasure record keeps in place of the id itself."""
    return hashlib.sha256(external_id.encode("utf-8")).hexdigest()


@transaction.atomic
def erase_member(*, member_id: int, actor: AbstractBaseUser | None) -> ErasureResult:
    """Delete the member's events and blank its personal fields, in one transaction.

    Appends one audit record (kind erasure) holding the actor, the member's pk, the number of
    events deleted and the SHA-256 of the former external id. Erasing again changes nothing,
    writes no second record and returns the first erasure's result with `already_erased`.
    """
    require_permission(actor, "loyalty.erase_member")
    try:
        member = Member.objects.select_for_update().get(pk=member_id)
    except Member.DoesNotExist as error:
        raise MemberNotFoundError("No such member.", member_id=member_id) from error
    if member.is_erased:
        return _earlier_result(member)

    digest = external_id_digest(member.external_id)
    _, deleted_per_model = Event.objects.filter(member_id=member.pk).delete()
    events_deleted = deleted_per_model.get(Event._meta.label, 0)
    member_erased.send(sender=Member, member_id=member.pk)

    member.external_id = f"{ERASED_EXTERNAL_ID_PREFIX}{member.pk}"
    member.joined_on = None
    member.tier = ""
    member.points_balance = 0
    member.consent_profiling = False
    # When someone consented is itself a fact about them.
    member.consent_changed_at = None
    member.age_band = ""
    member.region = ""
    member.erased_at = timezone.now()
    member.full_clean()
    member.save()

    record = record_audit(
        kind=AuditRecord.Kind.ERASURE,
        actor=actor,
        subject=f"member:{member.pk}",
        details={
            "member_id": member.pk,
            "events_deleted": events_deleted,
            "external_id_sha256": digest,
        },
    )
    return ErasureResult(
        member_id=member.pk,
        external_id=member.external_id,
        events_deleted=events_deleted,
        former_external_id_sha256=digest,
        erased_at=member.erased_at,
        already_erased=False,
        audit_record_id=record.pk,
    )


def erase_member_by_external_id(
    *, external_id: str, actor: AbstractBaseUser | None
) -> ErasureResult:
    """Erase the member known by this external id.

    Repeating the call with the same (now replaced) id finds the member again through the
    digest in its erasure record, so that a retried request answers like the first one.
    """
    require_permission(actor, "loyalty.erase_member")
    member_id = Member.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    if member_id is None:
        earlier = (
            AuditRecord.objects.filter(
                kind=AuditRecord.Kind.ERASURE,
                details__external_id_sha256=external_id_digest(external_id),
            )
            .order_by("pk")
            .first()
        )
        if earlier is None:
            raise MemberNotFoundError(
                f"No member has external id {external_id!r}.", external_id=external_id
            )
        member_id = earlier.details["member_id"]
    return erase_member(member_id=member_id, actor=actor)


def _earlier_result(member: Member) -> ErasureResult:
    record = (
        AuditRecord.objects.filter(kind=AuditRecord.Kind.ERASURE, subject=f"member:{member.pk}")
        .order_by("pk")
        .first()
    )
    details = record.details if record is not None else {}
    return ErasureResult(
        member_id=member.pk,
        external_id=member.external_id,
        events_deleted=details.get("events_deleted", 0),
        former_external_id_sha256=details.get("external_id_sha256", ""),
        erased_at=member.erased_at,
        already_erased=True,
        audit_record_id=record.pk if record is not None else None,
    )
