"""What the learning API takes and answers: policy tests (admins): tests, their readouts,
start and end; fairness per protected group (admins, experts)."""

from dataclasses import replace

from rest_framework import serializers

from learning.fairness import MEASURED_KINDS
from learning.fairness_actions import (
    NOT_APPLICABLE_TO_ACTIONS,
)
from learning.fairness_stats import (
    DECIDER_LABELS,
    METRIC_LABELS,
)
from predictions.models import PredictionKind
from reviews.forms.experiments import MAX_TEST_DECISIONS, checked_policy_settings
from reviews.forms.policy import MAX_DAILY_CAPACITY
from reviews.models import EscalationPolicy, PolicyExperiment
from reviews.policy_settings import POLICY_FIELDS, PolicySettings
from reviews.selectors.experiments import ARMS, adopted_arm, policy_test_state
from reviews.selectors.policy import current_policy

ARM_CHOICES = [(arm, arm) for arm in ARMS]
MAX_SLA_HOURS = 24 * 30


def _share(help_text: str = "", **kwargs) -> serializers.FloatField:
    return serializers.FloatField(min_value=0.0, max_value=1.0, help_text=help_text, **kwargs)


class PolicyVersionOutputSerializer(serializers.ModelSerializer):
    """One escalation-policy version's settings."""

    class Meta:
        model = EscalationPolicy
        fields = ["version", *POLICY_FIELDS, "created_at", "change_reason"]


class PolicyTestOutputSerializer(serializers.ModelSerializer):
    champion = PolicyVersionOutputSerializer(help_text="The version in force when it started.")
    challenger = PolicyVersionOutputSerializer(
        help_text="The version tried on `challenger_share` of the members."
    )
    started_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    ended_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    adopted_version = serializers.IntegerField(
        source="adopted.version",
        allow_null=True,
        default=None,
        help_text="The version the end created from the adopted arm's settings.",
    )
    adopted_arm = serializers.SerializerMethodField(
        help_text="champion or challenger (null while it runs)."
    )
    state = serializers.SerializerMethodField(
        help_text="collecting: members are routed by their arms; finished: it stopped "
        "collecting (its period or decisions are over) and waits for an admin to adopt a "
        "version; ended."
    )

    class Meta:
        model = PolicyExperiment
        fields = [
            "id",
            "kind",
            "state",
            "champion",
            "challenger",
            "challenger_share",
            "hypothesis",
            "started_at",
            "started_by",
            "ends_at",
            "max_decisions",
            "ended_at",
            "ended_by",
            "adopted_version",
            "adopted_arm",
            "end_reason",
        ]

    def get_adopted_arm(self, test) -> str | None:
        return adopted_arm(test)

    def get_state(self, test) -> str:
        return policy_test_state(test).state


class EstimateOutputSerializer(serializers.Serializer):
    """A share with its 95 % Wilson interval and the n it rests on (value null: n is 0)."""

    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    hits = serializers.IntegerField(allow_null=True)
    is_small = serializers.BooleanField(help_text="n below 30: a small sample.")


class MeanOutputSerializer(serializers.Serializer):
    """A mean with its 95 % normal interval (null with fewer than two values) and its n."""

    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    is_small = serializers.BooleanField()


class ArmReadoutOutputSerializer(serializers.Serializer):
    arm = serializers.CharField(help_text="champion or challenger.")
    version = serializers.IntegerField(source="version.version")
    items = serializers.IntegerField(help_text="Reviews the arm's version routed in the test.")
    members = serializers.IntegerField()
    to_people = EstimateOutputSerializer(help_text="Share of the items routed to people.")
    person_decisions = serializers.IntegerField()
    person_minutes = serializers.FloatField(help_text="Sum of the people's time on the items.")
    minutes_per_decision = MeanOutputSerializer(help_text="Over the timed person decisions.")
    auto_error = EstimateOutputSerializer(
        help_text="Share of the auto-approved churn calls the outcome contradicted."
    )
    outcome_rate = EstimateOutputSerializer(
        help_text="Churn among the arm's members whose outcome is known."
    )


class DifferenceOutputSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class ArmCountsOutputSerializer(serializers.Serializer):
    champion = serializers.IntegerField()
    challenger = serializers.IntegerField()


