"""The one place that appends to the audit trail."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from loyalty.models import AuditRecord


def record_audit(
    *,
    kind: str,
    actor: AbstractBaseUser | None,
    subject: str = "",
    details: dict[str, Any] | None = None,
) -> AuditRecord:
    """Append one audit record. Call it inside the transaction of the change it records."""
    actor_name = actor.get_username() if actor is not None and actor.is_authenticated else ""
    return AuditRecord.objects.create(
        kind=kind,
        actor=actor if actor_name else None,
        actor_name=actor_name,
        subject=subject,
        details=details or {},
    )
