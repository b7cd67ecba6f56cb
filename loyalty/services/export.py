"""Everything the product holds about one member, handed out as one JSON document.

This layer writes the member, its events, the audit records about it, its synthetic truth and
its erasure tombstone; each higher layer adds its own sections through
`register_export_section` (called from its AppConfig.ready), so that loyalty never imports
predictions or reviews. The document's shape is described in README.md ("Erasure and
export").
"""

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from loyalty.exceptions import MemberNotFoundError, require_permission
from loyalty.models import AuditRecord, ErasureTombstone, Event, Member, SyntheticTruth
from loyalty.services.audit import record_audit
from loyalty.services.erasure import ERASE_PERMISSION, member_id_for

# Bumped when a section changes shape, so that a reader of old files can tell.
EXPORT_FORMAT = 1

# A section: the member's pk in, JSON-ready data out (a list of rows, an object or None).
ExportSection = Callable[[int], Any]

_CORE_SECTIONS = (
    "format",
    "exported_at",
    "member",
    "events",
    "audit_records",
    "synthetic_truth",
    "erasure_tombstone",
)
_sections: dict[str, ExportSection] = {}

MEMBER_FIELDS = (
    "external_id",
    "joined_on",
    "tier",
    "points_balance",
    "consent_profiling",
    "consent_marketing",
    "consent_changed_at",
    "age_band",
    "region",
    "attributes",
    "erased_at",
    "created_at",
    "updated_at",
)
# Every column of the member's events but the member itself (the document is about them).
EVENT_FIELDS = tuple(
    field.attname for field in Event._meta.concrete_fields if field.name != "member"
)
# Staff identities (who acted) are the staff's personal data, not the member's: left out.
AUDIT_FIELDS = ("id", "occurred_at", "kind", "subject", "details")


def register_export_section(name: str, section: ExportSection) -> None:
    """Add a section to every export, under `name`. Registering the same function again is
    harmless (ready() may run more than once); another function under a taken name is a bug."""
    if name in _CORE_SECTIONS:
        raise ValueError(f"{name!r} is a section of the loyalty layer itself.")
    registered = _sections.get(name)
    if registered is not None and registered is not section:
        raise ValueError(f"Another function already exports the section {name!r}.")
    _sections[name] = section


def export_sections() -> tuple[str, ...]:
    """The names of the top-level keys of every export, in their order."""
    return (*_CORE_SECTIONS, *_sections)


@transaction.atomic
def export_member(*, member_id: int, actor: AbstractBaseUser | None) -> dict[str, Any]:
    """Everything held about the member, as JSON-ready data (ISO 8601 times, decimals as
    strings). An erased member's export holds what erasure kept. Audited (kind export)."""
    require_permission(actor, ERASE_PERMISSION)
    try:
        member = Member.objects.get(pk=member_id)
    except Member.DoesNotExist as error:
        raise MemberNotFoundError("No such member.", member_id=member_id) from error
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "exported_at": timezone.now(),
        "member": {"id": member.pk, **{field: getattr(member, field) for field in MEMBER_FIELDS}},
        "events": list(
            Event.objects.filter(member_id=member.pk)
            .order_by("occurred_at", "pk")
            .values(*EVENT_FIELDS)
        ),
        "audit_records": list(
            AuditRecord.objects.filter(subject=f"member:{member.pk}")
            .order_by("occurred_at", "pk")
            .values(*AUDIT_FIELDS)
        ),
        "synthetic_truth": SyntheticTruth.objects.filter(member_id=member.pk)
        .values("seed", "cutoff", "horizon_days", "churn_probability", "churned")
        .first(),
        "erasure_tombstone": ErasureTombstone.objects.filter(member_id=member.pk)
        .values("digest", "erased_at", "lifted_at", "lift_reason")
        .first(),
    }
    for name, section in _sections.items():
        document[name] = section(member.pk)
    # One pass through Django's encoder makes every value plain JSON (times, decimals).
    document = json.loads(json.dumps(document, cls=DjangoJSONEncoder))
    record_audit(
        kind=AuditRecord.Kind.EXPORT,
        actor=actor,
        subject=f"member:{member.pk}",
        details={
            "member_id": member.pk,
            "rows": {
                name: len(value) for name, value in document.items() if isinstance(value, list)
            },
        },
    )
    return document


def export_member_by_external_id(
    *, external_id: str, actor: AbstractBaseUser | None
) -> dict[str, Any]:
    """The export of the member known by this external id, now or before its erasure."""
    require_permission(actor, ERASE_PERMISSION)
    return export_member(member_id=member_id_for(external_id), actor=actor)
