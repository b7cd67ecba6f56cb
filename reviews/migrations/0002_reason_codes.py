"""Seed the reason codes a new install starts with (admins manage them afterwards)."""

from django.db import migrations

REASON_CODES = [
    ("model-correct", "The model is right", "confirm"),
    ("known-customer", "Matches what we know about this member", "confirm"),
    ("wrong-churn-call", "Wrong churn call", "relabel"),
    ("better-action", "Another action fits better", "relabel"),
    ("recent-contact", "Recent contact the data does not show", "relabel"),
    ("bad-data", "Bad or incomplete data", "exclude"),
    ("test-account", "Test or staff account", "exclude"),
    ("needs-expert", "Needs an expert's judgement", "escalate"),
    ("high-stakes", "High-value or sensitive member", "escalate"),
]


def seed(apps, schema_editor):
    ReasonCode = apps.get_model("reviews", "ReasonCode")
    for code, label, treatment in REASON_CODES:
        ReasonCode.objects.get_or_create(
            code=code, defaults={"label": label, "treatment": treatment}
        )


def unseed(apps, schema_editor):
    codes = [code for code, _, _ in REASON_CODES]
    apps.get_model("reviews", "ReasonCode").objects.filter(code__in=codes).delete()


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
