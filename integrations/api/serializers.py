"""What the integrations API takes and answers, and the webhook payloads' schemas."""

from rest_framework import serializers

from integrations.exceptions import InvalidEndpoint
from integrations.services.endpoints import clean_url
from loyalty.models import Member
from loyalty.outbox import EVENT_TYPES
from predictions.models import PredictionKind
from reviews.models import CASE, Decision

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