class SampleSizePlanOutputSerializer(serializers.Serializer):
    difference = serializers.FloatField(help_text="The difference in outcome rate to detect.")
    pooled_rate = serializers.FloatField(allow_null=True)
    needed = ArmCountsOutputSerializer(
        allow_null=True, help_text="Outcomes each arm needs (null: no plan yet, see reason)."
    )
    more = ArmCountsOutputSerializer(allow_null=True, help_text="How many more that is.")
    reason = serializers.CharField()


class PolicyTestReadoutOutputSerializer(serializers.Serializer):
    test = PolicyTestOutputSerializer()
    stopped_at = serializers.DateTimeField(
        source="state.stopped_at", allow_null=True, help_text="When it stopped collecting."
    )
    decisions = serializers.IntegerField(
        source="state.decisions", help_text="Person decisions on its items so far."
    )
    arms = ArmReadoutOutputSerializer(many=True)
    outcome_difference = DifferenceOutputSerializer(
        help_text="Challenger − champion outcome rate, with Newcombe's 95 % interval."
    )
    plan = SampleSizePlanOutputSerializer()
    computed_at = serializers.DateTimeField()


class ChallengerSettingsInputSerializer(serializers.Serializer):
    """The challenger's settings: what is left out stays as the version in force has it."""

    auto_approve_confidence = _share(required=False)
    expert_confidence = _share(required=False)
    expert_value_quantile = _share(required=False)
    human_risk_low = _share(required=False, allow_null=True)
    human_risk_high = _share(required=False, allow_null=True)
    audit_sample_rate = _share(required=False)
    sla_hours = serializers.IntegerField(required=False, min_value=1, max_value=MAX_SLA_HOURS)
    segment_overrides = serializers.DictField(
        # Plain objects: the policy form checks them (`checked_policy_settings`), custom
        # segments' rules included.
        child=serializers.DictField(),
        required=False,
        help_text="Replacements of the two confidence thresholds, keyed by a tier ('gold'), an "
        "RFM segment ('rfm:at_risk') or a custom segment ('rule:<slug of its name>', whose "
        "value also holds its name and its rule: tiers, rfm_segments, min_value, max_value).",
    )
    ranking = serializers.ChoiceField(choices=EscalationPolicy.Ranking.choices, required=False)
    analyst_daily_capacity = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_DAILY_CAPACITY
    )
    expert_daily_capacity = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_DAILY_CAPACITY
    )
    blind_share = _share(required=False)


class PolicyTestStartInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    challenger = ChallengerSettingsInputSerializer()
    challenger_share = serializers.FloatField(
        default=0.5, help_text="Share of members on the challenger, strictly between 0 and 1."
    )
    ends_at = serializers.DateTimeField(
        required=False, allow_null=True, help_text="When it stops collecting."
    )
    max_decisions = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_TEST_DECISIONS,
        help_text="Or after this many person decisions on its items (give one or both).",
    )
    hypothesis = serializers.CharField(max_length=2000, help_text="What the test is to show.")

    def validate_challenger_share(self, share: float) -> float:
        if not 0 < share < 1:
            raise serializers.ValidationError("Must lie strictly between 0 and 1.")
        return share

    def validate(self, attrs: dict) -> dict:
        """The challenger: the version in force with the given changes, checked as the policy
        page checks a version."""
        if attrs.get("ends_at") is None and attrs.get("max_decisions") is None:
            raise serializers.ValidationError(
                {"ends_at": ["Give the test an end: ends_at, max_decisions, or both."]}
            )
        current = PolicySettings.of(current_policy(attrs["kind"]))
        changes = dict(attrs.pop("challenger"))
        if "segment_overrides" in changes:
            changes["segment_overrides"] = {
                tier: dict(override) for tier, override in changes["segment_overrides"].items()
            }
        settings, errors = checked_policy_settings(replace(current, **changes), kind=attrs["kind"])
        if errors:
            raise serializers.ValidationError({"challenger": errors})
        return {**attrs, "challenger_settings": settings}


class PolicyTestEndInputSerializer(serializers.Serializer):
    adopt = serializers.ChoiceField(choices=ARM_CHOICES, help_text="The arm whose settings win.")
    reason = serializers.CharField(max_length=2000, help_text="Why; recorded with the version.")


