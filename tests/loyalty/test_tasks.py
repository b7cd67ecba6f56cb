"""Tasks of the loyalty app, run by a real worker on the configured broker (no eager mode)."""

import pytest

from loyalty.models import WorkerHeartbeat
from loyalty.tasks import record_worker_heartbeat_task

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_worker_runs_heartbeat_task_and_writes_a_row(celery_worker):
    assert WorkerHeartbeat.objects.count() == 0

    result = record_worker_heartbeat_task.delay()
    # The result backend is off (decisions live in the database); wait on the row instead.
    heartbeat = _wait_for(lambda: WorkerHeartbeat.objects.first())

    assert WorkerHeartbeat.objects.count() == 1
    assert heartbeat.hostname != ""
    assert result.id


def _wait_for(fetch, timeout: float = 20.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fetch()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"nothing appeared within {timeout} s")
