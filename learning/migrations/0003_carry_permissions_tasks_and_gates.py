"""What else moves with the learning loop's models, and the gate policies' seed.

- Content types: the models' rows are relabeled from `reviews` to `learning`, so their
  permissions (`learning.view_retrainingrun`, …), the groups that hold them and the admin's
  history stay attached. A database that already has the new rows keeps them.
- Periodic tasks: schedules saved in the database under the old task names run the tasks
  under their new names.
- One gate policy per kind, with the model's defaults (admins edit them; nothing reads a
  missing row into existence any more).
"""

from django.db import migrations

MOVED_MODELS = ("labeledexample", "gatepolicy", "retrainingrun", "monitorreport")
MOVED_TASKS = (
    "label_decision_task",
    "sweep_unlabeled_decisions_task",
    "record_outcomes_task",
    "retrain_task",
    "scheduled_retraining_task",
    "recover_stalled_retraining_task",
    "monitor_task",
)
KINDS = ("churn", "next_action")


def carry_over(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED_MODELS:
        if not ContentType.objects.filter(app_label="learning", model=model).exists():
            ContentType.objects.filter(app_label="reviews", model=model).update(
                app_label="learning"
            )
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for task in MOVED_TASKS:
        PeriodicTask.objects.filter(task=f"reviews.{task}").update(task=f"learning.{task}")
    GatePolicy = apps.get_model("learning", "GatePolicy")
    for kind in KINDS:
        GatePolicy.objects.get_or_create(kind=kind)


def carry_back(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MOVED_MODELS:
        if not ContentType.objects.filter(app_label="reviews", model=model).exists():
            ContentType.objects.filter(app_label="learning", model=model).update(
                app_label="reviews"
            )
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for task in MOVED_TASKS:
        PeriodicTask.objects.filter(task=f"learning.{task}").update(task=f"reviews.{task}")


class Migration(migrations.Migration):
    dependencies = [
        ("learning", "0002_tables_named_for_learning"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(carry_over, carry_back)]