# --- fairness (admins, experts) ---------------------------------------------------------------


class FairnessQuerySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[(kind, PredictionKind(kind).label) for kind in MEASURED_KINDS],
        default=PredictionKind.CHURN.value,
        help_text="The prediction kind measured: churn (the churn call) or next_action (the "
        "share offered each action).",
    )


GROUP_HELP = 'The value; "not recorded" where the member has none.'


class GroupRateOutputSerializer(serializers.Serializer):
    """A group's rate with its 95 % Wilson interval; a rate resting on fewer items than the
    minimum group size is `too_small`, its value, interval and hits null (never 0)."""

    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField(help_text="The items the rate rests on (its denominator).")
    hits = serializers.IntegerField(allow_null=True)
    too_small = serializers.BooleanField()


class DeciderRatesOutputSerializer(serializers.Serializer):
    selection = GroupRateOutputSerializer(help_text="Share called churn.")
    true_positive = GroupRateOutputSerializer(help_text="Churners called churn / churners.")
    false_positive = GroupRateOutputSerializer(help_text="Stayers called churn / stayers.")


class CalibrationOutputSerializer(serializers.Serializer):
    predicted = serializers.FloatField(
        allow_null=True, help_text="Mean churn probability among the items with an outcome."
    )
    observed = GroupRateOutputSerializer(help_text="Observed churn among them.")
    gap = DifferenceOutputSerializer(help_text="Predicted − observed, the observed interval's.")


class OverridesOutputSerializer(serializers.Serializer):
    """Shares of the group's people's decisions (the policy's are not overrides)."""

    override_rate = GroupRateOutputSerializer(help_text="Changed the model's churn call.")
    toward_churn = GroupRateOutputSerializer(help_text="Called churn where the model said stay.")
    toward_stay = GroupRateOutputSerializer(help_text="Called stay where the model said churn.")


class FairnessGroupOutputSerializer(serializers.Serializer):
    group = serializers.CharField(
        help_text='The value; "not recorded" where it is blank or missing.'
    )
    n = serializers.IntegerField(help_text="Decisions on the group's members.")
    too_small = serializers.BooleanField()
    model = DeciderRatesOutputSerializer(source="rates.model")
    final = DeciderRatesOutputSerializer(
        source="rates.final", help_text="The decisions' calls: auto-approvals and people's."
    )
    calibration = CalibrationOutputSerializer()
    overrides = OverridesOutputSerializer()


class RatioOutputSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)


class DisparityOutputSerializer(serializers.Serializer):
    decider = serializers.ChoiceField(choices=[(d, d) for d in DECIDER_LABELS])
    metric = serializers.ChoiceField(choices=[(m, m) for m in METRIC_LABELS])
    difference = DifferenceOutputSerializer(
        help_text="Highest − lowest rate of the groups compared, Newcombe's 95 % interval."
    )
    ratio = RatioOutputSerializer(help_text="Lowest / highest, Katz's 95 % interval.")
    highest = serializers.CharField(allow_null=True)
    lowest = serializers.CharField(allow_null=True)
    groups_compared = serializers.IntegerField(
        help_text="Groups large enough to compare (fewer than 2: no comparison)."
    )
    action = serializers.CharField(
        allow_null=True,
        help_text="Next action: the action whose share is compared; null for churn and for "
        "the override rate.",
    )


ATTRIBUTE_HELP = "age_band, region, tier, or the key of a member attribute marked as protected."
PROTECTED_HELP = (
    "Judged against the limits (age band, region, the marked attributes; not the tier)."
)


class AttributeFairnessOutputSerializer(serializers.Serializer):
    attribute = serializers.CharField(help_text=ATTRIBUTE_HELP)
    label = serializers.CharField()
    is_protected = serializers.BooleanField(help_text=PROTECTED_HELP)
    groups = FairnessGroupOutputSerializer(many=True)
    disparities = DisparityOutputSerializer(many=True)


