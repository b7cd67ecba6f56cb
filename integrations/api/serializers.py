"""What the integrations API takes and answers, and the webhook payloads' schemas."""

from rest_framework import serializers

from integrations.exceptions import InvalidEndpoint
from integrations.models import Delivery
from integrations.services.endpoints import clean_url
from learning.models import LabeledExample
from loyalty.models import Member
from loyalty.outbox import EVENT_TYPES
from predictions.models import PredictionKind
from reviews.api.serializers import ExplanationOutputSerializer
from reviews.models import CASE, Decision, Review

EVENT_TYPE_CHOICES = [(name, name) for name in EVENT_TYPES]


class DecisionEventSerializer(serializers.Serializer):
    """A decision as it leaves the product: in the feed, in `decision.*` webhooks and in the
    export (version 1 of this shape; fields are only ever added)."""

    decision_id = serializers.IntegerField()
    sequence = serializers.IntegerField(
        help_text="Position in the feed; pass the last one you received as `since`."
    )
    held_out = serializers.BooleanField(
        allow_null=True,
        help_text="A held-out decision is recorded, never acted on (a control group; its "
        "webhook is `decision.held_out`). Systems see it at once; for people it is null until "
        "the decision's horizon has passed.",
    )
    announced = serializers.BooleanField(
        help_text="Whether it left as an event. A re-score that settles on the action last "
        "announced to the member, within the action's cooldown, is recorded without one."
    )
    contact_rules_overridden = serializers.ListField(
        child=serializers.CharField(),
        help_text="Contact rules the decision broke and a person overrode with a reason "
        "(frequency_cap, budget_count, budget_amount, no_marketing_consent); empty otherwise.",
    )
    member_external_id = serializers.CharField()
    kind = serializers.ChoiceField(
        choices=[(CASE, "Case"), *PredictionKind.choices],
        help_text="case: one decision on the member's churn call and action (both kinds "
        "active); otherwise the kind of the one prediction decided.",
    )
    verdict = serializers.ChoiceField(choices=Decision.Verdict.choices)
    action_code = serializers.CharField(
        allow_null=True,
        help_text="The action decided (cases and next-action reviews; no_action: do nothing), "
        "or null.",
    )
    churn_call = serializers.BooleanField(
        allow_null=True,
        help_text="The churn call decided (cases and churn reviews): true = will churn.",
    )
    score = serializers.FloatField(allow_null=True, help_text="The model's score.")
    model_version_id = serializers.IntegerField()
    model_version = serializers.CharField()
    reason_code = serializers.CharField()
    decided_as = serializers.CharField(help_text="analyst, expert, or policy (automatic).")
    decided_at = serializers.DateTimeField()
    review_id = serializers.IntegerField()
    prediction_id = serializers.IntegerField(
        help_text="The prediction decided (a case's churn prediction)."
    )
    action_prediction_id = serializers.IntegerField(
        allow_null=True, help_text="A case's next-action prediction; null otherwise."
    )


class DecisionFeedOutputSerializer(serializers.Serializer):
    results = DecisionEventSerializer(many=True)
    next_since = serializers.IntegerField(
        help_text="Ask again with `since` set to this to get what follows."
    )
    has_more = serializers.BooleanField(help_text="More decisions follow right now.")


class DecisionFeedQuerySerializer(serializers.Serializer):
    since = serializers.IntegerField(
        min_value=0, default=0, help_text="The last `sequence` received; 0 from the start."
    )
    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100)
    kind = serializers.ChoiceField(
        choices=[(CASE, "Case"), *PredictionKind.choices],
        required=False,
        help_text="Only the decisions of cases, or of reviews of one prediction of this kind.",
    )


class WebhookEndpointOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField()
    description = serializers.CharField()
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES),
        help_text="Event types delivered; empty: every type.",
    )
    is_enabled = serializers.BooleanField()
    disabled_reason = serializers.CharField()
    failing_since = serializers.DateTimeField(allow_null=True)
    previous_secret_expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Until then the previous secret also signs."
    )
    created_at = serializers.DateTimeField()


class WebhookEndpointWithSecretOutputSerializer(WebhookEndpointOutputSerializer):
    secret = serializers.CharField(
        help_text="The signing secret (Standard Webhooks, `whsec_…`). Shown this once only."
    )


class WebhookEndpointInputSerializer(serializers.Serializer):
    url = serializers.CharField(max_length=500)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPE_CHOICES), required=False
    )

    def validate_url(self, value: str) -> str:
        """The service's URL rule, answered under `url` like every other field error (and
        without echoing the URL: it may carry a password)."""
        try:
            return clean_url(value)
        except InvalidEndpoint as error:
            raise serializers.ValidationError(error.message) from error


class WebhookEndpointUpdateInputSerializer(WebhookEndpointInputSerializer):
    url = serializers.CharField(max_length=500, required=False)
    is_enabled = serializers.BooleanField(required=False)


