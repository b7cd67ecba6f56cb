"""Erasure of a member's personal data and events, and the tombstone that keeps its id out.

What erasure deletes, blanks and keeps is listed in README.md ("Erasure and export"). This
layer deletes the events and the synthetic truth, blanks the member row and writes the
tombstone; the layers above receive `member_erased` (`loyalty.signals`) and clean what they
derived, all in the same transaction.
"""

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from loyalty import outbox
from loyalty.exceptions import (
    DomainError,
    MemberNotFoundError,
    NotFoundError,
    require_permission,
)
from loyalty.models import AuditRecord, ErasureTombstone, Event, Member, SyntheticTruth
from loyalty.services.audit import record_audit
from loyalty.signals import member_erased

ERASE_PERMISSION = "loyalty.erase_member"

# An erased member keeps its row (aggregates stay consistent) under a placeholder id that says
# nothing about the person; create_member refuses ids with this prefix so none can collide.
ERASED_EXTERNAL_ID_PREFIX = "erased-"

# What a create with an erased member's former id is told.
ERASED_ID_MESSAGE = (
    "This member was erased; its external id is refused until an admin lifts the erasure's "
    "tombstone (manage.py lift_tombstone)."
)

# Lookups of many ids against the tombstones go in slices of this many digests: well under
# SQLite's limit on query parameters.
DIGEST_QUERY_SLICE = 500


@dataclass(frozen=True)
class ErasureResult:
    member_id: int
    external_id: str  # the placeholder now on the member row
    events_deleted: int
    tombstone_digest: str  # "" for an erasure older than tombstones whose record lost its hash
    erased_at: datetime
    already_erased: bool
    audit_record_id: int | None

    @property
    def former_external_id_sha256(self) -> str:
        """The name this value had before tombstones (the erase_member command prints it);
        it is the keyed tombstone digest now, never the bare SHA-256 of the id."""
        return self.tombstone_digest


def tombstone_digest(external_id: str) -> str:
    """The keyed digest that stands for an erased external id (ErasureTombstone.digest)."""
    return tombstone_digest_of_sha256(hashlib.sha256(external_id.encode("utf-8")).hexdigest())


def tombstone_digest_of_sha256(external_id_sha256: str) -> str:
    """HMAC-SHA256 with ERASURE_TOMBSTONE_KEY of an id's SHA-256 (hex): the key makes trying
    candidate ids useless to anyone who has the digests but not the key."""
    key = settings.ERASURE_TOMBSTONE_KEY.encode("utf-8")
    return hmac.new(key, external_id_sha256.encode("ascii"), hashlib.sha256).hexdigest()


def erased_external_ids(external_ids: Iterable[str]) -> set[str]:
    """Those of these external ids that a standing tombstone refuses."""
    digests = {tombstone_digest(external_id): external_id for external_id in set(external_ids)}
    if not digests:
        return set()
    keys = list(digests)
    found: set[str] = set()
    for start in range(0, len(keys), DIGEST_QUERY_SLICE):
        found.update(
            ErasureTombstone.objects.standing()
            .filter(digest__in=keys[start : start + DIGEST_QUERY_SLICE])
            .values_list("digest", flat=True)
        )
    return {digests[digest] for digest in found}


class StandingTombstones:
    """The standing tombstones, read once: an import asks about every id of every chunk
    without a query (there are as many digests as erasures, about 100 bytes each)."""

    def __init__(self) -> None:
        self._digests = frozenset(
            ErasureTombstone.objects.standing().values_list("digest", flat=True)
        )

    def __bool__(self) -> bool:
        return bool(self._digests)

    def refuses(self, external_id: str) -> bool:
        return bool(self._digests) and tombstone_digest(external_id) in self._digests


def member_id_for(external_id: str) -> int:
    """The pk of the member known by this external id, now or before its erasure (through its
    tombstone, lifted or not). MemberNotFoundError when there is none."""
    member_id = Member.objects.filter(external_id=external_id).values_list("pk", flat=True).first()
    if member_id is not None:
        return member_id
    member_id = (
        ErasureTombstone.objects.filter(digest=tombstone_digest(external_id), member__isnull=False)
        .order_by("-erased_at", "-pk")
        .values_list("member_id", flat=True)
        .first()
    )
    if member_id is None:
        raise MemberNotFoundError(
            f"No member has external id {external_id!r}.", external_id=external_id
        )
    return member_id


