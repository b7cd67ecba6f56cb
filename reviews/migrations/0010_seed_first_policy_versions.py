"""Seed version 1 of the escalation policy of each prediction kind: the defaults that reading
the policy used to create on first use (a read no longer writes). Existing versions stay."""

from django.db import migrations

CHURN = {
    "auto_approve_confidence": 0.9,
    "expert_confidence": 0.5,
    "expert_value_quantile": 0.95,
    "human_risk_low": 0.6,
    "human_risk_high": 1.0,
    "audit_sample_rate": 0.02,
    "sla_hours": 48,
    "segment_overrides": {},
    "change_reason": "defaults",
}
# Next-action reviews carry no churn risk: no risk band applies to them.
FIRST_VERSIONS = {
    "churn": CHURN,
    "next_action": {**CHURN, "human_risk_low": None, "human_risk_high": None},
}


def seed(apps, schema_editor):
    EscalationPolicy = apps.get_model("reviews", "EscalationPolicy")
    for kind, fields in FIRST_VERSIONS.items():
        EscalationPolicy.objects.using(schema_editor.connection.alias).get_or_create(
            kind=kind, version=1, defaults=fields
        )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0009_learning_models_leave")]

    # Unapplying keeps the rows: reviews name the version that routed them.
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
