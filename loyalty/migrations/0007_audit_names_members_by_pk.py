"""Audit records name members by primary key only, and older erasures get their tombstones.

1. An erasure record written before tombstones kept the bare SHA-256 of the former external
   id (`external_id_sha256`), which anyone can reverse for a guessable id by trying
   candidates. The tombstone digest is a keyed HMAC of that same SHA-256, so each such
   erasure gets its tombstone here (the erased id stays refused), and the record keeps the
   keyed digest (`tombstone_digest`) instead of the bare hash.
2. The CSV import wrote consent changes as `member:<external id>` with no `member_id`. They
   become `member:<pk>` with `member_id` in the details; an id that belongs to no member now
   is looked up through the tombstones (the member was erased), and when that fails too the
   subject becomes `member:unknown`.
3. External ids are dropped from every record's details.

Audit records are append-only to their model's save(); a migration's `update()` is the one
sanctioned change. Nothing here can be undone (the bare hashes and ids are gone): the reverse
is a no-op.
"""

import hashlib
import hmac

from django.conf import settings
from django.db import migrations
from django.db.models import Q

SUBJECT_PREFIX = "member:"
UNKNOWN_SUBJECT = "member:unknown"
# Detail keys that held an external id or its bare hash.
ID_KEYS = ("external_id", "member_external_id", "external_id_sha256")
MEMBER_LOOKUP_SLICE = 500


def keyed_digest(external_id_sha256: str) -> str:
    """Must equal loyalty.services.erasure.tombstone_digest_of_sha256 (a test checks that a
    tombstone written here refuses the id)."""
    key = settings.ERASURE_TOMBSTONE_KEY.encode("utf-8")
    return hmac.new(key, external_id_sha256.encode("ascii"), hashlib.sha256).hexdigest()


def forward(apps, schema_editor):
    AuditRecord = apps.get_model("loyalty", "AuditRecord")
    Member = apps.get_model("loyalty", "Member")
    Tombstone = apps.get_model("loyalty", "ErasureTombstone")
    _tombstones_from_erasure_records(AuditRecord, Member, Tombstone)
    _subjects_by_pk(AuditRecord, Member, Tombstone)
    _drop_ids_from_details(AuditRecord)


def _tombstones_from_erasure_records(AuditRecord, Member, Tombstone):
    # Oldest first: where one id was erased twice (possible before tombstones), the first
    # erasure's tombstone stands, as erase_member does.
    records = AuditRecord.objects.filter(
        kind="erasure", details__has_key="external_id_sha256"
    ).order_by("pk")
    for record in records:
        details = dict(record.details)
        digest = keyed_digest(details.pop("external_id_sha256"))
        member = Member.objects.filter(pk=details.get("member_id")).first()
        standing = Tombstone.objects.filter(digest=digest, lifted_at__isnull=True).exists()
        has_one = member is not None and Tombstone.objects.filter(member=member).exists()
        if not standing and not has_one:
            erased_at = member.erased_at if member is not None else None
            Tombstone.objects.create(
                digest=digest, member=member, erased_at=erased_at or record.occurred_at
            )
        details["tombstone_digest"] = digest
        AuditRecord.objects.filter(pk=record.pk).update(details=details)


def _subjects_by_pk(AuditRecord, Member, Tombstone):
    # Records that name a member by pk carry `member_id`; the others named an external id.
    legacy = list(
        AuditRecord.objects.filter(subject__startswith=SUBJECT_PREFIX)
        .exclude(details__has_key="member_id")
        .exclude(subject=UNKNOWN_SUBJECT)
        .values_list("pk", "subject", "details")
    )
    external_ids = sorted({subject[len(SUBJECT_PREFIX) :] for _, subject, _ in legacy})
    pks: dict[str, int] = {}
    for start in range(0, len(external_ids), MEMBER_LOOKUP_SLICE):
        pks.update(
            Member.objects.filter(
                external_id__in=external_ids[start : start + MEMBER_LOOKUP_SLICE]
            ).values_list("external_id", "pk")
        )
    for external_id in external_ids:
        if external_id in pks:
            continue
        digest = keyed_digest(hashlib.sha256(external_id.encode("utf-8")).hexdigest())
        erased = (
            Tombstone.objects.filter(digest=digest, member__isnull=False)
            .order_by("-erased_at", "-pk")
            .values_list("member_id", flat=True)
            .first()
        )
        if erased is not None:
            pks[external_id] = erased
    for pk, subject, details in legacy:
        member_id = pks.get(subject[len(SUBJECT_PREFIX) :])
        kept = {key: value for key, value in details.items() if key not in ID_KEYS}
        if member_id is None:
            AuditRecord.objects.filter(pk=pk).update(subject=UNKNOWN_SUBJECT, details=kept)
        else:
            AuditRecord.objects.filter(pk=pk).update(
                subject=f"{SUBJECT_PREFIX}{member_id}", details={"member_id": member_id, **kept}
            )


def _drop_ids_from_details(AuditRecord):
    naming = Q()
    for key in ID_KEYS:
        naming |= Q(details__has_key=key)
    for pk, details in AuditRecord.objects.filter(naming).values_list("pk", "details"):
        kept = {key: value for key, value in details.items() if key not in ID_KEYS}
        AuditRecord.objects.filter(pk=pk).update(details=kept)


class Migration(migrations.Migration):
    dependencies = [("loyalty", "0006_erasuretombstone")]

    operations = [migrations.RunPython(forward, migrations.RunPython.noop)]
