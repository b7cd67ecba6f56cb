"""The escalation-policy form: every PolicySettings field, per-tier, per-RFM-segment and
custom-segment overrides and the why."""

from django import forms
from django.conf import settings as django_settings

from predictions.ml.segments import RFM_SEGMENTS
from predictions.models import PredictionKind
from reviews.custom_segments import is_custom_segment_key
from reviews.forms.custom_segments import CustomSegmentsMixin, custom_form_data, threshold_error
from reviews.models import EscalationPolicy
from reviews.policy_settings import (
    RFM_KEY_PREFIX,
    TIER_KEY_PREFIX,
    PolicySettings,
    rfm_override_key,
)

SHARE = {"min_value": 0.0, "max_value": 1.0}
RFM_SEGMENT_LABELS = {info.code: info.name for info in RFM_SEGMENTS}


def _number(label: str, help_text: str = "", *, required: bool = True, step: str = "0.01"):
    return forms.FloatField(
        label=label,
        help_text=help_text,
        required=required,
        widget=forms.NumberInput(attrs={"step": step, "min": "0", "max": "1"}),
        **SHARE,
    )


# Far above any team's day; a typo with three zeros too many is refused, not obeyed.
MAX_DAILY_CAPACITY = 1_000_000
CAPACITY_ERRORS = {
    "invalid": "Enter a whole number of items, at least 1, or leave it empty for no limit.",
    "min_value": "A capacity is at least 1 item a day; leave it empty for no limit.",
    "max_value": f"At most {MAX_DAILY_CAPACITY:,} items a day; leave it empty for no limit.",
}


def _capacity(label: str, who: str) -> forms.IntegerField:
    return forms.IntegerField(
        label=label,
        help_text=f"What {who} can decide in a day: the queue holds at most this many; the "
        "lowest-priority overflow waits in a backlog. Empty: no limit.",
        required=False,
        min_value=1,
        max_value=MAX_DAILY_CAPACITY,
        error_messages=CAPACITY_ERRORS,
        widget=forms.NumberInput(attrs={"step": "1", "min": "1"}),
    )


def override_field_prefix(key: str) -> str:
    """The form fields' prefix of a `segment_overrides` key: `rfm_<segment>` for an RFM
    segment's, `tier_<tier>` for a tier's (plain or "tier:" key)."""
    if key.startswith(RFM_KEY_PREFIX):
        return f"rfm_{key.removeprefix(RFM_KEY_PREFIX)}"
    return f"tier_{key.removeprefix(TIER_KEY_PREFIX)}"


def override_form_data(overrides: dict | None) -> dict[str, object]:
    """Form data of a policy's overrides (the API's and the policy test's way in)."""
    data: dict[str, object] = custom_form_data(overrides)
    for key, override in (overrides or {}).items():
        if is_custom_segment_key(key):
            continue
        prefix = override_field_prefix(key)
        data[f"{prefix}_auto"] = override.get("auto_approve_confidence", "")
        data[f"{prefix}_expert"] = override.get("expert_confidence", "")
    return data


