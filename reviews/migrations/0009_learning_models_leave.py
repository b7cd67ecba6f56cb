"""The learning loop's models move to the `learning` app: they leave this app's state here
and `learning.0001_initial` takes them over on the same tables (nothing runs on the database)."""

from django.db import migrations

LEAVING = ("LabeledExample", "GatePolicy", "RetrainingRun", "MonitorReport")


class Migration(migrations.Migration):
    dependencies = [("reviews", "0008_pause_names_its_report_by_id")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name=name) for name in LEAVING],
            database_operations=[],
        )
    ]
