"""The thresholds of an escalation policy as plain values, and what version 1 of each kind holds."""

from dataclasses import asdict, dataclass
from functools import cached_property

from predictions.ml.segments import RFM_SEGMENT_NAMES
from predictions.models import PredictionKind
from reviews.custom_segments import RULE_KEY_PREFIX, CustomSegment, custom_segments_of
from reviews.models import EscalationPolicy

# How a `segment_overrides` key names what it overrides: "rfm:<segment>" an RFM segment
# (`predictions.ml.segments`); "tier:<tier>" or a plain key (as before RFM segments) a tier;
# "rule:<slug>" a custom segment, whose rule is stored with it (`reviews.custom_segments`).
# Only rule-based segments may key an override: a behavioral cluster's id changes meaning with
# every refit, so a threshold tied to one would silently change too.
RFM_KEY_PREFIX = "rfm:"
TIER_KEY_PREFIX = "tier:"


def refused_override_keys(overrides: dict | None) -> list[str]:
    """The keys of `overrides` that name no rule-based segment: a prefix other than "rfm:",
    "tier:" or "rule:" ("cluster:3", say). A tier whose name holds a colon is keyed
    "tier:<tier>"."""
    return sorted(
        key
        for key in overrides or {}
        if ":" in key and not key.startswith((RFM_KEY_PREFIX, TIER_KEY_PREFIX, RULE_KEY_PREFIX))
    )


def rfm_override_key(rfm_segment: str) -> str:
    return f"{RFM_KEY_PREFIX}{rfm_segment}"


def override_label(key: str, override: dict | None = None) -> str:
    """What a person reads for an override key: the tier, "RFM <segment name>", or "Custom
    <name>" (the name stored in `override`, the custom segment's value)."""
    if key.startswith(RULE_KEY_PREFIX):
        return f"Custom {CustomSegment.of(key, override or {}).name}"
    if key.startswith(RFM_KEY_PREFIX):
        code = key.removeprefix(RFM_KEY_PREFIX)
        return f"RFM {RFM_SEGMENT_NAMES.get(code, code)}"
    return key.removeprefix(TIER_KEY_PREFIX)


POLICY_FIELDS = (
    "auto_approve_confidence",
    "expert_confidence",
    "expert_value_quantile",
    "human_risk_low",
    "human_risk_high",
    "audit_sample_rate",
    "sla_hours",
    "segment_overrides",
    "ranking",
    "analyst_daily_capacity",
    "expert_daily_capacity",
    "blind_share",
)
FIRST_VERSION = 1
FIRST_VERSION_REASON = "defaults"


@dataclass(frozen=True)
class PolicySettings:
    """The routing thresholds of one policy version, as plain values (what a form submits)."""

    auto_approve_confidence: float = 0.9
    expert_confidence: float = 0.5
    expert_value_quantile: float = 0.95
    human_risk_low: float | None = 0.6
    human_risk_high: float | None = 1.0
    audit_sample_rate: float = 0.02
    sla_hours: int = 48
    segment_overrides: dict | None = None
    # How a next-action review picks its recommendation (EscalationPolicy.Ranking).
    ranking: str = EscalationPolicy.Ranking.PROPENSITY
    # Items a queue may hold awaiting a decision (None: no limit; `reviews.services.capacity`).
    analyst_daily_capacity: int | None = None
    expert_daily_capacity: int | None = None
    # Share of the items routed to people that open blind (`reviews.services.blind`).
    blind_share: float = 0.05

    @classmethod
    def of(cls, policy: EscalationPolicy) -> "PolicySettings":
        return cls(**{name: getattr(policy, name) for name in POLICY_FIELDS})

    @cached_property
    def custom_segments(self) -> tuple[CustomSegment, ...]:
        """The custom segments of `segment_overrides`, parsed once per settings: routing asks
        for every row. (Cached in the instance's `__dict__`, not a field: copy settings with
        `dataclasses.replace`, never by their `__dict__`.)"""
        return custom_segments_of(self.segment_overrides)

    def daily_capacity(self, route: str) -> int | None:
        """The capacity of the `route` queue (None: no limit, or a route without a queue)."""
        return getattr(self, f"{route}_daily_capacity", None)

    def as_fields(self) -> dict:
        """The model fields of a version with these settings."""
        fields = asdict(self)
        fields["segment_overrides"] = fields["segment_overrides"] or {}
        return fields


# Next-action reviews carry no churn risk: no risk band applies to them.
DEFAULT_SETTINGS = {
    PredictionKind.CHURN: PolicySettings(),
    PredictionKind.NEXT_ACTION: PolicySettings(human_risk_low=None, human_risk_high=None),
}


def first_version_fields(kind: str) -> dict:
    """The fields of version 1 of `kind`: the defaults (seeded by migration 0010)."""
    return {
        **DEFAULT_SETTINGS[kind].as_fields(),
        "kind": kind,
        "version": FIRST_VERSION,
        "change_reason": FIRST_VERSION_REASON,
    }
