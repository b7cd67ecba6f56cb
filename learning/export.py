"""A member's labeled examples, for the member's export."""

from learning.models import LabeledExample


def export_labeled_examples(member_id: int) -> list[dict]:
    """The training rows made of the member's decisions and outcomes, oldest first."""
    examples = (
        LabeledExample.objects.filter(member_id=member_id)
        .select_related("action")
        .order_by("observed_at", "pk")
    )
    return [
        {
            "id": example.pk,
            "source": example.source,
            "kind": example.kind,
            "prediction": example.prediction_id,
            "decision": example.decision_id,
            "model_version": example.model_version_id,
            "cutoff": example.cutoff,
            "churn_label": example.churn_label,
            "action": example.action.code if example.action else None,
            "treatment": example.treatment,
            "agrees_with_model": example.agrees_with_model,
            "weight": example.weight,
            "excluded": example.excluded,
            "feature_values": example.feature_values,
            "observed_at": example.observed_at,
        }
        for example in examples
    ]
