"""The learning loop's models moved from reviews to learning with what they held: rows, the
pause's report, the permissions the groups hold and the stored schedules."""

from datetime import UTC, datetime

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [
    ("reviews", "0007_review_state_withdrawn"),
    ("django_celery_beat", "0019_alter_periodictasks_options"),
]
AFTER = [("learning", "0003_carry_permissions_tasks_and_gates")]


def test_the_move_keeps_rows_the_pause_report_permissions_and_schedules(migrator):
    old = migrator(BEFORE)
    version = old.get_model("predictions", "ModelVersion").objects.create(
        kind="churn",
        algorithm="xgboost",
        evaluation_cutoff=datetime(2025, 10, 1, tzinfo=UTC),
        data_fingerprint="0" * 64,
    )
    # An admin's edited gate (the row may be there already: the seed survives a migration back).
    old.get_model("reviews", "GatePolicy").objects.update_or_create(
        kind="churn", defaults={"max_ece": 0.07}
    )
    report = old.get_model("reviews", "MonitorReport").objects.create(
        kind="churn", model_version=version
    )
    pause = old.get_model("reviews", "AutomationPause").objects.create(
        kind="churn", reason="drift", report=report
    )
    schedule = old.get_model("django_celery_beat", "IntervalSchedule").objects.create(
        every=10, period="minutes"
    )
    old.get_model("django_celery_beat", "PeriodicTask").objects.create(
        name="custom monitor", task="reviews.monitor_task", interval=schedule
    )
    OldContentType = old.get_model("contenttypes", "ContentType")
    content_type, _ = OldContentType.objects.get_or_create(
        app_label="reviews", model="retrainingrun"
    )
    permission, _ = old.get_model("auth", "Permission").objects.get_or_create(
        content_type=content_type, codename="view_retrainingrun", defaults={"name": "Can view"}
    )
    group = old.get_model("auth", "Group").objects.create(name="watchers")
    group.permissions.add(permission)

    new = migrator(AFTER)

    gates = new.get_model("learning", "GatePolicy").objects.order_by("kind")
    assert [(gate.kind, gate.max_ece) for gate in gates] == [
        ("churn", 0.07),
        ("next_action", 0.05),
    ]
    assert new.get_model("learning", "MonitorReport").objects.get().pk == report.pk
    moved_pause = new.get_model("reviews", "AutomationPause").objects.get()
    assert (moved_pause.pk, moved_pause.monitor_report_id) == (pause.pk, report.pk)
    task = new.get_model("django_celery_beat", "PeriodicTask").objects.get(name="custom monitor")
    assert task.task == "learning.monitor_task"
    held = new.get_model("auth", "Group").objects.get(name="watchers").permissions.get()
    assert (held.content_type.app_label, held.codename) == ("learning", "view_retrainingrun")