@transaction.atomic
def erase_member(*, member_id: int, actor: AbstractBaseUser | None) -> ErasureResult:
    """Delete the member's events, blank its personal fields and write its tombstone, in one
    transaction with everything the higher layers do on `member_erased`.

    Appends one audit record (kind erasure) holding the actor, the member's pk, the number of
    events deleted and the tombstone digest. Erasing again changes nothing, writes no second
    record and returns the first erasure's result with `already_erased`.
    """
    require_permission(actor, ERASE_PERMISSION)
    try:
        member = Member.objects.select_for_update().get(pk=member_id)
    except Member.DoesNotExist as error:
        raise MemberNotFoundError("No such member.", member_id=member_id) from error
    if member.is_erased:
        return _earlier_result(member)

    former_external_id = member.external_id
    digest = tombstone_digest(former_external_id)
    _, deleted_per_model = Event.objects.filter(member_id=member.pk).delete()
    events_deleted = deleted_per_model.get(Event._meta.label, 0)
    SyntheticTruth.objects.filter(member_id=member.pk).delete()
    member_erased.send(sender=Member, member_id=member.pk, external_id=former_external_id)

    member.external_id = f"{ERASED_EXTERNAL_ID_PREFIX}{member.pk}"
    member.joined_on = None
    member.tier = ""
    member.points_balance = 0
    member.consent_profiling = False
    member.consent_marketing = False
    # When someone consented is itself a fact about them.
    member.consent_changed_at = None
    member.age_band = ""
    member.region = ""
    member.attributes = {}
    member.erased_at = timezone.now()
    member.inputs_changed_at = member.erased_at
    member.full_clean()
    member.save()
    # Downstream systems know the member by the former id: the event names it (until it is
    # delivered, `integrations` redacts it then); every earlier event is redacted now.
    outbox.redact_member(member.pk, placeholder=member.external_id)
    outbox.emit(
        outbox.MEMBER_ERASED,
        {
            outbox.MEMBER_KEY: former_external_id,
            "erased_at": member.erased_at.isoformat(),
        },
        member_id=member.pk,
    )
    # One standing tombstone per id: a second member under the same id (possible only before
    # tombstones existed) is already refused by the first one's.
    if not ErasureTombstone.objects.standing().filter(digest=digest).exists():
        ErasureTombstone.objects.create(digest=digest, member=member, erased_at=member.erased_at)

    record = record_audit(
        kind=AuditRecord.Kind.ERASURE,
        actor=actor,
        subject=f"member:{member.pk}",
        details={
            "member_id": member.pk,
            "events_deleted": events_deleted,
            "tombstone_digest": digest,
        },
    )
    return ErasureResult(
        member_id=member.pk,
        external_id=member.external_id,
        events_deleted=events_deleted,
        tombstone_digest=digest,
        erased_at=member.erased_at,
        already_erased=False,
        audit_record_id=record.pk,
    )


def erase_member_by_external_id(
    *, external_id: str, actor: AbstractBaseUser | None
) -> ErasureResult:
    """Erase the member known by this external id.

    Repeating the call with the same (now replaced) id finds the member again through its
    tombstone, so that a retried request answers like the first one.
    """
    require_permission(actor, ERASE_PERMISSION)
    return erase_member(member_id=member_id_for(external_id), actor=actor)


@transaction.atomic
def lift_tombstone(
    *, external_id: str, actor: AbstractBaseUser | None, reason: str
) -> ErasureTombstone:
    """Let an erased external id come back (a person who rejoins under the same id).

    The id comes back as a new member: nothing erased returns. Lifting again changes nothing
    and returns the lifted tombstone. NotFoundError when the id was never erased.
    """
    require_permission(actor, ERASE_PERMISSION)
    reason = _required_reason(reason)
    tombstones = ErasureTombstone.objects.select_for_update().filter(
        digest=tombstone_digest(external_id)
    )
    standing = tombstones.standing().first()
    if standing is not None:
        _lift(standing, actor=actor, reason=reason)
        return standing
    lifted = tombstones.order_by("-lifted_at", "-pk").first()
    if lifted is None:
        raise NotFoundError("No erased member had this external id.")
    return lifted


@transaction.atomic
def lift_tombstones(
    *, tombstone_ids: Iterable[int], actor: AbstractBaseUser | None, reason: str
) -> int:
    """Lift these tombstones (the admin action: an admin sees digests, never ids). Returns how
    many were standing; lifted ones are left as they are."""
    require_permission(actor, ERASE_PERMISSION)
    reason = _required_reason(reason)
    standing = (
        ErasureTombstone.objects.select_for_update()
        .standing()
        .filter(pk__in=list(tombstone_ids))
        .order_by("pk")
    )
    lifted = 0
    for tombstone in standing:
        _lift(tombstone, actor=actor, reason=reason)
        lifted += 1
    return lifted


def _required_reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise DomainError("Say why the erased id may come back: a reason is required.")
    return reason


def _lift(tombstone: ErasureTombstone, *, actor: AbstractBaseUser | None, reason: str) -> None:
    tombstone.lifted_at = timezone.now()
    tombstone.lifted_by = actor if actor is not None and actor.is_authenticated else None
    tombstone.lift_reason = reason
    tombstone.full_clean()
    tombstone.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
    subject = (
        f"member:{tombstone.member_id}"
        if tombstone.member_id is not None
        else f"tombstone:{tombstone.pk}"
    )
    record_audit(
        kind=AuditRecord.Kind.TOMBSTONE_LIFT,
        actor=actor,
        subject=subject,
        details={
            "tombstone_id": tombstone.pk,
            "member_id": tombstone.member_id,
            "reason": reason,
        },
    )


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
        tombstone_digest=details.get("tombstone_digest", ""),
        erased_at=member.erased_at,
        already_erased=True,
        audit_record_id=record.pk if record is not None else None,
    )
