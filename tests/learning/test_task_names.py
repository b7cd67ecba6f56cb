"""Task names follow one pattern, `<app>.<function name>`, and the beat schedule names real tasks
(a periodic task stored under a name no worker knows never runs, silently)."""

import importlib

import pytest
from django.conf import settings

from loyalty.celery import app

APPS = ("loyalty", "predictions", "reviews", "learning", "integrations")


def _project_tasks() -> dict[str, object]:
    for name in APPS:
        importlib.import_module(f"{name}.tasks")
    return {name: task for name, task in app.tasks.items() if name.split(".")[0] in APPS}


def test_every_task_is_named_for_its_app_and_function():
    tasks = _project_tasks()

    assert tasks
    for name, task in tasks.items():
        app_label, module = task.run.__module__.split(".", 1)
        assert (module, name) == ("tasks", f"{app_label}.{task.run.__name__}")
        assert name.endswith("_task")


@pytest.mark.parametrize("entry", sorted(settings.CELERY_BEAT_SCHEDULE))
def test_every_beat_entry_names_a_registered_task(entry):
    assert settings.CELERY_BEAT_SCHEDULE[entry]["task"] in _project_tasks()
