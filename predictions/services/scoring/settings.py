"""The admin's choice of which model serves scoring, per kind: trees alone or the ensemble."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from loyalty.exceptions import DomainError, require_permission
from loyalty.models import AuditRecord
from loyalty.services.audit import record_audit
from predictions.models import PredictionKind, ScoringSetting
from predictions.services.registry import PROMOTE_PERMISSION

# Choosing the model that serves is part of choosing what is in production, like promotion.
CHANGE_PERMISSION = PROMOTE_PERMISSION
TREES = "trees"
ENSEMBLE = "ensemble"


class ScoringSettingError(DomainError):
    """A scoring setting that cannot apply (an unknown choice, or the ensemble for a kind
    that has no sequence model)."""


def scoring_model_setting(kind: str) -> str:
    """The setting's choice for `kind` (ScoringSetting.Choice), the default when unset."""
    chosen = ScoringSetting.objects.filter(kind=kind).values_list("model", flat=True).first()
    return chosen or ScoringSetting._meta.get_field("model").default


@transaction.atomic
def set_scoring_model(
    *, kind: str, model: str, actor: AbstractBaseUser | None, reason: str = ""
) -> ScoringSetting:
    """Set which model serves scoring of `kind`; audited. Setting the current value again
    changes nothing and records nothing. Applies to scoring runs started afterwards."""
    require_permission(actor, CHANGE_PERMISSION)
    if model not in ScoringSetting.Choice.values:
        raise ScoringSettingError(
            f"{model!r} is not a scoring model choice ({', '.join(ScoringSetting.Choice.values)}).",
            model=model,
        )
    if kind == PredictionKind.NEXT_ACTION and model == ScoringSetting.Choice.ENSEMBLE:
        raise ScoringSettingError(
            "The next-best-action model has no sequence model: it is served by its trees.",
            kind=kind,
        )
    setting, _ = ScoringSetting.objects.select_for_update().get_or_create(kind=kind)
    previous = setting.model
    if previous == model:
        return setting
    setting.model = model
    setting.updated_by = actor if actor is not None and actor.is_authenticated else None
    setting.full_clean()
    setting.save(update_fields=["model", "updated_by", "updated_at"])
    record_audit(
        kind=AuditRecord.Kind.POLICY_CHANGE,
        actor=actor,
        subject=f"scoring_setting:{kind}",
        details={"kind": kind, "from": previous, "to": model, "reason": reason},
    )
    return setting


def served_model(*, has_ensemble: bool, ensemble_won: bool, setting: str) -> str:
    """'ensemble' or 'trees': what scores a churn version under `setting` (ScoringSetting),
    given whether the version has an ensemble and whether it won the version's selection."""
    if not has_ensemble or setting == ScoringSetting.Choice.TREES:
        return TREES
    if setting == ScoringSetting.Choice.ENSEMBLE or ensemble_won:
        return ENSEMBLE
    return TREES