class BreachOutputSerializer(serializers.Serializer):
    attribute = serializers.CharField()
    decider = serializers.CharField()
    metric = serializers.CharField()
    value = serializers.FloatField()
    limit = serializers.FloatField()
    bound = serializers.ChoiceField(choices=[("max", "max"), ("min", "min")])
    action = serializers.CharField(
        allow_null=True, help_text="Next action: the action whose share breached."
    )
    text = serializers.CharField(source="shown")


class FairnessLimitsOutputSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    min_group_size = serializers.IntegerField()
    max_parity_difference = serializers.FloatField(allow_null=True)
    min_parity_ratio = serializers.FloatField(allow_null=True)
    max_equalized_odds_difference = serializers.FloatField(allow_null=True)
    max_calibration_difference = serializers.FloatField(allow_null=True)
    max_override_difference = serializers.FloatField(allow_null=True)
    pause_on_breach = serializers.BooleanField()


class FairnessOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    since = serializers.DateTimeField(help_text="The decisions measured are this recent.")
    computed_at = serializers.DateTimeField()
    decisions = serializers.IntegerField(source="report.decisions")
    with_outcome = serializers.IntegerField(source="report.with_outcome")
    by_person = serializers.IntegerField(source="report.by_person")
    limits = FairnessLimitsOutputSerializer()
    breaches = BreachOutputSerializer(source="report.breaches", many=True)
    attributes = AttributeFairnessOutputSerializer(source="report.attributes", many=True)


class ActionSharesOutputSerializer(serializers.Serializer):
    action = serializers.CharField(help_text='An action code ("no_action" is one).')
    model = GroupRateOutputSerializer(help_text="Share of the group recommended the action.")
    final = GroupRateOutputSerializer(help_text="Share of the group whose decision settled on it.")


class ActionFairnessGroupOutputSerializer(serializers.Serializer):
    group = serializers.CharField(
        help_text='The value; "not recorded" where it is blank or missing.'
    )
    n = serializers.IntegerField(help_text="Decisions on the group's members.")
    too_small = serializers.BooleanField()
    actions = ActionSharesOutputSerializer(many=True, help_text="In the order of `actions`.")
    override_rate = GroupRateOutputSerializer(
        help_text="Share of the group's people's decisions that changed the recommended action."
    )


class ActionAttributeFairnessOutputSerializer(serializers.Serializer):
    attribute = serializers.CharField(help_text=ATTRIBUTE_HELP)
    label = serializers.CharField()
    is_protected = serializers.BooleanField(help_text=PROTECTED_HELP)
    groups = ActionFairnessGroupOutputSerializer(many=True)
    disparities = DisparityOutputSerializer(
        many=True, help_text="Demographic parity per action (model, final), then overrides."
    )


class ActionFairnessLimitsOutputSerializer(serializers.Serializer):
    window_days = serializers.IntegerField()
    min_group_size = serializers.IntegerField()
    max_parity_difference = serializers.FloatField(allow_null=True)
    min_parity_ratio = serializers.FloatField(allow_null=True)
    max_override_difference = serializers.FloatField(allow_null=True)
    pause_on_breach = serializers.BooleanField()


class ActionFairnessOutputSerializer(serializers.Serializer):
    """Next action: the share offered each action per group, for the model and the final
    decisions, and people's changes of the action."""

    kind = serializers.CharField()
    since = serializers.DateTimeField(help_text="The decisions measured are this recent.")
    computed_at = serializers.DateTimeField()
    decisions = serializers.IntegerField(source="report.decisions")
    by_person = serializers.IntegerField(source="report.by_person")
    held_out = serializers.IntegerField(
        source="report.held_out",
        help_text="Decisions held out for a control group: included (the product made them).",
    )
    actions = serializers.ListField(
        child=serializers.CharField(),
        source="report.actions",
        help_text="Every action recommended or settled on in the window, in code order.",
    )
    limits = ActionFairnessLimitsOutputSerializer()
    not_applicable = serializers.SerializerMethodField(
        help_text="Comparisons that need an outcome per action, which is not observed: not "
        "measured, their limits not judged."
    )
    breaches = BreachOutputSerializer(source="report.breaches", many=True)
    attributes = ActionAttributeFairnessOutputSerializer(source="report.attributes", many=True)

    def get_not_applicable(self, fairness) -> list[str]:
        return list(NOT_APPLICABLE_TO_ACTIONS)
