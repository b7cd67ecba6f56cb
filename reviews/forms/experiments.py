"""The policy-test forms: starting a test (the challenger's thresholds, checked as the policy
form checks them, the share and the end) and ending one (the adopted arm and why)."""

from dataclasses import fields, replace
from datetime import timedelta

from django import forms
from django.utils import timezone

from reviews.forms.custom_segments import malformed_custom_segments
from reviews.forms.policy import PolicyForm, override_form_data
from reviews.policy_settings import POLICY_FIELDS, PolicySettings, refused_override_keys
from reviews.selectors.experiments import ARM_LABELS, ARMS

# A test longer than a year is a setting, not a test.
MAX_TEST_DAYS = 365
MAX_TEST_DECISIONS = 1_000_000
DEFAULT_SHARE = 0.5
# The settings the policy form does not show: a challenger keeps them as they are.
NOT_IN_POLICY_FORM = tuple(
    name
    for name in POLICY_FIELDS
    if name not in PolicyForm.base_fields and name != "segment_overrides"
)


TEST_FIELDS = ("challenger_share", "days", "max_decisions", "hypothesis")


class PolicyTestForm(PolicyForm):
    """The challenger's settings (every field of the policy form, checked alike; what the form
    does not show, such as the blind share, stays the current version's), its share of members
    and the test's end: after `days`, after `max_decisions` person decisions, or both."""

    challenger_share = forms.FloatField(
        label="Share of members on the challenger",
        help_text="0.5: half of the members, by a stable hash of their id.",
        widget=forms.NumberInput(attrs={"step": "0.05", "min": "0.01", "max": "0.99"}),
    )
    days = forms.IntegerField(
        label="Collect for (days)",
        required=False,
        min_value=1,
        max_value=MAX_TEST_DAYS,
        widget=forms.NumberInput(attrs={"step": "1", "min": "1"}),
    )
    max_decisions = forms.IntegerField(
        label="Or until this many person decisions",
        required=False,
        min_value=1,
        max_value=MAX_TEST_DECISIONS,
        widget=forms.NumberInput(attrs={"step": "1", "min": "1"}),
    )
    hypothesis = forms.CharField(
        label="What the test is to show",
        widget=forms.Textarea(
            attrs={
                "rows": 2,
                "placeholder": "Auto-approving from 0.85 sends 20 % fewer items "
                "to people without more errors among auto-approvals.",
            }  # fmt: skip
        ),
        max_length=2000,
    )

    def __init__(self, *args, current: PolicySettings, **kwargs) -> None:
        super().__init__(*args, require_reason=False, **kwargs)
        self.current = current
        for name in ("reason", "based_on_version"):
            del self.fields[name]
        self.initial.setdefault("challenger_share", DEFAULT_SHARE)

    @classmethod
    def for_current(cls, current: PolicySettings, *, kind: str, data=None) -> "PolicyTestForm":
        """The form prefilled with the current version's thresholds."""
        initial = {name: getattr(current, name) for name in PolicySettings.__dataclass_fields__}
        return cls(data, initial=initial, kind=kind, current=current)

    def threshold_fields(self) -> list[forms.BoundField]:
        """The policy's own fields in the order the form has them, but the risk band, the
        tiers, the RFM and custom segments (the page lays those out apart) and the test's
        fields."""
        apart = {"human_risk_low", "human_risk_high", *TEST_FIELDS}
        return [
            self[name]
            for name in self.fields
            if name not in apart and not name.startswith(("tier_", "rfm_", "custom_"))
        ]

    def test_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in TEST_FIELDS]

    def clean_challenger_share(self) -> float:
        share = self.cleaned_data["challenger_share"]
        if not 0 < share < 1:
            raise forms.ValidationError("Must lie strictly between 0 and 1.")
        return share

    def clean(self) -> dict:
        data = super().clean()
        if data.get("days") is None and data.get("max_decisions") is None:
            if "days" not in self.errors and "max_decisions" not in self.errors:
                self.add_error("days", "Give the test an end: days, decisions, or both.")
        if not self.errors and self.policy_settings() == self.current:
            self.add_error(None, "These are the current settings: change what the test is to try.")
        return data

    def policy_settings(self) -> PolicySettings:
        """The challenger: the thresholds in the form, the rest as the current version has it."""
        kept = {name: getattr(self.current, name) for name in NOT_IN_POLICY_FORM}
        return replace(super().policy_settings(), **kept)

    def ends_at(self):
        days = self.cleaned_data.get("days")
        return timezone.now() + timedelta(days=days) if days else None


class EndPolicyTestForm(forms.Form):
    adopt = forms.ChoiceField(
        label="Adopt",
        choices=[(arm, ARM_LABELS[arm]) for arm in ARMS],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        label="Why this version",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Recorded with the new version."}),
        max_length=2000,
    )


def checked_policy_settings(
    settings: PolicySettings, *, kind: str
) -> tuple[PolicySettings | None, dict[str, list[str]]]:
    """`settings` as the policy form takes them (None and its errors when it refuses them): one
    home for the checks of a policy, whether it comes from the page or the API."""
    if refused := refused_override_keys(settings.segment_overrides):
        return None, {
            "segment_overrides": [
                f"Only tiers and RFM segments can key an override, not {', '.join(refused)}: a "
                "behavioral cluster's number changes meaning with every refit. A custom "
                'segment ("rule:<name>") states its own rule over tiers, RFM segments and '
                "member value."
            ]
        }
    if malformed := malformed_custom_segments(settings.segment_overrides):
        return None, {"segment_overrides": malformed}
    data = {
        field.name: "" if getattr(settings, field.name) is None else getattr(settings, field.name)
        for field in fields(settings)
        if field.name != "segment_overrides"
    }
    data.update(override_form_data(settings.segment_overrides))
    form = PolicyForm.for_policy(settings, kind=kind, data=data, require_reason=False)
    if not form.is_valid():
        return None, {name: list(errors) for name, errors in form.errors.items()}
    kept = {name: getattr(settings, name) for name in NOT_IN_POLICY_FORM}
    return replace(form.policy_settings(), **kept), {}
