"""Forms of the review pages: a decision on the member page, and the what-if inputs."""

from django import forms

from predictions.ml.contracts import SEQUENCE_ITEM
from predictions.models import PredictionKind
from reviews.models import VERDICT_TREATMENTS, Review
from reviews.selectors import format_feature_value, override_action_choices, reason_choices

# The reason picked when the person does not choose one.
DEFAULT_REASONS = {"approve": "model-correct", "escalate": "needs-expert"}
WHAT_IF_FEATURES = 8


class DecisionForm(forms.Form):
    """One of approve / override / escalate, with a reason code and an optional comment."""

    verdict = forms.ChoiceField(
        choices=[(v, v.title()) for v in VERDICT_TREATMENTS], widget=forms.HiddenInput
    )
    reason = forms.ChoiceField(label="Reason")
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    churn_label = forms.ChoiceField(
        required=False,
        label="The right call",
        choices=[("", "Choose…"), ("churn", "Will churn"), ("stay", "Will stay")],
    )
    action = forms.ChoiceField(required=False, label="The right action")

    def __init__(self, *args, review: Review, verdict: str = "approve", **kwargs):
        super().__init__(*args, **kwargs)
        self.review = review
        chosen = self.data.get("verdict", verdict) if self.is_bound else verdict
        self.verdict_name = chosen if chosen in VERDICT_TREATMENTS else "approve"
        self.fields["verdict"].initial = self.verdict_name
        self.fields["reason"].choices = reason_choices(VERDICT_TREATMENTS[self.verdict_name])
        self.fields["reason"].initial = DEFAULT_REASONS.get(self.verdict_name)
        recommended = review.prediction.recommended_action
        self.fields["action"].choices = [("", "Choose…")] + override_action_choices(
            exclude=recommended.code if recommended else ""
        )
        self.auto_id = f"id_{self.verdict_name}_%s"

    def clean(self):
        data = super().clean()
        if data.get("verdict") == "override":
            if self.review.kind == PredictionKind.CHURN and not data.get("churn_label"):
                self.add_error("churn_label", "Say what the right call is: churn or stay.")
            if self.review.kind == PredictionKind.NEXT_ACTION and not data.get("action"):
                self.add_error("action", "Pick the action that fits better.")
        return data

    def proposal(self) -> dict | None:
        """What an escalating analyst would have done (optional), for the expert to see."""
        if self.cleaned_data.get("verdict") != "escalate":
            return None
        if self.review.kind == PredictionKind.CHURN and self.cleaned_data.get("churn_label"):
            return {
                "verdict": "override",
                "churn_label": self.cleaned_data["churn_label"] == "churn",
            }
        if self.review.kind == PredictionKind.NEXT_ACTION and self.cleaned_data.get("action"):
            return {"verdict": "override", "action": self.cleaned_data["action"]}
        return None

    def override_answer(self) -> dict:
        """The keyword arguments override_prediction needs for this review's kind."""
        if self.review.kind == PredictionKind.CHURN:
            return {"churn_label": self.cleaned_data["churn_label"] == "churn"}
        return {"action_code": self.cleaned_data["action"]}


def what_if_features(explanation: dict, feature_values: dict) -> list[dict]:
    """The top features of the explanation with the member's stored values, for the form.
    The ensemble's behavior-sequence item is not a value anyone can type: it is left out."""
    fields = []
    top = [item for item in (explanation or {}).get("top", []) if item["feature"] != SEQUENCE_ITEM]
    for item in top[:WHAT_IF_FEATURES]:
        code = item["feature"]
        value = feature_values.get(code, item.get("value"))
        fields.append(
            {
                "code": code,
                "name": item.get("name") or code,
                "value": "" if value is None else f"{float(value):g}",
                "shown": format_feature_value(code, value),
            }
        )
    return fields
