"""Input and output serializers of the API: shapes and field checks, no business rules."""

from django.utils import timezone
from rest_framework import serializers

from loyalty.member_attributes import MAX_VALUE_LENGTH, key_error
from loyalty.models import Event
from loyalty.services.events import (
    EVENT_BATCH_LIMIT,
    NAIVE_DATETIME_MESSAGE,
    EventInput,
    ItemError,
)

# Attributes kept for fairness audits only: shown to the roles that may change members (admin,
# integrator: the systems that sent them), hidden from analysts and experts, who do not need
# them to review a case.
PERSONAL_FIELDS = ("age_band", "region", "attributes")
PERSONAL_FIELDS_PERMISSION = "loyalty.change_member"
# Amounts in and out with the stored precision: an API that rounded them would not be exact.
_AMOUNT = Event._meta.get_field("amount")


class ErrorOutputSerializer(serializers.Serializer):
    detail = serializers.CharField()


class MemberAttributesField(serializers.DictField):
    """Further attributes of a member (`loyalty.member_attributes`): attribute key to short
    text. Values are stripped and an empty one is left out, as in a members file."""

    child = serializers.CharField(max_length=MAX_VALUE_LENGTH, allow_blank=True)

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        bad = {key: [reason] for key in values if (reason := key_error(key))}
        if bad:
            raise serializers.ValidationError(bad)
        return {key: value for key, value in values.items() if value}


ATTRIBUTES_HELP = (
    "Further attributes kept for fairness audits only (income band, home ownership...): "
    f"attribute key (lowercase letters, digits, underscores) to text of at most "
    f"{MAX_VALUE_LENGTH} characters."
)


class MemberOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField()
    joined_on = serializers.DateField(allow_null=True)
    tier = serializers.CharField()
    points_balance = serializers.IntegerField()
    consent_profiling = serializers.BooleanField()
    consent_marketing = serializers.BooleanField()
    consent_changed_at = serializers.DateTimeField(
        allow_null=True, help_text="When a consent (to profiling or to marketing) last changed."
    )
    age_band = serializers.CharField(
        required=False, help_text="Only for users who may change members (admin, integrator)."
    )
    region = serializers.CharField(
        required=False, help_text="Only for users who may change members (admin, integrator)."
    )
    attributes = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text=f"{ATTRIBUTES_HELP} Only for users who may change members (admin, integrator).",
    )
    is_erased = serializers.BooleanField()
    erased_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not request.user.has_perm(PERSONAL_FIELDS_PERMISSION):
            for name in PERSONAL_FIELDS:
                data.pop(name, None)
        return data


class MemberUpdateInputSerializer(serializers.Serializer):
    """PUT sends every field; PATCH any of them. The external id never changes."""

    joined_on = serializers.DateField(allow_null=True)
    tier = serializers.CharField(max_length=32, allow_blank=True)
    points_balance = serializers.IntegerField()
    consent_profiling = serializers.BooleanField(
        help_text="Consent to profiling. Withdrawing it stops scoring from the next run on."
    )
    consent_marketing = serializers.BooleanField(
        required=False,
        help_text="Consent to be contacted with offers. Withdrawing it stops contact, not "
        "scoring. Left out of a PUT, it stays as it is (clients written before it existed).",
    )
    age_band = serializers.CharField(max_length=32, allow_blank=True)
    region = serializers.CharField(max_length=64, allow_blank=True)
    attributes = MemberAttributesField(
        required=False,
        help_text=f"{ATTRIBUTES_HELP} Given, it replaces them all; left out of a PUT, they stay "
        "as they are.",
    )


class MemberCreateInputSerializer(serializers.Serializer):
    external_id = serializers.CharField(
        max_length=64, help_text="Your pseudonymous id for the member; never a name or e-mail."
    )
    joined_on = serializers.DateField(required=False, allow_null=True)
    tier = serializers.CharField(max_length=32, required=False, allow_blank=True)
    points_balance = serializers.IntegerField(required=False)
    consent_profiling = serializers.BooleanField(required=False, default=False)
    consent_marketing = serializers.BooleanField(required=False, default=False)
    age_band = serializers.CharField(max_length=32, required=False, allow_blank=True)
    region = serializers.CharField(max_length=64, required=False, allow_blank=True)
    attributes = MemberAttributesField(required=False, help_text=ATTRIBUTES_HELP)


