"""After 0015 filled it in: a decision's member is required; the indexes and the constraint of
policy decisions."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0014_contact_rules_and_action_priors"),
        ("reviews", "0015_earlier_decisions_member_and_action"),
    ]

    operations = [
        migrations.AlterField(
            model_name="decision",
            name="member",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="decisions",
                to="loyalty.member",
            ),
        ),
        migrations.AddIndex(
            model_name="decision",
            index=models.Index(fields=["member", "-decided_at"], name="decision_member_recent"),
        ),
        migrations.AddIndex(
            model_name="decision",
            index=models.Index(
                fields=["settled_action", "-decided_at"], name="decision_action_recent"
            ),
        ),
        migrations.AddConstraint(
            model_name="decision",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("decided_as", "policy"), ("decided_by__isnull", False), _connector="OR"
                ),
                name="a_person_decision_names_the_person",
            ),
        ),
    ]
