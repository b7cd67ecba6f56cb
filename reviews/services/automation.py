"""Pausing and resuming auto-approval of a kind (routing reads the pause; the learning loop's
monitor pulls it, an admin or a promotion releases it)."""

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty import outbox, shared_cache
from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind
from predictions.services.registry import PROMOTE_PERMISSION
from reviews.models import AutomationPause
from reviews.selectors.pauses import PAUSES_KEY, open_pause
from reviews.services.notifications import notify, users_with_permission


def pause_auto_approval(
    *, kind: str, reason: str, report_id: int | None = None, link: str = ""
) -> AutomationPause:
    """Open a pause (or return the one that is open) and tell the admins; `link` is the page
    that explains the pause."""
    existing = open_pause(kind)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            pause = AutomationPause.objects.create(
                kind=kind, reason=reason, monitor_report_id=report_id
            )
            shared_cache.forget(PAUSES_KEY)
            record_audit(
                kind=AuditRecord.Kind.POLICY_CHANGE,
                actor=None,
                subject=f"automation:{kind}",
                details={"auto_approval": "paused", "reason": reason},
            )
            outbox.emit(
                outbox.AUTOMATION_PAUSED,
                {"kind": kind, "reason": reason, "paused_at": pause.paused_at.isoformat()},
            )
    except IntegrityError:
        return open_pause(kind)
    notify(
        recipients=users_with_permission(PROMOTE_PERMISSION),
        subject=f"Auto-approval of {PredictionKind(kind).label} paused",
        body=f"{reason}. Every new prediction goes to people until an admin resumes "
        "auto-approval or a new model version is promoted.",
        link=link,
    )
    return pause


def resume_auto_approval(
    *, kind: str, actor: AbstractBaseUser | None, reason: str, now: datetime | None = None
) -> AutomationPause | None:
    """Close the open pause of `kind`; None when there was none."""
    require_permission(actor, PROMOTE_PERMISSION)
    with transaction.atomic():
        pause = AutomationPause.objects.select_for_update().open().filter(kind=kind).first()
        if pause is None:
            return None
        pause.resumed_at = now or timezone.now()
        pause.resumed_by = actor if actor is not None and actor.is_authenticated else None
        pause.resume_reason = reason[:300]
        pause.save(update_fields=["resumed_at", "resumed_by", "resume_reason"])
        shared_cache.forget(PAUSES_KEY)
        record_audit(
            kind=AuditRecord.Kind.POLICY_CHANGE,
            actor=actor,
            subject=f"automation:{kind}",
            details={"auto_approval": "resumed", "reason": reason},
        )
        outbox.emit(
            outbox.AUTOMATION_RESUMED,
            {"kind": kind, "reason": reason, "resumed_at": pause.resumed_at.isoformat()},
        )
    return pause
