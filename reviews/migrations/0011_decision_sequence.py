"""Decisions get the feed's sequence number: existing ones in the order they were made
(decided_at, then id), and the `decision` counter starts after the last of them."""

from django.db import migrations, models


def number_existing_decisions(apps, schema_editor):
    Decision = apps.get_model("reviews", "Decision")
    Counter = apps.get_model("loyalty", "Counter")
    decisions = list(Decision.objects.order_by("decided_at", "id").only("id"))
    for number, decision in enumerate(decisions, start=1):
        decision.sequence = number
    Decision.objects.bulk_update(decisions, ["sequence"], batch_size=1000)
    Counter.objects.update_or_create(name="decision", defaults={"value": len(decisions)})


def forget_numbers(apps, schema_editor):
    apps.get_model("loyalty", "Counter").objects.filter(name="decision").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0009_outbox_and_counters"),
        ("reviews", "0010_seed_first_policy_versions"),
    ]

    operations = [
        migrations.AddField(
            model_name="decision",
            name="sequence",
            field=models.PositiveBigIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing_decisions, forget_numbers),
        migrations.AlterField(
            model_name="decision",
            name="sequence",
            field=models.PositiveBigIntegerField(editable=False, unique=True),
        ),
    ]
