"""The model registry: storing trained versions, promotion and rollback (one transaction each)."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from loyalty import outbox
from loyalty.exceptions import require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.exceptions import NothingToRollBackToError
from predictions.models import ModelVersion, PredictionKind
from predictions.signals import model_version_activated

PROMOTE_PERMISSION = "predictions.promote_modelversion"


@transaction.atomic
def promote_model_version(
    *, version_id: int, actor: AbstractBaseUser | None, rescore: bool = False
) -> ModelVersion:
    """Make a version the active one of its kind; the version active before is retired.

    Promoting the version that is already active returns it unchanged. `rescore`: once this
    commits, score every member with the new version (routing then gives the new predictions
    their reviews, and replaces the undecided reviews of older predictions).
    """
    require_permission(actor, PROMOTE_PERMISSION)
    version = ModelVersion.objects.select_for_update().get(pk=version_id)
    if version.status == ModelVersion.Status.ACTIVE:
        return version
    previous = _lock_active(kind=version.kind)
    if previous is not None:
        previous.status = ModelVersion.Status.RETIRED
        previous.save(update_fields=["status"])
    version.status = ModelVersion.Status.ACTIVE
    version.promoted_at = timezone.now()
    version.promoted_by = actor if actor is not None and actor.is_authenticated else None
    version.save(update_fields=["status", "promoted_at", "promoted_by"])
    record_audit(
        kind=AuditRecord.Kind.PROMOTION,
        actor=actor,
        subject=f"model_version:{version.pk}",
        details={
            "kind": version.kind,
            "promoted": version.pk,
            "retired": previous.pk if previous else None,
        },
    )
    model_version_activated.send(
        sender=ModelVersion, kind=version.kind, model_version_id=version.pk
    )
    _emit_promotion(version, retired=previous, rollback=False)
    if rescore:
        _rescore_after_commit(version.kind)
    return version


@transaction.atomic
def rollback_model_version(
    *, kind: str, actor: AbstractBaseUser | None, rescore: bool = False
) -> ModelVersion:
    """Retire the active version of a kind and re-activate the one that was active before it
    (`rescore` as for promotion)."""
    require_permission(actor, PROMOTE_PERMISSION)
    current = _lock_active(kind=kind)
    earlier = (
        ModelVersion.objects.select_for_update()
        .filter(kind=kind, status=ModelVersion.Status.RETIRED, promoted_at__isnull=False)
        .exclude(pk=current.pk if current else None)
        .order_by("-promoted_at", "-pk")
        .first()
    )
    if earlier is None:
        raise NothingToRollBackToError(
            f"No earlier active {kind} version to roll back to.", kind=kind
        )
    if current is not None:
        current.status = ModelVersion.Status.RETIRED
        current.save(update_fields=["status"])
    earlier.status = ModelVersion.Status.ACTIVE
    earlier.save(update_fields=["status"])
    record_audit(
        kind=AuditRecord.Kind.ROLLBACK,
        actor=actor,
        subject=f"model_version:{earlier.pk}",
        details={"kind": kind, "restored": earlier.pk, "retired": current.pk if current else None},
    )
    model_version_activated.send(sender=ModelVersion, kind=kind, model_version_id=earlier.pk)
    _emit_promotion(earlier, retired=current, rollback=True)
    if rescore:
        _rescore_after_commit(kind)
    return earlier


def _emit_promotion(version: ModelVersion, *, retired: ModelVersion | None, rollback: bool):
    """Announce the version now serving its kind (`model.promoted`; a rollback is one too)."""
    outbox.emit(
        outbox.MODEL_PROMOTED,
        {
            "model_version_id": version.pk,
            "model_version": str(version),
            "kind": version.kind,
            "retired_model_version_id": retired.pk if retired else None,
            "rollback": rollback,
        },
    )


def _rescore_after_commit(kind: str) -> None:
    """Score again with the new version once it is committed. While both kinds are active,
    their reviews are cases of one cycle: both kinds are scored again, at one cutoff."""
    from predictions.services.scoring.runs import start_cycle, start_scoring_run

    if both_kinds_active():
        transaction.on_commit(start_cycle)
    else:
        transaction.on_commit(lambda: start_scoring_run(kind=kind))


def both_kinds_active() -> bool:
    """Whether every kind has an active version (routing then makes cases of both)."""
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE)
    return set(active.values_list("kind", flat=True)) >= set(PredictionKind.values)


def _lock_active(*, kind: str) -> ModelVersion | None:
    return ModelVersion.objects.select_for_update().filter(kind=kind, status="active").first()
