"""The reason codes a new install starts with; admins manage them in the admin afterwards."""

from reviews.models import ReasonCode

DEFAULT_REASON_CODES = (
    ("model-correct", "The model is right", ReasonCode.Treatment.CONFIRM),
    ("known-customer", "Matches what we know about this member", ReasonCode.Treatment.CONFIRM),
    ("wrong-churn-call", "Wrong churn call", ReasonCode.Treatment.RELABEL),
    ("better-action", "Another action fits better", ReasonCode.Treatment.RELABEL),
    ("recent-contact", "Recent contact the data does not show", ReasonCode.Treatment.RELABEL),
    ("bad-data", "Bad or incomplete data", ReasonCode.Treatment.EXCLUDE),
    ("test-account", "Test or staff account", ReasonCode.Treatment.EXCLUDE),
    ("needs-expert", "Needs an expert's judgement", ReasonCode.Treatment.ESCALATE),
    ("high-stakes", "High-value or sensitive member", ReasonCode.Treatment.ESCALATE),
)


def seed_reason_codes() -> int:
    """Create the default codes that are missing; never touches codes an admin edited."""
    created = 0
    for code, label, treatment in DEFAULT_REASON_CODES:
        _, was_created = ReasonCode.objects.get_or_create(
            code=code, defaults={"label": label, "treatment": treatment}
        )
        created += was_created
    return created