class WebhookEventSerializer(serializers.Serializer):
    """The body of every webhook request; `webhook-id` equals `id`."""

    id = serializers.CharField(help_text="Unique per event, the same on every retry.")
    type = serializers.ChoiceField(choices=EVENT_TYPE_CHOICES)
    schema_version = serializers.IntegerField(help_text="1")
    timestamp = serializers.DateTimeField(help_text="When the event happened.")
    data = serializers.DictField(help_text="Per type; see the webhooks section.")


class EscalationEventSerializer(serializers.Serializer):
    review_id = serializers.IntegerField()
    member_external_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    reason_code = serializers.CharField()
    escalated_at = serializers.DateTimeField()


class MemberErasedEventSerializer(serializers.Serializer):
    member_external_id = serializers.CharField(help_text="The id the member had: erase it too.")
    erased_at = serializers.DateTimeField()


class ConsentWithdrawnEventSerializer(serializers.Serializer):
    member_external_id = serializers.CharField()
    consent = serializers.ChoiceField(
        choices=Member.Consent.choices,
        help_text="Which consent was withdrawn: profiling (stop scoring the member) or "
        "marketing (stop contacting them with offers).",
    )
    withdrawn_at = serializers.DateTimeField(allow_null=True)


class ModelPromotedEventSerializer(serializers.Serializer):
    model_version_id = serializers.IntegerField()
    model_version = serializers.CharField()
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    retired_model_version_id = serializers.IntegerField(allow_null=True)
    rollback = serializers.BooleanField()


class AutomationEventSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    reason = serializers.CharField()
    paused_at = serializers.DateTimeField(required=False)
    resumed_at = serializers.DateTimeField(required=False)


# --- a decision's lineage (`integrations.lineage`; the document's format 1) ------------------


class LineageMemberSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text="The member's pseudonymous id, and nothing else.")


class LineageEventsWindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField(help_text="The cutoff minus `days`.")
    end = serializers.DateTimeField(help_text="The cutoff: features see only events before it.")
    days = serializers.IntegerField(help_text="The features' longest lookback.")
    events = serializers.IntegerField(
        help_text="The member's events in [start, end) now (a later import adds to it)."
    )


class LineageModelVersionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    status = serializers.CharField()
    algorithm = serializers.CharField()
    evaluation_cutoff = serializers.DateTimeField()
    training_cutoffs = serializers.ListField(child=serializers.CharField())
    horizon_days = serializers.IntegerField(allow_null=True)
    row_counts = serializers.JSONField()
    data_fingerprint = serializers.CharField(help_text="SHA-256 of the training data.")
    metrics = serializers.JSONField(help_text="The validation metrics, as the registry keeps them.")
    artifact_checksums = serializers.DictField(
        child=serializers.CharField(), help_text="{file name: sha256}"
    )
    library_versions = serializers.JSONField()
    created_at = serializers.DateTimeField()
    promoted_at = serializers.DateTimeField(allow_null=True)
    promoted_by = serializers.CharField(allow_null=True)


class LineagePredictionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    role = serializers.ChoiceField(
        choices=[("decided", "decided"), ("carried_action", "carried_action")],
        help_text="decided: the prediction the review decided; carried_action: a case's "
        "next-action prediction.",
    )
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    cutoff = serializers.DateTimeField()
    scored_at = serializers.DateTimeField()
    score = serializers.FloatField(allow_null=True)
    probabilities = serializers.DictField(child=serializers.FloatField(), allow_null=True)
    interval_low = serializers.FloatField(allow_null=True)
    interval_high = serializers.FloatField(allow_null=True)
    label_set = serializers.ListField(child=serializers.CharField())
    confidence = serializers.FloatField()
    recommended_action = serializers.CharField(allow_null=True)
    served_model = serializers.CharField()
    member_value = serializers.FloatField(allow_null=True)
    events_window = LineageEventsWindowSerializer()
    features = serializers.DictField(
        child=serializers.FloatField(allow_null=True),
        help_text="{feature code: the value the model saw}; null where it was missing.",
    )
    explanation = ExplanationOutputSerializer(
        allow_null=True, help_text="Exact SHAP, as stored; null when not computed."
    )
    model_version = LineageModelVersionSerializer()


class LineagePolicySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField(allow_null=True)
    change_reason = serializers.CharField(allow_blank=True)
    settings = serializers.JSONField(help_text="The version's thresholds.")


class LineageRoutingSerializer(serializers.Serializer):
    review_id = serializers.IntegerField()
    kind = serializers.CharField(help_text="What it decides: case, churn or next_action.")
    route = serializers.ChoiceField(choices=Review.Route.choices)
    rule = serializers.CharField(
        allow_blank=True,
        help_text="The rule that routed it, in words; an escalation rewrites it, saying so.",
    )
    routed_at = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=Review.State.choices)
    is_blind = serializers.BooleanField()
    recommended_action = serializers.CharField(allow_null=True)
    expected_value = serializers.FloatField(allow_null=True)
    contact_flags = serializers.ListField(child=serializers.CharField())
    policy = LineagePolicySerializer()
    action_policy = LineagePolicySerializer(allow_null=True)


