"""The model's churn call: the one threshold that turns a probability into "churns"/"stays"
for labels (learning), decisions that leave the product (reviews) and evidence pages."""

CHURN_CALL_THRESHOLD = 0.5


def model_churn_call(score: float | None) -> bool | None:
    """The model's churn call for a probability: True (churns) at or above the threshold."""
    return None if score is None else score >= CHURN_CALL_THRESHOLD
