"""Decisions made before policy decisions existed get their member and the action they settled
on. A migration of its own (its own transaction): on PostgreSQL, a table whose rows were updated
cannot be altered or indexed in the same transaction ("pending trigger events")."""

from django.db import migrations
from django.db.models import F, OuterRef, Subquery


def member_and_action_of_earlier_decisions(apps, schema_editor):
    """A decision made before this migration: its member is its review's; it settled on the
    person's action when it overrode a next action, on the review's recommendation when it
    approved one, on none for a churn call."""
    Decision = apps.get_model("reviews", "Decision")
    Review = apps.get_model("reviews", "Review")
    reviews = Review.objects.filter(pk=OuterRef("review_id"))
    Decision.objects.update(member_id=Subquery(reviews.values("member_id")[:1]))
    next_actions = Decision.objects.filter(review__kind="next_action")
    next_actions.filter(verdict="override").update(settled_action_id=F("action_id"))
    next_actions.filter(verdict="approve").update(
        settled_action_id=Subquery(reviews.values("recommended_action_id")[:1])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reviews", "0014_policy_decisions"),
    ]

    operations = [
        migrations.RunPython(member_and_action_of_earlier_decisions, migrations.RunPython.noop),
    ]