class LineageStepSerializer(serializers.Serializer):
    step = serializers.ChoiceField(
        choices=[(name, name) for name in ("opened", "answered_blind", "escalated", "decided")]
    )
    who = serializers.CharField(
        allow_null=True, help_text="Null: the policy decided, or the SLA escalated."
    )
    at = serializers.DateTimeField()


class LineageEscalationSerializer(serializers.Serializer):
    by = serializers.CharField(allow_null=True)
    at = serializers.DateTimeField()
    reason_code = serializers.CharField(allow_null=True)
    comment = serializers.CharField(allow_blank=True)
    analyst_proposal = serializers.JSONField(
        help_text="What the analyst would have done (null: nothing proposed)."
    )


class LineageBlindAnswerSerializer(serializers.Serializer):
    by = serializers.CharField()
    committed_at = serializers.DateTimeField()
    churn_label = serializers.BooleanField()
    action = serializers.CharField(allow_null=True)
    model_churn_call = serializers.BooleanField()


class LineageDecisionSerializer(DecisionEventSerializer):
    """The decision as it left the product (`DecisionEvent`), with what people record beside
    it."""

    # The same values as DecisionEvent's: one enum in the document, named after it.
    kind = serializers.CharField(help_text="case, churn or next_action (as in DecisionEvent).")
    decided_by = serializers.CharField(allow_null=True, help_text="Null: the policy decided.")
    reason_label = serializers.CharField()
    reason_treatment = serializers.CharField()
    comment = serializers.CharField(allow_blank=True)
    override_churn_label = serializers.BooleanField(allow_null=True)
    override_action = serializers.CharField(allow_null=True)
    holdout_reason = serializers.CharField(
        allow_null=True, help_text="Null unless held out and its horizon has passed."
    )
    silenced_because = serializers.CharField(allow_blank=True)
    seconds_on_item = serializers.FloatField(allow_null=True)


class LineageDeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    endpoint = serializers.CharField(
        allow_null=True, help_text="The endpoint's URL; null unless you read the delivery log."
    )
    status = serializers.ChoiceField(choices=Delivery.Status.choices)
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_null=True, allow_blank=True)


class LineageEventOutSerializer(serializers.Serializer):
    event_id = serializers.UUIDField(help_text="What receivers deduplicate on (`webhook-id`).")
    type = serializers.CharField(
        allow_null=True,
        help_text="An event type (see the webhooks section). Null for a decision's event, with "
        "its deliveries, until the decision's horizon has passed, unless you read the delivery "
        "log: its type would tell whether it was held out.",
    )
    created_at = serializers.DateTimeField()
    deliveries = LineageDeliverySerializer(many=True, allow_null=True)


class LineageExampleSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.ChoiceField(choices=LabeledExample.Source.choices)
    kind = serializers.ChoiceField(choices=PredictionKind.choices)
    prediction_id = serializers.IntegerField()
    churn_label = serializers.BooleanField(allow_null=True)
    action = serializers.CharField(allow_null=True)
    treatment = serializers.CharField(allow_blank=True)
    agrees_with_model = serializers.BooleanField(allow_null=True)
    weight = serializers.FloatField()
    excluded = serializers.BooleanField()
    observed_at = serializers.DateTimeField()


class LineageAuditRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    occurred_at = serializers.DateTimeField()


class DecisionLineageOutputSerializer(serializers.Serializer):
    """A decision's whole story (`integrations.lineage`)."""

    format = serializers.IntegerField(help_text="1; fields are only ever added within it.")
    decision_id = serializers.IntegerField()
    member = LineageMemberSerializer()
    predictions = LineagePredictionSerializer(many=True)
    routing = LineageRoutingSerializer()
    people = LineageStepSerializer(many=True, help_text="Every person's step, in time order.")
    escalation = LineageEscalationSerializer(allow_null=True)
    blind_answer = LineageBlindAnswerSerializer(allow_null=True)
    decision = LineageDecisionSerializer()
    events_out = LineageEventOutSerializer(many=True)
    labeled_examples = LineageExampleSerializer(
        many=True, help_text="The training rows made from the decision."
    )
    outcomes = LineageExampleSerializer(
        many=True, help_text="What the member did, once the horizon passed."
    )
    audit_records = LineageAuditRecordSerializer(
        many=True, help_text="The audit trail about the review (details in the audit log)."
    )


class LineageExportQuerySerializer(serializers.Serializer):
    start = serializers.DateField(help_text="The first day (inclusive).")
    end = serializers.DateField(help_text="The day after the last (exclusive).")
    file_type = serializers.ChoiceField(
        choices=[("jsonl", "jsonl"), ("csv", "csv")],
        default="jsonl",
        help_text="jsonl: one lineage per line; csv: the flat part, one row per decision.",
    )

    def validate(self, data):
        if data["start"] >= data["end"]:
            raise serializers.ValidationError({"end": "The end date must come after the start."})
        return data
