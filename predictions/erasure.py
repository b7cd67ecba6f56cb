"""A member's predictions under erasure and export: what the model saw about the member is
blanked when the member is erased, and every prediction goes into the member's export.

Erasure keeps what the model answered (score, probabilities, interval, label set, recommended
action, confidence) with its kind, version, cutoff and time: aggregate figures (calibration,
coverage, monitoring) stay whole, and nothing in them names or describes the person once the
member row is blank. What the model saw goes: the feature values and the row the model scored
(`model_input`), the SHAP explanation (its contributions are the features' effects, and the
ensemble's marks the member's events) and the member value (the member's spend). Predictions
that no review holds yet are deleted by the reviews layer, whose routing would otherwise queue
them.
"""

from django.dispatch import receiver

from loyalty.signals import member_erased
from predictions.models import Prediction


@receiver(member_erased, dispatch_uid="predictions.blank_erased_member_predictions")
def blank_erased_member_predictions(sender, *, member_id: int, **kwargs) -> None:
    """Runs in the erasure's transaction."""
    Prediction.objects.filter(member_id=member_id).update(
        feature_values=[],
        model_input=None,
        explanation={},
        member_value=None,
        rfm_segment="",
        behavior_cluster=None,
    )


def export_predictions(member_id: int) -> list[dict]:
    """The member's predictions, oldest cutoff first, with the features the model saw by
    name (`features_seen`)."""
    predictions = (
        Prediction.objects.filter(member_id=member_id)
        .select_related("model_version", "recommended_action")
        .order_by("cutoff", "kind", "pk")
    )
    return [
        {
            "id": prediction.pk,
            "kind": prediction.kind,
            "model_version": prediction.model_version_id,
            "cutoff": prediction.cutoff,
            "scored_at": prediction.scored_at,
            "score": prediction.score,
            "probabilities": prediction.probabilities,
            "interval_low": prediction.interval_low,
            "interval_high": prediction.interval_high,
            "label_set": prediction.label_set,
            "recommended_action": (
                prediction.recommended_action.code if prediction.recommended_action else None
            ),
            "confidence": prediction.confidence,
            "explanation": prediction.explanation,
            "features_seen": prediction.features_seen,
            "member_value": prediction.member_value,
        }
        for prediction in predictions
    ]
