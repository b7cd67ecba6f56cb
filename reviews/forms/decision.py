"""The decision form of the member page, and the what-if inputs."""

from django import forms

from predictions.calls import model_churn_call
from predictions.ml.contracts import SEQUENCE_ITEM
from predictions.models import PredictionKind
from reviews.models import VERDICT_TREATMENTS, Decision, Review
from reviews.selectors.catalogs import override_action_choices, reason_choices
from reviews.selectors.formatting import format_feature_value
from reviews.services.decisions import (
    ACTION,
    CHURN_CALL,
    EITHER,
    MISSING,
    NOT_TAKEN,
    answer_problems,
)

# The reason picked when the person does not choose one.
DEFAULT_REASONS = {"approve": "model-correct", "escalate": "needs-expert"}
WHAT_IF_FEATURES = 8
CHURN_CALLS = {"churn": True, "stay": False}
# The form's own names for the service's answer fields, and what it says about each problem
# (`decisions.answer_problems`).
FORM_FIELDS = {CHURN_CALL: "churn_label", ACTION: "action", EITHER: None}
OVERRIDE_ANSWER_ERRORS = {
    (CHURN_CALL, MISSING): "Say what the right call is: churn or stay.",
    (ACTION, NOT_TAKEN): "A churn call is overridden with the right call, not an action.",
    (ACTION, MISSING): "Pick the action that fits better.",
    (CHURN_CALL, NOT_TAKEN): "A next action is overridden with the right action, not a churn call.",
    (EITHER, MISSING): "Pick another action or correct the churn call.",
}


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
    override_contact_rules = forms.BooleanField(
        required=False,
        label="Send it anyway: override the contact rules (say why in the comment)",
    )

    def __init__(self, *args, review: Review, verdict: str = "approve", **kwargs):
        super().__init__(*args, **kwargs)
        self.review = review
        chosen = self.data.get("verdict", verdict) if self.is_bound else verdict
        self.verdict_name = chosen if chosen in VERDICT_TREATMENTS else "approve"
        self.fields["verdict"].initial = self.verdict_name
        reasons = reason_choices(VERDICT_TREATMENTS[self.verdict_name])
        if self.verdict_name == Decision.Verdict.OVERRIDE:
            # No reason is preselected for a change: the first one would mark it bad data,
            # which keeps it out of training, without the person having said so.
            reasons = [("", "Choose why…"), *reasons]
        self.fields["reason"].choices = reasons
        self.fields["reason"].initial = DEFAULT_REASONS.get(self.verdict_name)
        self.auto_id = f"id_{self.verdict_name}_%s"
        if review.is_case:
            self._start_from_the_model(review)
            return
        self.fields["action"].choices = [("", "Choose…")] + override_action_choices(
            exclude_id=review.recommended_action_id
        )

    def _start_from_the_model(self, review: Review) -> None:
        """A case's override opens on the model's answers, the recommendation among the
        actions: the person changes the action, the churn call, or both."""
        action = self.fields["action"]
        action.label = "What to do"
        action.choices = [("", "Choose…")] + override_action_choices()
        self.fields["churn_label"].label = "The churn call"
        if self.verdict_name != Decision.Verdict.OVERRIDE:
            return
        if review.recommended_action_id is not None:
            action.initial = review.recommended_action.code
        call = model_churn_call(review.prediction.score)
        if call is not None:
            self.fields["churn_label"].initial = "churn" if call else "stay"

    def clean(self):
        data = super().clean()
        if data.get("verdict") == Decision.Verdict.OVERRIDE:
            problems = answer_problems(
                kind=self.review.decision_kind,
                verdict=Decision.Verdict.OVERRIDE,
                **self._answers(),
            )
            for field, problem in problems.items():
                # A missing answer shows at its field; one the kind does not take (no page sends
                # it) above the form.
                self.add_error(
                    FORM_FIELDS[field] if problem == MISSING else None,
                    OVERRIDE_ANSWER_ERRORS[field, problem],
                )
        return data

    def proposal(self) -> dict | None:
        """What an escalating analyst would have done (optional), for the expert to see."""
        if self.cleaned_data.get("verdict") != "escalate":
            return None
        if self.review.is_case:
            answers = {key: value for key, value in self._answers().items() if value is not None}
            if not answers:
                return None
            proposal = {"verdict": "override"}
            if CHURN_CALL in answers:
                proposal["churn_label"] = answers[CHURN_CALL]
            if ACTION in answers:
                proposal["action"] = answers[ACTION]
            return proposal
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
        return self._answers()

    def _answers(self) -> dict:
        """The answers as the service takes them: a churn call as a boolean, an action code."""
        return {
            CHURN_CALL: CHURN_CALLS.get(self.cleaned_data.get("churn_label") or ""),
            ACTION: self.cleaned_data.get("action") or None,
        }


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
