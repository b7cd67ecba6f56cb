"""Input and output serializers of the review API: shapes and field checks; rules are services'."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from loyalty.models import Action
from predictions.behavior_clusters import ClusterLabels, ClusterRef
from predictions.models import PredictionKind
from reviews.models import Decision, ReasonCode, Review
from reviews.selectors.blind import BLIND_NOTE, hides_model
from reviews.services.decisions import (
    ACTION,
    CHURN_CALL,
    EITHER,
    MISSING,
    NOT_TAKEN,
    answer_problems,
)

# A plain string, not an enum: a PredictionKind enum named `kind` collides in the schema with
# loyalty's Event.Kind (a --fail-on-warn warning) until SPECTACULAR_SETTINGS names both enums in
# ENUM_NAME_OVERRIDES.
KIND_HELP = (
    "What the review decides: case (the churn call and the action, one decision), or the "
    "one prediction's kind: " + ", ".join(PredictionKind.values) + "."
)

# What the API says about an override's answers (`decisions.answer_problems`), in its own fields.
OVERRIDE_ANSWER_ERRORS = {
    (CHURN_CALL, MISSING): "Overriding a churn call needs true (churn) or false.",
    (ACTION, NOT_TAKEN): "A churn review takes churn_label, not an action.",
    (ACTION, MISSING): "Overriding a next action needs the right action.",
    (CHURN_CALL, NOT_TAKEN): "A next-action review takes action_code instead.",
    (EITHER, MISSING): "Overriding a case needs action_code, churn_label, or both.",
}

# --- output ---------------------------------------------------------------------------------


class DecisionOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    review_id = serializers.IntegerField()
    prediction_id = serializers.IntegerField(source="review.prediction_id")
    member_external_id = serializers.CharField(source="review.member.external_id")
    kind = serializers.CharField(source="review.decision_kind", help_text=KIND_HELP)
    verdict = serializers.ChoiceField(choices=Decision.Verdict.choices)
    reason_code = serializers.CharField(source="reason.code")
    reason_treatment = serializers.ChoiceField(
        source="reason.treatment",
        choices=ReasonCode.Treatment.choices,
        help_text="What the reason means for training: confirm, relabel or exclude.",
    )
    comment = serializers.CharField()
    churn_label = serializers.BooleanField(
        allow_null=True,
        help_text="The churn call a case settled on (always set), or an override of a churn "
        "review's call: true if the member will churn.",
    )
    action_code = serializers.CharField(
        source="action.code",
        allow_null=True,
        help_text="An override's action: the right action's code.",
    )
    settled_action_code = serializers.CharField(
        source="settled_action.code",
        allow_null=True,
        help_text="The action the decision settles on (a case or a next-action review): the "
        "recommendation when approved, the person's action when overridden.",
    )
    decided_by = serializers.CharField(
        source="decider", help_text="The person's username, or policy (an auto-approval)."
    )
    decided_as = serializers.CharField(help_text="The role the person decided in.")
    decided_at = serializers.DateTimeField()
    seconds_on_item = serializers.FloatField(
        allow_null=True,
        help_text="Seconds from the decider's first opening of the item to the decision; "
        "null when decided without opening it (quick or bulk approve, the API) or by policy.",
    )


class PredictionSummaryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    model_version_id = serializers.IntegerField()
    cutoff = serializers.DateTimeField(
        help_text="The scoring clock's reading the prediction was made at: its features see "
        'the events strictly before it (README, "The scoring clock").'
    )
    scored_at = serializers.DateTimeField(help_text="When the prediction was made.")
    score = serializers.FloatField(
        allow_null=True, help_text="Churn probability, or the recommended action's probability."
    )
    interval_low = serializers.FloatField(allow_null=True)
    interval_high = serializers.FloatField(allow_null=True)
    label_set = serializers.ListField(
        child=serializers.CharField(),
        help_text="Answers the model cannot rule out at the configured confidence level.",
    )
    recommended_action_code = serializers.CharField(
        source="recommended_action.code", allow_null=True
    )
    probabilities = serializers.DictField(
        child=serializers.FloatField(),
        allow_null=True,
        help_text="Next action: action code -> probability.",
    )


class ExplanationItemOutputSerializer(serializers.Serializer):
    feature = serializers.CharField(
        help_text="A feature code, or behavior_sequence: the ensemble's sequence share."
    )
    name = serializers.CharField(help_text="What people call it.")
    value = serializers.FloatField(
        allow_null=True, help_text="The value the model saw; null when missing or not a feature."
    )
    contribution = serializers.FloatField(help_text="Its SHAP value, in log-odds.")


class SequenceEventOutputSerializer(serializers.Serializer):
    occurred_at = serializers.DateTimeField()
    kind = serializers.CharField()
    category = serializers.CharField()
    channel = serializers.CharField()
    attribution = serializers.FloatField(
        help_text="How far leaving the event out moves the ensemble's log-odds (+: toward churn)."
    )


class ExplanationOutputSerializer(serializers.Serializer):
    """The stored explanation (see predictions.services.explanations), as it is stored."""

    base_value = serializers.FloatField(help_text="The expected margin (log-odds).")
    margin = serializers.FloatField(help_text="base_value + the top contributions + remainder.")
    top = ExplanationItemOutputSerializer(many=True, help_text="Largest contributions first.")
    remainder = serializers.FloatField(help_text="The contributions of the other features.")
    model = serializers.CharField(
        required=False, help_text="'ensemble' for the tree + sequence ensemble; absent for trees."
    )
    sequence_events = SequenceEventOutputSerializer(
        many=True, required=False, help_text="Ensemble: the events that moved it most."
    )


class PredictionDetailOutputSerializer(PredictionSummaryOutputSerializer):
    explanation = serializers.SerializerMethodField(
        help_text="Exact SHAP of the prediction; null for a member who may not be profiled."
    )

    @extend_schema_field(ExplanationOutputSerializer(allow_null=True))
    def get_explanation(self, prediction) -> dict | None:
        return prediction.explanation or None


class EscalationOutputSerializer(serializers.Serializer):
    escalated_by = serializers.CharField(source="escalated_by.username", allow_null=True)
    reason_code = serializers.CharField(source="escalation_reason.code", allow_null=True)
    comment = serializers.CharField(source="escalation_comment")
    proposal = serializers.JSONField(
        source="analyst_proposal", allow_null=True, help_text="What the analyst would have done."
    )


class BehaviorClusterOutputSerializer(serializers.Serializer):
    token = serializers.CharField(help_text='"<model version>-<number>": the `cluster` filter.')
    model_version = serializers.IntegerField()
    number = serializers.IntegerField()
    description = serializers.CharField(help_text="What sets the cluster apart.")


class ReviewOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    member_external_id = serializers.CharField(source="member.external_id")
    kind = serializers.CharField(source="decision_kind", help_text=KIND_HELP)
    route = serializers.ChoiceField(choices=Review.Route.choices)
    state = serializers.ChoiceField(choices=Review.State.choices)
    in_backlog = serializers.BooleanField(
        help_text="A pending review waiting in its queue's backlog (the queue is at its daily "
        "capacity): nobody decides it (409) until it enters the queue, by priority, as room "
        "frees; it has no due_at until then."
    )
    is_blind = serializers.BooleanField(
        help_text="Opens blind: until someone commits a blind answer (POST .../blind-answer/), "
        "`model_hidden` is true and everything the model said is withheld."
    )
    model_hidden = serializers.SerializerMethodField(
        help_text="true while the model's answer is withheld (a blind item nobody answered): "
        "route_reason says so; priority, confidence, risk, recommended_action_code, "
        "expected_value, prediction and action_prediction are null; approve and override "
        "answer 409."
    )
    route_reason = serializers.CharField()
    priority = serializers.FloatField(
        allow_null=True, help_text="Higher first (a blind item's weighs its member value only)."
    )
    tier = serializers.CharField()
    segment = serializers.CharField(
        source="rfm_segment",
        help_text="The member's RFM segment when scored (e.g. at_risk; '' when none): data about "
        "the member, shown on blind items too.",
    )
    behavior_cluster = serializers.SerializerMethodField(
        help_text="The member's behavioral cluster in the clustering of the model version that "
        "scored them (null: none): data about the member, shown on blind items too. A number "
        "means nothing across versions; `token` is what the `cluster` filter takes."
    )
    confidence = serializers.FloatField(allow_null=True)
    risk = serializers.FloatField(
        allow_null=True,
        help_text="The member's churn risk: a churn review's probability; for a next-action "
        "review, the latest churn probability its actions were weighed with (null: none).",
    )
    member_value = serializers.FloatField()
    recommended_action_code = serializers.CharField(
        source="recommended_action.code",
        allow_null=True,
        help_text="Next-action reviews: the action recommended by the policy's ranking "
        "(propensity or expected value); null for churn reviews or when none is eligible.",
    )
    expected_value = serializers.FloatField(
        allow_null=True,
        help_text="P(churn) x retention gain x member value - cost of the recommended action; "
        "null without a churn score.",
    )
    prediction = PredictionSummaryOutputSerializer(
        allow_null=True, help_text="The prediction reviewed; null while the model is hidden."
    )
    action_prediction = PredictionSummaryOutputSerializer(
        allow_null=True,
        help_text="A case's next-action prediction, whose actions it ranks; null otherwise.",
    )
    created_at = serializers.DateTimeField()
    routed_at = serializers.DateTimeField()
    due_at = serializers.DateTimeField(allow_null=True)
    escalated_at = serializers.DateTimeField(allow_null=True)
    escalation = serializers.SerializerMethodField(
        help_text="Who escalated to the experts, why, and what they proposed; null if not."
    )
    decided_at = serializers.DateTimeField(allow_null=True)
    decision = DecisionOutputSerializer(allow_null=True, help_text="null until decided.")

    @extend_schema_field(EscalationOutputSerializer(allow_null=True))
    def get_escalation(self, review: Review) -> dict | None:
        return EscalationOutputSerializer(review).data if review.is_escalated else None

    @extend_schema_field(BehaviorClusterOutputSerializer(allow_null=True))
    def get_behavior_cluster(self, review: Review) -> dict | None:
        # One ClusterLabels per response: each model version's clustering is read once.
        labels = self.context.setdefault("cluster_labels", ClusterLabels({}))
        prediction = review.prediction
        found = labels.cluster(prediction.model_version_id, prediction.behavior_cluster)
        if found is None:
            return None
        ref = ClusterRef(version_id=prediction.model_version_id, number=found.number)
        return {
            "token": ref.token,
            "model_version": ref.version_id,
            "number": found.number,
            "description": found.description,
        }

    def get_model_hidden(self, review: Review) -> bool:
        return model_hidden(review)

    def to_representation(self, review: Review) -> dict:
        data = super().to_representation(review)
        if data["model_hidden"]:
            data.update(dict.fromkeys(WITHHELD_WHILE_BLIND), route_reason=BLIND_NOTE)
        return data


# What a blind item withholds until someone answers it (`reviews.services.blind`).
WITHHELD_WHILE_BLIND = (
    "priority",
    "confidence",
    "risk",
    "recommended_action_code",
    "expected_value",
    "prediction",
    "action_prediction",
)


def model_hidden(review: Review) -> bool:
    """Whether the review withholds the model's answer: the list annotates `blind_answered`."""
    if not review.is_blind:
        return False
    answered = getattr(review, "blind_answered", None)
    return not answered if answered is not None else hides_model(review)


