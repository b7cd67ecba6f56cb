"""The learning pages' forms: marking a member attribute as protected (the Fairness page)."""

from django import forms

from learning.fairness_attributes import RESERVED_KEYS
from learning.models import ProtectedAttribute, validate_markable_key
from loyalty.member_attributes import validate_attribute_key


class ProtectedAttributeForm(forms.Form):
    """One of the attribute keys that occur among the members and are not marked yet, and how
    the reports should name it."""

    key = forms.ChoiceField(
        label="Attribute", validators=[validate_attribute_key, validate_markable_key]
    )
    label = forms.CharField(
        label="Shown as",
        required=False,
        max_length=ProtectedAttribute._meta.get_field("label").max_length,
        help_text="Blank: the key, in words.",
    )

    def __init__(self, *args, counts: dict[str, int], marked: set[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].choices = [
            (key, f"{key} ({count} member{'s' if count != 1 else ''})")
            for key, count in counts.items()
            if key not in marked and key not in RESERVED_KEYS
        ]
