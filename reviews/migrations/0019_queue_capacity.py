"""Queues that fit the team: each policy version's daily capacity per queue (empty: no limit,
so every existing version keeps routing as before), and the backlog flag of a pending review
(every existing review is in its queue). The queue index leads with the flag, so that the queue
and its backlog are each one index range."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("reviews", "0018_pending_reviews_become_cases")]

    operations = [
        migrations.RemoveIndex(model_name="review", name="review_queue_order"),
        migrations.AddField(
            model_name="escalationpolicy",
            name="analyst_daily_capacity",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Items analysts can decide a day; the overflow waits in the backlog.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.AddField(
            model_name="escalationpolicy",
            name="expert_daily_capacity",
            field=models.PositiveIntegerField(
                blank=True,
                help_text="Items experts can decide a day; the overflow waits in the backlog.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.AddField(
            model_name="review",
            name="in_backlog",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddIndex(
            model_name="review",
            index=models.Index(
                fields=["route", "state", "in_backlog", "-priority", "id"],
                name="review_queue_order",
            ),
        ),
        migrations.AddConstraint(
            model_name="escalationpolicy",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("analyst_daily_capacity__isnull", True),
                    ("analyst_daily_capacity__gte", 1),
                    _connector="OR",
                ),
                name="analyst_capacity_is_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="escalationpolicy",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("expert_daily_capacity__isnull", True),
                    ("expert_daily_capacity__gte", 1),
                    _connector="OR",
                ),
                name="expert_capacity_is_positive",
            ),
        ),
    ]
