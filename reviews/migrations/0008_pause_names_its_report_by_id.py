"""An automation pause names the monitor report that opened it by id, not by a foreign key:
the report belongs to the learning loop, above this app, and the pause stays where routing
reads it."""

from django.db import migrations, models


def copy_report_ids(apps, schema_editor):
    AutomationPause = apps.get_model("reviews", "AutomationPause")
    for pause in AutomationPause.objects.exclude(report__isnull=True).only("pk", "report_id"):
        AutomationPause.objects.filter(pk=pause.pk).update(monitor_report_id=pause.report_id)


class Migration(migrations.Migration):
    dependencies = [("reviews", "0007_review_state_withdrawn")]

    operations = [
        migrations.AddField(
            model_name="automationpause",
            name="monitor_report_id",
            field=models.PositiveBigIntegerField(
                blank=True, help_text="The monitor report that opened the pause, if any.", null=True
            ),
        ),
        migrations.RunPython(copy_report_ids, migrations.RunPython.noop),
        migrations.RemoveField(model_name="automationpause", name="report"),
    ]
