"""Forms of the integrations pages."""

from django import forms

from integrations.models import Delivery
from loyalty.outbox import EVENT_TYPES


class EndpointForm(forms.Form):
    url = forms.CharField(
        max_length=500, label="Receiver URL", widget=forms.URLInput(attrs={"size": 50})
    )
    description = forms.CharField(max_length=200, required=False)
    event_types = forms.MultipleChoiceField(
        choices=[(name, name) for name in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event type.",
    )


class DecisionExportForm(forms.Form):
    start = forms.DateField(label="From (inclusive)")
    end = forms.DateField(label="To (exclusive)")

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] >= data["end"]:
            raise forms.ValidationError("The end date must come after the start date.")
        return data


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Delivery.Status.choices]
    )
    endpoint = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class LineageExportForm(DecisionExportForm):
    file_type = forms.ChoiceField(
        label="File",
        choices=[("jsonl", "JSON Lines: the whole lineage"), ("csv", "CSV: the flat part")],
        initial="jsonl",
        required=False,
    )

    def clean_file_type(self) -> str:
        return self.cleaned_data.get("file_type") or "jsonl"