class ReviewDetailOutputSerializer(ReviewOutputSerializer):
    """One review as its detail reads it: the prediction with its explanation."""

    prediction = PredictionDetailOutputSerializer(
        allow_null=True, help_text="The prediction reviewed; null while the model is hidden."
    )


class BlindAnswerOutputSerializer(serializers.Serializer):
    review_id = serializers.IntegerField()
    answered_by = serializers.CharField(source="user.username")
    churn_label = serializers.BooleanField(help_text="The person's own call: true, will churn.")
    action_code = serializers.CharField(
        source="action.code", allow_null=True, help_text="The person's own action (cases)."
    )
    model_churn_call = serializers.BooleanField(
        help_text="The model's churn call, shown only now that the answer is committed."
    )
    committed_at = serializers.DateTimeField()


# --- input ----------------------------------------------------------------------------------


def _reason_code_field() -> serializers.SlugRelatedField:
    return serializers.SlugRelatedField(
        slug_field="code",
        queryset=ReasonCode.objects.filter(is_active=True),
        help_text="An active reason code, e.g. model-correct.",
    )


class DecisionInputSerializer(serializers.Serializer):
    """Validated data are the service's keyword arguments: codes, not rows."""

    reason_code = _reason_code_field()
    comment = serializers.CharField(required=False, allow_blank=True, default="")
    override_contact_rules = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Send a decision that breaks a contact rule (frequency cap, action budget, "
        "marketing consent) anyway; the comment must say why. Without it such a decision is "
        "refused (400) and the rules it breaks are named.",
    )

    def validate_reason_code(self, reason: ReasonCode) -> str:
        return reason.code


