"""The blind answer form: the person's own churn call and, where the item recommends one, their
action, before the model's answer is shown (`reviews.services.blind`)."""

from django import forms

from reviews.forms.decision import CHURN_CALLS


class BlindAnswerForm(forms.Form):
    churn = forms.ChoiceField(
        label="Will this member churn?",
        choices=[("churn", "Will churn"), ("stay", "Will stay")],
        widget=forms.RadioSelect,
        error_messages={"required": "Say whether this member will churn or stay."},
    )
    action = forms.ChoiceField(label="What would you do?", required=False)

    def __init__(self, *args, actions: tuple[tuple[str, str], ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.asks_action = bool(actions)
        self.fields["action"].choices = [("", "Pick an action"), *actions]
        self.fields["action"].required = self.asks_action
        self.fields["action"].error_messages["required"] = "Pick the action you would take."

    def answer(self) -> dict:
        """The service's keyword arguments (`commit_blind_answer`)."""
        return {
            "churn_label": CHURN_CALLS[self.cleaned_data["churn"]],
            "action_code": self.cleaned_data["action"] or None,
        }