class ErasureOutputSerializer(serializers.Serializer):
    member_id = serializers.IntegerField()
    external_id = serializers.CharField(help_text="The placeholder now on the member row.")
    events_deleted = serializers.IntegerField()
    tombstone_digest = serializers.CharField(
        help_text="Keyed HMAC-SHA256 of the former external id: the erasure tombstone that "
        "refuses the id from now on, also kept in the audit record. Empty for an erasure made "
        "before tombstones whose record kept no hash."
    )
    erased_at = serializers.DateTimeField()
    already_erased = serializers.BooleanField(
        help_text="true when an earlier request erased the member; nothing changed this time."
    )


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with a zone offset; a naive time is refused rather than guessed."""

    default_error_messages = {"naive": NAIVE_DATETIME_MESSAGE}

    def enforce_timezone(self, value):
        if timezone.is_naive(value):
            self.fail("naive")
        return super().enforce_timezone(value)


# Text parts of an event where null and "" mean the same; the natural key needs one spelling.
_TEXT_FIELDS = {"category", "channel", "session_id", "product_id"}


class EventInputSerializer(serializers.Serializer):
    member_external_id = serializers.CharField(max_length=64)
    occurred_at = AwareDateTimeField(help_text="ISO 8601 with an offset, e.g. 2025-01-31T14:05Z.")
    kind = serializers.ChoiceField(choices=Event.Kind.choices)
    amount = serializers.DecimalField(
        max_digits=_AMOUNT.max_digits,
        decimal_places=_AMOUNT.decimal_places,
        required=False,
        allow_null=True,
        default=None,
    )
    quantity = serializers.FloatField(required=False, allow_null=True, default=None)
    category = serializers.CharField(
        max_length=64, required=False, allow_blank=True, allow_null=True, default=""
    )
    channel = serializers.CharField(
        max_length=32, required=False, allow_blank=True, allow_null=True, default=""
    )
    session_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, allow_null=True, default=""
    )
    dwell_seconds = serializers.FloatField(
        required=False, allow_null=True, default=None, min_value=0
    )
    product_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, allow_null=True, default=""
    )

    def validate(self, attrs):
        return {
            name: "" if value is None and name in _TEXT_FIELDS else value
            for name, value in attrs.items()
        }


class EventBatchRequestSerializer(serializers.Serializer):
    """Documents the request body; a bare JSON list of events is accepted as well."""

    events = EventInputSerializer(many=True, max_length=EVENT_BATCH_LIMIT)


class EventBatchInputSerializer(serializers.Serializer):
    """A batch of events, each validated on its own so that one bad item spoils no other.

    Validated data: `events` (EventInput for every valid item) and `rejected` (ItemError for
    every other one).
    """

    events = serializers.ListField(allow_empty=False)

    def to_internal_value(self, data):
        if isinstance(data, list):
            data = {"events": data}
        return super().to_internal_value(data)

    def validate_events(self, items: list) -> list:
        if len(items) > EVENT_BATCH_LIMIT:
            raise serializers.ValidationError(
                f"A batch holds at most {EVENT_BATCH_LIMIT} events; this one has {len(items)}. "
                "Split it into smaller batches; nothing was stored."
            )
        return items

    def validate(self, attrs):
        events: list[EventInput] = []
        rejected: list[ItemError] = []
        for index, item in enumerate(attrs["events"]):
            if not isinstance(item, dict):
                rejected.append(
                    ItemError(index=index, errors={"non_field_errors": ["Expected a JSON object."]})
                )
                continue
            serializer = EventInputSerializer(data=item)
            if serializer.is_valid():
                events.append(EventInput(index=index, **serializer.validated_data))
            else:
                rejected.append(ItemError(index=index, errors=_plain(serializer.errors)))
        return {"events": events, "rejected": rejected}


def _plain(errors) -> dict[str, list[str]]:
    return {name: [str(message) for message in messages] for name, messages in errors.items()}


class ItemErrorOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position of the item in the batch, from 0.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text="Field name -> what is wrong with it.",
    )


class EventBatchOutputSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField(help_text="Events stored by this request.")
    duplicates = serializers.IntegerField(
        help_text="Valid events already stored, or repeated within the batch: not stored again."
    )
    rejected = serializers.IntegerField(help_text="Invalid items, each listed in `errors`.")
    errors = ItemErrorOutputSerializer(many=True)


class EventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=Event.Kind.choices)
    amount = serializers.DecimalField(
        max_digits=_AMOUNT.max_digits, decimal_places=_AMOUNT.decimal_places, allow_null=True
    )
    quantity = serializers.FloatField(allow_null=True)
    category = serializers.CharField()
    channel = serializers.CharField()
    session_id = serializers.CharField()
    dwell_seconds = serializers.FloatField(allow_null=True)
    product_id = serializers.CharField()
