"""Members scored before freshness existed: their latest prediction's cutoff is how far their
scores reach, so that the first refresh re-scores only those due, not everyone."""

from django.db import migrations
from django.db.models import Max, OuterRef, Subquery


def fill_scored_through(apps, schema_editor):
    Member = apps.get_model("loyalty", "Member")
    Prediction = apps.get_model("predictions", "Prediction")
    latest = (
        Prediction.objects.filter(member_id=OuterRef("pk"))
        .values("member_id")
        .annotate(latest=Max("cutoff"))
        .values("latest")
    )
    Member.objects.update(scored_through=Subquery(latest))


class Migration(migrations.Migration):
    dependencies = [
        ("loyalty", "0015_score_freshness"),
        ("predictions", "0005_score_freshness"),
    ]

    operations = [migrations.RunPython(fill_scored_through, migrations.RunPython.noop)]
