"""Write side of members: creating them, changing their data, and their consents (to profiling
and to marketing)."""

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty import outbox
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
# by, so it never changes; consents go through set_consent so that every change is audited.
MEMBER_EDITABLE_FIELDS = (
    "joined_on",
    "tier",
    "points_balance",
    "consent_profiling",
    "consent_marketing",
    "age_band",
    "region",
    "attributes",
)
# The member field that holds each consent.
CONSENT_FIELDS: dict[Member.Consent, str] = {
    consent: f"consent_{consent.value}" for consent in Member.Consent
}


@transaction.atomic
def create_member(
    *,
    external_id: str,
    actor: AbstractBaseUser | None,
    joined_on: date | None = None,
    tier: str = "",
    points_balance: int = 0,
    consent_profiling: bool = False,
    consent_marketing: bool = False,
    age_band: str = "",
    region: str = "",
    attributes: dict[str, str] | None = None,
) -> Member:
    """Add one member. A second member with the same external id is a conflict, not a copy,
    and so is the id of an erased member while its tombstone stands (MemberErasedError).
    Each consent given is audited like a later change."""
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
    given = {
        Member.Consent.PROFILING: consent_profiling,
        Member.Consent.MARKETING: consent_marketing,
    }
    member = Member(
        external_id=external_id,
        joined_on=joined_on,
        tier=tier,
        points_balance=points_balance,
        consent_profiling=consent_profiling,
        consent_marketing=consent_marketing,
        consent_changed_at=timezone.now() if any(given.values()) else None,
        age_band=age_band,
        region=region,
        attributes=attributes or {},
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
    for consent, granted in given.items():
        if granted:
            _audit_consent(member=member, consent=consent, actor=actor)
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
    consent_fields = set(CONSENT_FIELDS.values())
    changed = sorted(
        field
        for field, value in data.items()
        if field not in consent_fields and getattr(locked, field) != value
    )
    if changed:
        for field in changed:
            setattr(locked, field, data[field])
        locked.inputs_changed_at = timezone.now()  # a tier, say, is a feature
        locked.full_clean()
        locked.save(update_fields=[*changed, "inputs_changed_at", "updated_at"])
        record_audit(
            kind=AuditRecord.Kind.MEMBER_CHANGE,
            actor=actor,
            subject=f"member:{locked.pk}",
            details={"member_id": locked.pk, "change": "update", "fields": changed},
        )
    for consent, field in CONSENT_FIELDS.items():
        if field in data:
            locked = set_consent(member=locked, consent=data[field], actor=actor, kind=consent)
    return locked


@transaction.atomic
def set_consent(
    *,
    member: Member,
    consent: bool,
    actor: AbstractBaseUser | None,
    kind: Member.Consent = Member.Consent.PROFILING,
) -> Member:
    """Grant or withdraw one consent (`kind`: to profiling unless told otherwise); the same
    value again writes nothing. Either change sets `consent_changed_at` and is audited with the
    consent it names.

    Withdrawing consent to profiling takes effect at once for scoring, training and what-if,
    which read selectors.scorable_members(), and announces `consent_withdrawn` in this
    transaction (the member's undecided reviews leave the queues; its receiver emits
    `member.consent_withdrawn`). Withdrawing consent to marketing stops contact, not profiling:
    its reviews stay, and `member.consent_withdrawn` is emitted here, in this transaction.
    """
    require_permission(actor, "loyalty.change_member")
    kind = Member.Consent(kind)
    field = CONSENT_FIELDS[kind]
    locked = _lock_writable(member)
    if getattr(locked, field) == consent:
        return locked
    setattr(locked, field, consent)
    locked.consent_changed_at = locked.inputs_changed_at = timezone.now()
    locked.save(update_fields=[field, "consent_changed_at", "inputs_changed_at", "updated_at"])
    _audit_consent(member=locked, consent=kind, actor=actor)
    if not consent:
        announce_consent_withdrawal(member_ids=[locked.pk], consent=kind)
    return locked


def announce_consent_withdrawal(*, member_ids: list[int], consent: Member.Consent) -> None:
    """Tell the other layers and systems, in the caller's transaction, that these members
    withdrew `consent`: for profiling the `consent_withdrawn` signal (reviews leave the queues;
    its receiver in loyalty.receivers emits the event); for marketing only the outbox event."""
    if consent == Member.Consent.PROFILING:
        consent_withdrawn.send(sender=Member, member_ids=member_ids)
    else:
        emit_consent_withdrawn(member_ids=member_ids, consent=consent)


def emit_consent_withdrawn(*, member_ids: list[int], consent: Member.Consent) -> None:
    """One `member.consent_withdrawn` event per member, naming the consent, in the caller's
    transaction."""
    members = Member.objects.filter(pk__in=member_ids).values_list(
        "pk", "external_id", "consent_changed_at"
    )
    outbox.emit_many(
        outbox.Emission(
            type=outbox.MEMBER_CONSENT_WITHDRAWN,
            data={
                outbox.MEMBER_KEY: external_id,
                "consent": Member.Consent(consent).value,
                "withdrawn_at": changed_at.isoformat() if changed_at else None,
            },
            member_id=pk,
        )
        for pk, external_id, changed_at in members.order_by("pk")
    )


def _lock_writable(member: Member) -> Member:
    locked = Member.objects.select_for_update().get(pk=member.pk)
    if locked.is_erased:
        raise MemberErasedError(
            "This member's personal data was erased; it can no longer be changed.",
            member_id=locked.pk,
        )
    return locked


def _audit_consent(
    *, member: Member, consent: Member.Consent, actor: AbstractBaseUser | None
) -> None:
    field = CONSENT_FIELDS[Member.Consent(consent)]
    record_audit(
        kind=AuditRecord.Kind.CONSENT_CHANGE,
        actor=actor,
        subject=f"member:{member.pk}",
        details=consent_audit_details(
            member_id=member.pk,
            consent=consent,
            granted=getattr(member, field),
            changed_at=member.consent_changed_at,
        ),
    )


def consent_audit_details(
    *, member_id: int, consent: Member.Consent, granted: bool, changed_at: datetime
) -> dict[str, Any]:
    """What a consent change's audit record says, from any path (service, import)."""
    consent = Member.Consent(consent)
    return {
        "member_id": member_id,
        "consent": consent.value,
        CONSENT_FIELDS[consent]: bool(granted),
        "changed_at": changed_at.isoformat(),
    }