class ApproveInputSerializer(DecisionInputSerializer):
    pass


class OverrideInputSerializer(DecisionInputSerializer):
    """The right answer for the review's kind: `churn_label` for a churn call, `action_code`
    for a next action, either or both for a case (what is left out stays the model's). The
    view passes the review's `decision_kind` in the context as `kind`."""

    churn_label = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Churn reviews and cases: true if the member will churn, false if they "
        "will stay.",
    )
    action_code = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Action.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        default=None,
        help_text="Next-action reviews and cases: the code of the right, active action "
        "(no_action: do nothing).",
    )

    def validate_action_code(self, action: Action | None) -> str | None:
        return action.code if action is not None else None

    def validate(self, attrs):
        problems = answer_problems(
            kind=self.context["kind"],
            verdict=Decision.Verdict.OVERRIDE,
            churn_label=attrs["churn_label"],
            action_code=attrs["action_code"],
        )
        if problems:
            raise serializers.ValidationError(
                {
                    field: [OVERRIDE_ANSWER_ERRORS[field, problem]]
                    for field, problem in problems.items()
                }
            )
        return attrs


class BlindAnswerInputSerializer(serializers.Serializer):
    churn_label = serializers.BooleanField(
        help_text="Your own call: true if the member will churn."
    )
    action_code = serializers.SlugRelatedField(
        slug_field="code",
        queryset=Action.objects.filter(is_active=True),
        required=False,
        allow_null=True,
        default=None,
        help_text="Cases and next-action items: the code of the action you would take.",
    )

    def validate_action_code(self, action: Action | None) -> str | None:
        return action.code if action is not None else None


class EscalateInputSerializer(DecisionInputSerializer):
    override_contact_rules = None  # an escalation sends nothing
    proposal = serializers.DictField(
        required=False,
        allow_null=True,
        default=None,
        help_text='What the analyst would have done, e.g. {"verdict": "override", '
        '"churn_label": false}; shown to the expert.',
    )
