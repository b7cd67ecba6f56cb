"""Login lockouts (django-axes) in the audit trail: a lockout as it happens, an unlock by an
admin, each naming the account by pk (never an unknown username, which may be a mistyped
password)."""

from collections.abc import Iterable

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit


def record_lockout(*, username: str | None, failures: int) -> AuditRecord:
    """Audit that `username` was locked out after `failures` failed logins."""
    return record_audit(
        kind=AuditRecord.Kind.LOGIN_LOCKOUT,
        actor=None,
        subject=_subject(username),
        details={
            **_account(username),
            "failures": failures,
            "cool_off_hours": _cool_off_hours(),
        },
    )


@transaction.atomic
def unlock_logins(*, usernames: Iterable[str], actor: AbstractBaseUser) -> list[AuditRecord]:
    """Clear the failed logins of each username, so that it may log in again at once; one
    audit record per username, with how many recorded attempts were cleared."""
    from axes.utils import reset

    records = []
    for username in sorted(set(usernames)):
        cleared = reset(username=username)
        records.append(
            record_audit(
                kind=AuditRecord.Kind.LOGIN_UNLOCK,
                actor=actor,
                subject=_subject(username),
                details={**_account(username), "attempts_cleared": cleared},
            )
        )
    return records


def _user_pk(username: str | None) -> int | None:
    if not username:
        return None
    User = get_user_model()
    return (
        User.objects.filter(**{User.USERNAME_FIELD: username}).values_list("pk", flat=True).first()
    )


def _subject(username: str | None) -> str:
    pk = _user_pk(username)
    return "" if pk is None else f"auth.user:{pk}"


def _account(username: str | None) -> dict:
    return {"known_account": _user_pk(username) is not None}


def _cool_off_hours() -> float | None:
    from axes.helpers import get_cool_off

    cool_off = get_cool_off()
    return None if cool_off is None else cool_off.total_seconds() / 3600