class PolicyForm(CustomSegmentsMixin, forms.Form):
    """Validates a whole policy: expert ≤ auto-approve (per tier, RFM segment and custom
    segment too), shares in [0, 1], the value quantile strictly inside (0, 1), a risk band with
    low ≤ high, capacities of at least one item a day or empty, custom segments with a name, a
    rule of at least one condition over known tiers and RFM segments, min < max spend and at
    least one threshold (`reviews.forms.custom_segments`). `require_reason=False` is the
    simulation's use: the same checks without the why."""

    auto_approve_confidence = _number(
        "Auto-approve at confidence ≥", "Predictions this sure are approved without a person."
    )
    expert_confidence = _number(
        "Expert below confidence", "Predictions less sure than this go straight to an expert."
    )
    expert_value_quantile = forms.FloatField(
        label="Expert for member value above quantile",
        help_text="0.95: the top 5 % of members by spend always get an expert.",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "max": "0.99"}),
    )
    human_risk_low = _number("Risk band from", "Churn risk in this band always needs a person.")
    human_risk_high = _number("Risk band to", required=False)
    audit_sample_rate = _number(
        "Audit sample",
        "Share of would-be auto-approvals still sent to an analyst (0.02 = 2 %).",
        step="0.005",
    )
    blind_share = _number(
        "Blind review",
        "Share of the items sent to people that open blind: the model's answer stays hidden "
        "until the reviewer commits their own (0.05 = 5 %; 0: none).",
        step="0.01",
    )
    sla_hours = forms.IntegerField(
        label="Escalate analyst items after (hours)", min_value=1, max_value=24 * 30
    )
    ranking = forms.ChoiceField(
        label="Recommend actions",
        # Short labels: the field sits in a narrow column; the help text gives the formula.
        choices=[
            (EscalationPolicy.Ranking.PROPENSITY, "By propensity (the likeliest action)"),
            (EscalationPolicy.Ranking.EXPECTED_VALUE, "By expected value"),
        ],
        help_text="Expected value weighs each action's retention-gain prior and cost (set in "
        "the action catalog) with the member's churn risk and value; no action wins when "
        "nothing is worth more than it costs.",
    )
    analyst_daily_capacity = _capacity("Analyst queue holds (items a day)", "analysts")
    expert_daily_capacity = _capacity("Expert queue holds (items a day)", "experts")
    # The version the page showed: saving over a version someone else saved since is a conflict.
    based_on_version = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)
    reason = forms.CharField(
        label="Why this change",
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Recorded with the new version."}),
        max_length=2000,
    )

    def __init__(self, *args, kind: str, require_reason: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["reason"].required = require_reason
        self.fields["human_risk_low"].required = False
        if kind != PredictionKind.CHURN:
            # Next-action reviews carry no churn risk: no band applies to them.
            del self.fields["human_risk_low"]
            del self.fields["human_risk_high"]
        else:
            del self.fields["ranking"]  # a churn review recommends no action
        overrides = (self.initial.get("segment_overrides") or {}) if self.initial else {}
        ladder = list(django_settings.LOYALTY_TIER_LADDER)
        stored_tiers = [
            key.removeprefix(TIER_KEY_PREFIX)
            for key in overrides
            if not key.startswith(RFM_KEY_PREFIX) and not is_custom_segment_key(key)
        ]
        self.tiers = ladder + sorted({tier for tier in stored_tiers if tier not in ladder})
        known_segments = [info.code for info in RFM_SEGMENTS]
        stored_segments = [
            key.removeprefix(RFM_KEY_PREFIX) for key in overrides if key.startswith(RFM_KEY_PREFIX)
        ]
        self.rfm_segments = known_segments + sorted(
            {code for code in stored_segments if code not in known_segments}
        )
        # (stored key, form field prefix, label) of every override row, tiers first.
        self.override_keys = [(tier, f"tier_{tier}", tier) for tier in self.tiers] + [
            (rfm_override_key(code), f"rfm_{code}", f"RFM {RFM_SEGMENT_LABELS.get(code, code)}")
            for code in self.rfm_segments
        ]
        stored = {
            override_field_prefix(key): override
            for key, override in overrides.items()
            if not is_custom_segment_key(key)
        }
        for _, prefix, label in self.override_keys:
            override = stored.get(prefix, {})
            self.fields[f"{prefix}_auto"] = _number(f"{label} auto-approve", required=False)
            self.fields[f"{prefix}_expert"] = _number(f"{label} expert below", required=False)
            self.initial.setdefault(f"{prefix}_auto", override.get("auto_approve_confidence"))
            self.initial.setdefault(f"{prefix}_expert", override.get("expert_confidence"))
        self.add_custom_rows(overrides)

    @classmethod
    def for_policy(
        cls,
        settings: PolicySettings,
        *,
        kind: str,
        data=None,
        based_on_version: int | None = None,
        **kwargs,
    ) -> "PolicyForm":
        """Unbound: the policy's values. Bound: `data`, with the policy's tiers kept listed."""
        initial = {name: getattr(settings, name) for name in PolicySettings.__dataclass_fields__}
        initial["based_on_version"] = based_on_version
        return cls(data, initial=initial, kind=kind, **kwargs)

    def tier_rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [
            (tier, self[f"tier_{tier}_auto"], self[f"tier_{tier}_expert"]) for tier in self.tiers
        ]

    def rfm_rows(self) -> list[tuple[str, forms.BoundField, forms.BoundField]]:
        return [
            (
                RFM_SEGMENT_LABELS.get(code, code),
                self[f"rfm_{code}_auto"],
                self[f"rfm_{code}_expert"],
            )
            for code in self.rfm_segments
        ]

    def clean_expert_value_quantile(self) -> float:
        quantile = self.cleaned_data["expert_value_quantile"]
        if not 0 < quantile < 1:
            raise forms.ValidationError("Must lie strictly between 0 and 1.")
        return quantile

    def clean(self) -> dict:
        data = super().clean()
        auto, expert = data.get("auto_approve_confidence"), data.get("expert_confidence")
        if auto is not None and expert is not None and expert > auto:
            self.add_error(
                "expert_confidence",
                f"Must not exceed the auto-approve threshold ({auto:.2f}).",
            )
        for _, prefix, label in self.override_keys:
            if problem := threshold_error(
                label=label,
                own_auto=data.get(f"{prefix}_auto"),
                own_expert=data.get(f"{prefix}_expert"),
                auto=auto,
                expert=expert,
            ):
                self.add_error(f"{prefix}_expert", problem)
        self.clean_custom_rows(data, auto=auto, expert=expert)
        if self.kind == PredictionKind.CHURN:
            low, high = data.get("human_risk_low"), data.get("human_risk_high")
            if low is None and high is not None and "human_risk_low" not in self.errors:
                self.add_error("human_risk_low", "Give the start of the band, or clear both.")
            if low is not None and high is not None and low > high:
                self.add_error("human_risk_high", f"Must be at least the band's start ({low:.2f}).")
        return data

    def policy_settings(self) -> PolicySettings:
        data = self.cleaned_data
        overrides = {}
        for key, prefix, _ in self.override_keys:
            override = {}
            if data.get(f"{prefix}_auto") is not None:
                override["auto_approve_confidence"] = data[f"{prefix}_auto"]
            if data.get(f"{prefix}_expert") is not None:
                override["expert_confidence"] = data[f"{prefix}_expert"]
            if override:
                overrides[key] = override
        overrides.update(self.cleaned_custom)
        is_churn = self.kind == PredictionKind.CHURN
        low = data.get("human_risk_low") if is_churn else None
        high = data.get("human_risk_high")
        return PolicySettings(
            auto_approve_confidence=data["auto_approve_confidence"],
            expert_confidence=data["expert_confidence"],
            expert_value_quantile=data["expert_value_quantile"],
            human_risk_low=low,
            # An open band ends at certainty, as routing reads it.
            human_risk_high=(1.0 if high is None else high) if low is not None else None,
            audit_sample_rate=data["audit_sample_rate"],
            sla_hours=data["sla_hours"],
            segment_overrides=overrides,
            ranking=data.get("ranking") or EscalationPolicy.Ranking.PROPENSITY,
            analyst_daily_capacity=data.get("analyst_daily_capacity"),
            expert_daily_capacity=data.get("expert_daily_capacity"),
            blind_share=data["blind_share"],
        )
